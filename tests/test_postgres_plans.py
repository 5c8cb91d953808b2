"""EXPLAIN (FORMAT JSON) on PostgreSQL: the trace, the walks, the key lookups and a
run's entries use indexes, never a sequential scan of entries, extra_parents or
vals (the SQLite plans are in test_query_plans.py).

The store holds 20,000 records merged in pairs (60,000 entries, 10,000 extra
parent links) and is analysed, so the planner sees tables where a scan would be
the wrong choice; a table of fewer than 5,000 rows (steps, runs, chunks) may be
scanned.
"""

from __future__ import annotations

import json

import pytest

import lineage_kit as lk
from lineage_kit.store.postgres import queries as q

from .conftest import records


@lk.step("pair", kind="merge", group_by=lambda key, record: f"p{int(key[1:]) // 2}")
def pair(records: list[dict]) -> dict:
    return {"amount": sum(r["amount"] for r in records)}


PIPELINE = lk.Pipeline([lk.steps.ingest, lk.steps.normalize, pair, lk.steps.publish])


BIG: set[str] = set()  # tables of the analysed store with over 5,000 rows


def _nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _plan(store, sql: str, params) -> list[dict]:
    con = store.backend.con
    (raw,) = con.execute("EXPLAIN (FORMAT JSON) " + sql, params).fetchone()
    plan = raw if isinstance(raw, list) else json.loads(raw)
    return list(_nodes(plan[0]["Plan"]))


def _big(store) -> set[str]:
    return {
        r[0]
        for r in store.backend.con.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = 'plans'::regnamespace "
            "AND relkind = 'r' AND reltuples > 5000"
        )
    }


def _assert_indexed(nodes: list[dict], *indexes: str) -> None:
    scanned = [n["Relation Name"] for n in nodes if n["Node Type"] == "Seq Scan"]
    assert not set(scanned) & BIG, f"sequential scan of {scanned}: {json.dumps(nodes)[:3000]}"
    used = {n.get("Index Name") for n in nodes}
    for index in indexes:
        assert index in used, f"{index} not used: {sorted(filter(None, used))}"


@pytest.fixture(scope="module")
def big(pg_server, tmp_path_factory):
    from .conftest import drop_schema, with_schema

    url = with_schema(pg_server, "plans")
    drop_schema(pg_server, "plans")
    result = PIPELINE.run(records(20_000), db=url, progress=False)
    assert (result.n_published, result.n_entries) == (
        20_000,
        60_000,
    )  # 2 x 20,000 + 2 x 10,000 merged
    with lk.connect(url) as store:
        store.backend.con.execute("SET default_transaction_read_only = off")
        store.backend.con.execute("ANALYZE")
        BIG.update(_big(store))
        assert {"entries", "extra_parents", "vals"} <= BIG
        yield store, store.backend._run_no(result.run_id)
    drop_schema(pg_server, "plans")


def test_trace_plan(big):
    store, run_no = big
    nodes = _plan(store, q.TRACE, {"key": "k123", "run": run_no})
    # the seed by key; up: each entry's own row and extra_parents' primary key;
    # down: the partial parent index and extra_parents_parent
    _assert_indexed(nodes, "entries_key", "entries_pkey", "extra_parents_pkey", "entries_parent")
    assert "extra_parents_parent" in {n.get("Index Name") for n in nodes}


@pytest.mark.parametrize(
    ("sql", "indexes"),
    [
        (q.UPSTREAM, ("entries_pkey", "extra_parents_pkey")),
        (q.DOWNSTREAM, ("entries_parent", "extra_parents_parent")),
    ],
)
@pytest.mark.parametrize("depth", [1, 3])
def test_walk_plans(big, sql, indexes, depth):
    store, _ = big
    for entry in (5, 30_000, 65_000):  # ingest, normalize, pair entries
        _assert_indexed(_plan(store, sql, {"entry": entry, "depth": depth}), *indexes)


@pytest.mark.parametrize(
    ("direction", "indexes"),
    [
        ("up", ("entries_pkey", "extra_parents_pkey")),
        ("down", ("entries_parent", "extra_parents_parent")),
    ],
)
def test_walks_to_the_end_read_links_then_entries_by_index(big, direction, indexes):
    store, _ = big
    for entry in (5, 30_000, 65_000):
        _assert_indexed(_plan(store, q.REACH_LINKS[direction], {"entry": entry}), *indexes)
    walked = _plan(store, q.WALKED[direction], {"ids": [5, 30_000], "depths": [0, 1]})
    _assert_indexed(walked, "entries_pkey")


def test_key_lookups_use_the_key_index(big):
    store, run_no = big
    sql = (
        "SELECT k.key, min(l.position) FROM unnest(%(keys)s::text[]) AS k(key) "
        "JOIN entries l ON l.record_key = k.key AND l.run_no = %(run)s GROUP BY k.key"
    )
    _assert_indexed(_plan(store, sql, {"keys": ["k1", "k2"], "run": run_no}), "entries_key")
    sql = q.CONNECTED_CTE + "SELECT * FROM connected"
    _assert_indexed(_plan(store, sql, {"key": "k5", "run": run_no}), "entries_key")


def test_sources_and_values_use_primary_keys(big):
    store, _ = big
    _assert_indexed(_plan(store, q.SOURCES, {"ids": [59_000, 59_001]}), "entries_pkey")
    sql = (
        "SELECT l.entry_id, v.json::text FROM unnest(%(ids)s::bigint[]) j(id) "
        "JOIN entries l ON l.entry_id = j.id JOIN vals v ON v.value_id = l.value_id"
    )
    _assert_indexed(_plan(store, sql, {"ids": [5, 6]}), "entries_pkey", "vals_pkey")


def test_a_run_is_read_by_its_chunks_ranges(big):
    """lineage()'s reads of a whole run, one step and one key: the entries by primary
    key ranges (or the key index), the values by ``vals``' primary key, never a scan
    of entries, vals or extra_parents, nor a join to ``vals`` per entry."""
    store, run_no = big
    run = {"run": run_no, "key": None, "position": None, "sep": ""}
    for position in (None, 2):
        source, where = q._selection(None, position)
        params = {**run, "position": position}
        for dense in (True, False):
            sql = q._columns_select(source, where, dense)
            assert "vals" not in sql
            _assert_indexed(_plan(store, sql, params), "entries_pkey")
        _assert_indexed(_plan(store, q.hashes_select(None, position), params), "vals_pkey")
    source, where = q._selection("k5", None)
    params = {**run, "key": "k5"}
    _assert_indexed(_plan(store, q._columns_select(source, where, False), params), "entries_key")
    _assert_indexed(_plan(store, q.hashes_select("k5", None), params), "entries_key", "vals_pkey")
