"""OpenLineage run events for a lineage_kit run (spec 2-0-2), built without dependencies.

A run becomes a parent job ``{namespace}/{pipeline}`` whose ``runId`` is the run id,
and every step a child job ``{pipeline}.{step}`` whose ``runId`` is derived from the
run id and the step's position (so it is the same every time it is exported), with
a ``parent`` facet pointing at the run. Each gets a START and a terminal event:
COMPLETE for ``completed`` and ``completed_with_errors``, FAIL (with an
``errorMessage`` facet) for ``failed``, ABORT for ``interrupted``; a run still
``running`` gets START events only. Datasets are the input file and the stages
between steps (the steps' source and destination names).

Events stay small: counts, reject reasons and a pointer to the store and run, never
per-record data. Column lineage and schemas are read from a bounded sample of each
step's entries (:data:`SAMPLE_SIZE`).

Building is split in two: :func:`gather` reads what a run's events need from the
store into a :class:`RunFacts`, and the pure functions :func:`run_events`,
:func:`parent_event` and :func:`step_event` turn facts into event dicts (the live
emitter builds START events from facts known when the run begins).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..base import __version__

if TYPE_CHECKING:
    from ..store import Backend

#: The OpenLineage spec version the events follow, and the schema of a run event.
SPEC_VERSION = "2-0-2"
RUN_EVENT_SCHEMA = f"https://openlineage.io/spec/{SPEC_VERSION}/OpenLineage.json#/$defs/RunEvent"

#: Where lineage_kit's own facet schemas live (shipped in ``lineage_kit/export/schemas``).
#: The host is reserved (``.invalid``) until the project has a public home: consumers
#: read ``_schemaURL`` as an identifier, the schema itself comes with the package.
LINEAGE_KIT_SPEC = "https://lineage-kit.invalid/spec/"

#: ``producer`` / ``_producer`` of every event and facet.
PRODUCER = f"https://lineage-kit.invalid/lineage_kit/{__version__}"

#: The job namespace when none is given (``OPENLINEAGE_NAMESPACE`` overrides it).
DEFAULT_NAMESPACE = "lineage_kit"

#: ``ok`` entries read per step to derive its output schema and column lineage.
SAMPLE_SIZE = 200

_STANDARD = "https://openlineage.io/spec/facets/"
#: facet name -> schema URL (standard facets at the newest version in spec 2-0-2).
FACET_SCHEMAS = {
    "parent": _STANDARD + "1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet",
    "processing_engine": _STANDARD
    + "1-1-1/ProcessingEngineRunFacet.json#/$defs/ProcessingEngineRunFacet",
    "executionParameters": _STANDARD
    + "1-0-0/ExecutionParametersRunFacet.json#/$defs/ExecutionParametersRunFacet",
    "errorMessage": _STANDARD + "1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet",
    "jobType": _STANDARD + "2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet",
    "documentation": _STANDARD + "1-1-0/DocumentationJobFacet.json#/$defs/DocumentationJobFacet",
    "dataSource": _STANDARD + "1-0-1/DatasourceDatasetFacet.json#/$defs/DatasourceDatasetFacet",
    "schema": _STANDARD + "1-2-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet",
    "version": _STANDARD
    + "1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet",
    "columnLineage": _STANDARD
    + "1-2-0/ColumnLineageDatasetFacet.json#/$defs/ColumnLineageDatasetFacet",
    "inputStatistics": _STANDARD
    + "1-0-0/InputStatisticsInputDatasetFacet.json#/$defs/InputStatisticsInputDatasetFacet",
    "outputStatistics": _STANDARD
    + "1-0-2/OutputStatisticsOutputDatasetFacet.json#/$defs/OutputStatisticsOutputDatasetFacet",
    "dataQualityAssertions": _STANDARD
    + "1-1-0/DataQualityAssertionsDatasetFacet.json#/$defs/DataQualityAssertionsDatasetFacet",
    "lineageKit_run": LINEAGE_KIT_SPEC
    + "facets/1-0-0/LineageKitRunFacet.json#/$defs/LineageKitRunFacet",
    "lineageKit_step": LINEAGE_KIT_SPEC
    + "facets/1-0-0/LineageKitStepRunFacet.json#/$defs/LineageKitStepRunFacet",
}

#: Run status -> the terminal event type of the run (``running`` has none yet).
TERMINAL = {
    "completed": "COMPLETE",
    "completed_with_errors": "COMPLETE",
    "failed": "FAIL",
    "interrupted": "ABORT",
}


@dataclass
class StepFacts:
    """What one step's events say (counts are None until the run has finished)."""

    position: int
    name: str
    kind: str
    source: str
    destination: str
    description: str | None
    started_at: str | None = None
    finished_at: str | None = None
    ok: int = 0
    rejected: int = 0
    failed: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    fields: list[tuple[str, str]] = field(default_factory=list)
    lineage: dict[str, list[tuple[str, str]]] | None = None  # out field -> [(in field, subtype)]


@dataclass
class RunFacts:
    """What a run's events say, read from the store by :func:`gather`."""

    run: dict[str, Any]
    steps: list[StepFacts]
    store: str

    @property
    def run_id(self) -> str:
        return self.run["run_id"]


# ----------------------------------------------------------------- reading


def gather(backend: Backend, run_id: str, *, stats: bool = True) -> RunFacts:
    """Read what the events of one run need from the store.

    Parameters
    ----------
    backend : Backend
    run_id : str
        A full run id.
    stats : bool, default True
        Also read counts, reject reasons and the value samples (terminal events need
        them; START events do not).

    Returns
    -------
    RunFacts

    Raises
    ------
    RunNotFound
        No run has this id.
    """
    from ..base import stage_of
    from ..errors import RunNotFound
    from ..store import queries as q

    row = next((r for r in backend.run_rows() if r["run_id"] == run_id), None)
    if row is None:
        raise RunNotFound(f"no run {run_id!r} in {backend.location}")
    meta = [dict(zip(q.STEP_META_COLUMNS, r, strict=True)) for r in backend.step_meta_rows(run_id)]
    stages = stage_of(meta)
    steps = [
        StepFacts(
            position=m["position"],
            name=m["name"],
            kind=m["kind"],
            source=source,
            destination=destination,
            description=m["description"] or None,
            started_at=m["started_at"],
            finished_at=m["finished_at"],
        )
        for m, (source, destination) in zip(meta, stages, strict=True)
    ]
    location = backend.location  # a file path, or a database URL without its password
    store = location if "://" in location else str(Path(location).resolve())
    facts = RunFacts(run=row, steps=steps, store=store)
    if stats:
        _read_stats(backend, facts)
    return facts


def _read_stats(backend: Backend, facts: RunFacts) -> None:
    run_id = facts.run_id
    by_position = {s.position: s for s in facts.steps}
    for position, status, n in backend.step_status_counts(run_id):
        setattr(by_position[position], status, n)
    for position, status, reason, n in backend.outcome_reason_counts(run_id):
        label = reason if status == "rejected" else "failed"
        reasons = by_position[position].reasons
        reasons[label or "rejected"] = reasons.get(label or "rejected", 0) + n
    if any(s.started_at is None and (s.ok or s.rejected or s.failed) for s in facts.steps):
        # A run that was killed never wrote its step times: the entries' stamps say
        # when each step first and last worked on a chunk.
        moments: dict[int, list[str]] = {}
        for position, stamp, _n in backend.chunk_moments(run_id):
            moments.setdefault(position, []).append(stamp)
        for s in facts.steps:
            if s.started_at is None and s.position in moments:
                s.started_at, s.finished_at = min(moments[s.position]), max(moments[s.position])
    for s in facts.steps:
        rows = backend.step_value_sample(run_id, s.position, SAMPLE_SIZE)
        s.fields, s.lineage = _describe(s.kind, rows)


def _describe(
    kind: str, rows: Sequence[tuple[int, str, str | None]]
) -> tuple[list[tuple[str, str]], dict[str, list[tuple[str, str]]] | None]:
    """Output fields with JSON types, and per output field its input fields and how.

    Column lineage compares each sampled entry with its parent(s): a field equal to
    the parent's same field is IDENTITY, a changed one TRANSFORMATION (AGGREGATION in
    a merge; equal means the same JSON value, so ``1`` is not ``True``); a new field
    equal to a field the step removed, over at least two different values, is a
    rename (IDENTITY from the old name); other new fields list no input (their
    inputs are unknown), so a constant such as ``0`` never suggests a rename.
    No parents (the first step) gives no column lineage.
    """
    entries: dict[int, tuple[Any, list[Any]]] = {}
    for entry_id, value, parent in rows:
        if entry_id not in entries:
            entries[entry_id] = (json.loads(value), [])
        if parent is not None:
            entries[entry_id][1].append(json.loads(parent))
    types: dict[str, str] = {}
    for value, _parents in entries.values():
        if isinstance(value, dict):
            for name, v in value.items():
                if types.get(name, "null") == "null":
                    types[name] = _json_type(v)
    fields = list(types.items())
    pairs = [(v, ps) for v, ps in entries.values() if isinstance(v, dict) and ps]
    if not pairs or not all(isinstance(p, dict) for _v, ps in pairs for p in ps):
        return fields, None
    changed = "AGGREGATION" if kind == "merge" else "TRANSFORMATION"
    lineage: dict[str, list[tuple[str, str]]] = {}
    for name in types:
        present = [(v, ps) for v, ps in pairs if name in v]
        if all(name in p for _v, ps in present for p in ps):
            same = all(_same(p[name], v[name]) for v, ps in present for p in ps)
            lineage[name] = [(name, "IDENTITY" if same else changed)]
            continue
        # One value, or one record, says nothing about where a new field came from: a
        # rename needs at least two different values, each equal to the old field's.
        if len({_text(v[name]) for v, _ps in present}) < 2:
            lineage[name] = []
            continue
        renamed = [
            old
            for old in {k for _v, ps in present for p in ps for k in p}
            if old not in types
            and all(old in p and _same(p[old], v[name]) for v, ps in present for p in ps)
        ]
        lineage[name] = [(old, "IDENTITY") for old in sorted(renamed)]
    return fields, lineage


def _text(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON values: ``True``, ``1`` and ``1.0`` are three different values."""
    if type(a) is not type(b):
        return False
    return a == b if not isinstance(a, dict | list) else _text(a) == _text(b)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


# ---------------------------------------------------------------- building


def default_namespace(namespace: str | None = None) -> str:
    """The job namespace: ``namespace``, else ``$OPENLINEAGE_NAMESPACE``, else ``lineage_kit``.

    Examples
    --------
    >>> default_namespace("shop")
    'shop'
    """
    return namespace or os.environ.get("OPENLINEAGE_NAMESPACE") or DEFAULT_NAMESPACE


def step_run_id(run_id: str, position: int) -> str:
    """The deterministic ``runId`` of a step's child run (a UUID v5 of the run id).

    Examples
    --------
    >>> step_run_id("0b6c7f3e-8f56-4a49-9b5e-5b6b3a0f1d2c", 0)
    '177e2b67-aa54-5d16-9f52-48f4e9714194'
    """
    return str(uuid.uuid5(uuid.UUID(run_id), f"step/{position}"))


def facet(name: str, /, **fields: Any) -> dict[str, Any]:
    """A facet dict with ``_producer`` and the ``_schemaURL`` registered for ``name``."""
    return {"_producer": PRODUCER, "_schemaURL": FACET_SCHEMAS[name], **fields}


def _event(event_type: str, time: str, run: dict, job: dict, inputs: list, outputs: list) -> dict:
    return {
        "eventType": event_type,
        "eventTime": time,
        "producer": PRODUCER,
        "schemaURL": RUN_EVENT_SCHEMA,
        "run": run,
        "job": job,
        "inputs": inputs,
        "outputs": outputs,
    }


def _engine() -> dict:
    return facet(
        "processing_engine",
        name="lineage_kit",
        version=__version__,
        openlineageAdapterVersion=__version__,
    )


def _stage(facts: RunFacts, namespace: str, stage: str) -> dict:
    """A stage between steps as a dataset: ``{pipeline}.{stage}`` in the job namespace."""
    return {
        "namespace": namespace,
        "name": f"{facts.run['pipeline']}.{stage}",
        "facets": {
            "dataSource": facet(
                "dataSource",
                name="lineage_kit",
                uri=facts.store if "://" in facts.store else Path(facts.store).as_uri(),
            )
        },
    }


def _input_file(facts: RunFacts, namespace: str, terminal: bool) -> dict:
    """The run's input: the file read (namespace ``file``), or a stage for in-memory data."""
    path = facts.run["input_path"]
    if path is None:
        dataset = _stage(facts, namespace, facts.steps[0].source if facts.steps else "input")
    else:
        source = {"name": "file"}
        if os.path.isabs(path):
            source["uri"] = Path(path).as_uri()
        dataset = {
            "namespace": "file",
            "name": path,
            "facets": {"dataSource": facet("dataSource", **source)},
        }
    if terminal:
        first = facts.steps[0] if facts.steps else None
        if facts.run["input_sha256"]:
            dataset["facets"]["version"] = facet(
                "version", datasetVersion=facts.run["input_sha256"]
            )
        if first is not None and first.fields:
            dataset["facets"]["schema"] = _schema(first.fields)
        dataset["inputFacets"] = {
            "inputStatistics": facet("inputStatistics", rowCount=facts.run["n_input"])
        }
    return dataset


def _schema(fields: Iterable[tuple[str, str]]) -> dict:
    return facet(
        "schema",
        fields=[
            {"name": name, "type": kind, "ordinal_position": i}
            for i, (name, kind) in enumerate(fields, start=1)
        ],
    )


def _step_input(facts: RunFacts, namespace: str, step: StepFacts, terminal: bool) -> dict:
    if step.position == 0:
        dataset = _input_file(facts, namespace, terminal=False)
        n_in = facts.run["n_input"]
    else:
        dataset = _stage(facts, namespace, step.source)
        n_in = facts.steps[step.position - 1].ok
    if terminal:
        dataset["inputFacets"] = {"inputStatistics": facet("inputStatistics", rowCount=n_in)}
        if step.reasons:
            dataset["inputFacets"]["dataQualityAssertions"] = facet(
                "dataQualityAssertions",
                assertions=[
                    {
                        "assertion": reason,
                        "success": False,
                        "name": f"{step.name}: {reason}",
                        "description": (
                            "records the step failed on"
                            if reason == "failed"
                            else f"records the step rejected with reason {reason!r}"
                        ),
                        "expected": "0",
                        "actual": str(n),
                        "severity": "error" if reason == "failed" else "warn",
                    }
                    for reason, n in sorted(step.reasons.items())
                ],
            )
    return dataset


def _step_output(facts: RunFacts, namespace: str, step: StepFacts, terminal: bool) -> dict:
    dataset = _stage(facts, namespace, step.destination)
    if not terminal:
        return dataset
    if step.fields:
        dataset["facets"]["schema"] = _schema(step.fields)
    if step.lineage is not None:
        source = _step_input(facts, namespace, step, terminal=False)
        dataset["facets"]["columnLineage"] = facet(
            "columnLineage",
            fields={
                out: {
                    "inputFields": [
                        {
                            "namespace": source["namespace"],
                            "name": source["name"],
                            "field": name,
                            "transformations": [{"type": "DIRECT", "subtype": how}],
                        }
                        for name, how in inputs
                    ]
                }
                for out, inputs in step.lineage.items()
            },
        )
    dataset["outputFacets"] = {"outputStatistics": facet("outputStatistics", rowCount=step.ok)}
    return dataset


def _run_facet(facts: RunFacts, terminal: bool) -> dict:
    run = facts.run
    fields: dict[str, Any] = {"store": facts.store, "runId": run["run_id"]}
    if terminal:
        fields.update(
            status=run["status"],
            inputRecords=run["n_input"],
            published=run["n_published"],
            rejected=run["n_rejected"],
            failed=run["n_failed"],
            entries=sum(s.ok + s.rejected + s.failed for s in facts.steps),
        )
    else:
        fields["status"] = "running"
    return facet("lineageKit_run", **fields)


def _parameters(text: str | None) -> list[dict[str, str]]:
    try:
        params = json.loads(text or "{}")
    except ValueError:
        return [{"key": "parameters", "value": str(text)}]
    if not isinstance(params, dict):
        return [{"key": "parameters", "value": json.dumps(params)}]
    return [
        {"key": str(k), "value": v if isinstance(v, str) else json.dumps(v, default=str)}
        for k, v in params.items()
    ]


def _error(message: str) -> dict:
    return facet("errorMessage", message=message, programmingLanguage="python")


def parent_event(facts: RunFacts, event_type: str, namespace: str | None = None) -> dict:
    """The run's own event (START or its terminal type).

    Parameters
    ----------
    facts : RunFacts
    event_type : {"START", "COMPLETE", "FAIL", "ABORT"}
    namespace : str, optional
        See :func:`default_namespace`.

    Returns
    -------
    dict
        A RunEvent.
    """
    namespace = default_namespace(namespace)
    run = facts.run
    terminal = event_type != "START"
    run_facets: dict[str, Any] = {
        "processing_engine": _engine(),
        "executionParameters": facet(
            "executionParameters", parameters=_parameters(run["parameters"])
        ),
        "lineageKit_run": _run_facet(facts, terminal),
    }
    if event_type == "FAIL":
        run_facets["errorMessage"] = _error(run["error"] or f"run ended {run['status']}")
    names = " -> ".join(s.name for s in facts.steps)
    job = {
        "namespace": namespace,
        "name": run["pipeline"],
        "facets": {
            "jobType": facet(
                "jobType", processingType="BATCH", integration="LINEAGE_KIT", jobType="JOB"
            ),
            "documentation": facet(
                "documentation", description=f"lineage_kit pipeline {run['pipeline']!r}: {names}"
            ),
        },
    }
    time = run["started_at"] if not terminal else _end_time(facts)
    outputs = [_step_output(facts, namespace, facts.steps[-1], False)] if facts.steps else []
    if terminal and facts.steps:
        outputs[0]["outputFacets"] = {
            "outputStatistics": facet("outputStatistics", rowCount=run["n_published"])
        }
    return _event(
        event_type,
        time,
        {"runId": run["run_id"], "facets": run_facets},
        job,
        [_input_file(facts, namespace, terminal)],
        outputs,
    )


def _end_time(facts: RunFacts) -> str:
    ends = [s.finished_at for s in facts.steps if s.finished_at]
    return facts.run["finished_at"] or (max(ends) if ends else facts.run["started_at"])


def step_event(
    facts: RunFacts,
    position: int,
    event_type: str,
    namespace: str | None = None,
    *,
    time: str | None = None,
) -> dict:
    """A step's event (START or its terminal type), a child of the run's.

    Parameters
    ----------
    facts : RunFacts
    position : int
        The step.
    event_type : {"START", "COMPLETE", "FAIL", "ABORT"}
    namespace : str, optional
        See :func:`default_namespace`.
    time : str, optional
        The event time; by default the step's start (START) or end, else the run's.

    Returns
    -------
    dict
        A RunEvent.
    """
    namespace = default_namespace(namespace)
    run, step = facts.run, facts.steps[position]
    terminal = event_type != "START"
    parent = {"runId": run["run_id"]}
    parent_job = {"namespace": namespace, "name": run["pipeline"]}
    step_fields: dict[str, Any] = {"position": step.position, "kind": step.kind}
    if terminal:
        step_fields.update(ok=step.ok, rejected=step.rejected, failed=step.failed)
    run_facets: dict[str, Any] = {
        "parent": facet(
            "parent", run=parent, job=parent_job, root={"run": parent, "job": parent_job}
        ),
        "processing_engine": _engine(),
        "lineageKit_step": facet("lineageKit_step", store=facts.store, **step_fields),
    }
    if event_type == "FAIL":
        run_facets["errorMessage"] = _error(_step_error(facts, step))
    job_facets = {
        "jobType": facet(
            "jobType", processingType="BATCH", integration="LINEAGE_KIT", jobType="TASK"
        )
    }
    if step.description:
        job_facets["documentation"] = facet("documentation", description=step.description)
    if time is None:
        end = step.finished_at or _end_time(facts)
        time = (step.started_at or end) if not terminal else end
    return _event(
        event_type,
        time,
        {"runId": step_run_id(run["run_id"], position), "facets": run_facets},
        {"namespace": namespace, "name": f"{run['pipeline']}.{step.name}", "facets": job_facets},
        [_step_input(facts, namespace, step, terminal)],
        [_step_output(facts, namespace, step, terminal)],
    )


def _step_error(facts: RunFacts, step: StepFacts) -> str:
    error = facts.run["error"] or ""
    if f"step {step.name!r}" in error:
        return error
    return f"{step.failed} record(s) failed in step {step.name!r}; run {facts.run['status']}"


def step_terminal(facts: RunFacts, step: StepFacts) -> str:
    """A step's terminal event type: its run's, except in a failed run, where the
    steps with failed records FAIL and the others ABORT (the run stopped them)."""
    status = facts.run["status"]
    if status != "failed":
        return TERMINAL[status]
    return "FAIL" if step.failed or f"step {step.name!r}" in (facts.run["error"] or "") else "ABORT"


def run_events(facts: RunFacts, namespace: str | None = None) -> list[dict]:
    """Every event of a run, in the order a live run emits them.

    The run's START, each step's START (in pipeline order), each step's terminal
    event, the run's terminal event. A ``running`` run gives its START and the
    STARTs of the steps that have begun.

    Returns
    -------
    list of dict
    """
    events = [parent_event(facts, "START", namespace)]
    running = facts.run["status"] == "running"
    steps = [s for s in facts.steps if not running or s.started_at is not None]
    events += [step_event(facts, s.position, "START", namespace) for s in steps]
    if running:
        return events
    events += [step_event(facts, s.position, step_terminal(facts, s), namespace) for s in steps]
    events.append(parent_event(facts, TERMINAL[facts.run["status"]], namespace))
    return events


def openlineage_events(
    backend: Backend,
    run: str | Sequence[str] | None = "latest",
    *,
    namespace: str | None = None,
) -> list[dict]:
    """The OpenLineage run events of one run (or several), as JSON-ready dicts.

    Parameters
    ----------
    backend : Backend
    run : str or list of str, default "latest"
        A run id, a unique prefix, ``"latest"``, ``"all"`` (oldest first) or a list.
    namespace : str, optional
        The job namespace; default ``$OPENLINEAGE_NAMESPACE`` or ``"lineage_kit"``.

    Returns
    -------
    list of dict
        Per run, in order: its START, each step's START, each step's terminal event,
        its terminal event (see :func:`run_events`).

    Raises
    ------
    RunNotFound
        ``run`` matches no run.

    Examples
    --------
    >>> events = store.openlineage_events()
    >>> [(e["eventType"], e["job"]["name"]) for e in events][:2]
    [('START', 'default'), ('START', 'default.ingest')]
    """
    return [
        event
        for run_id in backend.resolve_runs(run)
        for event in run_events(gather(backend, run_id), namespace)
    ]


def to_json_lines(events: Iterable[Mapping[str, Any]]) -> str:
    """Events as JSON Lines (one compact event per line, UTF-8 as is)."""
    return "".join(json.dumps(e, ensure_ascii=False, separators=(",", ":")) + "\n" for e in events)


__all__ = [
    "DEFAULT_NAMESPACE",
    "FACET_SCHEMAS",
    "RUN_EVENT_SCHEMA",
    "SAMPLE_SIZE",
    "RunFacts",
    "StepFacts",
    "gather",
    "openlineage_events",
    "parent_event",
    "run_events",
    "step_event",
    "step_run_id",
    "to_json_lines",
]
