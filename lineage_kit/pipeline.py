"""Pipelines: a list of steps run over records, with lineage recorded for each.

A step only transforms values; the pipeline records, for every record and every
step, one lineage entry linked to its parent entries, with the step's outcome and
the value afterwards. This module holds what users run (:class:`Pipeline`,
:func:`run_pipeline`); the steps they write come from :mod:`lineage_kit.model`
(re-exported here), and :mod:`lineage_kit.engine` runs them.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from itertools import chain
from typing import Any

from .base import __version__
from .engine import Abort, Run, chunked, error_text, now
from .errors import InputError, InvalidArgument, StepError
from .interrupts import checked, noted_interrupts
from .model import RunResult, RunStart, RunStatus, Step, StepKind, StepRow, new_run_id, step
from .sources import KeySpec, Source, absent_key_fields, open_source
from .steps import DEFAULT_STEPS
from .store import Backend, open_backend, redact
from .store.liveness import this_writer
from .values import UNSTORABLE

#: Default number of records per chunk (one write transaction each).
DEFAULT_CHUNK_SIZE = 2_000


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
            raise InvalidArgument("a pipeline needs at least one step")
        for s in steps:
            if not isinstance(s, Step):
                raise InvalidArgument(f"{s!r} is not a step; decorate it with @lk.step(...)")
        names = [s.name for s in steps]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise InvalidArgument(f"step names must be unique; repeated: {', '.join(duplicated)}")
        if steps[0].kind == StepKind.MERGE:
            raise InvalidArgument("the first step cannot be a merge step")
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
        delimiter: str | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        fail_fast: bool = False,
        progress: bool | None = None,
        parameters: dict[str, Any] | None = None,
        openlineage: Any = None,
        executor: Any = None,
    ) -> RunResult:
        """Run the pipeline over ``source`` and record lineage into the store ``db``.

        Parameters
        ----------
        source : path, DataFrame or iterable of dicts
            See :func:`lineage_kit.sources.open_source`.
        db : str or PathLike, default "lineage.db"
            The store: a SQLite file or a ``postgresql://`` URL; created if missing.
        key : str, list of str, or callable, default "key"
            The record key field, several fields for a composite key, or a function.
        format : {"json", "jsonl", "csv"}, optional
            Overrides the format guessed from the file suffix.
        delimiter : str, optional
            A CSV file's field delimiter; judged from its header when omitted
            (see :func:`lineage_kit.sources.sniff_delimiter`).
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
        executor : distributed.Client, optional
            Run the chunks on this Dask cluster (extra ``lineage_kit[dask]``): workers
            run the steps and write each chunk, exactly once, into ``db`` (a
            PostgreSQL URL; a SQLite file only for workers on this machine). The same
            input gives the same lineage as without it; see
            :mod:`lineage_kit.distributed` for what the driver keeps exact.

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
            A bad argument (``chunk_size`` < 1, an unusable ``key``, a SQLite ``db``
            with an ``executor`` whose workers are on another host).
        """
        if not isinstance(chunk_size, int) or chunk_size < 1:
            raise InvalidArgument(f"chunk_size must be a positive integer, not {chunk_size!r}")
        cluster = _cluster(executor, db)
        src = (
            source
            if isinstance(source, Source)
            else open_source(source, key=key, format=format, delimiter=delimiter)
        )
        params = {
            "key": key if not callable(key) else getattr(key, "__name__", "callable"),
            "chunk_size": chunk_size,
            "fail_fast": fail_fast,
            **(cluster.executor_parameters(executor) if cluster else {}),
            **(parameters or {}),
        }
        try:
            params_json = json.dumps(params, default=str)
        except UNSTORABLE as exc:
            raise InvalidArgument(f"parameters must be JSON-serialisable: {exc}") from None
        listener = _listener(openlineage)

        started = time.perf_counter()
        # Read the first chunk before touching the store: a missing, empty or
        # malformed file fails here and nothing is created or written.
        blocks = chunked(src.items(), chunk_size)
        first = next(blocks, None)
        if first is not None and (problem := absent_key_fields(first, src.key, src.delimiter)):
            raise InputError(problem, path=src.path)
        blocks = chain([first], blocks) if first is not None else iter(())
        backend = open_backend(db, create=True)
        try:
            backend.mark_dead_runs(now())
            run_id = new_run_id()
            backend.begin_run(
                RunStart(
                    run_id, self.name, now(), src.path, params_json, __version__, *this_writer()
                ),
                [
                    StepRow(run_id, i, s.name, s.kind, source, s.destination, s.description)
                    for i, (s, source) in enumerate(zip(self.steps, self.sources, strict=True))
                ],
            )
            if listener is not None:
                listener.run_started(backend, run_id)
            if cluster is None:
                state = Run(
                    self.steps,
                    backend,
                    run_id,
                    fail_fast,
                    fresh_input=src.fresh,
                    source_frame=src.frame,
                    listener=listener,
                )
            else:
                state = cluster.DaskRun(
                    self.steps,
                    backend,
                    run_id,
                    fail_fast,
                    client=executor,
                    db=cluster.worker_location(db),
                    fresh_input=src.fresh,
                    listener=listener,
                )
            status, error = RunStatus.COMPLETED, None
            try:
                with noted_interrupts() as interrupted:
                    state.execute(checked(blocks, interrupted), chunk_size, progress)
                    if interrupted():  # a Ctrl-C raised where it was lost (interrupts.py)
                        raise KeyboardInterrupt
            except InputError:
                backend.discard_run(run_id)
                _ended(listener, backend, run_id)
                raise
            except Abort as exc:
                status, error = RunStatus.FAILED, exc.error
            except BaseException as exc:
                # Ctrl-C, a full disk or our own bug: keep what was written as evidence.
                stopped = isinstance(exc, KeyboardInterrupt)
                ended = RunStatus.INTERRUPTED if stopped else RunStatus.FAILED
                state.finish(src, ended, error_text(exc))
                _ended(listener, backend, run_id)
                raise
            if status == RunStatus.COMPLETED and (state.n_rejected or state.n_failed):
                status = RunStatus.COMPLETED_WITH_ERRORS
            state.finish(src, status, error)
            _ended(listener, backend, run_id)
            result = RunResult(
                run_id=run_id,
                status=status,
                db=redact(db),
                n_input=state.n_input,
                n_published=state.n_published,
                n_rejected=state.n_rejected,
                n_failed=state.n_failed,
                n_entries=state.n_entries,
                elapsed_seconds=time.perf_counter() - started,
                error=error,
            )
        finally:
            backend.close()
        if status == RunStatus.FAILED and fail_fast:
            raise StepError(f"run {run_id} stopped (fail_fast): {error}", result)
        return result


def _cluster(executor: Any, db: Any) -> Any:
    """The Dask runner module for ``executor=`` (None: a local run, nothing imported).

    Raises
    ------
    InvalidArgument
        A SQLite ``db`` with a scheduler or workers on another host.
    """
    if executor is None:
        return None
    from . import distributed

    distributed.refuse_unreachable_sqlite(db, distributed.cluster_addresses(executor))
    return distributed


def _listener(openlineage: Any) -> Any:
    """The run listener for ``openlineage=`` (None: no events)."""
    if openlineage is None or openlineage is False:
        return None
    from .export.emit import listener_for  # only the emitter, no analysis module

    return listener_for(openlineage)


def _ended(listener: Any, backend: Backend, run_id: str) -> None:
    if listener is not None:
        listener.run_ended(backend, run_id)


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
        The store: a SQLite file or a ``postgresql://`` URL; created if missing.
    key : str, list of str or callable, default "key"
        Which field (or fields, or function) identifies a record.
    steps : sequence of Step, optional
        Defaults to :data:`lineage_kit.steps.DEFAULT_STEPS`.
    **options
        Passed to :meth:`Pipeline.run` (``format``, ``delimiter``, ``chunk_size``,
        ``fail_fast``, ``progress``, ``parameters``, ``openlineage``, ``executor``).

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
    >>> result = lk.run_pipeline("data/sample_input.json", db="lineage.db", progress=False)
    >>> result.status, result.n_published
    ('completed', 30)
    """
    pipeline = Pipeline(steps if steps is not None else DEFAULT_STEPS)
    return pipeline.run(source, db, key=key, **options)


__all__ = ["Pipeline", "RunResult", "Step", "run_pipeline", "step"]
