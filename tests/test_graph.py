"""store.graph() and store.step_graph(), and the pure builders in lineage_kit.graph."""

from __future__ import annotations

from datetime import datetime

import networkx as nx
import pytest

import lineage_kit as lk
from lineage_kit.graph import entry_graph, stage_of

from .backends import rows
from .explore_data import STEP_NAMES


def _stored_links(store, run_id):
    return set(
        rows(
            store,
            "SELECT p.parent_id, p.child_id FROM parents p "
            "JOIN lineage l ON l.entry_id = p.child_id WHERE l.run_id = ?",
            (run_id,),
        )
    )


def _entry_ids(store, run_id):
    return {r[0] for r in rows(store, "SELECT entry_id FROM lineage WHERE run_id = ?", (run_id,))}


def test_run_graph_round_trip(fan):
    store, run1, run2 = fan
    for run_id in (run1, run2):
        G = store.graph(run_id)
        assert set(G.edges) == _stored_links(store, run_id)
        assert set(G.nodes) == _entry_ids(store, run_id)
        assert nx.is_directed_acyclic_graph(G)
    G = store.graph(run1)
    # 6 validate + 5 explode + 3+1 merge + 2 deliver parent links
    assert G.number_of_edges() == 17
    assert G.number_of_nodes() == 23
    assert G.graph["run_id"] == run1
    assert [s["name"] for s in G.graph["steps"]] == STEP_NAMES
    assert G.graph["steps"][3] == {
        "position": 3,
        "name": "by_customer",
        "kind": "merge",
        "source": "items",
        "destination": "customers",
        "description": "one record per customer",
    }


def test_node_attributes(fan):
    store, run1, _ = fan
    G = store.graph(run1)
    failed = [n for n, d in G.nodes(data=True) if d["status"] == "failed"]
    assert len(failed) == 1
    attrs = G.nodes[failed[0]]
    assert set(attrs) == {
        "key",
        "step",
        "position",
        "status",
        "reason",
        "error",
        "run",
        "created_at",
        "value_hash",
    }
    assert (attrs["key"], attrs["step"], attrs["position"], attrs["run"]) == (
        "o4",
        "validate",
        1,
        run1,
    )
    assert attrs["error"] == "ValueError: unlucky amount"
    assert (
        isinstance(attrs["created_at"], datetime)
        and attrs["created_at"].utcoffset().total_seconds() == 0
    )
    merged = next(
        n for n, d in G.nodes(data=True) if d["step"] == "by_customer" and d["key"] == "A"
    )
    assert G.in_degree(merged) == 3
    assert sorted(G.nodes[p]["key"] for p in G.predecessors(merged)) == ["o1/x", "o1/y", "o2/z"]
    published = next(n for n, d in G.nodes(data=True) if d["step"] == "deliver" and d["key"] == "A")
    roots = {G.nodes[n]["key"] for n in nx.ancestors(G, published) if G.in_degree(n) == 0}
    assert roots == {"o1", "o2"}
    assert len(nx.dag_longest_path(G)) == 5


def test_key_graph_merged_record_shows_its_parents(fan):
    store, run1, _ = fan
    G = store.graph(run1, key="A")
    by_step = sorted((d["step"], d["key"]) for _, d in G.nodes(data=True))
    assert by_step == sorted(
        [
            ("ingest", "o1"),
            ("ingest", "o2"),
            ("validate", "o1"),
            ("validate", "o2"),
            ("explode", "o1/x"),
            ("explode", "o1/y"),
            ("explode", "o2/z"),
            ("by_customer", "A"),
            ("deliver", "A"),
        ]
    )
    assert G.number_of_edges() == 9
    assert set(G.edges) <= _stored_links(store, run1)
    merged = next(n for n, d in G.nodes(data=True) if d["step"] == "by_customer")
    # every split child carries its order's amount: 10 + 10 (o1/x, o1/y) + 5 (o2/z)
    assert G.nodes[merged]["value"] == {"customer": "A", "amount": 25, "items": ["x", "y", "z"]}


def test_key_graph_split_shows_children_not_other_parents(fan):
    store, run1, _ = fan
    G = store.graph(run1, key="o1")
    keys = sorted((d["step"], d["key"], d["status"]) for _, d in G.nodes(data=True))
    assert keys == sorted(
        [
            ("ingest", "o1", "ok"),
            ("ingest", "o1", "rejected"),
            ("validate", "o1", "ok"),
            ("explode", "o1/x", "ok"),
            ("explode", "o1/y", "ok"),
            ("by_customer", "A", "ok"),
            ("deliver", "A", "ok"),
        ]
    )
    assert G.number_of_edges() == 6  # o2/z -> A is not connected to o1
    duplicate = next(n for n, d in G.nodes(data=True) if d["status"] == "rejected")
    assert G.degree(duplicate) == 0
    assert G.nodes[duplicate]["value"]["amount"] == 99  # what the duplicate carried


def test_key_graph_errors_and_all_runs(fan):
    store, run1, run2 = fan
    with pytest.raises(lk.KeyNotFound):
        store.graph(run1, key="o7")  # only in run 2
    with pytest.raises(lk.RunNotFound):
        store.graph("nope")
    G = store.graph("all", key="o7")
    assert {d["run"] for _, d in G.nodes(data=True)} == {run2}
    both = store.graph("all", key="o1")
    assert {d["run"] for _, d in both.nodes(data=True)} == {run1, run2}
    assert both.graph["run_id"] is None and both.graph["run_ids"] == [run1, run2]


def test_step_graph(fan):
    store, run1, run2 = fan
    G = store.step_graph(run1)
    assert list(G.edges) == [
        ("input_file", "staging"),
        ("staging", "validate"),  # no source/destination: previous stage -> own name
        ("validate", "items"),
        ("items", "customers"),
        ("customers", "output"),
    ]
    assert G.edges["staging", "validate"] == {
        "step": "validate",
        "position": 1,
        "kind": "map",
        "description": "amounts must be positive",
        "ok": 4,
        "rejected": 1,
        "failed": 1,
    }
    assert G.edges["input_file", "staging"]["rejected"] == 2
    assert G.graph["run_id"] == run1
    assert nx.is_directed_acyclic_graph(G)
    total = store.step_graph("all")
    assert total.edges["validate", "items"]["ok"] == 4 + 6
    assert total.graph["run_ids"] == [run1, run2]


def test_step_graph_default_pipeline(sample_store):
    G = sample_store.step_graph()
    assert list(nx.topological_sort(G)) == ["input_file", "staging", "normalized", "output"]
    assert [G.edges[e]["ok"] for e in G.edges] == [30, 30, 30]


def test_stage_of_rules():
    steps = [
        {"name": "a", "source": None, "destination": None},
        {"name": "b", "source": None, "destination": "x"},
        {"name": "c", "source": "x", "destination": "x"},
        {"name": "d", "source": "a", "destination": "x"},
    ]
    # d repeats a's stage pair? no: (a, x) is b's pair, so d writes its own stage
    assert stage_of(steps) == [("input", "a"), ("a", "x"), ("x", "c"), ("a", "d")]


def _columns(ids):
    n = len(ids)
    return {
        "entry_id": ids,
        "run": ["r"] * n,
        "position": list(range(n)),
        "key": ["k"] * n,
        "status": ["ok"] * n,
        "reason": [None] * n,
        "error": [None] * n,
        "created_at": ["2024-01-01T00:00:00+00:00"] * n,
        "value_hash": [f"h{i}" for i in ids],
    }


def test_entry_graph_pure_builder():
    G = entry_graph(_columns([7, 8, 9]), [(7, 8)], step_names={"r": ["a", "b", "c"]})
    assert sorted(G.nodes) == [7, 8, 9] and list(G.edges) == [(7, 8)]
    assert all(type(n) is int for n in G.nodes)
    assert G.nodes[9]["step"] == "c" and G.degree(9) == 0  # unlinked entries are kept
    with pytest.raises(ValueError, match="not among"):
        entry_graph(_columns([1]), [(1, 2)], step_names={"r": ["s"]})


def test_sample_key_graph_chain(sample_store):
    G = sample_store.graph(key="order-101")
    chain = [G.nodes[n]["step"] for n in nx.topological_sort(G)]
    assert chain == ["ingest", "normalize", "publish"]
    assert all(G.nodes[n]["value"] for n in G)
