"""The CLI, in process through ``main([...])``, plus one smoke test of the script."""

from __future__ import annotations

import io
import json
import shutil
import sys
from pathlib import Path

import pytest

from lineage_kit.cli import main

from .conftest import MESSY_JSON, SAMPLE_JSON, fresh_process, sha256


def cli(*argv):
    out = io.StringIO()
    code = main([str(a) for a in argv], out=out)
    return code, out.getvalue()


def test_run_sample_exits_0_and_prints_the_counts(db):
    code, out = cli("run", SAMPLE_JSON, "--db", db, "--quiet")
    assert (code, out) == (0, "")
    code, out = cli("run", SAMPLE_JSON, "--db", db)
    assert code == 0
    lines = dict(line.split(None, 1) for line in out.strip().splitlines())
    assert lines["status"] == "completed"
    assert (lines["input"], lines["published"], lines["rejected"], lines["failed"]) == (
        "30",
        "30",
        "0",
        "0",
    )
    assert lines["store"] == str(db)
    assert lines["elapsed"].endswith(" s")


def test_messy_input_exits_1_and_runs_lists_every_run(db):
    assert cli("run", SAMPLE_JSON, "--db", db, "--quiet")[0] == 0
    code, out = cli("run", MESSY_JSON, "--db", db)
    assert code == 1
    assert "rejected   8" in out
    assert cli("run", SAMPLE_JSON, "--db", db, "--quiet")[0] == 0
    code, out = cli("runs", "--db", db, "--json")
    assert code == 0
    runs = json.loads(out)
    assert [(r["input_path"], r["n_published"], r["n_rejected"]) for r in runs] == [
        (str(SAMPLE_JSON), 30, 0),
        (str(MESSY_JSON), 12, 8),
        (str(SAMPLE_JSON), 30, 0),
    ]
    code, out = cli("runs", "--db", db)
    table = out.strip().splitlines()
    assert table[0].split()[:3] == ["run", "started", "(UTC)"]
    assert len(table) == 4
    assert "completed_with_errors" in table[2]


def test_runs_of_the_same_input_have_their_own_entries(db):
    cli("run", SAMPLE_JSON, "--db", db, "--quiet")
    cli("run", SAMPLE_JSON, "--db", db, "--quiet")
    import lineage_kit as lk

    with lk.connect(db) as store:
        counts = store.backend.con.execute(
            "SELECT run_id, count(*) FROM lineage GROUP BY run_id"
        ).fetchall()
    assert [n for _, n in counts] == [90, 90]


@pytest.mark.parametrize(
    "argv",
    [
        ("run", "missing.json"),
        ("run", "data/sample_input.txt"),
        ("run", SAMPLE_JSON, "--chunk-size", "0"),
        ("run", SAMPLE_JSON, "--key", "a,,b"),
        ("run",),
        ("frobnicate",),
        (),
    ],
)
def test_bad_usage_and_unreadable_input_exit_2(db, argv, capsys):
    code, _ = cli(*argv, *(["--db", db] if argv and argv[0] == "run" else []))
    assert code == 2
    assert capsys.readouterr().err.strip()
    assert not db.exists()


def test_malformed_file_error_names_file_line_and_column(tmp_path, db, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('[\n{"key": "a"},\n{"key": }\n]')
    assert cli("run", bad, "--db", db)[0] == 2
    assert f"{bad}:3:9: malformed JSON" in capsys.readouterr().err
    assert not db.exists()


def test_foreign_database_is_refused_and_unchanged(tmp_path, capsys):
    import sqlite3

    theirs = tmp_path / "theirs.db"
    con = sqlite3.connect(theirs)
    con.execute("CREATE TABLE invoices (id INTEGER)")
    con.commit()
    con.close()
    before = sha256(theirs)
    assert cli("run", SAMPLE_JSON, "--db", theirs)[0] == 2
    assert "another application" in capsys.readouterr().err
    assert sha256(theirs) == before
    assert cli("runs", "--db", theirs)[0] == 2


def test_composite_key_option(tmp_path, db):
    path = tmp_path / "in.csv"
    path.write_text("region,id,amount\nEU,1,5\nUS,1,6\nEU,1,7\n")
    code, out = cli("run", path, "--db", db, "--key", "region,id")
    assert code == 1  # the third row repeats EU|1
    assert "published  2" in out and "rejected   1" in out


def test_fail_fast_exits_1(tmp_path, db, capsys):
    path = tmp_path / "in.json"
    path.write_text(json.dumps([{"key": "a", "x": 1}]))
    # the default steps cannot fail on a clean record, so fail-fast only changes nothing here
    assert cli("run", path, "--db", db, "--fail-fast", "--quiet")[0] == 0


def test_report_holds_every_chain(tmp_path, db):
    report = tmp_path / "report.json"
    code, out = cli("run", MESSY_JSON, "--db", db, "--report", report)
    assert code == 1
    assert f"report     {report}" in out
    data = json.loads(report.read_text())
    assert data["n_input"] == 20
    assert data["n_entries"] == 45
    assert [s["name"] for s in data["pipeline_steps"]] == ["ingest", "normalize", "publish"]
    chain = data["chains"]["order-101"]
    assert [link["step"] for link in chain] == ["ingest", "normalize", "publish"]
    assert chain[0]["parents"] == []
    assert chain[1]["parents"] == [chain[0]["entry_id"]]
    assert chain[2]["parents"] == [chain[1]["entry_id"]]
    assert chain[1]["transform"] == "lowercase and strip field names"
    assert chain[1]["source"] == "staging" and chain[1]["destination"] == "normalized"
    assert [link["status"] for link in data["chains"]["order-950"]] == ["ok", "rejected"]
    # 6 records had no usable key (2 not objects, 3 missing, 1 boolean): listed apart
    assert len(data["unkeyed"]) == 6
    assert {link["reason"] for link in data["unkeyed"]} == {
        "not_an_object",
        "missing_key",
        "invalid_key",
    }


def test_help_lists_the_commands(capsys):
    assert cli("--help")[0] == 0
    out = capsys.readouterr().out
    assert "run" in out and "runs" in out


def test_installed_script_and_module_run_the_sample(tmp_path):
    # the script sits beside the interpreter of the environment the package is installed in
    beside = Path(sys.executable).parent / "lineage-kit"
    script = str(beside) if beside.exists() else shutil.which("lineage-kit")
    assert script, "the lineage-kit script is missing: install the package (pip install -e .)"
    db = tmp_path / "x.db"
    done = fresh_process(script, "run", SAMPLE_JSON, "--db", db, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "published  30" in done.stdout
    done = fresh_process(sys.executable, "-m", "lineage_kit", "runs", "--db", db, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "completed" in done.stdout


def test_run_takes_a_delimiter_and_q(tmp_path, db, capsys):
    path = tmp_path / "tabs.csv"
    path.write_text("id\tamount;x\n7\t1\n", encoding="utf-8")
    # one tab and one ';' in the header: the sniffer would pick ';' (listed first)
    assert cli("run", path, "--db", db, "--key", "id", "--delimiter", "\\t", "-q") == (0, "")
    assert cli("run", path, "--db", db, "--key", "id", "--delimiter", "tab", "-q") == (0, "")
    code, out = cli("trace", "7", "--db", db, "--json")
    assert code == 0
    assert json.loads(out)[0]["key"] == "7"
    capsys.readouterr()
    assert cli("run", path, "--db", db, "--delimiter", "ab")[0] == 2
    assert "--delimiter" in capsys.readouterr().err
    assert cli("run", SAMPLE_JSON, "--db", db, "--delimiter", ";")[0] == 2
    assert "CSV input only" in capsys.readouterr().err
