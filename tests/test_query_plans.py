"""EXPLAIN QUERY PLAN: trace, upstream, downstream and friends use indexes.

No step may scan the lineage, parents, records or steps tables (only the walk's own
CTE rows and json_each), and SQLite may not build an automatic index.
"""

from __future__ import annotations

import re

import pytest

import lineage_kit as lk
from lineage_kit.store import queries as q

from .explore_data import build

CTES = {
    "seed",
    "up",
    "down",
    "chain",
    "c",
    "n",
    "w",
    "walk",
    "reach",
    "nodes",
    "st",
    "json_each",
    "j",
}


def _plan(store, sql, params):
    return [row[3] for row in store.backend.con.execute("EXPLAIN QUERY PLAN " + sql, params)]


def _assert_indexed(plan):
    text = "\n".join(plan)
    assert "AUTOMATIC" not in text, text
    for line in plan:
        scanned = re.match(r"SCAN (\w+)", line)
        if scanned and scanned.group(1) != "CONSTANT":
            assert scanned.group(1) in CTES, f"full scan: {line}\n{text}"


@pytest.fixture
def store(db):
    run1, _ = build(db)
    with lk.connect(db) as s:
        yield s, run1


def test_trace_plan(store):
    s, run1 = store
    plan = _plan(s, q.TRACE, ("o1", run1, "o1"))
    _assert_indexed(plan)
    text = "\n".join(plan)
    assert "USING COVERING INDEX entries_key (record_key=? AND run_no=?)" in text
    assert "SEARCH p USING INTEGER PRIMARY KEY (rowid=?)" in text  # up: the first parent
    assert "SEARCH x USING PRIMARY KEY (child_id=?)" in text  # up: a merge's other parents
    assert "SEARCH d USING COVERING INDEX entries_parent (parent_id=?)" in text  # down
    assert "SEARCH x USING COVERING INDEX extra_parents_parent (parent_id=?)" in text
    assert "SEARCH ch USING INDEX chunks_first (first_entry<?)" in text  # the entry's time


@pytest.mark.parametrize(
    ("sql", "indexes"),
    [
        (
            q.UPSTREAM,
            (
                "SEARCH p USING INTEGER PRIMARY KEY (rowid=?)",
                "SEARCH x USING PRIMARY KEY (child_id=?)",
            ),
        ),
        (
            q.DOWNSTREAM,
            (
                "SEARCH d USING COVERING INDEX entries_parent (parent_id=?)",
                "SEARCH x USING COVERING INDEX extra_parents_parent (parent_id=?)",
            ),
        ),
    ],
)
def test_walk_plans(store, sql, indexes):
    s, _ = store
    for depth in (1, 2):
        plan = _plan(s, sql, (depth, 5))
        _assert_indexed(plan)
        assert set(indexes) <= set(plan)
        assert "SEARCH e USING INTEGER PRIMARY KEY (rowid=?)" in plan


@pytest.mark.parametrize(
    ("direction", "indexes"),
    [
        (
            "up",
            (
                "SEARCH p USING INTEGER PRIMARY KEY (rowid=?)",
                "SEARCH x USING PRIMARY KEY (child_id=?)",
            ),
        ),
        (
            "down",
            (
                "SEARCH d USING COVERING INDEX entries_parent (parent_id=?)",
                "SEARCH x USING COVERING INDEX extra_parents_parent (parent_id=?)",
            ),
        ),
    ],
)
def test_walks_to_the_end_read_links_then_entries_by_index(store, direction, indexes):
    s, _ = store
    plan = _plan(s, q.REACH_LINKS[direction], (5,))
    _assert_indexed(plan)
    assert set(indexes) <= set(plan)
    walked = _plan(s, q.WALKED[direction], ("[[5, 0], [6, 1]]",))
    _assert_indexed(walked)
    assert "SEARCH e USING INTEGER PRIMARY KEY (rowid=?)" in walked


def test_other_explore_plans(store):
    s, run1 = store
    connected = q.CONNECTED_ENTRIES.format(columns="e.entry_id")
    _assert_indexed(_plan(s, connected, ("o1", run1)))
    _assert_indexed(_plan(s, q.SOURCES, ("[5]",)))
    whole = {"run": run1, "key": None, "position": None, "sep": ""}
    # a whole run (or one step of it) is read as the rowid ranges of its chunks
    for position, dense in ((None, True), (None, False), (1, False)):
        sql = q.columns_select(None, position, dense=dense)
        plan = _plan(s, sql, {**whole, "position": position})
        assert plan == [
            "SEARCH ch USING PRIMARY KEY (run_no=?)",
            "SCALAR SUBQUERY 1",
            "SEARCH runs USING COVERING INDEX sqlite_autoindex_runs_1 (run_id=?)",
            "SEARCH e USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)",
        ]
        assert "vals" not in sql  # hashes come from hash_table, once per value
        # ... and so are its values, for their hashes: no join per entry
        plan = _plan(s, q.hashes_select(None, position), {**whole, "position": position})
        assert plan == [
            "SEARCH ch USING PRIMARY KEY (run_no=?)",
            "SCALAR SUBQUERY 1",
            "SEARCH runs USING COVERING INDEX sqlite_autoindex_runs_1 (run_id=?)",
            "SEARCH v USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)",
        ]
    plan = _plan(s, q.columns_select("o1", None), {**whole, "key": "o1"})
    _assert_indexed(plan)
    assert plan[0] == "SEARCH e USING INDEX entries_key (record_key=? AND run_no=?)"
    plan = _plan(s, q.hashes_select("o1", None), {**whole, "key": "o1"})
    _assert_indexed(plan)
    assert "SEARCH v USING INTEGER PRIMARY KEY (rowid=?)" in plan
    assert any("USING INDEX entries_key (record_key=? AND run_no=?)" in line for line in plan)
    seen: list[str] = []
    s.backend.con.set_trace_callback(seen.append)
    try:
        s.backend.entry_columns(run1)
    finally:
        s.backend.con.set_trace_callback(None)
    chunks = next(sql for sql in seen if "FROM chunks" in sql and "entries" not in sql)
    assert _plan(s, chunks, ()) == [
        "SEARCH chunks USING PRIMARY KEY (run_no=?)",
        "SCALAR SUBQUERY 1",
        "SEARCH runs USING COVERING INDEX sqlite_autoindex_runs_1 (run_id=?)",
    ]
    for sql, params in [
        (q.LIVE_COUNTS, ("[]",)),
        (q.LINKS_AMONG, ("[1, 2]",)),
        (q.VALUES_OF, ("[1, 2]",)),
    ]:
        _assert_indexed(_plan(s, sql, params))


def test_outcome_counts_read_only_the_non_ok_entries(store):
    s, run1 = store
    seen: list[str] = []
    s.backend.con.set_trace_callback(seen.append)
    try:
        rows = s.backend.outcome_reason_counts(run1)
    finally:
        s.backend.con.set_trace_callback(None)
    (sql,) = seen  # as run, with its parameters in the text
    plan = _plan(s, sql, ())
    assert "SEARCH entries USING INDEX entries_outcome (run_no=?)" in plan
    # o3 rejected at validate, o4 failed there, o6's split empty, and the two
    # refused at ingest (no key, the repeated o1)
    assert sorted(rows) == [
        (0, "rejected", "duplicate_key", 1),
        (0, "rejected", "missing_key", 1),
        (1, "failed", None, 1),
        (1, "rejected", "negative_amount", 1),
        (2, "rejected", "split_empty", 1),
    ]
