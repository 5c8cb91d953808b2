"""GraphML files of lineage graphs, readable by ``networkx.read_graphml``, Gephi, yEd.

GraphML holds strings, numbers and booleans only. :func:`graphml_ready` converts the
rest on a copy (the caller's graph is never changed):

- ``None``: the attribute is left out (GraphML's "no value");
- datetimes and dates: ISO-8601 text;
- dicts, lists and tuples: JSON text;
- an attribute whose values have different types on different nodes (or edges):
  text everywhere, so it is one GraphML key with one type;
- characters XML 1.0 cannot hold (NUL and the other control characters except tab
  and newline; U+FFFE, U+FFFF; lone surrogates) and the carriage return (which XML
  readers turn into a newline): written as ``\\uXXXX``, in node ids too (see
  :func:`xml_text`). A value that is JSON text keeps them exactly (JSON escapes
  them itself).
"""

from __future__ import annotations

import json
import os
import re
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from ..errors import InvalidArgument

if TYPE_CHECKING:
    import networkx as nx

# XML 1.0 cannot hold these at all; a carriage return it can, but every reader turns
# it (and CR LF) into a line feed, so it is escaped too, to read back as written.
_NOT_XML = re.compile("[\x00-\x08\x0b-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(text: str) -> str:
    """``text`` with the characters XML cannot hold (or keep) written as ``\\uXXXX``.

    Examples
    --------
    >>> xml_text("a\\x00b")
    'a\\\\u0000b'
    """
    return _NOT_XML.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _convert(value: Any) -> Any:
    if isinstance(value, str):
        return xml_text(value)
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict | list | tuple):
        return xml_text(json.dumps(value, ensure_ascii=False, default=str))
    return xml_text(str(value))


def _converted(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Attribute dicts converted; a name with mixed value types becomes text in all."""
    out = [{k: _convert(v) for k, v in attrs.items() if v is not None} for attrs in items]
    types: dict[str, set[type]] = {}
    for attrs in out:
        for k, v in attrs.items():
            types.setdefault(k, set()).add(type(v))
    mixed = {k for k, ts in types.items() if len(ts) > 1}
    if mixed:
        for attrs in out:
            for k in mixed & attrs.keys():
                attrs[k] = str(attrs[k])
    return out


def _node_id(node: Any) -> Any:
    return xml_text(node) if isinstance(node, str) else node


def graphml_ready(graph: nx.DiGraph) -> nx.DiGraph:
    """A copy of ``graph`` whose attributes GraphML can hold (see the module notes).

    Returns
    -------
    networkx.DiGraph (or the graph's own class)

    Examples
    --------
    >>> import networkx as nx
    >>> from datetime import datetime, timezone
    >>> G = nx.DiGraph(run_ids=["a"])
    >>> G.add_node(1, reason=None, created_at=datetime(2024, 1, 1, tzinfo=timezone.utc))
    >>> dict(graphml_ready(G).nodes[1]), graphml_ready(G).graph
    ({'created_at': '2024-01-01T00:00:00+00:00'}, {'run_ids': '["a"]'})
    """
    ready = graph.__class__()
    ready.graph.update(_converted([dict(graph.graph)])[0])
    nodes = list(graph.nodes(data=True))
    ids = [_node_id(n) for n, _a in nodes]
    ready.add_nodes_from(zip(ids, _converted([a for _n, a in nodes]), strict=True))
    edges = list(graph.edges(data=True))
    ready.add_edges_from(
        (_node_id(u), _node_id(v), a)
        for (u, v, _a), a in zip(edges, _converted([a for _u, _v, a in edges]), strict=True)
    )
    return ready


def write_graphml(graph: nx.DiGraph, path: str | os.PathLike[str] | Any) -> None:
    """Write a lineage graph (``store.graph()``, ``store.step_graph()``) as GraphML.

    Parameters
    ----------
    graph : networkx.DiGraph
        Not modified.
    path : str, PathLike or binary file
        Where to write (UTF-8).

    Raises
    ------
    InvalidArgument
        ``graph`` is not a networkx graph.
    OSError
        The file cannot be written.

    Examples
    --------
    >>> import lineage_kit as lk
    >>> lk.write_graphml(store.graph(key="order-101"), "chain.graphml")
    >>> import networkx as nx
    >>> sorted(nx.read_graphml("chain.graphml", node_type=int))
    [1, 31, 61]
    """
    import networkx as nx

    if not isinstance(graph, nx.Graph):
        raise InvalidArgument(
            "write_graphml takes a networkx graph (store.graph(), store.step_graph()), "
            f"not {type(graph).__name__}",
            argument="graph",
        )
    nx.write_graphml(graphml_ready(graph), path, encoding="utf-8")


__all__ = ["graphml_ready", "write_graphml", "xml_text"]
