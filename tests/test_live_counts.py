"""run_rows() counts runs that never finished from their entries."""

from __future__ import annotations

import sqlite3

import lineage_kit as lk
from lineage_kit.cli import main

from .conftest import MESSY_JSON, SAMPLE_JSON, run_killed_writer

# A writer killed in its third chunk of 10: the first two chunks are committed.
# In chunk one, order-103 fails and order-104 is rejected at the 'check' step.
_KILLED_WRITER = """
import os, signal, sys
import lineage_kit as lk
from lineage_kit.steps import ingest, publish

@lk.step("check")
def check(record):
    if record["key"] == "order-103":
        raise ValueError("broken")
    if record["key"] == "order-104":
        raise lk.Reject("not_wanted")
    if record["key"] == "order-125":
        os.kill(os.getpid(), signal.SIGKILL)
    return record

lk.run_pipeline(sys.argv[1], db=sys.argv[2], steps=[ingest, check, publish],
                chunk_size=10, progress=False)
"""

COUNTS = ("n_input", "n_published", "n_rejected", "n_failed")


def test_a_killed_run_is_counted_from_its_entries(db):
    lk.run_pipeline(SAMPLE_JSON, db=db, progress=False)  # a finished run beside it
    run_killed_writer(_KILLED_WRITER, SAMPLE_JSON, db)
    with lk.connect(db) as store:
        killed, finished = store.run_rows()
    assert killed["status"] == "interrupted"
    # 20 records read in two chunks; 101-120 less one failed, one rejected published
    assert tuple(killed[c] for c in COUNTS) == (20, 18, 1, 1)
    assert finished["status"] == "completed"
    assert tuple(finished[c] for c in COUNTS) == (30, 30, 0, 0)
    raw = sqlite3.connect(db)  # the stored counts of the killed run are still zero
    stored = raw.execute(
        "SELECT n_input, n_published, n_rejected, n_failed FROM runs WHERE status = 'running'"
    ).fetchall()
    raw.close()
    assert stored == [(0, 0, 0, 0)]


def test_a_running_run_shows_its_counts_so_far(db):
    from lineage_kit.store.liveness import this_writer

    result = lk.run_pipeline(MESSY_JSON, db=db, progress=False)
    host, pid, started = this_writer()
    raw = sqlite3.connect(db)  # as if this (live) process were still writing it
    raw.execute(
        "UPDATE runs SET status = 'running', n_input = 0, n_published = 0, n_rejected = 0, "
        "n_failed = 0, writer_host = ?, writer_pid = ?, writer_started = ?",
        (host, pid, started),
    )
    raw.commit()
    raw.close()
    with lk.connect(db) as store:
        (run,) = store.run_rows()
    assert run["status"] == "running"
    # messy_input.json: 20 records, 12 published, 8 rejected (the run's own result)
    assert tuple(run[c] for c in COUNTS) == (20, 12, 8, 0)
    assert (result.n_input, result.n_published, result.n_rejected) == (20, 12, 8)


def test_runs_command_shows_the_counts_of_an_interrupted_run(db, capsys):
    import io

    lk.run_pipeline(MESSY_JSON, db=db, progress=False)
    raw = sqlite3.connect(db)
    raw.execute(
        "UPDATE runs SET status = 'interrupted', n_input = 0, n_published = 0, "
        "n_rejected = 0, n_failed = 0"
    )
    raw.commit()
    raw.close()
    out = io.StringIO()
    assert main(["runs", "--db", str(db)], out=out) == 0
    (line,) = out.getvalue().splitlines()[1:]
    assert line.split()[3:8] == ["interrupted", "20", "12", "8", "0"]


def test_live_counts_read_the_runs_chunks(sample_store):
    from lineage_kit.store.queries import LIVE_COUNTS

    plan = " | ".join(
        row[-1]
        for row in sample_store.backend.con.execute("EXPLAIN QUERY PLAN " + LIVE_COUNTS, ("[]",))
    )
    assert "SEARCH ch USING PRIMARY KEY (run_no=?)" in plan  # no entry is read
    assert "AUTOMATIC" not in plan and "SCAN e" not in plan
