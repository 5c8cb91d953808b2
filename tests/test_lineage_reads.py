"""``store.lineage()`` reads a run's columns without a join per entry (issue 17): entry
ids and times from the chunks rows, value hashes once per value (``hash_table``).
These tests hold it to the plain recipe: ``read_sql`` of the ``lineage`` view (a LEFT
JOIN of each entry's value) typed with pandas, also on stores whose shape defeats
the shortcuts (a chunk range with holes, a hash of another width, a value missing,
more than ten steps)."""

from __future__ import annotations

import sqlite3

import pandas as pd
import pytest

import lineage_kit as lk
from lineage_kit import frames
from lineage_kit.store.schema import ENTRY_STATUSES

pytestmark = pytest.mark.sqlite_only  # the reference reads SQLite's views itself


def _reference(store, run_id: str, key: str | None = None, step: str | None = None):
    """What ``lineage(run_id, key, step)`` must be, by the plain pandas recipe."""
    con = store.backend.con
    where, params = "l.run_id = ?", [run_id]
    if key is not None:
        where, params = where + " AND l.record_key = ?", [*params, key]
    steps = [
        r[0]
        for r in con.execute("SELECT name FROM steps WHERE run_id = ? ORDER BY position", (run_id,))
    ]
    if step is not None:
        where, params = where + " AND l.position = ?", [*params, steps.index(step)]
    frame = pd.read_sql(
        "SELECT l.entry_id, l.run_id, l.position, s.name AS step, l.record_key AS key, "
        "l.status, l.reason, l.error, l.created_at, nullif(l.value_hash, '') AS value_hash, "
        "(SELECT min(p.parent_id) FROM parents p WHERE p.child_id = l.entry_id) AS parent_id, "
        "(SELECT count(*) FROM parents p WHERE p.child_id = l.entry_id) AS n_parents "
        "FROM lineage l JOIN steps s ON s.run_id = l.run_id AND s.position = l.position "
        f"WHERE {where} ORDER BY l.entry_id",
        con,
        params=params,
    )
    frame["entry_id"] = frame["entry_id"].astype("int64")
    frame["run_id"] = pd.Categorical(frame["run_id"], categories=[run_id])
    frame["position"] = frame["position"].astype("int64")
    frame["step"] = pd.Categorical(frame["step"], categories=steps, ordered=True)
    frame["status"] = pd.Categorical(frame["status"], categories=list(ENTRY_STATUSES))
    for column in ("key", "reason", "error", "value_hash"):
        frame[column] = frame[column].astype("str")
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True, format="ISO8601")
    frame["created_at"] = frame["created_at"].astype("datetime64[us, UTC]")  # also if empty
    frame["parent_id"] = frame["parent_id"].astype("Int64")
    frame["n_parents"] = frame["n_parents"].astype("int64")
    return frame[list(frames.LINEAGE_COLUMNS)]


def _assert_matches(store, run_id: str, key: str | None = None, step: str | None = None):
    got = store.lineage(run_id, key=key, step=step)
    want = _reference(store, run_id, key, step)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert list(got.dtypes) == list(want.dtypes)
    return got


def _edit(path, *statements: tuple[str, tuple]) -> None:
    con = sqlite3.connect(path)  # the test, not the package, edits the file
    con.execute("PRAGMA foreign_keys = OFF")
    with con:
        for sql, params in statements:
            con.execute(sql, params)
    con.close()


@pytest.fixture
def run_store(tmp_path):
    """One run of 30 records through three steps in chunks of 7 (five chunks)."""
    path = tmp_path / "lineage.db"

    @lk.step("check")
    def check(record: dict) -> dict:
        if record["n"] % 5 == 0:
            raise lk.Reject("five", f"n is {record['n']}")
        if record["n"] % 7 == 3:
            raise ValueError("bad n")
        return record

    @lk.step("same")
    def same(record: dict) -> dict:
        return record

    records = [{"key": f"k{i}", "n": i} for i in range(30)]
    run = lk.run_pipeline(
        records, steps=[lk.steps.ingest, check, same], db=path, chunk_size=7, progress=False
    )
    return path, run.run_id


def test_whole_run_steps_and_keys_match_the_view(run_store):
    path, run_id = run_store
    with lk.connect(path) as store:
        frame = _assert_matches(store, run_id)
        assert frame["value_hash"].notna().all()
        assert frame["reason"].notna().sum() > 0 and frame["error"].notna().sum() > 0
        for step in ("ingest", "check", "same"):
            _assert_matches(store, run_id, step=step)
        for key in ("k0", "k3", "k11", "nope"):
            _assert_matches(store, run_id, key=key)


def test_a_chunk_range_with_holes_reads_ids_from_the_rows(run_store):
    path, run_id = run_store
    with lk.connect(path) as store:
        before = store.lineage(run_id)
    _edit(  # the last chunk claims ids that no entry has: the ranges are not full
        path,
        (
            "UPDATE chunks SET last_entry = last_entry + 4 WHERE run_no = "
            "(SELECT run_no FROM runs WHERE run_id = ?) AND chunk_no = "
            "(SELECT max(chunk_no) FROM chunks)",
            (run_id,),
        ),
    )
    with lk.connect(path) as store:
        after = _assert_matches(store, run_id)
    pd.testing.assert_frame_equal(after, before)


def test_hashes_of_another_width_and_missing_values(run_store):
    path, run_id = run_store
    with lk.connect(path) as store:
        frame = store.lineage(run_id)
    first, second = frame["entry_id"].iloc[0], frame["entry_id"].iloc[1]
    _edit(
        path,
        ("UPDATE vals SET hash = x'00ff' WHERE value_id = ?", (int(first),)),
        ("DELETE FROM vals WHERE value_id = ?", (int(second),)),
    )
    with lk.connect(path) as store:
        got = _assert_matches(store, run_id)
        assert got["value_hash"].iloc[0] == "00ff"
        assert pd.isna(got["value_hash"].iloc[1])
        graph = store.graph(run_id)
        assert graph.nodes[int(first)]["value_hash"] == "00ff"
        assert graph.nodes[int(second)]["value_hash"] is None


def test_more_than_ten_steps(tmp_path):
    path = tmp_path / "lineage.db"

    def plus(i: int):
        @lk.step(f"plus{i}")
        def step(record: dict) -> dict:
            return {**record, "n": record["n"] + i}

        return step

    records = [{"key": f"k{i}", "n": i} for i in range(12)]
    run = lk.run_pipeline(
        records,
        steps=[lk.steps.ingest, *(plus(i) for i in range(12))],
        db=path,
        chunk_size=5,
        progress=False,
    )
    with lk.connect(path) as store:
        frame = _assert_matches(store, run.run_id)
        assert frame["position"].max() == 12
        _assert_matches(store, run.run_id, step="plus11")


def test_decoders_refuse_columns_that_do_not_line_up():
    raw = (2, "1,2", "0,0", '["a", "b"]', "00", None, None, None, "1", "0,0")
    with pytest.raises(RuntimeError, match="do not line up"):
        frames.decode_entries(raw, lambda: '["x", "y"]', lambda: ("1", bytes(16)))
    with pytest.raises(RuntimeError, match="do not line up"):
        frames._hash_codes(frames._ints("1"), "1,2", bytes(16))
