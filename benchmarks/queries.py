"""Query benchmarks (issue 7, items 6-9): trace, upstream/downstream, load, graph, check."""

from __future__ import annotations

import json
import random
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

from common import Figure, compared, fresh_db, interleaved, orders

import lineage_kit as lk

_STORES: dict[str, Path] = {}


def pipeline_store(n: int) -> Path:
    """A store holding one default-pipeline run of ``n`` synthetic orders (built once)."""
    name = f"run_{n}.db"
    if name not in _STORES:
        path = fresh_db(name)
        started = time.perf_counter()
        lk.run_pipeline(orders(n), db=path, progress=False)
        print(f"  built a {n:,}-record run in {time.perf_counter() - started:.1f} s", flush=True)
        _STORES[name] = path
    return _STORES[name]


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# ------------------------------------------------------------------ trace


def _add_filler_run(con: Any, n_records: int, started_at: str) -> None:
    """One completed default-pipeline-shaped run of ``n_records``, inserted with SQL.

    Entries are inserted record by record, step by step, so each record's entries
    get consecutive ids and each entry's parent is the entry just before it; every
    entry stores a value of its own, and the run is one chunk.
    """
    run_id = str(uuid.uuid4())
    con.execute("BEGIN IMMEDIATE")
    (run_no,) = con.execute(
        "INSERT INTO runs (run_id, pipeline, started_at, finished_at, status, n_input, "
        "n_published, package_version) VALUES (?, 'filler', ?, ?, 'completed', ?, ?, ?) "
        "RETURNING run_no",
        (run_id, started_at, started_at, n_records, n_records, lk.__version__),
    ).fetchone()
    con.executemany(
        "INSERT INTO steps (run_no, run_id, position, name, source, destination, description) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (run_no, run_id, i, s.name, s.source, s.destination, s.description)
            for i, s in enumerate(lk.steps.DEFAULT_STEPS)
        ],
    )
    (first,) = con.execute("SELECT coalesce(max(entry_id), 0) + 1 FROM entries").fetchone()
    con.execute(
        """
        WITH RECURSIVE c(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM c WHERE x < ?1 - 1)
        INSERT INTO entries (entry_id, run_no, position, record_key, status, parent_id, value_id)
        SELECT ?2 + 3 * c.x + p.pos, ?3, p.pos, printf('order-%08d', c.x), 0,
               CASE WHEN p.pos > 0 THEN ?2 + 3 * c.x + p.pos - 1 END, ?2 + 3 * c.x + p.pos
        FROM c CROSS JOIN (SELECT 0 AS pos UNION ALL SELECT 1 UNION ALL SELECT 2) AS p
        """,
        (n_records, first, run_no),
    )
    last = first + 3 * n_records - 1
    con.execute(
        "INSERT INTO vals (value_id, hash, json) SELECT entry_id, randomblob(16), "
        "'{\"filler\":true}' FROM entries WHERE entry_id BETWEEN ? AND ?",
        (first, last),
    )
    counts = json.dumps([[p, n_records, 0, 0] for p in range(3)])
    con.execute(
        "INSERT INTO chunks (run_no, chunk_no, first_entry, last_entry, counts, written_at) "
        "VALUES (?, 0, ?, ?, ?, ?)",
        (run_no, first, last, counts, started_at),
    )
    con.execute("COMMIT")


def build_trace_store(total_entries: int, real_records: int) -> Path:
    """A store of about ``total_entries`` entries whose latest run is a real pipeline run.

    Older runs are inserted with SQL (same keys, same shape) so that building ten
    million entries takes a minute or two, not a pipeline run of 3.3M records.
    """
    path = fresh_db("trace.db")
    started = time.perf_counter()
    per_run = min(1_000_000, max(1, (total_entries - 3 * real_records) // 3))
    filler_entries = total_entries - 3 * real_records
    with lk.LineageStore(path, create=True) as store:
        con = store.backend.con
        con.execute("PRAGMA cache_size = -262144")  # 256 MiB while bulk-building
        day = 0
        while filler_entries > 0:
            n = min(per_run, -(-filler_entries // 3))
            _add_filler_run(
                con, n, f"2026-01-{1 + day % 28:02d}T00:00:{day // 28:02d}.000000+00:00"
            )
            filler_entries -= 3 * n
            day += 1
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    lk.run_pipeline(orders(real_records), db=path, progress=False)
    with lk.LineageStore(path) as store:
        n = store.backend.con.execute("SELECT count(*) FROM entries").fetchone()[0]
    print(f"  built a {n:,}-entry store in {time.perf_counter() - started:.1f} s", flush=True)
    return path


def trace_latency(total_entries: int, n_queries: int, reps: int) -> list[Figure]:
    """Item 6a: ``store.trace(key)`` median and p95 over random keys of the latest run."""
    real = min(100_000, max(1_000, total_entries // 100))
    path = build_trace_store(total_entries, real)
    rng = random.Random(7)
    keys = [f"order-{rng.randrange(real):08d}" for _ in range(n_queries)]
    bare_sql = (
        "SELECT e.entry_id, e.position, e.status, e.value_id FROM entries e "
        "WHERE e.record_key = ? AND e.run_no = (SELECT run_no FROM runs ORDER BY started_at "
        "DESC, run_no DESC LIMIT 1) ORDER BY e.position"
    )
    ours: list[float] = []
    bare: list[float] = []
    with lk.connect(path) as store:
        n_entries = store.backend.con.execute("SELECT count(*) FROM entries").fetchone()[0]
        rows = len(store.trace(keys[0]))
        for key in keys[:20]:  # warm up
            store.trace(key)
        for _ in range(reps):
            for key in keys:
                t = time.perf_counter()
                store.trace(key)
                ours.append(time.perf_counter() - t)
                t = time.perf_counter()
                store.backend.con.execute(bare_sql, (key,)).fetchall()
                bare.append(time.perf_counter() - t)
    median = 1000 * statistics.median(ours)
    p95 = 1000 * _percentile(ours, 0.95)
    ratio = statistics.median(ours) / statistics.median(bare)
    print(f"  trace at {n_entries:,} entries: median {median:.3f} ms, p95 {p95:.3f} ms", flush=True)
    detail = {"entries": n_entries, "queries": len(ours), "rows_per_trace": rows}
    return [
        Figure(
            "trace_median_ms",
            f"store.trace(key) median at {n_entries / 1e6:.1f}M entries",
            median,
            "ms",
            goal="< 2 ms median",
            met=median < 2,
            detail=detail,
        ),
        Figure(
            "trace_p95_ms",
            f"store.trace(key) p95 at {n_entries / 1e6:.1f}M entries",
            p95,
            "ms",
            detail=detail,
        ),
        Figure(
            "trace_vs_bare_sql",
            "store.trace(key) / bare SQL of the same key lookup",
            ratio,
            "x",
            detail={"bare_median_ms": 1000 * statistics.median(bare)},
        ),
    ]


# ------------------------------------------------------------------ walks

_BARE_UP = """
WITH RECURSIVE up(id, depth) AS (
    SELECT ?, 0
    UNION ALL
    SELECT p.parent_id, up.depth + 1 FROM entries p JOIN up ON p.entry_id = up.id
    WHERE p.parent_id IS NOT NULL
)
SELECT l.entry_id, l.record_key, l.position, l.status, up.depth
FROM up JOIN entries l ON l.entry_id = up.id
"""
_BARE_DOWN = _BARE_UP.replace("p.parent_id, up.depth", "p.entry_id, up.depth").replace(
    "p.entry_id = up.id\n    WHERE p.parent_id IS NOT NULL", "p.parent_id = up.id"
)


def walks(hops: int, reps: int) -> list[Figure]:
    """Item 6b: upstream and downstream over a ``hops``-step chain, vs a bare recursive CTE."""
    chain = [lk.step(f"hop{i:04d}")(lambda record, i=i: {**record, "hop": i}) for i in range(hops)]
    path = fresh_db("chain.db")
    lk.Pipeline(chain, name="chain").run(orders(5), db=path, progress=False)
    figures = []
    with lk.connect(path) as store:
        first, last = store.backend.con.execute(
            "SELECT min(entry_id), max(entry_id) FROM entries WHERE record_key = ?",
            (next(orders(1))["key"],),
        ).fetchone()
        for name, method, sql, entry in (
            ("upstream", store.upstream, _BARE_UP, last),
            ("downstream", store.downstream, _BARE_DOWN, first),
        ):
            n_rows = len(method(entry))
            t = interleaved(
                {
                    "ours": lambda method=method, entry=entry: method(entry),
                    "bare": lambda sql=sql, entry=entry: store.backend.con.execute(
                        sql, (entry,)
                    ).fetchall(),
                },
                max(reps, 5),
            )
            ms = 1000 * t["ours"].median
            print(f"  {name} over {hops:,} hops: {ms:.1f} ms ({n_rows} rows)", flush=True)
            figures.append(
                Figure(
                    f"{name}_ms",
                    f"store.{name}(entry) over a {hops:,}-hop chain",
                    ms,
                    "ms",
                    detail={
                        "rows": n_rows,
                        "us_per_hop": 1000 * ms / hops,
                        "vs_bare_recursive_cte": t["ours"].median / t["bare"].median,
                        "bare_ms": 1000 * t["bare"].median,
                    },
                )
            )
    return figures


# ------------------------------------------------------------------ load, graph, check


#: What ``pandas.read_sql`` reads for the load figure: the run's entries with their time
#: and value hash as text, by the best plan (the chunks' rowid ranges), status codes as
#: stored; the same rows and columns ``store.lineage()`` gives, short of step names
#: and parent columns.
READ_SQL_BASELINE = """
SELECT e.entry_id, e.run_no, e.position, e.record_key, e.status, e.reason, e.error,
       ch.written_at AS created_at, lower(hex(v.hash)) AS value_hash
FROM chunks ch CROSS JOIN entries e ON e.entry_id BETWEEN ch.first_entry AND ch.last_entry
LEFT JOIN vals v ON v.value_id = e.value_id
WHERE ch.run_no = (SELECT run_no FROM runs WHERE run_id = ?)
"""


def load(n: int, reps: int) -> list[Figure]:
    """Item 7: ``store.lineage()`` against ``pandas.read_sql`` of the same rows."""
    import pandas as pd

    with lk.connect(pipeline_store(n)) as store:
        sql, params = READ_SQL_BASELINE, (store.resolve_run(),)
        rows = len(store.lineage())
        t = interleaved(
            {
                "ours": store.lineage,
                "read_sql": lambda: pd.read_sql(sql, store.backend.con, params=params),
            },
            reps,
        )
    label = f"store.lineage() speed / pandas.read_sql of the same rows ({rows:,} rows)"
    goal = ">= 2"
    return [compared("load_vs_read_sql", label, t, "read_sql", "ours", goal=goal)]


def graph(n: int, reps: int) -> list[Figure]:
    """Item 8: ``store.graph()`` against ``nx.DiGraph.add_edges_from`` on the same edges."""
    import networkx as nx

    with lk.connect(pipeline_store(n)) as store:
        edges = store.backend.con.execute(
            "SELECT e.parent_id, e.entry_id FROM chunks ch CROSS JOIN entries e "
            "ON e.entry_id BETWEEN ch.first_entry AND ch.last_entry "
            "WHERE ch.run_no = (SELECT run_no FROM runs WHERE run_id = ?) "
            "AND e.parent_id IS NOT NULL",
            (store.resolve_run(),),
        ).fetchall()
        t = interleaved(
            {"ours": store.graph, "add_edges": lambda: nx.DiGraph().add_edges_from(edges)}, reps
        )
        nodes = store.graph().number_of_nodes()
    label = f"store.graph() time / nx.DiGraph.add_edges_from, {n:,}-record run"
    detail = {"edges": len(edges), "nodes": nodes}
    return [
        compared("graph_vs_add_edges", label, t, "ours", "add_edges", goal="<= 1.5", detail=detail)
    ]


def check(n: int, reps: int) -> list[Figure]:
    """Item 9: ``store.check()`` on an ``n``-record run."""
    path = pipeline_store(n)
    with lk.connect(path) as store:
        t = interleaved({"check": lambda: store.check()}, max(1, min(reps, 3)))
        ok = store.check().ok
    seconds = t["check"].median
    print(f"  check on {n:,} records: {seconds:.2f} s (clean: {ok})", flush=True)
    return [
        Figure(
            "check_seconds",
            f"store.check() on a {n:,}-record run",
            seconds,
            "s",
            goal="< 5 s",
            met=seconds < 5,
            detail={"us_per_record": 1e6 * seconds / n, "clean": ok},
        )
    ]


# ------------------------------------------------------------------ merge group


def _half_in_one_group(key: str, record: dict) -> str:
    """Every other record into the group ``ALL``, the rest each in a group of its own."""
    return "ALL" if int(key[-8:]) % 2 == 0 else key


def merge_graph(n: int, reps: int) -> list[Figure]:
    """Issue 11, defect 1: ``store.graph(key=...)`` of an ``n // 2``-record merge group,
    against ``store.graph()`` of the whole ``n``-record run."""
    label = f"store.graph(key=...) of a {n // 2:,}-record merge group"
    merge = lk.step("by_group", kind="merge", group_by=_half_in_one_group)(
        lambda records: {**records[0], "merged": len(records)}
    )
    path = fresh_db(f"merge_{n}.db")
    started = time.perf_counter()
    lk.Pipeline([lk.steps.ingest, merge, lk.steps.publish], name="merge").run(
        orders(n), db=path, progress=False
    )
    print(f"  built a {n:,}-record merge run in {time.perf_counter() - started:.1f} s", flush=True)
    with lk.connect(path) as store:
        nodes = store.graph(key="ALL").number_of_nodes()
        t = interleaved(
            {"key": lambda: store.graph(key="ALL"), "run": lambda: store.graph()}, max(1, reps)
        )
    seconds = t["key"].median
    print(f"  graph(key='ALL'): {seconds:.3f} s", flush=True)
    detail = {"group_nodes": nodes, "records": n}
    return [
        Figure(
            "merge_graph_seconds",
            label,
            seconds,
            "s",
            goal="< 5 s",
            met=seconds < 5,
            detail=detail,
        ),
        compared(
            "merge_graph_vs_run_graph",
            f"{label} / store.graph() of the whole {n:,}-record run",
            t,
            "key",
            "run",
            goal="<= 1",
            detail=detail,
        ),
    ]
