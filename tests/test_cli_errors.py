"""CLI failure paths: a message and an exit code, never a traceback."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import pytest

import lineage_kit as lk
from lineage_kit.cli import main
from lineage_kit.model import step

from .backends import fingerprint
from .conftest import MESSY_JSON, SAMPLE_JSON, sha256


def cli(*argv) -> tuple[int, str]:
    out = io.StringIO()
    code = main([str(a) for a in argv], out=out)
    return code, out.getvalue()


def _corrupt(db: Path) -> None:
    """Overwrite every page after the first: the header still says 'lineage store'."""
    size = db.stat().st_size
    with db.open("r+b") as fh:
        fh.seek(4096)
        fh.write(b"\xff" * (size - 4096))


@pytest.mark.parametrize(
    "argv",
    [
        ("runs",),
        ("trace", "order-101"),
        ("check",),
        ("plot", "order-101", "-o", "{tmp}/chain.png"),
        ("plot", "--kind", "runs", "-o", "{tmp}/runs.png"),
    ],
)
def test_a_corrupt_store_is_exit_2_with_the_path(db, tmp_path, argv, capsys):
    lk.run_pipeline(SAMPLE_JSON, db=db, progress=False)
    _corrupt(db)
    argv = [a.format(tmp=tmp_path) for a in argv]
    assert cli(*argv, "--db", db)[0] == 2
    err = capsys.readouterr().err
    assert err.startswith(f"lineage-kit: error: {db}: ")
    assert "malformed" in err and "Traceback" not in err


def test_run_into_a_corrupt_store_is_exit_2(db, capsys):
    lk.run_pipeline(SAMPLE_JSON, db=db, progress=False)
    _corrupt(db)
    assert cli("run", SAMPLE_JSON, "--db", db, "--quiet")[0] == 2
    assert capsys.readouterr().err.startswith(f"lineage-kit: error: {db}: ")


# ------------------------------------------------------------------- run --report


def test_report_into_a_missing_directory_is_refused_before_the_run(db, tmp_path, capsys):
    report = tmp_path / "nodir" / "r.json"
    code, out = cli("run", SAMPLE_JSON, "--db", db, "--report", report)
    assert code == 2 and out == ""
    err = capsys.readouterr().err
    problem = f"--report {report}: directory {report.parent} does not exist"
    assert err == f"lineage-kit: error: {problem}\n"
    assert not db.exists()  # nothing ran, nothing was written
    assert not report.parent.exists()


@pytest.mark.parametrize(
    ("command", "target"),
    [
        ("plot", "nodir/y.png"),
        ("plot", "a_file.txt/y.png"),
        ("plot", "a_dir.png"),
        ("funnel", "nodir/y.svg"),
        ("report", "nodir/r.json"),
        ("report", "a_file.txt/r.json"),
        ("report", "a_dir.png"),
    ],
)
def test_an_output_path_that_cannot_be_written_is_one_line_and_exit_2(
    sample_store, store_db, tmp_path, command, target, capsys
):
    (tmp_path / "a_file.txt").write_text("x")
    (tmp_path / "a_dir.png").mkdir()
    output = tmp_path / target
    argv = {
        "plot": ["plot", "order-101", "-o", output],
        "funnel": ["plot", "--kind", "funnel", "-o", output],
        "report": ["run", SAMPLE_JSON, "--report", output],
    }[command]
    before = fingerprint(store_db)
    assert cli(*argv, "--db", store_db) == (2, "")
    err = capsys.readouterr().err
    assert err.startswith(f"lineage-kit: error: {'--report' if command == 'report' else '-o'} ")
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert str(output) in err
    assert fingerprint(store_db) == before  # refused before anything ran
    assert not any(p.name in ("y.png", "y.svg", "r.json") for p in tmp_path.rglob("*"))


def test_a_plot_that_fails_while_writing_is_one_line_and_exit_2(
    sample_store, store_db, tmp_path, capsys
):
    full = tmp_path / "full.png"
    full.symlink_to("/dev/full")  # a real device whose writes fail: no space left
    assert cli("plot", "order-101", "-o", full, "--db", store_db) == (2, "")
    err = capsys.readouterr().err
    assert err.startswith(f"lineage-kit: error: -o {full}: cannot be written: ")
    assert err.count("\n") == 1 and "Traceback" not in err, err


def test_report_that_fails_after_the_run_still_prints_the_summary(
    db, tmp_path, monkeypatch, capsys
):
    def broken(db, run, path):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr("lineage_kit.report.write_report", broken)
    report = tmp_path / "r.json"
    code, out = cli("run", SAMPLE_JSON, "--db", db, "--report", report)
    assert code == 2
    assert "published  30" in out  # the committed run's summary is not lost
    err = capsys.readouterr().err
    assert "No space left on device" in err and "Traceback" not in err
    with lk.connect(db) as store:
        assert [r["status"] for r in store.run_rows()] == ["completed"]


# -------------------------------------------------------------------- --fail-fast


@step("explode")
def explode(record):
    if record["key"] == "order-105":
        raise ValueError("boom on order-105")
    return record


def test_fail_fast_prints_the_summary_and_writes_the_report_then_the_error(
    db, tmp_path, monkeypatch, capsys
):
    from lineage_kit.steps import ingest, publish

    monkeypatch.setattr("lineage_kit.pipeline.DEFAULT_STEPS", (ingest, explode, publish))
    report = tmp_path / "r.json"
    code, out = cli("run", SAMPLE_JSON, "--db", db, "--fail-fast", "--report", report)
    assert code == 1
    assert "status     failed" in out and "failed     1" in out
    assert f"report     {report}" in out
    data = json.loads(report.read_text())
    assert data["status"] == "failed" and data["n_failed"] == 1
    assert [link["status"] for link in data["chains"]["order-105"]] == ["ok", "failed"]
    err = capsys.readouterr().err
    assert "boom on order-105" in err and "Traceback" not in err


# --------------------------------------------------------------------------- plot


@pytest.mark.parametrize("kind", ["funnel", "timeline"])
def test_plot_of_one_run_kinds_refuse_run_all(sample_store, store_db, tmp_path, kind, capsys):
    output = tmp_path / "p.png"
    assert cli("plot", "--kind", kind, "--run", "all", "-o", output, "--db", store_db)[0] == 2
    err = capsys.readouterr().err
    assert "usage: lineage-kit plot" in err and "one run" in err
    assert "Traceback" not in err
    assert not output.exists()


def test_plot_chain_refuses_run_all(sample_store, store_db, tmp_path, capsys):
    output = tmp_path / "p.png"
    assert cli("plot", "order-101", "--run", "all", "-o", output, "--db", store_db)[0] == 2
    assert "one run" in capsys.readouterr().err
    assert not output.exists()


def test_plot_of_an_unknown_key_exits_1_like_trace(sample_store, store_db, tmp_path, capsys):
    output = tmp_path / "p.png"
    assert cli("trace", "no-such-key", "--db", store_db)[0] == 1
    assert cli("plot", "no-such-key", "-o", output, "--db", store_db)[0] == 1
    err = capsys.readouterr().err
    assert "no-such-key" in err and "Traceback" not in err
    assert not output.exists()


# --------------------------------------------------------------------- interrupts


def test_ctrl_c_prints_interrupted_and_exits_130(db, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("lineage_kit.pipeline.run_pipeline", interrupted)
    assert cli("run", SAMPLE_JSON, "--db", db)[0] == 130
    assert capsys.readouterr().err == "lineage-kit: interrupted\n"


# --------------------------------------------------------------------------- runs


def test_runs_limit_must_not_be_negative(sample_store, store_db, capsys):
    assert cli("runs", "--limit", "-1", "--db", store_db)[0] == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: lineage-kit runs") and "--limit" in err


def test_runs_limit_0_is_refused_not_an_empty_list(sample_store, store_db, capsys):
    # before: "(no runs)" with exit 0 although the store holds a run
    assert cli("runs", "--limit", "0", "--db", store_db) == (2, "")
    assert "--limit must be at least 1" in capsys.readouterr().err
    code, out = cli("runs", "--limit", "1", "--db", store_db, "--json")
    assert code == 0 and len(json.loads(out)) == 1


def test_trace_json_of_an_unknown_key_prints_a_json_error(sample_store, store_db, capsys):
    code, out = cli("trace", "no-such-key", "--db", store_db, "--json")
    assert code == 1
    error = json.loads(out)
    assert (error["error"], error["key"]) == ("key_not_found", "no-such-key")
    assert "'no-such-key' has no lineage entries in run" in error["message"]
    assert error["message"] in capsys.readouterr().err


def test_report_and_runs_json_speak_one_vocabulary(db, tmp_path):
    report = tmp_path / "r.json"
    assert cli("run", MESSY_JSON, "--db", db, "--report", report, "-q") == (1, "")
    (run,) = json.loads(cli("runs", "--json", "--db", db)[1])
    data = json.loads(report.read_text())
    assert {name: data[name] for name in run} == run
    assert (data["n_input"], data["n_published"], data["n_rejected"]) == (20, 12, 8)
    with lk.connect(db) as store:
        frame = store.runs()
    assert frame["parameters"].tolist() == [run["parameters"]]
    assert frame["parameters"][0]["chunk_size"] == 2000


def test_usage_errors_show_the_subcommand_usage(db, capsys):
    assert cli("run", SAMPLE_JSON, "--db", db, "--chunk-size", "0")[0] == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: lineage-kit run ") and "--chunk-size" in err
    assert "COMMAND" not in err  # not the top-level usage


def test_runs_json_gives_parameters_as_an_object(db):
    lk.run_pipeline(MESSY_JSON, db=db, chunk_size=7, progress=False)
    code, out = cli("runs", "--json", "--db", db)
    assert code == 0
    (run,) = json.loads(out)
    assert isinstance(run["parameters"], dict)
    assert run["parameters"]["chunk_size"] == 7


def test_runs_of_an_unreadable_store_file_leave_it_unchanged(tmp_path, capsys):
    path = tmp_path / "e.db"
    con = sqlite3.connect(path)
    con.execute("PRAGMA user_version = 7")
    con.close()
    before = sha256(path)
    assert cli("runs", "--db", path)[0] == 2
    assert "user_version 7" in capsys.readouterr().err
    assert sha256(path) == before
