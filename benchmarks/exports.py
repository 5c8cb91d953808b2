"""Exports: OpenLineage events, live emission, GraphML, each against a same-run baseline."""

from __future__ import annotations

import json

import networkx as nx
from common import WORK, Figure, compared, fresh_db, interleaved, orders
from queries import pipeline_store

import lineage_kit as lk
from lineage_kit.export.graphml import graphml_ready


def openlineage_events(n: int, reps: int) -> list[Figure]:
    """``store.openlineage_events()`` against ``store.steps()`` (both one run's step facts)."""
    path = pipeline_store(n)
    with lk.connect(path) as store:
        t = interleaved({"events": store.openlineage_events, "steps": store.steps}, reps)
        size = len(json.dumps(store.openlineage_events()))
    label = f"store.openlineage_events() / store.steps(), {n:,}-record run"
    return [
        compared(
            "openlineage_vs_steps", label, t, "events", "steps", goal="<= 5", detail={"bytes": size}
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
    label = f"run time with live OpenLineage events / without, {n:,} records"
    return [compared("live_emission_overhead", label, t, "live", "plain", goal="<= 1.10")]


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
            "networkx": lambda: nx.write_graphml(ready, out),
        },
        reps,
    )
    label = f"lk.write_graphml / nx.write_graphml of the converted graph, {n:,}-record run"
    nodes = graph.number_of_nodes()
    return [
        compared(
            "graphml_vs_networkx",
            label,
            t,
            "ours",
            "networkx",
            goal="<= 1.5",
            detail={"nodes": nodes},
        )
    ]
