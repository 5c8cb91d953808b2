"""Many writers and faults on a real PostgreSQL server: exact counts, whole chunks
only, and runs whose writer vanished reported ``interrupted`` from any session."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import psycopg

import lineage_kit as lk

from .backends import whole_chunks
from .conftest import ROOT, records

WRITERS, PER_WRITER = 4, 20_000
_WRITE = """
import sys
import lineage_kit as lk
from tests.conftest import records
start = int(sys.argv[2])
lk.run_pipeline(records(int(sys.argv[3]), start), db=sys.argv[1], progress=False)
"""


def test_four_writers_and_a_reader(pg_url, pg_server):
    schema = pg_url.rsplit("schema=", 1)[1]
    lk.run_pipeline(records(1), db=pg_url, progress=False)  # create the store once
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITE, pg_url, str(1 + i * PER_WRITER), str(PER_WRITER)],
            cwd=ROOT,
        )
        for i in range(WRITERS)
    ]
    snapshots = []
    with psycopg.connect(pg_server, autocommit=True) as con:
        while any(p.poll() is None for p in procs):
            snapshots.append(whole_chunks(con, schema))
            time.sleep(0.2)
        assert [p.wait() for p in procs] == [0] * WRITERS
        snapshots.append(whole_chunks(con, schema))
        ids = con.execute(
            f"SELECT count(*), count(DISTINCT entry_id), min(entry_id) FROM {schema}.entries"
        ).fetchone()
    # 1 + 4 x 20,000 records, three entries each (ingest, normalize, publish)
    assert snapshots[-1] == (1 + WRITERS * PER_WRITER // 2_000, 3 * (1 + WRITERS * PER_WRITER))
    assert ids[0] == ids[1] == 3 * (1 + WRITERS * PER_WRITER)
    assert len(snapshots) > 2 and any(0 < e < snapshots[-1][1] for _c, e in snapshots[:-1])
    with lk.connect(pg_url) as store:
        runs = store.runs()
        assert sorted(runs["n_published"]) == [1] + [PER_WRITER] * WRITERS
        assert set(runs["status"]) == {"completed"}
        report = store.check("all")
        assert report.ok, report.violations
        assert len(store.lineage("all")) == 3 * (1 + WRITERS * PER_WRITER)


def _big_input(tmp_path, n: int) -> str:
    path = tmp_path / "big.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records(n)))
    return str(path)


def _start_run(path: str, url: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "lineage_kit", "run", path, "--db", url, "--chunk-size", "500"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_chunks(con, schema: str, proc: subprocess.Popen, n: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        (found,) = con.execute(
            f"SELECT count(*) FROM {schema}.chunks c JOIN {schema}.runs r USING (run_no) "
            "WHERE r.status = 'running'"
        ).fetchone()
        if found >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"the run did not write {n} chunks: {proc.poll()}")


def test_a_killed_server_session_fails_the_run_cleanly(pg_url, pg_server, tmp_path):
    schema = pg_url.rsplit("schema=", 1)[1]
    path = _big_input(tmp_path, 200_000)
    lk.run_pipeline(records(1), db=pg_url, progress=False)
    proc = _start_run(path, pg_url)
    with psycopg.connect(pg_server, autocommit=True) as con:
        _wait_for_chunks(con, schema, proc, 3)
        # the server process serving the writer is killed (as an OOM kill or a crash
        # of that backend would): its open chunk transaction dies with it
        killed = con.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'lineage_kit' AND pid <> pg_backend_pid()"
        ).fetchall()
        assert killed and all(ok for (ok,) in killed)
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 2
        assert err.startswith("lineage-kit: error: lost the connection to the lineage store")
        assert err.count("\n") == 1 and "Traceback" not in err, err
        whole_chunks(con, schema)
    with lk.connect(pg_url) as store:
        latest = store.run_rows()[0]
        assert latest["status"] == "interrupted"  # its session, and lock, are gone
        assert 0 < latest["n_input"] < 200_000 and latest["n_input"] % 500 == 0
        codes = set(store.check("latest").violations["code"])
        assert codes == {"run_interrupted"}, codes
    again = lk.run_pipeline(records(10), db=pg_url, progress=False)  # the next run works
    assert again.status == "completed"


def test_a_killed_writer_is_reported_interrupted_and_marked_by_the_next(pg_url, tmp_path):
    schema = pg_url.rsplit("schema=", 1)[1]
    path = _big_input(tmp_path, 200_000)
    lk.run_pipeline(records(1), db=pg_url, progress=False)
    proc = _start_run(path, pg_url)
    server = pg_url.rsplit("?", 1)[0]
    with psycopg.connect(server, autocommit=True) as con:
        _wait_for_chunks(con, schema, proc, 2)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 30  # the server notices the dead client
        while time.monotonic() < deadline:
            with lk.connect(pg_url) as store:
                if store.run_rows()[0]["status"] == "interrupted":
                    break
            time.sleep(0.1)
        whole_chunks(con, schema)
        with lk.connect(pg_url) as store:
            assert store.run_rows()[0]["status"] == "interrupted"
            assert "run_interrupted" in set(store.check("latest").violations["code"])
        stored = con.execute(f"SELECT status FROM {schema}.runs ORDER BY run_no").fetchall()
        assert stored == [("completed",), ("running",)]  # readers never write
        lk.run_pipeline(records(3), db=pg_url, progress=False)
        stored = con.execute(f"SELECT status FROM {schema}.runs ORDER BY run_no").fetchall()
        assert stored == [("completed",), ("interrupted",), ("completed",)]


#: Server crashes of the test below: one in the default run, more (each after a
#: random number of chunks) under LINEAGE_KIT_LONG=1.
SERVER_CRASHES = 6 if os.environ.get("LINEAGE_KIT_LONG") == "1" else 1


def test_a_crashed_server_fails_the_run_cleanly_and_the_next_run_works(tmp_path):
    """The whole server stops mid-run as in a crash, then comes back: every chunk it
    committed is whole, the run failed with one line, and is interrupted since; the
    runs before it are as they were; the next run works."""
    from .pg_server import start_cluster

    rng = random.Random(13)
    path = _big_input(tmp_path, 200_000)
    cluster = start_cluster()  # its own server: the others' is not crashed
    try:
        url = f"{cluster.dsn}?schema=crash"
        lk.run_pipeline(records(1), db=url, progress=False)
        for _ in range(SERVER_CRASHES):
            with lk.connect(url) as store:
                before = store.backend.con.execute("SELECT * FROM runs ORDER BY run_no").fetchall()
            proc = _start_run(path, url)
            with psycopg.connect(cluster.dsn, autocommit=True) as con:
                _wait_for_chunks(con, "crash", proc, rng.randint(1, 12))
            cluster.crash()
            _out, err = proc.communicate(timeout=60)
            assert proc.returncode == 2
            assert err.startswith("lineage-kit: error: lost the connection to the lineage store")
            assert err.count("\n") == 1 and "Traceback" not in err, err
            cluster.restart()
            with psycopg.connect(cluster.dsn, autocommit=True) as con:
                # whole chunks only; the test server runs synchronous_commit=off, so
                # the last commits before the crash may be gone, never part of one
                whole_chunks(con, "crash")
            with lk.connect(url) as store:
                latest = store.run_rows()[0]
                assert latest["status"] == "interrupted"
                assert latest["n_input"] % 500 == 0 and latest["n_input"] < 200_000
                assert set(store.check("latest").violations["code"]) == {"run_interrupted"}
                after = store.backend.con.execute("SELECT * FROM runs ORDER BY run_no").fetchall()
                assert after[:-1] == before
            again = lk.run_pipeline(records(10), db=url, progress=False)
            assert again.status == "completed"
            with lk.connect(url) as store:  # the next writer persisted the verdict
                stored = dict(
                    store.backend.con.execute("SELECT run_id, status FROM runs").fetchall()
                )
                assert stored[latest["run_id"]] == "interrupted"
                assert stored[again.run_id] == "completed"
                assert store.check(again.run_id).ok
    finally:
        cluster.stop()
