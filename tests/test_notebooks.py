"""The committed notebooks: paired with their py:percent scripts, free of IPython
magics, and committed executed top to bottom with their outputs.

The notebooks themselves run under nbval (``python -m pytest`` collects
``notebooks/*.ipynb``, see ``[tool.pytest.ini_options]``); these tests check what
nbval does not.
"""

from __future__ import annotations

import re
from pathlib import Path

import jupytext
import nbformat
import pytest
from nbval.plugin import get_sanitize_patterns

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
EXPECTED = [
    "01_quickstart",
    "02_explore_lineage",
    "03_plot_chains",
    "04_integrity_checks",
    "05_your_own_data",
    "06_exports",
]
IPYNB = sorted(NOTEBOOKS.glob("*.ipynb"))


def cells(notebook: nbformat.NotebookNode) -> list[tuple[str, str]]:
    """(cell type, source) for every cell, trailing whitespace ignored."""
    return [(c.cell_type, c.source.rstrip()) for c in notebook.cells]


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def test_the_six_notebooks_and_their_pairs_exist():
    assert [p.stem for p in IPYNB] == EXPECTED
    scripts = sorted(p.stem for p in NOTEBOOKS.glob("*.py"))
    assert scripts == EXPECTED, "every notebook needs its py:percent pair, and no stray script"
    assert 'formats = "ipynb,py:percent"' in (NOTEBOOKS / "jupytext.toml").read_text()


@pytest.mark.parametrize("path", IPYNB, ids=lambda p: p.stem)
def test_notebook_and_script_are_in_sync(path: Path):
    script = path.with_suffix(".py")
    assert script.read_text().startswith("# ---\n# jupyter:"), "not a jupytext py:percent file"
    from_script = jupytext.read(script)
    from_notebook = jupytext.read(path)
    assert cells(from_script) == cells(from_notebook), (
        f"{path.name} and {script.name} differ: run `jupytext --sync {path}`"
    )


@pytest.mark.parametrize("path", IPYNB, ids=lambda p: p.stem)
def test_no_ipython_magics(path: Path):
    for number, cell in enumerate(read(path).cells):
        if cell.cell_type != "code":
            continue
        for line in cell.source.splitlines():
            assert not line.lstrip().startswith(("%", "!")), (
                f"{path.name} cell {number} uses an IPython magic or shell escape: {line!r}"
            )


@pytest.mark.parametrize("path", IPYNB, ids=lambda p: p.stem)
def test_committed_executed_top_to_bottom_with_outputs(path: Path):
    code = [c for c in read(path).cells if c.cell_type == "code"]
    # executed once each, in order, in a fresh kernel
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    for cell in code:
        assert not [o for o in cell.outputs if o.output_type == "error"]
        assert "execution" not in cell.metadata, "timing metadata: execute with record_timing off"
        if "# NBVAL_CHECK_OUTPUT" in cell.source:
            assert cell.outputs, f"a checked cell without stored output: {cell.source[:60]!r}"
    checked = [c for c in code if "# NBVAL_CHECK_OUTPUT" in c.source]
    assert checked or path.stem == "03_plot_chains"


def images(path: Path) -> int:
    return sum(
        "image/png" in o.get("data", {})
        for c in read(path).cells
        if c.cell_type == "code"
        for o in c.outputs
    )


def test_plot_notebook_shows_its_plots():
    # three chains (plain, failed, rejected), a merged chain, a funnel, runs, timeline
    assert images(NOTEBOOKS / "03_plot_chains.ipynb") == 7
    assert images(NOTEBOOKS / "01_quickstart.ipynb") == 1


@pytest.mark.parametrize("path", IPYNB, ids=lambda p: p.stem)
def test_stores_go_under_the_ignored_work_folder(path: Path):
    source = path.with_suffix(".py").read_text()
    assert f'WORK = Path("_work") / "{path.stem}"' in source
    assert "shutil.rmtree(WORK, ignore_errors=True)" in source  # re-runs start clean
    assert "notebooks/_work/" in (ROOT / ".gitignore").read_text().splitlines()


def test_sanitizers_hide_what_changes_between_runs():
    patterns = get_sanitize_patterns((NOTEBOOKS / "nbval_sanitize.cfg").read_text())
    assert len(patterns) >= 5

    def sanitize(text: str) -> str:
        for regex, replace in patterns:
            text = re.sub(regex, replace, text)
        return text

    one = (
        "run 3f0c1e52-6a8e-4d0c-9a57-2f1f3e0e8f6b at 2026-11-25T19:21:00.491349+00:00, "
        "in 1 run(s) [3f0c1e52], elapsed 0.021 s, <Foo at 0x7f3a2b1c9d10>, "
        "(its writer process is gone; writer pid 20757 on vm)"
    )
    two = (
        "run 0b7fd0af-1111-4222-8333-944445555666 at 2026-11-26 07:01:59, "
        "in 1 run(s) [0b7fd0af], elapsed 1.500 s, <Foo at 0x55d0c0ffee00>, "
        "(its writer process is gone; writer pid 4 on ci-runner-7)"
    )
    assert sanitize(one) == sanitize(two)
    # what must stay compared, stays: hashes, entry ids, counts
    kept = "entry 34 hash 3faaacc552a36371388a82881a52a8f1 published 30"
    assert sanitize(kept) == kept


def test_dataframe_html_is_masked_and_its_text_compared():
    import pandas as pd

    patterns = get_sanitize_patterns((NOTEBOOKS / "nbval_sanitize.cfg").read_text())
    frame = pd.DataFrame({"step": ["ingest", "publish"], "n_ok": [30, 30]})
    html, text = frame._repr_html_(), repr(frame)
    for regex, replace in patterns:
        html, text = re.sub(regex, replace, html), re.sub(regex, replace, text)
    assert html == "DATAFRAME-HTML"
    assert text == repr(frame)  # the values are still compared, in the text form
