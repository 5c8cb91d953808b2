"""Start-up benchmark (issue 7, item 10): what ``lineage-kit`` imports, and how fast."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from typing import Any

from common import ROOT, Figure, fresh_db, interleaved, run_child

HEAVY = ("matplotlib", "networkx", "numpy", "pandas")


def child_imports(command: str) -> dict[str, Any]:
    """In a fresh process: run ``lineage-kit --help`` or ``run``; which heavy modules loaded."""
    from lineage_kit.cli import main

    if command == "help":
        argv = ["--help"]
    else:
        argv = [
            "run",
            str(ROOT / "data" / "sample_input.json"),
            "--db",
            str(fresh_db("startup.db")),
        ]
        argv.append("--quiet")
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    return {"exit": code, "heavy": [m for m in HEAVY if m in sys.modules]}


def _python(*args: str) -> None:
    # With cached bytecode, as an installed package starts; PYTHONDONTWRITEBYTECODE=1
    # (set on some machines) would time compiling every module instead.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT)},
        check=True,
        stdout=subprocess.DEVNULL,
    )


def startup(reps: int) -> list[Figure]:
    """``lineage-kit --help`` start-up time against ``python -c pass``."""
    _python("-m", "lineage_kit", "--help")  # writes the bytecode cache
    t = interleaved(
        {
            "bare": lambda: _python("-c", "pass"),
            "help": lambda: _python("-m", "lineage_kit", "--help"),
        },
        reps,
    )
    ratio = t["help"].median / t["bare"].median
    imports = {cmd: run_child("imports", cmd) for cmd in ("help", "run")}
    heavy = {cmd: r["heavy"] for cmd, r in imports.items()}
    clean = not any(m in ("matplotlib", "networkx") for mods in heavy.values() for m in mods)
    print(f"  start-up {ratio:.2f}x python -c pass; heavy imports {heavy}", flush=True)
    return [
        Figure(
            "startup_ratio",
            "`lineage-kit --help` start-up time / `python -c pass`",
            ratio,
            "x",
            detail={"help_seconds": t["help"].median, "python_seconds": t["bare"].median},
        ),
        Figure(
            "startup_no_heavy_imports",
            "`--help` and `run` import neither matplotlib nor networkx",
            float(clean),
            "bool",
            goal="1 (true)",
            met=clean,
            detail={"heavy_modules_loaded": heavy},
        ),
    ]
