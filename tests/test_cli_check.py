"""``lineage-kit check``: the summary table, --json, and exit codes 0 / 1 / 2."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import lineage_kit as lk
from lineage_kit.cli import main

DATA = Path(__file__).resolve().parent.parent / "data"


def _run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(["check", *argv], out=out)
    return code, out.getvalue()


def _raw(path: Path, sql: str) -> None:
    con = sqlite3.connect(path)
    con.execute("PRAGMA foreign_keys = OFF")
    con.execute(sql)
    con.commit()
    con.close()


def test_clean_store_exits_0(db):
    lk.run_pipeline(DATA / "messy_input.json", db=db, progress=False)
    code, text = _run("--db", str(db))
    assert code == 0
    assert text.startswith("ok: 0 error(s), 0 warning(s) in 1 run(s)")


def test_errors_exit_1_and_are_listed(db):
    lk.run_pipeline(DATA / "sample_input.json", db=db, progress=False)
    _raw(db, "UPDATE vals SET json = '{}' WHERE value_id = 2")
    code, text = _run("--db", str(db), "--run", "latest")
    assert code == 1
    assert text.startswith("FAILED: 1 error(s)")
    assert "hash_mismatch" in text
    (row,) = [line for line in text.splitlines() if line.startswith("hash_mismatch  ")][-1:]
    # a chunk is written step by step: entries 1-30 are the ingest entries, in input order
    assert "order-102" in row


def test_warnings_only_exit_0(db):
    lk.run_pipeline(DATA / "sample_input.json", db=db, progress=False)
    _raw(db, "UPDATE runs SET status = 'failed'")
    code, text = _run("--db", str(db))
    assert code == 0
    assert "run_failed" in text and "warning" in text
    assert _run("--db", str(db), "--strict")[0] == 1  # --strict: warnings fail too


def test_strict_passes_a_clean_store(db):
    lk.run_pipeline(DATA / "messy_input.json", db=db, progress=False)
    assert _run("--db", str(db), "--strict")[0] == 0


def test_json_output(db):
    lk.run_pipeline(DATA / "sample_input.json", db=db, progress=False)
    lk.run_pipeline(DATA / "sample_input.json", db=db, progress=False)
    _raw(db, "DELETE FROM vals WHERE value_id = 1")
    code, text = _run("--db", str(db), "--run", "all", "--json")
    assert code == 1
    payload = json.loads(text)
    assert payload["ok"] is False
    assert len(payload["runs"]) == 2
    assert payload["summary"] == {"missing_value": {"severity": "error", "count": 1}}
    (v,) = payload["violations"]
    assert (v["code"], v["record_key"], v["entry_id"]) == ("missing_value", "order-101", 1)
    assert v["run_id"] == payload["runs"][0]  # the older run (listed first) wrote entry 1


def test_expected_steps_option(db):
    lk.run_pipeline(DATA / "sample_input.json", db=db, progress=False)
    assert _run("--db", str(db), "--expected-steps", "ingest,normalize,publish")[0] == 0
    code, text = _run("--db", str(db), "--expected-steps", "ingest,publish", "--json")
    assert code == 1
    assert json.loads(text)["violations"][0]["code"] == "unexpected_steps"


def test_bad_usage_exits_2(db, tmp_path, capsys):
    assert _run("--db", str(tmp_path / "missing.db"))[0] == 2
    lk.run_pipeline(DATA / "sample_input.json", db=db, progress=False)
    assert _run("--db", str(db), "--run", "no-such-run")[0] == 2
    assert _run("--db", str(db), "--limit", "-1")[0] == 2
    assert _run("--db", str(db), "--expected-steps", " , ")[0] == 2
    assert _run("--db", str(db), "--bogus")[0] == 2
    not_a_store = tmp_path / "notes.txt"
    not_a_store.write_text("hello")
    assert _run("--db", str(not_a_store))[0] == 2
    assert "error" in capsys.readouterr().err
