"""The package's layers, read from its source with ``ast`` (nothing is imported).

Every ``import`` counts: at module level, inside functions and under
``if TYPE_CHECKING:``. A package's ``__init__`` is its own node; importing a
submodule does not count as importing its parent package (Python runs the parent
first, but that is not a dependency of the code).
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "lineage_kit"

BOTTOM = {"lineage_kit.errors", "lineage_kit.base", "lineage_kit.model", "lineage_kit.values"}
CAPTURE = {
    "lineage_kit.pipeline",
    "lineage_kit.engine",
    "lineage_kit.frame_steps",
    "lineage_kit.frame_rows",
    "lineage_kit.frame_values",
    "lineage_kit.steps",
    "lineage_kit.sources",
    "lineage_kit.distributed",
}
ANALYSIS_NAMES = ("frames", "graph", "plot", "checks", "summary", "report", "export")
#: Analysis modules the capture side may call: the live OpenLineage emitter, which the
#: pipeline tells when a run and its steps start and end (it reads through the backend).
CAPTURE_HOOKS = {"lineage_kit.export.emit"}
#: What the storage layer may import from the package besides itself.
STORE_MAY_IMPORT = BOTTOM


def _is_analysis(module: str) -> bool:
    return any(
        module == f"lineage_kit.{name}" or module.startswith(f"lineage_kit.{name}.")
        for name in ANALYSIS_NAMES
    )


def _is_store(module: str) -> bool:
    return module == "lineage_kit.store" or module.startswith("lineage_kit.store.")


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path) -> dict[str, Path]:
    return {module_name(p, root): p for p in sorted(root.rglob("*.py"))}


def _resolve(current: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = current.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _import_module_call(node: ast.AST) -> str | None:
    """The module named by ``import_module("literal", ...)``, a lazy import."""
    if not isinstance(node, ast.Call) or not node.args:
        return None
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    first = node.args[0]
    if name == "import_module" and isinstance(first, ast.Constant):
        return first.value if isinstance(first.value, str) else None
    return None


def imports(root: Path) -> dict[str, list[tuple[str, int]]]:
    """Every module of the package -> ``(imported module, line)`` for every import
    anywhere in it; names imported with ``from x import name`` count as the module
    ``x.name`` when that is a module of the package, else as ``x``."""
    known = modules(root)
    out: dict[str, list[tuple[str, int]]] = {}
    for name, path in known.items():
        found: list[tuple[str, int]] = []
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.extend((alias.name, node.lineno) for alias in node.names)
            elif literal := _import_module_call(node):
                package = name if path.name == "__init__.py" else name.rpartition(".")[0]
                target = literal
                if literal.startswith("."):  # relative to the module's package
                    dots = len(literal) - len(literal.lstrip("."))
                    base = package.split(".")[: len(package.split(".")) - (dots - 1)]
                    target = ".".join([*base, literal.lstrip(".")])
                found.append((target, node.lineno))
            elif isinstance(node, ast.ImportFrom):
                target = _resolve(name, path.name == "__init__.py", node)
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    found.append((sub if sub in known else target, node.lineno))
        out[name] = found
    return out


def import_graph(root: Path) -> nx.DiGraph:
    """Modules of the package as nodes, an edge for each import between two of them."""
    graph = nx.DiGraph()
    known = modules(root)
    graph.add_nodes_from(known)
    for name, found in imports(root).items():
        for target, line in found:
            if target in known and target != name:
                graph.add_edge(name, target, line=line)
    return graph


def cycles(graph: nx.DiGraph) -> list[list[str]]:
    return [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]


def forbidden(root: Path) -> list[str]:
    """Every import that breaks a layer rule, as ``module:line -> target (rule)``."""
    problems = []
    for name, found in imports(root).items():
        for target, line in found:
            where = f"{name}:{line} -> {target}"
            if not target.startswith("lineage_kit"):
                if target == "sqlite3" and not _is_store(name):
                    problems.append(f"{where} (only lineage_kit.store talks to SQLite)")
                continue
            if _is_store(name) and not (_is_store(target) or target in STORE_MAY_IMPORT):
                problems.append(f"{where} (the storage layer imports no layer above it)")
            if name in BOTTOM and target not in BOTTOM:
                problems.append(f"{where} (the base modules import only each other)")
            if _is_analysis(name) and target in CAPTURE:
                problems.append(f"{where} (analysis imports nothing from the capture side)")
            if (
                name in CAPTURE
                and (_is_analysis(target) or target == "lineage_kit.lineage_store")
                and target not in CAPTURE_HOOKS
            ):
                problems.append(f"{where} (the capture side imports no analysis module)")
    return problems


def raw_connections(root: Path) -> list[str]:
    """Uses of an attribute ``.con`` (a raw connection) outside the storage layer."""
    found = []
    for name, path in modules(root).items():
        if _is_store(name):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "con":
                found.append(f"{name}:{node.lineno}")
    return found


# ------------------------------------------------------------------ the package


def test_the_package_has_no_import_cycle():
    assert cycles(import_graph(PACKAGE)) == []


def test_no_import_breaks_a_layer_rule():
    assert forbidden(PACKAGE) == []


def test_no_raw_connection_outside_the_storage_layer():
    assert raw_connections(PACKAGE) == []


def test_the_graph_sees_the_expected_dependencies():
    # the rules above are only worth something if the graph is the real one
    graph = import_graph(PACKAGE)
    for edge in [
        ("lineage_kit.pipeline", "lineage_kit.engine"),
        ("lineage_kit.engine", "lineage_kit.model"),
        ("lineage_kit.steps", "lineage_kit.model"),
        ("lineage_kit.lineage_store", "lineage_kit.frames"),  # inside a method
        ("lineage_kit.frames", "lineage_kit.store"),  # under TYPE_CHECKING
        ("lineage_kit.store.sqlite", "lineage_kit.store.queries"),
    ]:
        assert graph.has_edge(*edge), edge
    assert not nx.has_path(graph, "lineage_kit.store", "lineage_kit.lineage_store")
    assert not nx.has_path(graph, "lineage_kit.engine", "lineage_kit.pipeline")


# ------------------------------------------------ the detector on a made-up tree


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "lineage_kit"
    for name, text in {"__init__.py": "", **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.mark.parametrize(
    "importer",
    [
        "from ..frames import x\n",
        "def f():\n    from .. import frames\n",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..frames import Frame\n",
        "import importlib\n\ndef f():\n    return importlib.import_module('..frames', __name__)\n",
    ],
    ids=["module level", "in a function", "TYPE_CHECKING", "import_module"],
)
def test_a_cycle_is_found_however_it_is_imported(tmp_path, importer):
    root = _tree(
        tmp_path,
        {"store/__init__.py": importer, "frames.py": "from .store import Backend\n"},
    )
    assert cycles(import_graph(root)) == [["lineage_kit.frames", "lineage_kit.store"]]
    assert any("storage layer" in p for p in forbidden(root))


def test_upward_and_sideways_imports_are_found(tmp_path):
    root = _tree(
        tmp_path,
        {
            "store/queries.py": "import sqlite3\nfrom ..engine import run\n",
            "frames.py": "def f():\n    from .sources import key_text\n",
            "engine.py": "from .lineage_store import LineageStore\n",
            "model.py": "from .store import Backend\n",
            "plot.py": "import sqlite3\n\ndef g(store):\n    return store.con\n",
        },
    )
    problems = forbidden(root)
    assert len(problems) == 5, problems
    assert raw_connections(root) == ["lineage_kit.plot:4"]


def test_every_docstring_example_runs():
    # the doctests are collected by the test command (pyproject addopts); none is skipped
    skipped = [
        f"{module}:{n}"
        for module, path in modules(PACKAGE).items()
        for n, line in enumerate(path.read_text().splitlines(), start=1)
        if "doctest: +SKIP" in line
    ]
    assert skipped == []


def test_no_test_module_imports_another():
    tests = Path(__file__).resolve().parent
    offenders = [
        f"{path.name}:{node.lineno}"
        for path in sorted(tests.glob("test_*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("test_")
    ]
    assert offenders == []
