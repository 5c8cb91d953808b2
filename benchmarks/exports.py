"""Exports: OpenLineage events, live emission, GraphML, each against a same-run baseline."""

from __future__ import annotations

import json

import networkx as nx
from common import WORK, Figure, fresh_db, interleaved, orders
from queries import pipeline_store

import lineage_kit as lk
from lineage_kit.export.graphml import graphml_ready


def openlineage_events(n: int, reps: int) -> list[Figure]:
    """``store.openlineage_events()`` against ``store.steps()`` (both one run's step facts)."""
    path = pipeline_store(n)
    with lk.connect(path) as store:
        t = interleaved({"events": store.openlineage_events, "steps": store.steps}, reps)
        size = len(json.dumps(store.openlineage_events()))
    ratio = t["events"].median / t["steps"].median
    print(f"  openlineage_events: {ratio:.2f}x steps() ({size:,} bytes of events)", flush=True)
    return [
        Figure(
            "openlineage_vs_steps",
            f"store.openlineage_events() / store.steps(), {n:,}-record run",
            ratio,
            "x",
            goal="<= 5",
            met=ratio <= 5,
            detail={
                "events_seconds": t["events"].median,
                "steps_seconds": t["steps"].median,
                "bytes": size,
            },
        )
    ]


def live_overhead(n: int, reps: int) -> list[Figure]:
    """A run that emits its events live (the client's file transport) against one that does not."""
    records = list(orders(n))
    log = WORK / "live_events.jsonl"
    config = {"transport": {"type": "file", "log_file_path": str(log), "append": True}}
    t = interleaved(
        {
            "live": lambda: lk.run_pipeline(
                records, db=fresh_db("live.db"), progress=False, openlineage=config
            ),
            "plain": lambda: lk.run_pipeline(records, db=fresh_db("plain.db"), progress=False),
        },
        reps,
    )
    ratio = t["live"].median / t["plain"].median
    print(f"  live emission: {ratio:.3f}x a run without it", flush=True)
    return [
        Figure(
            "live_emission_overhead",
            f"run time with live OpenLineage events / without, {n:,} records",
            ratio,
            "x",
            goal="<= 1.10",
            met=ratio <= 1.10,
            detail={"live_seconds": t["live"].median, "plain_seconds": t["plain"].median},
        )
    ]


def graphml(n: int, reps: int) -> list[Figure]:
    """``lk.write_graphml`` against networkx writing the already converted graph."""
    path = pipeline_store(n)
    with lk.connect(path) as store:
        graph = store.graph()
    ready = graphml_ready(graph)
    out = WORK / "bench.graphml"
    t = interleaved(
        {
            "ours": lambda: lk.write_graphml(graph, out),
            "bare": lambda: nx.write_graphml(ready, out),
        },
        reps,
    )
    ratio = t["ours"].median / t["bare"].median
    print(f"  write_graphml: {ratio:.2f}x networkx's own write", flush=True)
    return [
        Figure(
            "graphml_vs_networkx",
            f"lk.write_graphml / nx.write_graphml of the converted graph, {n:,}-record run",
            ratio,
            "x",
            goal="<= 1.5",
            met=ratio <= 1.5,
            detail={
                "nodes": graph.number_of_nodes(),
                "ours_seconds": t["ours"].median,
                "networkx_seconds": t["bare"].median,
            },
        )
    ]
