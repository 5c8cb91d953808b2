"""W3C PROV documents of record-level lineage (extra ``lineage_kit[prov]``).

One run becomes, under its own namespace (prefix ``run_<run id hex>``):

- an entity per lineage entry (``entry-<id>``, ``prov:type lk:Entry``) with its key,
  status, reason, error and value hash (the value itself only with ``values=True``);
- an activity per step (``step-<position>``, with its start and end times) and one
  for the run (``run``), which started them (``wasStartedBy``);
- the pipeline as a plan (``pipeline``, ``prov:type prov:Plan``) and lineage_kit as
  a software agent (``lk:lineage_kit``), associated with the run;
- for every entry ``wasGeneratedBy`` its step, and for every parent link
  ``wasDerivedFrom`` (child from parent, by the child's step) and ``used`` (the
  child's step used the parent): a merged entry has several, a split parent
  several children.

Identifiers are built from entry ids and positions, never from keys, so they are
valid QNames whatever a key holds; keys are attribute values (strings).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..base import __version__
from ..errors import ExportTooLarge, MissingExtra

if TYPE_CHECKING:
    import prov.model

    from ..store import Backend

#: The namespace of lineage_kit's PROV attribute and type names (prefix ``lk``).
LK_NAMESPACE = "https://lineage-kit.invalid/ns/prov#"

#: The most entries one document holds; more is refused (ask for ``key=`` instead).
MAX_ENTRIES = 100_000


def _prov() -> Any:
    try:
        import prov.model
    except ImportError:
        raise MissingExtra("PROV export", "prov", "prov") from None
    return prov.model


def to_prov(
    backend: Backend,
    run: str | Sequence[str] | None = "latest",
    *,
    key: str | int | float | None = None,
    values: bool = False,
    max_entries: int = MAX_ENTRIES,
) -> prov.model.ProvDocument:
    """A run's record-level lineage as a W3C PROV document.

    Parameters
    ----------
    backend : Backend
    run : str or list of str, default "latest"
        A run id, a unique prefix, ``"latest"``, ``"all"`` or a list (one namespace
        per run in the document).
    key : str, int or float, optional
        Only this record's entries and everything up- and downstream of them.
    values : bool, default False
        Add each entry's stored value (JSON text) as ``lk:value``.
    max_entries : int, default 100,000
        Refuse a document with more entries than this.

    Returns
    -------
    prov.model.ProvDocument
        Serialise with ``doc.serialize(format="json")`` (PROV-JSON) or
        ``doc.get_provn()`` (PROV-N).

    Raises
    ------
    MissingExtra
        The ``prov`` package is not installed.
    ExportTooLarge
        The document would hold more than ``max_entries`` entries.
    RunNotFound
        ``run`` matches no run.
    KeyNotFound
        ``key`` has no entries in the chosen run(s).

    Examples
    --------
    >>> doc = store.to_prov(key="order-101")
    >>> print(doc.get_provn())  # doctest: +ELLIPSIS
    document
      prefix lk <https://lineage-kit.invalid/ns/prov#>
    ...
    """
    pm = _prov()
    from ..errors import KeyNotFound
    from ..frames import lineage_graph
    from .openlineage import gather

    run_ids = backend.resolve_runs(run)
    if key is None:
        n = sum(
            count for r in run_ids for _position, _status, count in backend.step_status_counts(r)
        )
        if n > max_entries:
            raise ExportTooLarge(n, max_entries, "export one record with key=KEY, or fewer runs")
    doc = pm.ProvDocument()
    lk = doc.add_namespace("lk", LK_NAMESPACE)
    agent = doc.agent(
        "lk:lineage_kit",
        {"prov:type": pm.PROV["SoftwareAgent"], "lk:version": __version__},
    )
    found = False
    for run_id in run_ids:
        try:
            graph = lineage_graph(backend, run_id, key)
        except KeyNotFound:
            continue
        if key is not None and graph.number_of_nodes() > max_entries:
            raise ExportTooLarge(
                graph.number_of_nodes(), max_entries, "this record's lineage is too large"
            )
        found = True
        stored = _values(backend, run_id, graph) if values else {}
        _add_run(pm, doc, lk, agent, gather(backend, run_id, stats=False), graph, stored)
    if key is not None and not found:
        raise KeyNotFound(str(key), run_ids, all_runs=run == "all")
    return doc


def _values(backend: Backend, run_id: str, graph: Any) -> dict[int, str]:
    """Entry id -> stored value as JSON text."""
    if graph.number_of_nodes() and all("value" in a for _n, a in graph.nodes(data=True)):
        return {n: json.dumps(a["value"]) for n, a in graph.nodes(data=True)}
    from ..frames import records_frame

    frame = records_frame(backend, run_id)
    return {int(i): json.dumps(v) for i, v in zip(frame["entry_id"], frame["value"], strict=True)}


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _run_namespace(doc: Any, run_id: str) -> Any:
    """The run's namespace, prefix ``run_`` and the id's first 8 hex digits (all 32 if taken)."""
    hex_id = run_id.replace("-", "")
    taken = {ns.prefix for ns in doc.get_registered_namespaces()}
    prefix = f"run_{hex_id[:8]}" if f"run_{hex_id[:8]}" not in taken else f"run_{hex_id}"
    return doc.add_namespace(prefix, f"urn:lineage-kit:run:{run_id}:")


def _add_run(pm: Any, doc: Any, lk: Any, agent: Any, facts: Any, graph: Any, stored: dict) -> None:
    row = facts.run
    ns = _run_namespace(doc, row["run_id"])
    run_attrs = {
        "prov:type": lk["Run"],
        "lk:runId": row["run_id"],
        "lk:status": row["status"],
        "lk:pipeline": row["pipeline"],
    }
    for name, field in (("lk:inputPath", "input_path"), ("lk:inputSha256", "input_sha256")):
        if row[field]:
            run_attrs[name] = row[field]
    run_activity = doc.activity(
        ns["run"], _time(row["started_at"]), _time(row["finished_at"]), run_attrs
    )
    plan = doc.entity(
        ns["pipeline"],
        {
            "prov:type": pm.PROV["Plan"],
            "lk:name": row["pipeline"],
            "lk:steps": " -> ".join(s.name for s in facts.steps),
        },
    )
    doc.wasAssociatedWith(run_activity, agent, plan)
    steps = {}
    for s in facts.steps:
        attrs = {
            "prov:type": lk["Step"],
            "lk:name": s.name,
            "lk:position": s.position,
            "lk:kind": s.kind,
        }
        if s.description:
            attrs["lk:description"] = s.description
        steps[s.position] = doc.activity(
            ns[f"step-{s.position}"], _time(s.started_at), _time(s.finished_at), attrs
        )
        doc.wasStartedBy(steps[s.position], starter=run_activity, time=_time(s.started_at))
    entities = {}
    entry_type = lk["Entry"]
    for entry_id, a in sorted(graph.nodes(data=True)):
        attrs = {
            "prov:type": entry_type,
            "lk:entryId": int(entry_id),
            "lk:step": a["step"],
            "lk:status": a["status"],
        }
        for name, field in (
            ("lk:key", "key"),
            ("lk:reason", "reason"),
            ("lk:error", "error"),
            ("lk:valueHash", "value_hash"),
        ):
            if a.get(field) is not None:
                attrs[name] = str(a[field])
        if entry_id in stored:
            attrs["lk:value"] = stored[entry_id]
        entity = doc.entity(ns[f"entry-{entry_id}"], attrs)
        entities[entry_id] = entity
        doc.wasGeneratedBy(entity, steps[a["position"]], a["created_at"])
    used = set()
    for parent, child in sorted(graph.edges()):
        activity = steps[graph.nodes[child]["position"]]
        doc.wasDerivedFrom(entities[child], entities[parent], activity)
        if (activity.identifier, parent) not in used:
            used.add((activity.identifier, parent))
            doc.used(activity, entities[parent])


def prov_json(doc: Any) -> str:
    """A PROV document as PROV-JSON text."""
    return doc.serialize(format="json", indent=1)


def prov_n(doc: Any) -> str:
    """A PROV document as PROV-N text."""
    return doc.get_provn()


__all__ = ["LK_NAMESPACE", "MAX_ENTRIES", "prov_json", "prov_n", "to_prov"]
