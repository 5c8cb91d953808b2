"""Integrity checks on both backends: faults planted with SQL on the store's own
tables (as a foreign writer, a bug or a hand edit would), each reported exactly.

tests/test_checks.py holds the SQLite-only cases (they cut chunks or copy store
files); these write through a writable backend's connection, the same statements on
SQLite and on PostgreSQL (``?`` placeholders become ``%s`` there).
"""

from __future__ import annotations

import json
import time

import pytest

import lineage_kit as lk
from lineage_kit.store import open_backend

from .backends import is_postgres
from .conftest import SAMPLE_JSON

KEY = "order-110"
STEPS = ("ingest", "normalize", "publish")  # the default pipeline's


@pytest.fixture
def run_db(store_db):
    """A store (each backend) holding one clean run of the sample."""
    lk.run_pipeline(SAMPLE_JSON, db=store_db, progress=False)
    assert _report(store_db).ok
    return store_db


def _tamper(location, *statements: tuple) -> None:
    """Apply raw SQL to a store's tables (foreign keys off on SQLite)."""
    with open_backend(location) as backend:
        con = backend.con
        pg = is_postgres(backend)
        if not pg:
            con.execute("PRAGMA foreign_keys = OFF")
        for sql, *params in statements:  # autocommit on both: each statement lands
            con.execute(sql.replace("?", "%s") if pg else sql, params)


def _one(location, sql: str, *params):
    with open_backend(location, read_only=True) as backend:
        if is_postgres(backend):
            sql = sql.replace("?", "%s")
        return backend.con.execute(sql, params).fetchone()


def _entry(location, key: str, step: str) -> int:
    return _one(
        location,
        "SELECT e.entry_id FROM entries e JOIN steps s "
        "ON s.run_no = e.run_no AND s.position = e.position "
        "WHERE e.record_key = ? AND s.name = ?",
        key,
        step,
    )[0]


def _report(location, **kwargs) -> lk.CheckReport:
    with lk.connect(location) as store:
        return store.check(**kwargs)


def _only(location, code: str, **kwargs):
    v = _report(location, **kwargs).violations
    assert list(v["code"]) == [code], v.to_string()
    return v.iloc[0]


def _copy_entry(location, entry_id: int, new_id: int, **changes) -> tuple:
    """An INSERT of a copy of an entry under ``new_id`` (columns as each backend has)."""
    cols = ["run_no", "position", "record_key", "status", "parent_id", "value_id"]
    if _is_pg(location):
        cols.append("created_at")
    values = ", ".join(f"{c}" if c not in changes else "?" for c in cols)
    return (
        f"INSERT INTO entries (entry_id, {', '.join(cols)}) "
        f"SELECT ?, {values} FROM entries WHERE entry_id = ?",
        new_id,
        *[changes[c] for c in cols if c in changes],
        entry_id,
    )


def _is_pg(location) -> bool:
    return str(location).startswith("postgresql://")


def _past_every_chunk(location) -> int:
    return _one(location, "SELECT max(last_entry) FROM chunks")[0] + 1000


# ----------------------------------------------------------- unclaimed entries


def test_an_entry_outside_every_chunk_is_unclaimed(run_db):
    # Written past every chunk's range (no claim row): invisible to every scan of
    # the run's chunks, so only this check can see it.
    stray = _past_every_chunk(run_db)
    _tamper(run_db, _copy_entry(run_db, _entry(run_db, KEY, "publish"), stray, record_key="x"))
    v = _only(run_db, "unclaimed_entry")
    assert (v.entry_id, v.record_key) == (stray, "x")
    assert "no chunk its run claimed" in v.message


def test_an_entry_of_no_run_is_unclaimed_whatever_run_is_checked(run_db):
    stray = _past_every_chunk(run_db)
    _tamper(run_db, _copy_entry(run_db, _entry(run_db, KEY, "ingest"), stray, run_no=9999))
    v = _only(run_db, "unclaimed_entry")
    assert (v.entry_id, v.run_id) == (stray, None)
    assert "names no run" in v.message


def test_an_entry_between_two_chunks_is_unclaimed(store_db):
    lk.run_pipeline(SAMPLE_JSON, db=store_db, progress=False, chunk_size=10)
    lo, hi = _one(store_db, "SELECT min(last_entry), max(first_entry) FROM chunks")
    assert hi > lo + 1  # several chunks
    # make room: the first chunk gives up its last id, which stays in the store
    first = _one(store_db, "SELECT run_no, chunk_no FROM chunks WHERE last_entry = ?", lo)
    _tamper(
        store_db,
        ("UPDATE chunks SET last_entry = last_entry - 1 WHERE run_no = ? AND chunk_no = ?", *first),
    )
    v = _report(store_db).violations
    assert (v["code"] == "unclaimed_entry").sum() == 1, v.to_string()
    assert list(v.loc[v["code"] == "unclaimed_entry", "entry_id"]) == [lo]


def test_an_entry_naming_another_run_inside_a_chunk_is_unclaimed(store_db):
    lk.run_pipeline(SAMPLE_JSON, db=store_db, progress=False)
    lk.run_pipeline(SAMPLE_JSON, db=store_db, progress=False)
    (first_run,) = _one(store_db, "SELECT min(run_no) FROM runs")
    (other,) = _one(store_db, "SELECT max(run_no) FROM runs")
    (entry,) = _one(
        store_db,
        "SELECT min(entry_id) FROM entries WHERE run_no = ? AND position = 2",
        first_run,
    )
    _tamper(
        store_db,
        ("UPDATE entries SET run_no = ?, record_key = 'moved' WHERE entry_id = ?", other, entry),
    )
    v = _report(store_db, run="all").violations
    unclaimed = v[v["code"] == "unclaimed_entry"]
    assert list(unclaimed["entry_id"]) == [entry], v.to_string()
    assert "lies in a chunk of run" in unclaimed.iloc[0].message
    # the chunk that holds it no longer holds its own count of entries
    assert any("chunk 0" in m for m in v.loc[v["code"] == "counts_mismatch", "message"])


# ------------------------------------------------------ the other checks


def test_a_chunk_recording_more_entries_than_it_holds(run_db):
    publish = _entry(run_db, KEY, "publish")
    _tamper(run_db, ("DELETE FROM entries WHERE entry_id = ?", publish))
    v = _report(run_db).violations
    codes = sorted(v["code"])
    # the run's own counts and the chunk's both disagree with the entries
    assert codes == ["counts_mismatch", "counts_mismatch", "incomplete_chain"], v.to_string()
    chunk = v[v["message"].str.startswith("chunk ")].iloc[0]
    assert "records ok/rejected/failed" in chunk.message and "'publish'" in chunk.message


def test_missing_parent_and_incomplete_chain(run_db):
    ingest, normalized = _entry(run_db, KEY, "ingest"), _entry(run_db, KEY, "normalize")
    _tamper(run_db, ("UPDATE entries SET parent_id = NULL WHERE entry_id = ?", normalized))
    v = _report(run_db).violations.sort_values("code")
    assert list(zip(v["code"], v["entry_id"], strict=True)) == [
        ("incomplete_chain", ingest),
        ("missing_parent", normalized),
    ]


def test_orphan_parent(run_db):
    normalized = _entry(run_db, KEY, "normalize")
    _tamper(run_db, ("UPDATE entries SET parent_id = 99999999 WHERE entry_id = ?", normalized))
    codes = sorted(_report(run_db).violations["code"])
    assert codes == ["incomplete_chain", "orphan_parent"]


def test_chain_gap(run_db):
    ingest, publish = _entry(run_db, KEY, "ingest"), _entry(run_db, KEY, "publish")
    normalized = _entry(run_db, KEY, "normalize")
    _tamper(run_db, ("UPDATE entries SET parent_id = ? WHERE entry_id = ?", ingest, publish))
    v = _report(run_db).violations.sort_values("code")
    assert list(zip(v["code"], v["entry_id"], strict=True)) == [
        ("chain_gap", publish),
        ("incomplete_chain", normalized),
    ]


def test_cycle(run_db):
    ingest = _entry(run_db, KEY, "ingest")
    _tamper(run_db, ("UPDATE entries SET parent_id = ? WHERE entry_id = ?", ingest, ingest))
    v = _report(run_db).violations
    assert "cycle" in set(v["code"])
    assert list(v.loc[v["code"] == "cycle", "entry_id"]) == [ingest]


def test_walks_along_a_stored_cycle_end(run_db):
    ingest, normalized, published = (_entry(run_db, KEY, s) for s in STEPS)
    # ingest's parent is now publish: ingest -> normalize -> publish -> ingest
    _tamper(run_db, ("UPDATE entries SET parent_id = ? WHERE entry_id = ?", published, ingest))
    with lk.connect(run_db) as store:
        _time_limit(store.backend, seconds=60)  # a walk that never ends fails the test
        up = store.upstream(published)[["entry_id", "depth"]].values.tolist()
        down = store.downstream(ingest)[["entry_id", "depth"]].values.tolist()
        up_1 = store.upstream(published, depth=1)[["entry_id", "depth"]].values.tolist()
    # each entry of the cycle once, at its smallest depth
    assert up == [[published, 0], [normalized, 1], [ingest, 2]]
    assert down == [[ingest, 0], [normalized, 1], [published, 2]]
    assert up_1 == [[published, 0], [normalized, 1]]


def _everyone(key: str, record: dict) -> str:
    return "ALL"


@lk.step("pool", kind="merge", group_by=_everyone, description="all records in one")
def _pool(records: list[dict]) -> dict:
    return {"n": len(records)}


def test_a_cycle_beside_a_wide_merge_is_walked_once(store_db):
    # 5,000 parents of one merged entry, and one of them made its child as well: a
    # walk that went round the cycle once per depth would read 5,000 x 5,000 rows
    n = 5_000
    records = [{"key": f"k{i}", "amount": i} for i in range(n)]
    lk.Pipeline([lk.steps.ingest, _pool, lk.steps.publish]).run(records, store_db, progress=False)
    first, seventh = _entry(store_db, "k0", "ingest"), _entry(store_db, "k7", "ingest")
    merged, published = _entry(store_db, "ALL", "pool"), _entry(store_db, "ALL", "publish")
    _tamper(store_db, ("UPDATE entries SET parent_id = ? WHERE entry_id = ?", merged, first))
    with lk.connect(store_db) as store:
        _time_limit(store.backend, seconds=30)  # linear: well under a second here
        up = store.upstream(published)
        down = store.downstream(seventh)[["entry_id", "depth"]].values.tolist()
    assert up["depth"].tolist() == [0, 1] + [2] * n
    assert up["entry_id"].is_unique
    assert down == [[seventh, 0], [merged, 1], [first, 2], [published, 2]]


def _time_limit(backend, seconds: float) -> None:
    """Make the backend's statements fail once they have run ``seconds`` (on
    PostgreSQL each statement; on SQLite all of them from now)."""
    if is_postgres(backend):
        backend.con.execute(f"SET statement_timeout = {int(seconds * 1000)}")
        return
    started = time.monotonic()
    backend.con.set_progress_handler(lambda: time.monotonic() - started > seconds, 100_000)


def test_key_changed(run_db):
    normalized = _entry(run_db, KEY, "normalize")
    publish = _entry(run_db, KEY, "publish")
    _tamper(run_db, ("UPDATE entries SET record_key = 'other' WHERE entry_id = ?", normalized))
    v = _report(run_db).violations
    # at both ends of the renamed entry: its parent's key, and its child's
    assert list(zip(v["code"], v["entry_id"], strict=True)) == [
        ("key_changed", normalized),
        ("key_changed", publish),
    ], v.to_string()


@pytest.mark.parametrize(
    ("corruption", "code", "step"),
    [
        ("DELETE FROM vals WHERE value_id = ?", "missing_value", "ingest"),
        ("UPDATE vals SET json = '{\"amount\": 0}' WHERE value_id = ?", "hash_mismatch", "ingest"),
        ("UPDATE vals SET hash = NULL WHERE value_id = ?", "hash_mismatch", "ingest"),
    ],
)
def test_a_broken_value_is_reported_at_its_entry(run_db, corruption, code, step):
    entry = _entry(run_db, KEY, step)
    _tamper(run_db, (corruption, entry))
    v = _only(run_db, code)
    assert (v.record_key, v.entry_id) == (KEY, entry)


def test_a_hash_mismatch_names_both_hashes(run_db):
    entry = _entry(run_db, KEY, "ingest")
    _tamper(run_db, ("UPDATE vals SET json = '[1]' WHERE value_id = ?", entry))
    v = _only(run_db, "hash_mismatch")
    actual = lk.values.value_hash("[1]")
    assert f"hashes to {actual}" in v.message


def test_orphan_value(run_db):
    stray = _past_every_chunk(run_db)
    _tamper(run_db, ("INSERT INTO vals (value_id, hash, json) VALUES (?, NULL, '{}')", stray))
    v = _only(run_db, "orphan_value")
    assert v.entry_id == stray


def test_an_orphan_value_inside_the_runs_chunks(run_db):
    # The entry that stored it is gone (its child now links to nothing): its value
    # lies inside the run's chunks, where the counts of values and of the entries
    # that stored them no longer agree, so the store is searched.
    ingest = _entry(run_db, KEY, "ingest")
    _tamper(run_db, ("DELETE FROM entries WHERE entry_id = ?", ingest))
    v = _report(run_db).violations
    assert list(v.loc[v["code"] == "orphan_value", "entry_id"]) == [ingest], v.to_string()


def test_an_orphan_value_beside_an_entry_without_its_own(run_db):
    # One fault hides the other from the counts (an entry repointed at another
    # value, and a value stored under no entry's id): both are still found.
    ingest, normalized = _entry(run_db, KEY, "ingest"), _entry(run_db, KEY, "normalize")
    stray = _past_every_chunk(run_db)
    _tamper(
        run_db,
        ("UPDATE entries SET value_id = ? WHERE entry_id = ?", ingest, normalized),
        ("INSERT INTO vals (value_id, hash, json) VALUES (?, NULL, '{}')", stray),
    )
    v = _report(run_db).violations
    assert list(v.loc[v["code"] == "orphan_value", "entry_id"]) == [stray], v.to_string()


def test_duplicate_processing_in_a_chunk_of_its_own(run_db):
    publish = _entry(run_db, KEY, "publish")
    stray = _past_every_chunk(run_db)
    (run_no,) = _one(run_db, "SELECT run_no FROM entries WHERE entry_id = ?", publish)
    (position,) = _one(run_db, "SELECT position FROM entries WHERE entry_id = ?", publish)
    counts = json.dumps([[position, 1, 0, 0]])
    claim = (
        "INSERT INTO chunks (run_no, chunk_no, first_entry, last_entry, n_entries, counts, "
        "written_at) SELECT run_no, 99, ?, ?, 1, ?, written_at FROM chunks "
        "WHERE run_no = ? AND chunk_no = 0"
        if _is_pg(run_db)
        else "INSERT INTO chunks (run_no, chunk_no, first_entry, last_entry, counts, "
        "written_at) SELECT run_no, 99, ?, ?, ?, written_at FROM chunks "
        "WHERE run_no = ? AND chunk_no = 0"
    )
    _tamper(run_db, _copy_entry(run_db, publish, stray), (claim, stray, stray, counts, run_no))
    v = _report(run_db).violations
    assert list(v["code"]) == ["duplicate_processing", "counts_mismatch"], v.to_string()
    assert v.iloc[0].entry_id == stray and str(publish) in v.iloc[0].message


def test_counts_mismatch(run_db):
    _tamper(run_db, ("UPDATE runs SET n_published = n_published + 1",))
    v = _only(run_db, "counts_mismatch")
    assert "n_input" in v.message


def test_run_interrupted(run_db):
    _tamper(run_db, ("UPDATE runs SET status = 'interrupted'",))
    _only(run_db, "run_interrupted")
