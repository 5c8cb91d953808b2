"""``lineage-kit trace KEY``: table, JSON, unknown key and run."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import lineage_kit as lk
from lineage_kit.cli import main

from .conftest import ROOT, SAMPLE_JSON
from .explore_data import build


def _run(argv):
    out = io.StringIO()
    code = main(argv, out=out)
    return code, out.getvalue()


def test_trace_table(db):
    lk.run_pipeline(SAMPLE_JSON, db=db, progress=False)
    code, text = _run(["trace", "order-101", "--db", str(db)])
    assert code == 0
    lines = text.splitlines()
    assert lines[0].split()[:5] == ["entry", "step", "key", "relation", "status"]
    assert [line.split()[1] for line in lines[1:]] == ["ingest", "normalize", "publish"]


def test_trace_json_fan(db):
    run1, _ = build(db)
    code, text = _run(["trace", "o4", "--db", str(db), "--run", run1[:8], "--json"])
    assert code == 0
    rows = json.loads(text)
    assert [(r["step"], r["status"]) for r in rows] == [("ingest", "ok"), ("validate", "failed")]
    assert rows[1]["error"] == "ValueError: unlucky amount"
    assert rows[1]["parent_ids"] == [rows[0]["entry_id"]]
    code, text = _run(["trace", "o1", "--db", str(db), "--run", "all"])
    assert code == 0 and text.splitlines()[0].startswith("run")


def test_trace_unknown_key_and_run(db, capsys):
    lk.run_pipeline(SAMPLE_JSON, db=db, progress=False)
    code, text = _run(["trace", "order-999", "--db", str(db)])
    assert code == 1 and text == ""
    assert "order-999" in capsys.readouterr().err
    code, _ = _run(["trace", "order-101", "--db", str(db), "--run", "nope"])
    assert code == 2
    assert "no run matches" in capsys.readouterr().err


def test_trace_subprocess(db):
    lk.run_pipeline(SAMPLE_JSON, db=db, progress=False)
    done = subprocess.run(
        [sys.executable, "-m", "lineage_kit", "trace", "order-130", "--db", str(db), "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert [r["key"] for r in json.loads(done.stdout)] == ["order-130"] * 3


def test_the_run_command_imports_no_numpy_pandas_networkx_or_matplotlib(tmp_path):
    # `lineage-kit run` writes a run and prints its summary: none of these is needed,
    # and numpy alone costs more start-up than the rest of the run of the sample.
    argv = ["run", str(SAMPLE_JSON), "--db", str(tmp_path / "r.db"), "--quiet"]
    code = (
        "import sys\n"
        "from lineage_kit.cli import main\n"
        f"code = main({argv!r})\n"
        "heavy = ('numpy', 'pandas', 'networkx', 'matplotlib')\n"
        "print(code, sorted(m for m in heavy if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "0 []", done.stdout + done.stderr
