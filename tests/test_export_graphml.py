"""GraphML export: round-trips through networkx.read_graphml; the caller's graph is kept."""

from __future__ import annotations

import copy
import json
from datetime import datetime

import networkx as nx
import pytest

import lineage_kit as lk
from lineage_kit.export.graphml import graphml_ready

from .export_runs import make_run


def _expected(attrs: dict) -> dict:
    """What GraphML gives back for an attribute dict (None left out, the rest as text)."""
    out = {}
    for k, v in attrs.items():
        if v is None:
            continue
        if isinstance(v, datetime):
            v = v.isoformat()
        elif isinstance(v, dict | list):
            v = json.dumps(v, ensure_ascii=False)
        out[k] = v
    return out


def _round_trip(graph: nx.DiGraph, path, node_type=str) -> nx.DiGraph:
    before = copy.deepcopy(graph)
    lk.write_graphml(graph, path)
    assert nx.utils.graphs_equal(graph, before)  # the caller's graph is not modified
    assert graph.nodes(data=True) == before.nodes(data=True)
    return nx.read_graphml(path, node_type=node_type)


@pytest.mark.parametrize("kind", ["completed_with_errors", "merge", "split", "failed"])
def test_run_graphs_round_trip_with_their_attributes(kind, db, tmp_path):
    run_id = make_run(kind, db)
    with lk.connect(db) as store:
        graphs = {"run": store.graph(run_id), "steps": store.step_graph(run_id)}
        key = next(a["key"] for _n, a in graphs["run"].nodes(data=True) if a["key"])
        graphs["key"] = store.graph(run_id, key=key)  # with values (dicts)
    for name, graph in graphs.items():
        back = _round_trip(graph, tmp_path / f"{name}.graphml", int if name != "steps" else str)
        assert set(back.nodes) == set(graph.nodes)
        assert set(back.edges) == set(graph.edges)
        for node, attrs in graph.nodes(data=True):
            assert back.nodes[node] == _expected(attrs)
        for u, v, attrs in graph.edges(data=True):
            assert back.edges[u, v] == _expected(attrs)
        for k, v in graph.graph.items():
            assert back.graph[k] == _expected({k: v})[k]


def test_mixed_types_become_text_and_xml_forbidden_characters_are_escaped(tmp_path):
    G = nx.DiGraph()
    G.add_node("a\x00b", level=1, note="bell\x07")
    G.add_node("c", level="high", note=None)
    G.add_edge("a\x00b", "c", weight=0.5)
    ready = graphml_ready(G)
    assert ready.nodes["a\\u0000b"] == {"level": "1", "note": "bell\\u0007"}
    back = _round_trip(G, tmp_path / "x.graphml")
    assert set(back.nodes) == {"a\\u0000b", "c"}
    assert back.nodes["c"] == {"level": "high"}
    assert back.edges["a\\u0000b", "c"] == {"weight": 0.5}
