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

CTES = {"seed", "up", "down", "chain", "c", "n", "w", "walk", "nodes", "st", "json_each", "j"}


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
    assert "USING COVERING INDEX lineage_key (record_key=? AND run_id=?)" in text
    assert "SEARCH p USING PRIMARY KEY (child_id=?)" in text  # up the parents
    assert "SEARCH p USING COVERING INDEX parents_parent (parent_id=?)" in text  # down


@pytest.mark.parametrize(
    ("sql", "index"),
    [
        (q.UPSTREAM, "SEARCH p USING PRIMARY KEY (child_id=?)"),
        (q.DOWNSTREAM, "SEARCH p USING COVERING INDEX parents_parent (parent_id=?)"),
    ],
)
def test_walk_plans(store, sql, index):
    s, _ = store
    for depth in (None, 2):
        plan = _plan(s, sql, (depth, 5))
        _assert_indexed(plan)
        assert index in plan
        assert "SEARCH l USING INTEGER PRIMARY KEY (rowid=?)" in plan


def test_other_explore_plans(store):
    s, run1 = store
    connected = q.CONNECTED_ENTRIES.format(columns="l.entry_id")
    _assert_indexed(_plan(s, connected, ("o1", run1)))
    _assert_indexed(_plan(s, q.SOURCES, ("[5]",)))
    _assert_indexed(_plan(s, q._RUN_RANGE, (run1,)))
    # a whole run is read as a rowid range, not through a scan or a sort
    where, params = q._selection(s.backend.con, run1, None, None)
    plan = _plan(s, q._COLUMNS_SELECT + where, params)
    assert plan == ["SEARCH l USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)"]
    plan = _plan(s, q._COLUMNS_SELECT + q._entry_filter(True, False), ("o1", run1))
    assert plan == ["SEARCH l USING INDEX lineage_key (record_key=? AND run_id=?)"]
