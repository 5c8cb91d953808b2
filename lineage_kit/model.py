"""What a pipeline is made of, and what it and the store share: the step type and
decorator, a run's result, the status and kind enums, and the named row types.

Both the engine and the built-in steps import this module (and it imports neither),
so ``pipeline -> engine -> model`` and ``steps -> model`` run one way. The storage
layer imports it too, for the enums and the row types it writes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

from .base import html_table


class _Text(StrEnum):
    """A StrEnum shown as its text (in reprs, frames, dicts), as the store holds it."""

    def __repr__(self) -> str:
        return repr(self.value)


class RunStatus(_Text):
    """The status of a run, as stored in ``runs.status``.

    Members are ``str``: ``RunStatus.COMPLETED == "completed"``.

    Examples
    --------
    >>> RunStatus("completed") is RunStatus.COMPLETED, RunStatus.COMPLETED == "completed"
    (True, True)
    """

    RUNNING = "running"
    COMPLETED = "completed"
    COMPLETED_WITH_ERRORS = "completed_with_errors"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


class EntryStatus(_Text):
    """The outcome of one record at one step, as stored in ``lineage.status``.

    Examples
    --------
    >>> [str(s) for s in EntryStatus]
    ['ok', 'rejected', 'failed']
    """

    OK = "ok"
    REJECTED = "rejected"
    FAILED = "failed"


class StepKind(_Text):
    """What a step does with records: ``map`` one to one, ``merge`` many to one
    (fan-in), ``split`` one to many (fan-out); stored in ``steps.kind``.

    Examples
    --------
    >>> StepKind("split").name
    'SPLIT'
    """

    MAP = "map"
    MERGE = "merge"
    SPLIT = "split"


#: Run statuses of a run that ended normally (every record accounted for).
FINISHED_STATUSES = (RunStatus.COMPLETED, RunStatus.COMPLETED_WITH_ERRORS)
#: Run statuses whose counts are not stored yet (counted from the entries instead).
UNFINISHED_STATUSES = (RunStatus.RUNNING, RunStatus.INTERRUPTED)


class EntryRow(NamedTuple):
    """One lineage entry as the engine hands it to the store (its id comes from the
    range the store reserved for the chunk).

    Examples
    --------
    >>> row = EntryRow("run-1", 0, "order-101", "ok", None, None, "2026-01-01T00:00:00", "ab")
    >>> row.status, row.record_key
    ('ok', 'order-101')
    """

    run_id: str
    position: int
    record_key: str | None
    status: str
    reason: str | None
    error: str | None
    created_at: str
    value_hash: str | None


#: What an entry says after its key, as stored and as the frames and graphs name it:
#: ``status``, ``reason``, ``error``, ``created_at``, ``value_hash``.
ENTRY_OUTCOME: tuple[str, ...] = EntryRow._fields[3:]


def new_run_id() -> str:
    """A new run id: a random (version 4) UUID in its canonical text form.

    Made from ``os.urandom`` here rather than by ``uuid.uuid4()``, whose module
    imports ``platform`` and costs more start-up than the rest of a small
    ``lineage-kit run``; the text is what ``str(uuid.uuid4())`` gives.

    Examples
    --------
    >>> import uuid
    >>> run_id = new_run_id()
    >>> u = uuid.UUID(run_id)
    >>> (u.version, u.variant == uuid.RFC_4122, str(u) == run_id)
    (4, True, True)
    """
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # the RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class RunStart(NamedTuple):
    """The row that opens a run (status ``running``), with who writes it."""

    run_id: str
    pipeline: str
    started_at: str
    input_path: str | None
    parameters: str
    package_version: str
    writer_host: str
    writer_pid: int
    writer_started: str | None


class StepRow(NamedTuple):
    """A step of a run as stored when the run begins."""

    run_id: str
    position: int
    name: str
    kind: str
    source: str | None
    destination: str | None
    description: str


class StepTiming(NamedTuple):
    """When a step first and last worked in a run, and for how long in all."""

    position: int
    started_at: str | None
    finished_at: str | None
    busy_seconds: float


class RunEnd(NamedTuple):
    """How a run ended: its status, counts and error."""

    status: str
    finished_at: str
    input_sha256: str | None
    n_input: int
    n_published: int
    n_rejected: int
    n_failed: int
    error: str | None


@dataclass(frozen=True)
class Step:
    """One pipeline step; build it with :func:`step`.

    Attributes
    ----------
    name : str
        Unique within a pipeline.
    func : callable
        ``map``: ``record -> record`` (or ``list -> list`` when ``batch``);
        ``split``: ``record -> list of records or (key, record) pairs``;
        ``merge``: ``list of records -> record``, grouped by ``group_by``.
    source, destination : str or None
        The stage the record comes from and goes to (``"staging"``, ...). A step
        without a source reads from the previous step's destination.
    description : str
        What the step does, in a sentence.
    kind : {"map", "merge", "split"}
    batch : bool
        ``func`` takes and returns a whole chunk of records (``map`` only).
    group_by : callable or None
        ``merge`` only: ``(key, record) -> group key``; the group key becomes the
        merged record's key.
    frame : bool
        ``func`` takes the chunk as a DataFrame indexed by record key and returns a
        DataFrame (``map`` and ``split`` only; see :mod:`lineage_kit.frame_steps`).
    """

    name: str
    func: Callable[..., Any]
    source: str | None = None
    destination: str | None = None
    description: str = ""
    kind: StepKind = StepKind.MAP
    batch: bool = False
    group_by: Callable[[str, Any], Any] | None = None
    identity: bool = field(default=False, repr=False)  # returns its input unchanged
    # Never changes its input in place, and its output shares objects only with its
    # input (identity steps, the built-in normalize): the engine need not hand it a copy.
    pure: bool = field(default=False, repr=False)
    frame: bool = False

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ValueError("a step needs a non-empty name")
        kinds = tuple(k.value for k in StepKind)
        if self.kind not in kinds:
            raise ValueError(f"step {self.name!r}: kind must be one of {kinds}, not {self.kind!r}")
        object.__setattr__(self, "kind", StepKind(self.kind))
        if self.kind == StepKind.MERGE and self.group_by is None:
            raise ValueError(f"merge step {self.name!r} needs group_by=(key, record) -> group")
        if self.batch and self.kind != StepKind.MAP:
            raise ValueError(f"step {self.name!r}: batch=True applies to map steps only")
        if self.frame and (self.batch or self.kind == StepKind.MERGE):
            raise ValueError(
                f"step {self.name!r}: frame=True applies to map and split steps, without batch"
            )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)


def step(
    name: str | None = None,
    *,
    source: str | None = None,
    destination: str | None = None,
    description: str | None = None,
    kind: StepKind | str = StepKind.MAP,
    batch: bool = False,
    group_by: Callable[[str, Any], Any] | None = None,
    frame: bool = False,
) -> Callable[[Callable[..., Any]], Step]:
    """Decorate a function as a pipeline step.

    Parameters
    ----------
    name : str, optional
        The step's name; defaults to the function's name.
    source, destination : str, optional
        The stages the step reads from and writes to; without ``source`` the step
        reads from the previous step's destination.
    description : str, optional
        Defaults to the first line of the function's docstring.
    kind : {"map", "merge", "split"}, default "map"
        ``merge`` combines the records of a group into one (fan-in); ``split``
        turns one record into several (fan-out).
    batch : bool, default False
        The function takes a list of records and returns a list of the same length.
    group_by : callable, optional
        Required for ``merge``: ``(key, record) -> group key``.
    frame : bool, default False
        The function takes the chunk as a :class:`pandas.DataFrame` indexed by record
        key and returns a DataFrame; rows are matched to records by index label (see
        :mod:`lineage_kit.frame_steps` for the rules). ``kind="split"`` lets it repeat
        a label (``explode``).

    Returns
    -------
    callable
        A decorator turning a function into a :class:`Step`.

    Raises
    ------
    ValueError
        ``kind`` is unknown, a merge step lacks ``group_by``, ``batch`` is used on a
        merge or split step, or ``frame`` on a merge step or with ``batch``.

    Examples
    --------
    >>> @step("enrich", source="normalized", destination="enriched",
    ...       description="add region name")
    ... def enrich(record):
    ...     return {**record, "region_name": record["region"].title()}
    >>> enrich.name, enrich({"region": "emea"})["region_name"]
    ('enrich', 'Emea')
    """

    def decorate(func: Callable[..., Any]) -> Step:
        doc = (func.__doc__ or "").strip().splitlines()
        return Step(
            name=name or func.__name__,
            func=func,
            source=source,
            destination=destination,
            description=description if description is not None else (doc[0] if doc else ""),
            kind=kind,
            batch=batch,
            group_by=group_by,
            frame=frame,
        )

    return decorate


# ---------------------------------------------------------------------- results


@dataclass(frozen=True)
class RunResult:
    """What a pipeline run did.

    ``n_input == n_published + n_rejected + n_failed`` for every run that finished;
    a run stopped by ``fail_fast`` leaves the records still in flight uncounted.
    """

    run_id: str
    status: str
    db: str
    n_input: int
    n_published: int
    n_rejected: int
    n_failed: int
    n_entries: int
    elapsed_seconds: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when every input record was published."""
        return self.status == RunStatus.COMPLETED

    def _fields(self) -> list[tuple[str, object]]:
        fields: list[tuple[str, object]] = [
            ("run", self.run_id),
            ("status", self.status),
            ("input", self.n_input),
            ("published", self.n_published),
            ("rejected", self.n_rejected),
            ("failed", self.n_failed),
            ("entries", self.n_entries),
            ("store", self.db),
            ("elapsed", f"{self.elapsed_seconds:.3f} s"),
        ]
        if self.error:
            fields.append(("error", self.error))
        return fields

    def summary(self) -> str:
        """A short, human summary (what the CLI prints)."""
        return "\n".join(f"{label:<10} {value}" for label, value in self._fields())

    def _repr_html_(self) -> str:
        return html_table(["", ""], [list(f) for f in self._fields()], caption="lineage_kit run")


__all__ = [
    "ENTRY_OUTCOME",
    "FINISHED_STATUSES",
    "UNFINISHED_STATUSES",
    "EntryRow",
    "EntryStatus",
    "RunEnd",
    "RunResult",
    "RunStart",
    "RunStatus",
    "Step",
    "StepKind",
    "StepRow",
    "StepTiming",
    "step",
]
