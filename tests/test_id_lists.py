"""Queries that take a list of ids are linear in the list (issue 11, defect 1).

``store.graph(key=...)`` of a merge group used to be quadratic in the group's size:
the links among the group's entries were found with ``IN (SELECT value FROM
json_each(?))``, which SQLite ran as a scan of the id list for every link. Nothing
here is timed: the work SQLite does is counted in virtual-machine steps (a progress
handler called every ``_EVERY`` instructions), and plans are read with EXPLAIN.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import lineage_kit as lk
from lineage_kit.store import queries as q
from lineage_kit.store import writer

from .explore_data import build

_EVERY = 100


@lk.step("everything", kind="merge", group_by=lambda key, record: "ALL")
def _everything(records: list[dict]) -> dict:
    return {"n": len(records)}


def _merge_store(path: Path, n: int) -> Path:
    """A run of ``n`` records all merged into one group, keyed ``ALL``."""
    records = [{"key": f"o{i}", "amount": i} for i in range(n)]
    lk.Pipeline([lk.steps.ingest, _everything, lk.steps.publish]).run(
        records, db=path, progress=False
    )
    return path


def _vm_steps(store: lk.LineageStore, fn) -> int:
    """How many SQLite VM instructions (in units of ``_EVERY``) ``fn()`` makes run."""
    calls = 0

    def tick() -> int:
        nonlocal calls
        calls += 1
        return 0

    store.backend.con.set_progress_handler(tick, _EVERY)
    try:
        fn()
    finally:
        store.backend.con.set_progress_handler(None, 0)
    return calls


@pytest.fixture(scope="module")
def merge_stores(tmp_path_factory) -> dict[int, Path]:
    base = tmp_path_factory.mktemp("merge")
    return {n: _merge_store(base / f"m{n}.db", n) for n in (1_500, 3_000)}


def test_graph_of_a_merge_group_is_linear(merge_stores) -> None:
    steps = {}
    for n, path in merge_stores.items():
        with lk.connect(path) as store:
            G = store.graph(key="ALL")
            # every input record, the merged record and its published copy; all links
            assert G.number_of_nodes() == n + 2
            assert G.number_of_edges() == n + 1
            steps[n] = _vm_steps(store, lambda store=store: store.graph(key="ALL"))
    ratio = steps[3_000] / steps[1_500]
    # linear work doubles with the group (a little more for the sorts); quadratic x4
    assert ratio < 2.6, steps


@pytest.mark.parametrize(
    "call",
    [
        lambda store: store.trace("ALL"),
        lambda store: store.source_of("ALL"),
        lambda store: store.changes("ALL"),
    ],
    ids=["trace", "source_of", "changes"],
)
def test_other_walks_of_a_merge_group_are_linear(merge_stores, call) -> None:
    steps = {}
    for n, path in merge_stores.items():
        with lk.connect(path) as store:
            steps[n] = _vm_steps(store, lambda store=store: call(store))
    assert steps[3_000] / steps[1_500] < 2.6, steps


def test_links_among_is_linear(merge_stores) -> None:
    steps = {}
    for n, path in merge_stores.items():
        with lk.connect(path) as store:
            ids = [r[0] for r in store.backend.con.execute("SELECT entry_id FROM lineage")]
            links = q.links_among(store.backend.con, ids)
            assert len(links) == n + 1
            # only links with both ends among the ids: drop the merged entry
            merged = store.backend.con.execute(
                "SELECT entry_id FROM lineage WHERE record_key = 'ALL' ORDER BY entry_id LIMIT 1"
            ).fetchone()[0]
            assert len(q.links_among(store.backend.con, [i for i in ids if i != merged])) == 0
            steps[n] = _vm_steps(
                store, lambda store=store, ids=ids: q.links_among(store.backend.con, ids)
            )
    assert steps[3_000] / steps[1_500] < 2.6, steps


# ---------------------------------------------------------------- every id list


def _loops_over_id_lists_first(plan: list[tuple]) -> list[str]:
    """Plan lines where an id list (a ``json_each`` virtual table) is scanned inside
    another loop of the same query level, i.e. once per row of that loop."""
    bad = []
    first_loop: dict[int, int] = {}  # parent node -> id of its first loop
    for node, parent, _, detail in plan:
        if not re.match(r"(SCAN|SEARCH) ", detail):
            continue
        first_loop.setdefault(parent, node)
        if "VIRTUAL TABLE" in detail and first_loop[parent] != node:
            bad.append(detail)
    return bad


def _id_list_statements(store: lk.LineageStore, calls) -> set[str]:
    """Every statement run by ``calls`` that takes a list through ``json_each``."""
    seen: list[str] = []
    store.backend.con.set_trace_callback(seen.append)
    try:
        for call in calls:
            call()
    finally:
        store.backend.con.set_trace_callback(None)
    return {s for s in seen if "json_each(" in s}


def test_no_query_scans_an_id_list_per_row(db) -> None:
    run1, _ = build(db)
    with lk.connect(db) as store:
        statements = _id_list_statements(
            store,
            [
                lambda: store.graph(key="A", run=run1),
                lambda: store.trace("A", run=run1),
                lambda: store.source_of("A", run=run1),
                lambda: store.changes("A", run=run1),
                lambda: store.check("all"),
            ],
        )
        expanded = {
            q.LIVE_COUNTS: (json.dumps([run1]),),
            writer._EXISTING_KEYS: (json.dumps(["o1", "o2"]), run1),
            q.LINKS_AMONG: ("[1, 2, 3]",),
            q.VALUES_OF: ("[1, 2, 3]",),
            q.SOURCES: ("[1, 2, 3]",),
        }
        assert len(statements) >= 5, statements
        plans = {
            s: store.backend.con.execute("EXPLAIN QUERY PLAN " + s).fetchall() for s in statements
        }
        for sql, params in expanded.items():
            plans[sql] = store.backend.con.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
    for sql, plan in plans.items():
        assert not _loops_over_id_lists_first(plan), (sql, plan)


def test_the_plan_rule_catches_the_old_query(db) -> None:
    """The rule above flags the quadratic form this module was written against."""
    build(db)
    old = (
        "SELECT p.parent_id, p.child_id FROM json_each(?) c JOIN parents p "
        "ON p.child_id = c.value WHERE p.parent_id IN (SELECT value FROM json_each(?))"
    )
    with lk.connect(db) as store:
        plan = store.backend.con.execute("EXPLAIN QUERY PLAN " + old, ("[1]", "[1]")).fetchall()
    assert _loops_over_id_lists_first(plan)
