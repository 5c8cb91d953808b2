"""Reliability: crashes, concurrent writers, a full disk and hostile input.

The default run makes a few trials of each; ``LINEAGE_KIT_LONG=1`` makes many
(>= 25 crash trials, four writers plus a reader over several rounds, thousands of
fuzzed inputs). Set ``LINEAGE_KIT_STATS=FILE.json`` to write the figures of a run
(trials, faults injected, inputs tried, records lost) to a file.

The crash trials, the concurrent writers, the creation race and the hostile
records in memory run on both backends (the ``store_db`` fixture; their figures
on PostgreSQL are counted as ``pg_...``); a full disk and the schema versions are
SQLite's own. Faults of the server itself (a killed session, a crash and restart)
are in tests/test_postgres_concurrency.py.
"""

from __future__ import annotations

import csv
import hashlib
import json
import multiprocessing
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lineage_kit as lk
import lineage_kit.store as lk_store
from lineage_kit.cli import main
from lineage_kit.values import value_hash

from .backends import is_postgres, rows, whole_chunks
from .conftest import copy_with_wal, drop_schema
from .conftest import records as clean_records

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
LONG = os.environ.get("LINEAGE_KIT_LONG") == "1"
LAST = 2  # position of publish, the last default step

CRASH_TRIALS = 30 if LONG else 3
PG_CRASH_TRIALS = 12 if LONG else 2  # check() of a run is slower there: fewer trials
CRASH_RECORDS = 20_000 if LONG else 6_000
WRITER_ROUNDS = 3 if LONG else 1
WRITER_RECORDS = 12_000 if LONG else 2_000
CREATE_TRIALS = 150 if LONG else 8
FULL_TRIALS = 25 if LONG else 3
FSIZE_TRIALS = 10 if LONG else 1
FUZZ_EXAMPLES = 1_500 if LONG else 40
PG_FUZZ_EXAMPLES = 300 if LONG else 12  # a run and its check() take longer there

#: Figures of this run, written to $LINEAGE_KIT_STATS at the end of the module.
STATS: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def _write_stats():
    yield
    target = os.environ.get("LINEAGE_KIT_STATS")
    if target:
        Path(target).write_text(json.dumps({"long": LONG, **STATS}, indent=2, sort_keys=True))


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


# ------------------------------------------------------------------ store probes
# Written with SQLite's ``?`` placeholders against the views ``lineage``, ``parents``
# and ``records``, which a PostgreSQL store has too (tests/backends.rows).


def _stat(location, name: str, n: int = 1) -> None:
    """Count ``n`` into STATS under ``name`` (``pg_name`` for a PostgreSQL store)."""
    STATS[f"pg_{name}" if _on_pg(location) else name] += n


def _on_pg(location) -> bool:
    return isinstance(location, str) and location.startswith("postgresql://")


def _integrity(store: lk.LineageStore) -> None:
    """SQLite: ``integrity_check`` and ``foreign_key_check``. PostgreSQL (which checks
    its own pages): in one snapshot, every chunk's id range holds exactly its
    entries and every entry lies in a chunk."""
    if is_postgres(store):
        whole_chunks(store.backend.con, same_steps=False)
        return
    con = store.backend.con
    assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert con.execute("PRAGMA foreign_key_check").fetchall() == []


def _digest(store: lk.LineageStore, run_ids: list[str]) -> str:
    """A hash of every row that belongs to the given runs."""
    if not run_ids:
        return ""
    runs = f"({', '.join('?' * len(run_ids))})"
    ids = sorted(run_ids)
    h = hashlib.blake2b(digest_size=16)
    queries = (
        f"SELECT * FROM runs WHERE run_id IN {runs} ORDER BY run_id",
        f"SELECT s.* FROM steps s JOIN runs r USING (run_no) WHERE r.run_id IN {runs} "
        "ORDER BY s.run_no, s.position",
        "SELECT l.*, r.value FROM lineage l LEFT JOIN records r USING (entry_id) "
        f"WHERE l.run_id IN {runs} ORDER BY l.entry_id",
        "SELECT p.* FROM parents p JOIN lineage l ON l.entry_id = p.child_id "
        f"WHERE l.run_id IN {runs} ORDER BY p.child_id, p.parent_id",
    )
    if is_postgres(store):  # the server hashes the rows of its tables (see _PG_DIGEST)
        return rows(store, _PG_DIGEST, (ids,))[0][0]
    for query in queries:
        for row in rows(store, query, ids):
            h.update(repr(row).encode("utf-8", "surrogatepass"))
    return h.hexdigest()


#: Every row of the runs ``%s`` (a list of run ids) in a PostgreSQL store's tables,
#: hashed by the server (its views plan badly for this).
_PG_DIGEST = """
WITH r AS (SELECT * FROM runs WHERE run_id = ANY(?)),
     e AS (SELECT e.* FROM entries e WHERE e.run_no IN (SELECT run_no FROM r))
SELECT md5(concat_ws('|',
    (SELECT string_agg(r::text, ',' ORDER BY run_no) FROM r),
    (SELECT string_agg(s::text, ',' ORDER BY run_no, position) FROM steps s
     WHERE s.run_no IN (SELECT run_no FROM r)),
    (SELECT string_agg(c::text, ',' ORDER BY run_no, chunk_no) FROM chunks c
     WHERE c.run_no IN (SELECT run_no FROM r)),
    (SELECT string_agg(e::text, ',' ORDER BY entry_id) FROM e),
    (SELECT string_agg(v::text, ',' ORDER BY value_id) FROM vals v
     WHERE v.value_id IN (SELECT value_id FROM e)),
    (SELECT string_agg(p::text, ',' ORDER BY child_id, parent_id) FROM extra_parents p
     WHERE p.child_id IN (SELECT entry_id FROM e))))
"""


def _assert_whole_chunks(store: lk.LineageStore, run_id: str, chunk: int, total: int) -> int:
    """Assert a run holds whole chunks only; return how many records it holds.

    Every record of a chunk gets its entries at every step in the chunk's one
    transaction, so whatever the run's state: the records at step 0 are a whole
    number of chunks (or all of them), every ok entry before the last step has its
    child, every later entry has its parent, and every entry its value and hash.
    """
    counts = dict(
        rows(
            store,
            "SELECT position, count(*) FROM lineage WHERE run_id = ? GROUP BY position",
            (run_id,),
        )
    )
    n0 = counts.get(0, 0)
    assert n0 % chunk == 0 or n0 == total, (counts, chunk)
    if is_postgres(store):
        # The same questions of the tables: through the ``parents`` view the planner
        # misjudges the status filter and rescans the view for every entry.
        in_run = "l.run_no = (SELECT run_no FROM runs WHERE run_id = ?)"
        childless_sql = (
            f"SELECT count(*) FROM entries l WHERE {in_run} AND l.status = 0 "
            "AND l.position < ? "
            "AND NOT EXISTS (SELECT 1 FROM entries c WHERE c.parent_id = l.entry_id) "
            "AND NOT EXISTS (SELECT 1 FROM extra_parents p WHERE p.parent_id = l.entry_id)"
        )
        orphans_sql = (
            f"SELECT count(*) FROM entries l WHERE {in_run} AND l.position > 0 "
            "AND l.parent_id IS NULL "
            "AND NOT EXISTS (SELECT 1 FROM extra_parents p WHERE p.child_id = l.entry_id)"
        )
    else:
        childless_sql = (
            "SELECT count(*) FROM lineage l WHERE l.run_id = ? AND l.status = 'ok' "
            "AND l.position < ? "
            "AND NOT EXISTS (SELECT 1 FROM parents p WHERE p.parent_id = l.entry_id)"
        )
        orphans_sql = (
            "SELECT count(*) FROM lineage l WHERE l.run_id = ? AND l.position > 0 "
            "AND NOT EXISTS (SELECT 1 FROM parents p WHERE p.child_id = l.entry_id)"
        )
    ((childless,),) = rows(store, childless_sql, (run_id, LAST))
    assert childless == 0
    ((orphans,),) = rows(store, orphans_sql, (run_id,))
    assert orphans == 0
    values = rows(
        store,
        "SELECT l.value_hash, r.value FROM lineage l LEFT JOIN records r USING (entry_id) "
        "WHERE l.run_id = ?",
        (run_id,),
    )
    assert all(v is not None and value_hash(v) == h for h, v in values)
    return n0


def _raw_status(store: lk.LineageStore, run_id: str) -> str:
    return rows(store, "SELECT status FROM runs WHERE run_id = ?", (run_id,))[0][0]


def _codes(store: lk.LineageStore, run: str) -> list[tuple[str, str]]:
    v = store.check(run).violations
    return sorted(zip(v["code"], v["run_id"], strict=True))


# ----------------------------------------------------------------------- 1. crash

# The child announces on stdout when the first record is read (the run row exists),
# so the kill lands inside the run rather than during interpreter start-up.
_CRASH_CHILD = """
import sys, lineage_kit as lk
from lineage_kit.sources import open_source
src = open_source(sys.argv[1], key="key")
items = src.items
def announced():
    print("go", flush=True)
    yield from items()
src.items = announced
lk.run_pipeline(src, db=sys.argv[2], chunk_size=int(sys.argv[3]), progress=False)
"""


def _write_jsonl(path: Path, n: int) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            record = {"key": f"k{i}", " Amount ": i * 1.5, "Customer Name": f"c{i % 7}"}
            fh.write(json.dumps(record) + "\n")


def _start_child(data: Path, db: Path, chunk: int) -> subprocess.Popen:
    child = subprocess.Popen(
        [sys.executable, "-c", _CRASH_CHILD, str(data), str(db), str(chunk)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout.readline().strip() == "go", child.stderr.read()
    return child


def _new_run(db, before: list[str], child: subprocess.Popen) -> str:
    """The id of the run ``child`` started (not in ``before``), once its row is in
    the store."""
    deadline = time.monotonic() + 120
    while True:
        with lk.connect(db) as store:
            created = {r["run_id"] for r in store.run_rows()} - set(before)
        if created:
            (new,) = created
            return new
        if child.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"no run row from the child: {child.poll()} {child.stderr.read()}")
        time.sleep(0.01)


def _settled_rows(db, run_id: str) -> dict[str, dict]:
    """The store's run rows once the killed writer of ``run_id`` is seen to be gone.

    SQLite decides at once (the writer's pid is dead). On PostgreSQL the writer's
    advisory lock goes when its server session ends, which happens when the server
    reads the closed connection: a moment later.
    """
    deadline = time.monotonic() + 120
    while True:
        with lk.connect(db) as store:
            found = {r["run_id"]: r for r in store.run_rows()}
        if found[run_id]["status"] != "running" or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_sigkill_at_random_moments_leaves_whole_chunks_and_other_runs_untouched(tmp_path, store_db):
    rng = random.Random(os.environ.get("LINEAGE_KIT_SEED", "8"))
    data, db, chunk = tmp_path / "big.jsonl", store_db, 250
    _write_jsonl(data, CRASH_RECORDS)

    # A full run first: it is an "other run" to keep intact, and it times a run.
    child = _start_child(data, db, chunk)
    started = time.perf_counter()
    assert child.wait(timeout=300) == 0, child.stderr.read()
    child.stdout.close()
    child.stderr.close()
    # Kill within the run's length (long mode: a little past it, so that some kills
    # land during the final update or after the end, which must be harmless too).
    window = (time.perf_counter() - started) * (1.1 if LONG else 0.8)

    outcomes: Counter[str] = Counter()
    trials = PG_CRASH_TRIALS if _on_pg(db) else CRASH_TRIALS
    for _ in range(trials):
        with lk.connect(db) as store:
            before = [r["run_id"] for r in store.run_rows()]
            assert all(r["status"] != "running" for r in store.run_rows())
            digest_before = _digest(store, before)

        child = _start_child(data, db, chunk)
        # The child reads its first chunk before it opens the store (a kill then
        # would leave nothing to look at): the random moment counts from its run row.
        new = _new_run(db, before, child)
        time.sleep(rng.uniform(0, window))
        finished_first = child.poll() is not None
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
        child.stdout.close()
        child.stderr.close()

        rows_ = _settled_rows(db, new)
        with lk.connect(db) as store:
            _integrity(store)
            assert _digest(store, before) == digest_before
            held = _assert_whole_chunks(store, new, chunk, CRASH_RECORDS)
            if finished_first or rows_[new]["status"] == "completed":
                outcomes["completed_before_kill"] += 1
                assert rows_[new]["status"] == "completed"
            else:
                outcomes["interrupted"] += 1
                outcomes["records_in_interrupted_runs"] += held
                assert rows_[new]["status"] == "interrupted"
                assert _raw_status(store, new) == "running"
                assert store.runs().set_index("run_id").loc[new, "status"] == "interrupted"
                assert _codes(store, new) == [("run_interrupted", new)]

        # The same input again completes, and persists the dead run as interrupted.
        result = lk.run_pipeline(data, db=db, chunk_size=chunk, progress=False)
        assert (result.status, result.n_input, result.n_published) == (
            "completed",
            CRASH_RECORDS,
            CRASH_RECORDS,
        )
        with lk.connect(db) as store:
            assert _digest(store, before) == digest_before
            assert _raw_status(store, new) == rows_[new]["status"]
            assert _codes(store, result.run_id) == []

    with lk.connect(db) as store:
        _integrity(store)
        report = store.check("all")
        assert set(report.violations["code"]) <= {"run_interrupted"}
        assert len(report.violations) == outcomes["interrupted"]
    assert outcomes["interrupted"] >= 1, outcomes
    _stat(db, "crash_trials", trials)
    _stat(db, "crash_kills_mid_run", outcomes["interrupted"])
    _stat(db, "crash_kills_after_completion", outcomes["completed_before_kill"])
    _stat(db, "crash_records_in_killed_runs", outcomes["records_in_interrupted_runs"])
    _stat(db, "crash_reruns_completed", trials)


# ---------------------------------------------------------- 2. concurrent writers

_WRITER = """
import json, sys, time
import lineage_kit as lk
db, n, chunk, start, tag = sys.argv[1:]
n, chunk, start = int(n), int(chunk), float(start)
records = [
    {"key": f"{tag}-{i}", " Amount ": i, "Note": "x" * (i % 40)} if i % 10 != 3 else {"amount": i}
    for i in range(n)
]
while time.time() < start:
    time.sleep(0.001)
r = lk.run_pipeline(records, db=db, chunk_size=chunk, progress=False)
print(json.dumps([r.run_id, r.status, r.n_input, r.n_published, r.n_rejected, r.n_failed,
                  r.n_entries]))
"""

_READER = """
import json, os, sys, time
import lineage_kit as lk
db, stop, n, chunk = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
COUNTS = "SELECT run_id, count(*) FROM lineage WHERE position = 0 GROUP BY run_id"
CHILDLESS = (
    "SELECT l.run_id, count(*) FROM lineage l WHERE l.status = 'ok' AND l.position < 2 "
    "AND NOT EXISTS (SELECT 1 FROM parents p WHERE p.parent_id = l.entry_id) GROUP BY l.run_id"
)
if db.startswith("postgresql://"):  # the same of the tables (the views plan badly)
    CHILDLESS = (
        "SELECT l.run_no, count(*) FROM entries l WHERE l.status = 0 AND l.position < 2 "
        "AND NOT EXISTS (SELECT 1 FROM entries c WHERE c.parent_id = l.entry_id) "
        "AND NOT EXISTS (SELECT 1 FROM extra_parents p WHERE p.parent_id = l.entry_id) "
        "GROUP BY l.run_no"
    )
stats = {"iterations": 0, "partial_snapshots": 0, "violations": [], "errors": []}
opened = False
while not os.path.exists(stop):
    try:
        with lk.connect(db) as store:
            opened = True
            frame = store.runs()
            counts = store.backend.con.execute(COUNTS).fetchall()
            childless = store.backend.con.execute(CHILDLESS).fetchall()
    except (lk.StoreNotFound, lk.NotALineageStore) as exc:
        if not opened and ("no lineage store" in str(exc) or "is empty" in str(exc)):
            time.sleep(0.005)  # the writers have not created the store yet
            continue
        stats["errors"].append(repr(exc))
        continue
    except Exception as exc:
        stats["errors"].append(repr(exc))
        continue
    stats["iterations"] += 1
    for run_id, c in counts:
        if c % chunk and c != n:
            stats["violations"].append(["partial chunk", run_id, c])
        if c != n:
            stats["partial_snapshots"] += 1
    if childless:
        stats["violations"].append(["childless entries", childless])
    for row in frame.itertuples():
        if row.status not in ("running", "completed_with_errors"):
            stats["violations"].append(["status", row.run_id, row.status])
        if row.status != "running" and row.n_input != n:
            stats["violations"].append(["counts", row.run_id, row.n_input])
print(json.dumps(stats))
"""


def test_four_writers_and_a_reader_share_one_new_store(tmp_path, store_db):
    n, chunk = WRITER_RECORDS, 100
    rejected = len(range(3, n, 10))  # records without a key (i % 10 == 3)
    db, stop = store_db, tmp_path / "stop"
    reader_iterations = 0
    for _ in range(WRITER_ROUNDS):
        stop.unlink(missing_ok=True)
        start = time.time() + 1.5  # after every interpreter has started
        writers = [
            subprocess.Popen(
                [sys.executable, "-c", _WRITER, str(db), str(n), str(chunk), str(start), f"w{i}"],
                env=_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(4)
        ]
        reader = subprocess.Popen(
            [sys.executable, "-c", _READER, str(db), str(stop), str(n), str(chunk)],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        outputs = [w.communicate(timeout=300) for w in writers]
        stop.touch()
        reader_out, reader_err = reader.communicate(timeout=120)

        for w, (out, err) in zip(writers, outputs, strict=True):
            assert w.returncode == 0, err
            assert "locked" not in err
            _run_id, status, *counts = json.loads(out)
            assert status == "completed_with_errors"
            assert counts == [n, n - rejected, rejected, 0, 3 * (n - rejected) + rejected]
        assert reader.returncode == 0, reader_err
        stats = json.loads(reader_out)
        assert stats["errors"] == []
        assert stats["violations"] == []
        assert stats["iterations"] > 0
        reader_iterations += stats["iterations"]
        _stat(db, "concurrent_reader_partial_snapshots", stats["partial_snapshots"])

    with lk.connect(db) as store:
        _integrity(store)
        runs = store.run_rows()
        assert len(runs) == 4 * WRITER_ROUNDS
        for row in runs:
            assert (row["n_input"], row["n_published"], row["n_rejected"]) == (
                n,
                n - rejected,
                rejected,
            )
            assert _assert_whole_chunks(store, row["run_id"], chunk, n) == n
        assert store.check("all").ok
    _stat(db, "concurrent_rounds", WRITER_ROUNDS)
    _stat(db, "concurrent_writer_runs", 4 * WRITER_ROUNDS)
    _stat(db, "concurrent_records_written", 4 * WRITER_ROUNDS * n)
    _stat(db, "concurrent_reader_snapshots", reader_iterations)


def _open_new_store(path: str, start: float, queue) -> None:  # pragma: no cover - child
    while time.time() < start:
        pass
    try:
        with lk.LineageStore(path, create=True) as store:
            queue.put(("ok", store.schema_version))
    except BaseException as exc:
        queue.put(("error", repr(exc)))


def test_many_processes_creating_the_same_store_at_once(tmp_path, store_db):
    ctx = multiprocessing.get_context("fork")
    failures = []
    made = []
    try:
        for trial in range(CREATE_TRIALS):
            # a new store each trial: a file, or a schema named after the test's
            path = f"{store_db}_{trial}" if _on_pg(store_db) else str(tmp_path / f"new{trial}.db")
            made.append(path)
            queue = ctx.Queue()
            start = time.time() + 0.1
            procs = [
                ctx.Process(target=_open_new_store, args=(path, start, queue)) for _ in range(8)
            ]
            for p in procs:
                p.start()
            results = [queue.get(timeout=60) for _ in procs]
            for p in procs:
                p.join(timeout=60)
            failures += [r for r in results if r != ("ok", lk_store.SCHEMA_VERSION)]
            with lk.connect(path) as store:
                _integrity(store)
                if is_postgres(store):  # created once: one counter row, one of each mark
                    assert rows(store, "SELECT count(*) FROM entry_ids") == [(1,)]
                    assert rows(store, "SELECT name FROM lineage_kit_meta ORDER BY 1") == [
                        ("application",),
                        ("schema_version",),
                    ]
                else:
                    assert store.backend.con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert lk.run_pipeline(clean_records(3), db=path, progress=False).status == "completed"
    finally:
        if _on_pg(store_db):
            server = store_db.rsplit("?schema=", 1)[0]
            for path in made:
                drop_schema(server, path.rsplit("schema=", 1)[1])
    assert failures == []
    _stat(store_db, "create_race_trials", CREATE_TRIALS)
    _stat(store_db, "create_race_openers", 8 * CREATE_TRIALS)


# -------------------------------------------------------------------- 3. full disk


def _limit_pages(monkeypatch, extra_pages: int) -> None:
    """Make every store the pipeline opens refuse to grow by more than ``extra_pages``."""
    import lineage_kit.store.sqlite as lk_sqlite

    original = lk_sqlite.open_connection

    def limited(path, **options):
        con = original(path, **options)
        if options.get("read_only"):  # readers do not grow the store
            return con
        pages = con.execute("PRAGMA page_count").fetchone()[0]
        con.execute(f"PRAGMA max_page_count = {int(pages + extra_pages)}")
        return con

    monkeypatch.setattr(lk_sqlite, "open_connection", limited)


def _assert_failed_run_is_the_only_problem(db: Path, baseline: str, digest: str, chunk, total):
    with lk.connect(db) as store:  # still opens
        _integrity(store)
        rows = store.run_rows()
        (failed,) = [r for r in rows if r["run_id"] != baseline]
        assert _digest(store, [baseline]) == digest
        _assert_whole_chunks(store, failed["run_id"], chunk, total)
        if failed["status"] == "failed":
            assert "full" in failed["error"] or "could not write" in failed["error"]
            expected = [("run_failed", failed["run_id"])]
        else:  # the final status update did not fit either: the writer is gone
            assert failed["status"] == "interrupted"
            expected = [("run_interrupted", failed["run_id"])]
        v = store.check("all").violations
        assert sorted(zip(v["code"], v["run_id"], strict=True)) == expected
        return failed


def test_full_store_raises_store_full_and_marks_the_run_failed(tmp_path, monkeypatch):
    rng = random.Random(3)
    chunk, total = 250, 5_000
    records = [{"key": f"k{i}", "text": "lorem ipsum " * 5, "n": i} for i in range(total)]
    for trial in range(FULL_TRIALS):
        db = tmp_path / f"full{trial}.db"
        baseline = lk.run_pipeline(ROOT / "data" / "sample_input.json", db=db, progress=False)
        with lk.connect(db) as store:
            digest = _digest(store, [baseline.run_id])
        with monkeypatch.context() as m:
            _limit_pages(m, rng.randint(20, 300))
            with pytest.raises(lk.StoreFull, match="is full") as info:
                lk.run_pipeline(records, db=db, chunk_size=chunk, progress=False)
        assert isinstance(info.value, lk.LineageKitError)
        failed = _assert_failed_run_is_the_only_problem(db, baseline.run_id, digest, chunk, total)
        assert failed["status"] == "failed"
        # With room again, the same input completes.
        again = lk.run_pipeline(records, db=db, chunk_size=chunk, progress=False)
        assert (again.status, again.n_published) == ("completed", total)
    STATS["full_disk_faults"] += FULL_TRIALS


def test_full_store_through_the_cli_is_exit_2_with_a_clear_message(tmp_path, monkeypatch, capsys):
    data = tmp_path / "in.jsonl"
    _write_jsonl(data, 3_000)
    db = tmp_path / "cli.db"
    lk.run_pipeline(ROOT / "data" / "sample_input.json", db=db, progress=False)
    _limit_pages(monkeypatch, 25)
    assert main(["run", str(data), "--db", str(db), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "is full" in err and "Traceback" not in err and "sqlite3" not in err
    STATS["full_disk_faults"] += 1


_FSIZE_CHILD = """
import json, resource, signal, sys
import lineage_kit as lk
db, limit = sys.argv[1], int(sys.argv[2])
records = [{"key": f"k{i}", "text": "lorem ipsum " * 5} for i in range(20_000)]
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG from write() rather than a signal
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
try:
    lk.run_pipeline(records, db=db, chunk_size=500, progress=False)
except Exception as exc:
    print(json.dumps([type(exc).__name__, isinstance(exc, lk.LineageKitError), str(exc)]))
"""


def test_file_size_limit_while_writing_is_a_clear_store_write_error(tmp_path):
    rng = random.Random(5)
    for trial in range(FSIZE_TRIALS):
        db = tmp_path / f"fsize{trial}.db"
        baseline = lk.run_pipeline(ROOT / "data" / "sample_input.json", db=db, progress=False)
        with lk.connect(db) as store:
            digest = _digest(store, [baseline.run_id])
        limit = db.stat().st_size + rng.randint(50_000, 1_500_000)
        out = subprocess.run(
            [sys.executable, "-c", _FSIZE_CHILD, str(db), str(limit)],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        name, ours, message = json.loads(out.stdout)
        assert ours and name in ("StoreWriteError", "StoreFull"), (name, message)
        assert str(db) in message
        _assert_failed_run_is_the_only_problem(db, baseline.run_id, digest, 500, 20_000)
    STATS["file_size_limit_faults"] += FSIZE_TRIALS


# ---------------------------------------------------------------- 4. hostile input

NASTY_STRINGS = [
    "",
    " ",
    "'",
    '"',
    "\\",
    "'; DROP TABLE lineage; --",
    '"); DELETE FROM runs; --',
    "Robert'); DROP TABLE records;--",
    "a\nb\r\nc\rd",
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfffy",
    "\ufeff",
    "\ufeffkey",
    "\u2028\u2029",
    "\u202eRTL",
    "e\u0301",
    "\U0001f600",
    "\U0010ffff",
    "|",
    "%s %d {0}",
    "?",
    ":name",
    "x" * 100_000,
    *(chr(plane * 0x10000 + 0x41) for plane in range(17)),  # one character of every plane
]


def _deep(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def _nasty_records() -> list:
    records: list = [{"key": s, "value": s, s: 1} for s in NASTY_STRINGS]
    records += [
        {"key": "deep", "value": _deep(100_000)},
        {"key": "deep-dict", "value": json.loads('{"a":' * 500 + "1" + "}" * 500)},
        {"key": "nan", "value": float("nan")},
        {"key": "inf", "value": float("inf")},
        {"key": "-inf", "value": [float("-inf")]},
        {"key": "big", "value": 2**64 + 1},
        {"key": "negbig", "value": -(2**200)},
        {"key": "huge", "value": 10**5000},
        {"key": 2**70, "value": 1},
        {"key": 10**5000, "value": 1},
        {"key": float("nan")},
        {"key": 1.5},
        {"key": True},
        {"key": None},
        {"key": ["a"]},
        {"key": {"a": 1}},
        {"KEY ": "spaced"},
        {"key": "collide", "Amount": 1, " amount ": 2},
        {"key": "dup"},
        {"key": "dup"},
        {"key": "\ud800lone"},
        {"key": "nul\x00key"},
        [1, 2, 3],
        ["key", "list"],
        42,
        -1.5,
        "just a string",
        None,
        True,
        {},
        {"key": "not json", "value": {1, 2}},
        {"key": "bytes", "value": b"\x00\xff"},
    ]
    return records


def _storable(value) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return False
    return True


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True, allow_nan=False)


def _normalized(record: dict) -> dict:
    return {str(k).strip().lower(): v for k, v in record.items()}


def _assert_every_record_accounted_for(result: lk.RunResult, inputs: list) -> None:
    """The properties every run must have, whatever its input.

    Every input record has one entry at the first step; a storable input (strict
    JSON) is stored there so that it loads back equal; the counts add up; every
    rejection has a reason and every failure an error; a published record's final
    value is its input with normalized field names.
    """
    assert result.n_input == len(inputs)
    assert result.n_input == result.n_published + result.n_rejected + result.n_failed
    with lk.connect(result.db) as store:
        entries = _stored_texts(
            store,
            rows(
                store,
                "SELECT l.position, l.record_key, l.status, l.reason, l.error, r.value "
                "FROM lineage l JOIN records r USING (entry_id) WHERE l.run_id = ?",
                (result.run_id,),
            ),
        )
        first = [json.loads(r[5]) for r in entries if r[0] == 0]
        assert len(first) == len(inputs)
        stored = Counter(_canonical(v) for v in first if _storable(v))
        for record in inputs:
            if _storable(record):
                canonical = _canonical(record)
                assert stored[canonical] > 0, f"lost or altered: {record!r:.200}"
                stored[canonical] -= 1
        statuses = Counter(r[2] for r in entries)
        published = [r for r in entries if r[0] == LAST and r[2] == "ok"]
        assert len(published) == result.n_published
        assert statuses["rejected"] == result.n_rejected
        assert statuses["failed"] == result.n_failed
        assert all(r[3] for r in entries if r[2] == "rejected")
        assert all(r[4] for r in entries if r[2] == "failed")
        by_key = Counter(
            r.get("key") if isinstance(r, dict) and isinstance(r.get("key"), str) else None
            for r in inputs
        )
        for _, key, _, _, _, value in published:
            matches = [r for r in inputs if isinstance(r, dict) and r.get("key") == key]
            if by_key[key] == 1 and len(matches) == 1:
                assert json.loads(value) == _normalized(matches[0])
        report = store.check(result.run_id)
        assert report.ok, report.violations.to_string()
    _stat(result.db, "inputs_tried", len(inputs))
    _stat(result.db, "records_lost", 0)  # every assertion above passed


def _stored_texts(store: lk.LineageStore, found: list[tuple]) -> list[tuple]:
    """Rows of ``(position, key, status, reason, error, ...)`` with their texts as
    given: a PostgreSQL store holds a text with NUL or a lone surrogate escaped
    (lineage_kit.store.postgres.text), which raw SQL sees as stored."""
    if not is_postgres(store):
        return found
    from lineage_kit.store.postgres.text import decode

    return [(p, decode(k), st, decode(r), decode(e), *more) for p, k, st, r, e, *more in found]


def test_nasty_records_in_memory_are_stored_exactly_or_rejected_with_a_reason(store_db):
    db = store_db
    records = _nasty_records()
    for chunk in (1, 7, 1000):
        result = lk.run_pipeline(records, db=db, chunk_size=chunk, progress=False)
        _assert_every_record_accounted_for(result, records)
    with lk.connect(db) as store:
        found = rows(
            store,
            "SELECT 0, record_key, status, reason, error FROM lineage "
            "WHERE run_id = ? AND position = 0",
            (result.run_id,),
        )
        pairs = {(key, reason) for _p, key, _s, reason, _e in _stored_texts(store, found)}
    # Reasoned from the input: strict JSON has no NaN/Infinity, a key is a non-empty,
    # NUL-free Unicode string or finite number, and a key may appear once per run.
    for key in ("nan", "inf", "-inf", "deep", "huge", "not json", "bytes"):
        assert (key, "invalid_value") in pairs, key
    for key in ("big", "negbig", str(2**70), "\U0010ffff", "'; DROP TABLE lineage; --"):
        assert (key, None) in pairs, key  # stored exactly (checked above)
    assert ("dup", None) in pairs and ("dup", "duplicate_key") in pairs
    assert ("collide", None) in pairs  # ingested, then rejected by normalize
    invalid_keys = [k for k, reason in pairs if reason == "invalid_key"]
    assert invalid_keys == [None]
    with lk.connect(db) as store:
        ((n_invalid,),) = rows(
            store,
            "SELECT count(*) FROM lineage WHERE run_id = ? AND reason = 'invalid_key'",
            (result.run_id,),
        )
    # NUL x3, lone surrogate x3, 10**5000, NaN, True, list, dict
    assert n_invalid == 11


def test_nasty_records_through_json_and_jsonl_files(tmp_path):
    records = [r for r in _nasty_records() if _storable(r) or _has_nan(r)]
    db = tmp_path / "files.db"
    for fmt in ("json", "jsonl"):
        path = tmp_path / f"nasty.{fmt}"
        if fmt == "json":
            path.write_text("\ufeff" + json.dumps(records), encoding="utf-8")
        else:
            lines = "\n".join(json.dumps(r) for r in records)
            path.write_text("\ufeff" + lines + "\n", encoding="utf-8")
        result = lk.run_pipeline(path, db=db, progress=False)
        _assert_every_record_accounted_for(result, _reload(path, fmt))


def test_nasty_strings_as_csv_field_names_and_values(tmp_path):
    encodable = [t for t in NASTY_STRINGS if not any("\ud800" <= c <= "\udfff" for c in t)]
    fields, seen = [], {"key"}
    for name in encodable:  # one field per normalized name, so no field_collision
        if name.strip().lower() not in seen:
            seen.add(name.strip().lower())
            fields.append(name)
    header = ["key", *fields]
    records = [
        {"key": key, **{f: encodable[(i + j) % len(encodable)] for j, f in enumerate(fields)}}
        for i, key in enumerate(encodable)
    ]
    path = tmp_path / "nasty.csv"
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows([[r[h] for h in header] for r in records])
    result = lk.run_pipeline(path, db=tmp_path / "csv.db", progress=False)
    _assert_every_record_accounted_for(result, records)
    # Rejected: three blank keys ("", " " and "\u2028\u2029", which is Unicode
    # whitespace) and the two keys holding a NUL.
    assert (result.n_published, result.n_rejected) == (len(records) - 5, 5)


def _has_nan(value) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        return False
    return True


def _reload(path: Path, fmt: str) -> list:
    text = path.read_text(encoding="utf-8-sig")
    if fmt == "json":
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
def test_invalid_utf8_is_an_input_error_naming_file_and_line(tmp_path, fmt, capsys):
    path = tmp_path / f"bad.{fmt}"
    lines = {
        "json": [b"[", b'{"key": "a"},', b'{"key": "b\xff"}', b"]"],
        "jsonl": [b'{"key": "a"}', b'{"key": "c"}', b'{"key": "b\xff"}'],
        "csv": [b"key,x", b"a,1", b"b\xff,2"],
    }[fmt]
    path.write_bytes(b"\n".join(lines) + b"\n")
    db = tmp_path / "utf8.db"
    with pytest.raises(lk.InputError) as info:
        lk.run_pipeline(path, db=db, progress=False)
    assert info.value.path == str(path) and info.value.line == 3
    assert main(["run", str(path), "--db", str(db)]) == 2
    assert f"{path}:3" in capsys.readouterr().err
    assert not db.exists()  # the error came in the first chunk: no store was even created


@pytest.mark.parametrize(
    ("name", "content", "line"),
    [
        ("deep.jsonl", b'{"key": "a"}\n' + b'{"key": "b", "v": ' + b"[" * 100_000 + b"\n", 2),
        ("deep.json", b"[" * 100_000, None),
        ("bigint.jsonl", b'{"key": "a", "v": ' + b"7" * 5000 + b"}\n", 1),
        ("bigint.json", b'[{"key": "a", "v": ' + b"7" * 5000 + b"}]", None),
        ("dupheader.csv", b"key,a,a\nk1,1,2\n", 1),
    ],
    ids=["deep-jsonl", "deep-json", "bigint-jsonl", "bigint-json", "duplicate-csv-header"],
)
def test_unreadable_files_are_input_errors_and_keep_nothing(tmp_path, name, content, line):
    path = tmp_path / name
    path.write_bytes(content)
    db = tmp_path / "unreadable.db"
    with pytest.raises(lk.InputError) as info:
        lk.run_pipeline(path, db=db, progress=False)
    assert info.value.path == str(path)
    assert info.value.line == line
    assert main(["run", str(path), "--db", str(db), "--quiet"]) == 2
    assert not db.exists()  # the error came in the first chunk: no store was even created


def test_byte_order_mark_is_not_part_of_the_first_field_name(tmp_path):
    db = tmp_path / "bom.db"
    for name, text in (
        ("bom.csv", "key,Amount\nk1,1\n"),
        ("bom.jsonl", '{"key": "k1", "Amount": 1}\n'),
        ("bom.json", '[{"key": "k1", "Amount": 1}]'),
    ):
        path = tmp_path / name
        path.write_bytes(b"\xef\xbb\xbf" + text.encode())
        result = lk.run_pipeline(path, db=db, progress=False)
        assert (result.status, result.n_published) == ("completed", 1)


# Hypothesis: values drawn from everything JSON can hold, and some things it cannot.
_TEXT = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=12),  # lone surrogates too
    st.sampled_from(NASTY_STRINGS[:-18]),
)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**100), max_value=2**100),
    st.floats(allow_nan=True, allow_infinity=True),
    _TEXT,
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=12,
)
_KEYS = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=6),
    st.integers(),
    st.floats(),
    st.sampled_from(["dup", "dup", "a\x00", "\ud800", "'--", ""]),
    st.none(),
)
_RECORDS = st.one_of(
    st.builds(lambda key, fields: {"key": key, **fields}, _KEYS, st.dictionaries(_TEXT, _VALUES)),
    st.dictionaries(_TEXT, _VALUES, max_size=3),
    _VALUES,
)
_FUZZ = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)


def _run_fuzzed(source, records, **options):
    """Run a fuzzed input; a key field that no record of the first chunk has is a clear
    InputError (it means a wrong --key), not a run."""
    try:
        result = lk.run_pipeline(source, progress=False, **options)
    except lk.InputError as exc:
        assert "has the key field 'key'" in str(exc)
        first_chunk = records[: options.get("chunk_size", 2000)]
        objects = [r for r in first_chunk if isinstance(r, dict)]
        assert any(objects)
        assert not any(str(f).strip().lower() == "key" for r in objects for f in r)
        _stat(options["db"], "wrong_key_errors")
        return
    _assert_every_record_accounted_for(result, records)


def test_fuzzed_records_in_memory(store_db):
    db = store_db

    @settings(_FUZZ, max_examples=PG_FUZZ_EXAMPLES if _on_pg(db) else FUZZ_EXAMPLES)
    @given(batch=st.lists(_RECORDS, min_size=1, max_size=15), chunk=st.integers(1, 6))
    def check(batch, chunk):
        _run_fuzzed(batch, batch, db=db, chunk_size=chunk)
        _stat(db, "fuzz_runs_in_memory")

    check()


_FILE_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=10)


def test_fuzzed_json_and_jsonl_files(tmp_path):
    db = tmp_path / "fuzzfiles.db"

    @_FUZZ
    @given(
        batch=st.lists(_RECORDS, min_size=1, max_size=10),
        fmt=st.sampled_from(["json", "jsonl"]),
        bom=st.booleans(),
    )
    def check(batch, fmt, bom):
        path = tmp_path / f"fuzz.{fmt}"
        if fmt == "json":
            text = json.dumps(batch)  # NaN and Infinity written as such
        else:
            text = "\n".join(json.dumps(r) for r in batch) + "\n"
        path.write_text(("\ufeff" if bom else "") + text, encoding="utf-8")
        _run_fuzzed(path, _reload(path, fmt), db=db)
        STATS["fuzz_runs_files"] += 1

    check()


def test_fuzzed_csv_files(tmp_path):
    db = tmp_path / "fuzzcsv.db"

    @_FUZZ
    @given(
        fields=st.lists(_FILE_TEXT, max_size=4, unique=True),
        rows=st.lists(st.lists(_FILE_TEXT, min_size=5, max_size=5), min_size=1, max_size=10),
        bom=st.booleans(),
    )
    def check(fields, rows, bom):
        header = ["key", *[f for f in fields if f != "key"]]
        records = [dict(zip(header, row, strict=False)) for row in rows]
        path = tmp_path / "fuzz.csv"
        with path.open("w", encoding="utf-8-sig" if bom else "utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows([[r[h] for h in header] for r in records])
        result = lk.run_pipeline(path, db=db, progress=False)
        _assert_every_record_accounted_for(result, records)
        STATS["fuzz_runs_files"] += 1

    check()


# ---------------------------------------------------------------- 5. schema versions


def _copy_fixture(tmp_path: Path) -> Path:
    target = tmp_path / "store_v1.db"
    shutil.copyfile(FIXTURES / "store_v1.db", target)
    return target


def test_version_1_fixture_opens_and_checks_clean(tmp_path):
    db = _copy_fixture(tmp_path)
    with lk.connect(db) as store:
        assert store.schema_version == lk_store.SCHEMA_VERSION
        (run,) = store.run_rows()
        assert (run["status"], run["n_input"], run["n_published"]) == ("completed", 30, 30)
        assert store.check("all").ok
    result = lk.run_pipeline(ROOT / "data" / "sample_input.json", db=db, progress=False)
    assert result.status == "completed"


def test_version_1_store_is_migrated_to_the_current_schema(tmp_path):
    db = _copy_fixture(tmp_path)
    raw = sqlite3.connect(db)
    before = {
        table: raw.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
        for table in ("lineage", "parents", "records", "steps", "runs")
    }
    assert "writer_started" not in [r[1] for r in raw.execute("PRAGMA table_info(runs)")]
    raw.close()
    with lk.connect(db) as store:
        assert store.schema_version == lk_store.SCHEMA_VERSION == 4
        con = store.backend.con
        assert [r[1] for r in con.execute("PRAGMA table_info(runs)")][-1] == "writer_started"
        for table, rows in before.items():
            after = con.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
            if table == "runs":  # v4's run_no first; v2's column is NULL for v1's runs
                assert [r[1:-1] for r in after] == rows and {r[-1] for r in after} == {None}
                assert [r[0] for r in after] == [1]
            elif table == "steps":  # v4's run_no first
                assert [r[1:] for r in after] == rows
            else:  # lineage, parents and records are v4's views, with v3's columns
                assert after == rows


def test_older_store_is_migrated_forward_in_one_transaction(tmp_path, monkeypatch):
    import lineage_kit.store.connection as connection

    db = _copy_fixture(tmp_path)
    with lk.connect(db) as store:
        digest = _digest(store, [r["run_id"] for r in store.run_rows()])
    db = _copy_fixture(tmp_path)  # back to version 1
    future = lk_store.SCHEMA_VERSION + 1
    monkeypatch.setattr(connection, "SCHEMA_VERSION", future)

    # A migration that fails half-way (after the real v1 -> v2 step) leaves the
    # store exactly at version 1: all steps run in one transaction.
    monkeypatch.setattr(
        connection,
        "MIGRATIONS",
        {
            **connection.MIGRATIONS,
            future: "ALTER TABLE runs ADD COLUMN note TEXT; CREATE TABLE runs (x)",
        },
    )
    with pytest.raises(sqlite3.OperationalError):
        lk.connect(db)
    raw = sqlite3.connect(db)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == 1
    columns = [r[1] for r in raw.execute("PRAGMA table_info(runs)")]
    assert "note" not in columns and "writer_started" not in columns
    raw.close()

    monkeypatch.setattr(
        connection,
        "MIGRATIONS",
        {
            **connection.MIGRATIONS,
            future: "ALTER TABLE runs ADD COLUMN note TEXT; "
            "CREATE INDEX entries_st ON entries (status)",
        },
    )
    with lk.connect(db) as store:
        assert store.schema_version == future
        assert "note" in [r[1] for r in store.backend.con.execute("PRAGMA table_info(runs)")]
        assert _digest(store, [r["run_id"] for r in store.run_rows()]) != digest  # + column
        assert store.backend.con.execute("SELECT count(*) FROM lineage").fetchone()[0] == 90


def _files(db: Path) -> dict[str, str | None]:
    out = {}
    for suffix in ("", "-wal", "-shm"):
        p = Path(f"{db}{suffix}")
        out[suffix] = hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else None
    return out


def test_newer_store_is_refused_and_left_byte_for_byte_unchanged(tmp_path, capsys):
    db = _copy_fixture(tmp_path)
    raw = sqlite3.connect(db)
    raw.execute("PRAGMA user_version = 99")
    raw.close()
    before = _files(db)
    with pytest.raises(lk.SchemaVersionError, match="newer"):
        lk.connect(db)
    with pytest.raises(lk.SchemaVersionError):
        lk.run_pipeline(ROOT / "data" / "sample_input.json", db=db, progress=False)
    assert main(["runs", "--db", str(db)]) == 2
    assert "schema version 99" in capsys.readouterr().err
    assert _files(db) == before


def test_newer_store_with_an_unfinished_wal_is_left_unchanged(tmp_path):
    # A newer lineage_kit wrote the version into the WAL and died before a checkpoint.
    db = _copy_fixture(tmp_path)
    raw = sqlite3.connect(db, isolation_level=None)
    raw.execute("PRAGMA journal_mode = WAL")
    raw.execute("PRAGMA wal_autocheckpoint = 0")
    raw.execute("PRAGMA user_version = 99")
    raw.execute("UPDATE runs SET pipeline = 'from the future'")
    copy = copy_with_wal(db, tmp_path / "crashed")
    raw.close()
    before = _files(copy)
    assert before["-wal"] is not None
    with pytest.raises(lk.SchemaVersionError, match="99"):
        lk.connect(copy)
    after = _files(copy)
    # The database and its WAL are untouched (a read-write open would have
    # checkpointed the WAL into the file on close); the -shm is only SQLite's
    # shared-memory index of the WAL, rebuilt by any reader.
    assert (after[""], after["-wal"]) == (before[""], before["-wal"])
