"""Pipelines: a list of steps run over records, with lineage recorded for each.

A step only transforms values; the pipeline records, for every record and every
step, one lineage entry linked to its parent entries, with the step's outcome and
the value afterwards. This module holds what users write (:func:`step`,
:class:`Pipeline`, :func:`run_pipeline`); :mod:`lineage_kit.engine` runs it.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from . import __version__
from .engine import Abort, Run, chunked, error_text, mark_dead_runs, now
from .errors import InputError, StepError
from .sources import KeySpec, Source, absent_key_fields, open_source
from .store import LineageStore
from .store import writer as w
from .store.liveness import this_writer
from .values import UNSTORABLE

#: Default number of records per chunk (one write transaction each).
DEFAULT_CHUNK_SIZE = 2_000

_KINDS = ("map", "merge", "split")


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
    """

    name: str
    func: Callable[..., Any]
    source: str | None = None
    destination: str | None = None
    description: str = ""
    kind: str = "map"
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
        if self.kind not in _KINDS:
            raise ValueError(f"step {self.name!r}: kind must be one of {_KINDS}, not {self.kind!r}")
        if self.kind == "merge" and self.group_by is None:
            raise ValueError(f"merge step {self.name!r} needs group_by=(key, record) -> group")
        if self.batch and self.kind != "map":
            raise ValueError(f"step {self.name!r}: batch=True applies to map steps only")
        if self.frame and (self.batch or self.kind == "merge"):
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
    kind: str = "map",
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
        return self.status == "completed"

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
        from .summary import html_table

        return html_table(["", ""], [list(f) for f in self._fields()], caption="lineage_kit run")


class Pipeline:
    """An ordered list of steps that runs over records and records their lineage.

    Parameters
    ----------
    steps : sequence of Step
        At least one step; names must be unique.
    name : str, default "default"
        Stored with every run.

    Raises
    ------
    ValueError
        No steps, a step that is not a :class:`Step`, or duplicate step names.

    Examples
    --------
    >>> import lineage_kit as lk
    >>> pipeline = lk.Pipeline([lk.steps.ingest, lk.steps.normalize, lk.steps.publish])
    >>> [s.name for s in pipeline.steps]
    ['ingest', 'normalize', 'publish']
    """

    def __init__(self, steps: Sequence[Step], *, name: str = "default") -> None:
        steps = list(steps)
        if not steps:
            raise ValueError("a pipeline needs at least one step")
        for s in steps:
            if not isinstance(s, Step):
                raise ValueError(f"{s!r} is not a step; decorate it with @lk.step(...)")
        names = [s.name for s in steps]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"step names must be unique; repeated: {', '.join(duplicated)}")
        if steps[0].kind == "merge":
            raise ValueError("the first step cannot be a merge step")
        self.steps: tuple[Step, ...] = tuple(steps)
        self.name = name

    @property
    def sources(self) -> tuple[str | None, ...]:
        """Each step's source stage: its own, or else the previous step's destination."""
        out: list[str | None] = []
        for i, s in enumerate(self.steps):
            out.append(
                s.source if s.source is not None or i == 0 else self.steps[i - 1].destination
            )
        return tuple(out)

    def __repr__(self) -> str:
        return f"Pipeline({self.name!r}: {' -> '.join(s.name for s in self.steps)})"

    def run(
        self,
        source: Any,
        db: str | os.PathLike[str] = "lineage.db",
        *,
        key: KeySpec = "key",
        format: str | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        fail_fast: bool = False,
        progress: bool | None = None,
        parameters: dict[str, Any] | None = None,
        openlineage: Any = None,
    ) -> RunResult:
        """Run the pipeline over ``source`` and record lineage into the store ``db``.

        Parameters
        ----------
        source : path, DataFrame or iterable of dicts
            See :func:`lineage_kit.sources.open_source`.
        db : str or PathLike, default "lineage.db"
            The store; created if missing.
        key : str, list of str, or callable, default "key"
            The record key field, several fields for a composite key, or a function.
        format : {"json", "jsonl", "csv"}, optional
            Overrides the format guessed from the file suffix.
        chunk_size : int, default 2000
            Records per chunk; each chunk is one write transaction.
        fail_fast : bool, default False
            Stop at the first record a step fails on and mark the run ``failed``.
        progress : bool, optional
            Show a progress bar; by default only when stderr is a terminal.
        parameters : dict, optional
            Free-form, JSON-serialisable parameters stored with the run.
        openlineage : True, str, dict or OpenLineageEmitter, optional
            Emit OpenLineage events as the run goes (extra ``lineage_kit[openlineage]``):
            True uses the client's own configuration (``OPENLINEAGE_URL``,
            ``openlineage.yml``), a string is a backend URL, a dict a client config;
            see :class:`lineage_kit.export.emit.OpenLineageEmitter`. A backend that is
            down or slow never fails the run: it warns once.

        Returns
        -------
        RunResult

        Raises
        ------
        InputError
            The input cannot be read; the run is removed again, nothing is kept.
        StepError
            ``fail_fast`` is set and a step failed; the run is kept, marked ``failed``.
        NotALineageStore
            ``db`` is some other file; it is left unchanged.
        ValueError
            A bad argument (``chunk_size`` < 1, an unusable ``key``).
        """
        if not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive integer, not {chunk_size!r}")
        src = source if isinstance(source, Source) else open_source(source, key=key, format=format)
        params = {
            "key": key if not callable(key) else getattr(key, "__name__", "callable"),
            "chunk_size": chunk_size,
            "fail_fast": fail_fast,
            **(parameters or {}),
        }
        try:
            params_json = json.dumps(params, default=str)
        except UNSTORABLE as exc:
            raise ValueError(f"parameters must be JSON-serialisable: {exc}") from None
        listener = _listener(openlineage)

        started = time.perf_counter()
        # Read the first chunk before touching the store: a missing, empty or
        # malformed file fails here and nothing is created or written.
        blocks = chunked(src.items(), chunk_size)
        first = next(blocks, None)
        if first is not None and (problem := absent_key_fields(first, src.key)):
            raise InputError(problem, path=src.path)
        blocks = chain([first], blocks) if first is not None else iter(())
        store = LineageStore(db, create=True)
        try:
            mark_dead_runs(store)
            run_id = str(uuid.uuid4())
            w.begin_run(
                store.con,
                (
                    run_id,
                    self.name,
                    now(),
                    src.path,
                    params_json,
                    __version__,
                    *this_writer(),
                ),
                [
                    (run_id, i, s.name, s.kind, source, s.destination, s.description)
                    for i, (s, source) in enumerate(zip(self.steps, self.sources, strict=True))
                ],
            )
            if listener is not None:
                listener.run_started(store, run_id)
            state = Run(
                self,
                store,
                run_id,
                fail_fast,
                fresh_input=src.fresh,
                source_frame=src.frame,
                listener=listener,
            )
            status, error = "completed", None
            try:
                state.execute(blocks, chunk_size, progress)
            except InputError:
                w.discard_run(store.con, run_id)
                _ended(listener, store, run_id)
                raise
            except Abort as exc:
                status, error = "failed", exc.error
            except BaseException as exc:
                # Ctrl-C, a full disk or our own bug: keep what was written as evidence.
                ended = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
                state.finish(src, ended, error_text(exc))
                _ended(listener, store, run_id)
                raise
            if status == "completed" and (state.counts[1] or state.counts[2]):
                status = "completed_with_errors"
            state.finish(src, status, error)
            _ended(listener, store, run_id)
            result = RunResult(
                run_id=run_id,
                status=status,
                db=str(db),
                n_input=state.n_input,
                n_published=state.counts[0],
                n_rejected=state.counts[1],
                n_failed=state.counts[2],
                n_entries=state.n_entries,
                elapsed_seconds=time.perf_counter() - started,
                error=error,
            )
        finally:
            store.close()
        if status == "failed" and fail_fast:
            raise StepError(f"run {run_id} stopped (fail_fast): {error}", result)
        return result


def _listener(openlineage: Any) -> Any:
    """The run listener for ``openlineage=`` (None: no events)."""
    if openlineage is None or openlineage is False:
        return None
    from .export.emit import listener_for  # only the emitter, no analysis module

    return listener_for(openlineage)


def _ended(listener: Any, store: LineageStore, run_id: str) -> None:
    if listener is not None:
        listener.run_ended(store, run_id)


def run_pipeline(
    source: Any,
    db: str | os.PathLike[str] = "lineage.db",
    *,
    key: KeySpec = "key",
    steps: Sequence[Step] | None = None,
    **options: Any,
) -> RunResult:
    """Run a pipeline (by default ingest -> normalize -> publish) into a lineage store.

    Parameters
    ----------
    source : path, DataFrame or iterable of dicts
        The input records.
    db : str or PathLike, default "lineage.db"
        The SQLite store; created if missing.
    key : str, list of str or callable, default "key"
        Which field (or fields, or function) identifies a record.
    steps : sequence of Step, optional
        Defaults to :data:`lineage_kit.steps.DEFAULT_STEPS`.
    **options
        Passed to :meth:`Pipeline.run` (``format``, ``chunk_size``, ``fail_fast``,
        ``progress``, ``parameters``, ``openlineage``).

    Returns
    -------
    RunResult

    Raises
    ------
    InputError, StepError, NotALineageStore, ValueError
        See :meth:`Pipeline.run`.

    Examples
    --------
    >>> import lineage_kit as lk
    >>> result = lk.run_pipeline("data/sample_input.json", db="lineage.db")  # doctest: +SKIP
    >>> result.status  # doctest: +SKIP
    'completed'
    """
    from .steps import DEFAULT_STEPS

    pipeline = Pipeline(steps if steps is not None else DEFAULT_STEPS)
    return pipeline.run(source, db, key=key, **options)


__all__ = ["Pipeline", "RunResult", "Step", "run_pipeline", "step"]
