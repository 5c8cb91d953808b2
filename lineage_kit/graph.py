"""networkx graphs of lineage: record chains and the step summary.

Builders here are pure functions from rows or DataFrames to a ``networkx.DiGraph``;
they never touch the store (:func:`lineage_kit.frames.lineage_graph`, behind
``LineageStore.graph``, and ``LineageStore.step_graph`` fetch the rows and call
them). Graphs are DAGs, so networkx's own algorithms apply:
``nx.ancestors``, ``nx.topological_sort``, ``nx.dag_longest_path``.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import networkx as nx

from .base import stage_of  # the stage naming rule; the OpenLineage events use it too
from .model import ENTRY_OUTCOME

if TYPE_CHECKING:
    import pandas as pd

STEP_FIELDS = ("position", "name", "kind", "source", "destination", "description")


#: The columns :func:`entry_graph` reads (``value`` only with ``with_values``).
ENTRY_FIELDS = ("entry_id", "run", "position", "key", *ENTRY_OUTCOME)


def entry_graph(
    entries: Mapping[str, Sequence[Any]],
    edges: Iterable[tuple[int, int]],
    *,
    step_names: Mapping[str, Sequence[str]],
    with_values: bool = False,
    graph_attrs: Mapping[str, Any] | None = None,
) -> nx.DiGraph:
    """Build the graph of lineage entries.

    Parameters
    ----------
    entries : mapping of column name to sequence
        Equal-length columns :data:`ENTRY_FIELDS` (``created_at`` as ISO-8601
        text), plus ``value`` (the stored JSON text) when ``with_values`` is true.
    edges : iterable of (parent_id, child_id)
        Parent links; every end must be one of the entries.
    step_names : mapping
        For each run id, its step names by position.
    with_values : bool, default False
        Parse ``value`` as JSON into a ``value`` node attribute.
    graph_attrs : mapping, optional
        Stored in ``G.graph``.

    Returns
    -------
    networkx.DiGraph
        Nodes are entry ids with attributes ``key, step, position, status, reason,
        error, run, created_at`` (a UTC ``datetime``), ``value_hash`` (and
        ``value``); edges run parent -> child.

    Raises
    ------
    ValueError
        An edge names an entry that is not among the entries.

    Examples
    --------
    >>> G = entry_graph(
    ...     {"entry_id": [1, 2], "run": ["r", "r"], "position": [0, 1], "key": ["a", "a"],
    ...      "status": ["ok", "ok"], "reason": [None, None], "error": [None, None],
    ...      "created_at": ["2024-01-01T00:00:00+00:00"] * 2, "value_hash": ["h1", "h2"]},
    ...     [(1, 2)],
    ...     step_names={"r": ["ingest", "publish"]},
    ... )
    >>> list(G.edges), G.nodes[2]["step"]
    ([(1, 2)], 'publish')
    """
    ids = list(entries["entry_id"])
    runs, positions, created = entries["run"], entries["position"], entries["created_at"]
    stamps = {text: datetime.fromisoformat(text) for text in set(created)}
    names = {run: list(step_names[run]) for run in set(runs)}
    steps = [names[run][position] for run, position in zip(runs, positions, strict=True)]
    G = nx.DiGraph(**(graph_attrs or {}))
    with _gc_paused():
        attrs = [
            {
                "key": key,
                "step": step,
                "position": position,
                "status": status,
                "reason": reason,
                "error": error,
                "run": run,
                "created_at": stamps[stamp],
                "value_hash": vhash,
            }
            for key, step, position, status, reason, error, run, stamp, vhash in zip(
                entries["key"],
                steps,
                positions,
                entries["status"],
                entries["reason"],
                entries["error"],
                runs,
                created,
                entries["value_hash"],
                strict=True,
            )
        ]
        if with_values:
            for a, text in zip(attrs, entries["value"], strict=True):
                a["value"] = json.loads(text) if text is not None else None
        G.add_edges_from(edges)
        G.add_nodes_from(ids)
        if G.number_of_nodes() != len(ids):  # entry ids are unique
            raise ValueError("an edge names an entry that is not among the entries")
        nodes = G.nodes
        for entry_id, a in zip(ids, attrs, strict=True):
            nodes[entry_id].update(a)
    return G


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building a large graph.

    Creating hundreds of thousands of attribute dicts otherwise triggers repeated
    full collections that find nothing to free (they roughly double build time).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def step_graph(steps: pd.DataFrame) -> nx.DiGraph:
    """Build the stage summary graph from a steps frame.

    Parameters
    ----------
    steps : pandas.DataFrame
        ``LineageStore.steps(run)``: one row per step with ``position, name, kind,
        source, destination, description, n_ok, n_rejected, n_failed``.

    Returns
    -------
    networkx.DiGraph
        Nodes are stages (``"input_file"``, ``"staging"``, ...); one edge per step,
        source stage -> destination stage, with attributes ``step, position, kind,
        description, ok, rejected, failed``. ``G.graph["run_id"]`` is the run
        (``None`` when ``steps`` holds several runs: their counts are added up per
        stage pair, the other attributes come from the first run listed; ``None``
        too when ``steps`` has no rows, which gives a graph without nodes), and
        ``G.graph["run_ids"]`` the runs in the order listed.

    Raises
    ------
    KeyError
        ``steps`` lacks one of the columns above (it is not a steps frame).

    Examples
    --------
    >>> G = step_graph(store.steps())
    >>> G.edges["staging", "normalized"]["ok"]
    30
    """
    G = nx.DiGraph()
    run_ids: list[str] = []
    for run_id, group in steps.groupby("run_id", observed=True, sort=False):
        run_ids.append(str(run_id))
        rows = group.sort_values("position").to_dict("records")
        for r in rows:  # missing text comes back from pandas as NaN
            for field in ("source", "destination", "description"):
                if not isinstance(r[field], str):
                    r[field] = None
        for r, (source, destination) in zip(rows, stage_of(rows), strict=True):
            counts = {
                "ok": int(r["n_ok"]),
                "rejected": int(r["n_rejected"]),
                "failed": int(r["n_failed"]),
            }
            if G.has_edge(source, destination):  # several runs: add up the counts
                edge = G.edges[source, destination]
                for name, n in counts.items():
                    edge[name] += n
                continue
            G.add_edge(
                source,
                destination,
                step=str(r["name"]),
                position=int(r["position"]),
                kind=str(r["kind"]),
                description=r["description"],
                **counts,
            )
    G.graph["run_id"] = run_ids[0] if len(run_ids) == 1 else None
    G.graph["run_ids"] = run_ids
    return G


__all__ = ["ENTRY_FIELDS", "entry_graph", "stage_of", "step_graph"]
