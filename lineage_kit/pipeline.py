"""Pipelines: steps run over chunks of records, with lineage recorded for each.

A step only transforms values. The pipeline records, for every record and every
step, one lineage entry linked to its parent entries, with the step's outcome and
the value afterwards. Chunks are computed in memory and written in one
transaction each (all steps of the chunk together, so a reader never sees half a
chunk); parent ids are known in memory, never queried.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import chain, islice
from json.encoder import c_make_encoder as _c_make_encoder
from json.encoder import encode_basestring as _encode_str
from typing import Any

from . import __version__
from .errors import InputError, StepError
from .sources import KeySpec, Source, SourceItem, open_source
from .store import LineageStore
from .store import writer as w
from .store.liveness import this_writer, writer_alive

#: Default number of records per chunk (one write transaction each).
DEFAULT_CHUNK_SIZE = 2_000

_KINDS = ("map", "merge", "split")
_OK, _REJECTED, _FAILED = 0, 1, 2  # outcome ranks: the worst outcome of a record wins
_STATUS = ("ok", "rejected", "failed")


class Reject(Exception):
    """Raise inside a step to reject the current record with a reason code.

    Parameters
    ----------
    reason : str
        A short, stable code such as ``"negative_amount"``.
    message : str, optional
        A human explanation.

    Examples
    --------
    >>> @step("validate")
    ... def validate(record):
    ...     if record["amount"] < 0:
    ...         raise Reject("negative_amount", f"amount is {record['amount']}")
    ...     return record
    """

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(message or reason)
        self.reason = reason
        self.message = message or reason


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

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ValueError("a step needs a non-empty name")
        if self.kind not in _KINDS:
            raise ValueError(f"step {self.name!r}: kind must be one of {_KINDS}, not {self.kind!r}")
        if self.kind == "merge" and self.group_by is None:
            raise ValueError(f"merge step {self.name!r} needs group_by=(key, record) -> group")
        if self.batch and self.kind != "map":
            raise ValueError(f"step {self.name!r}: batch=True applies to map steps only")

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

    Returns
    -------
    callable
        A decorator turning a function into a :class:`Step`.

    Raises
    ------
    ValueError
        ``kind`` is unknown, a merge step lacks ``group_by``, or ``batch`` is used on a
        merge or split step.

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

    def summary(self) -> str:
        """A short, human summary (what the CLI prints)."""
        lines = [
            f"run        {self.run_id}",
            f"status     {self.status}",
            f"input      {self.n_input}",
            f"published  {self.n_published}",
            f"rejected   {self.n_rejected}",
            f"failed     {self.n_failed}",
            f"entries    {self.n_entries}",
            f"store      {self.db}",
            f"elapsed    {self.elapsed_seconds:.3f} s",
        ]
        if self.error:
            lines.append(f"error      {self.error}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from html import escape

        rows = "".join(
            f"<tr><th style='text-align:left'>{escape(k)}</th><td>{escape(str(v))}</td></tr>"
            for k, v in (
                ("run", self.run_id),
                ("status", self.status),
                ("input", self.n_input),
                ("published", self.n_published),
                ("rejected", self.n_rejected),
                ("failed", self.n_failed),
                ("entries", self.n_entries),
                ("store", self.db),
                ("elapsed", f"{self.elapsed_seconds:.3f} s"),
            )
        )
        return f"<table><caption>lineage_kit run</caption>{rows}</table>"


# ---------------------------------------------------------------------- engine


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _not_serializable(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _dumps(value: Any) -> str:
    if _c_make_encoder is None:  # an interpreter without json's C accelerator
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    else:
        # Exactly what that json.dumps call runs inside (same text, same errors, a fresh
        # circular-reference memo per call), minus building a JSONEncoder and checking
        # its keywords on every call: a third of the cost for a small record.
        text = "".join(
            _c_make_encoder(
                {}, _not_serializable, _encode_str, None, ":", ",", False, False, False
            )(value, 0)
        )
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            # Lone surrogates (say from a "\ud800" escape) are not UTF-8, so SQLite
            # cannot take them raw; as JSON escapes they load back to the same string.
            text = json.dumps(value, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text


#: What ``json.dumps`` raises for a value that cannot be stored as strict JSON: not
#: JSON types, NaN/Infinity, an int too long to print, or nesting deeper than the stack.
_UNSTORABLE = (TypeError, ValueError, RecursionError)


def _hash(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def value_hash(text: str) -> str:
    """The hash stored in ``lineage.value_hash`` for a stored JSON value."""
    return _hash(text)


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class _Abort(Exception):
    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


# An item in flight: (key, value, value_json, value_hash, parent, roots, split)
#   parent: index of its entry in the current chunk (int), a tuple of entry ids
#           written by an earlier chunk, or None (fresh from the source)
#   roots:  the input ordinal (int) or ordinals (tuple) it descends from
#   split:  whether a split step is on its path (its roots may end several times)


class _Chunk:
    """Rows of one chunk, in the order their entry ids will be assigned."""

    __slots__ = ("absolute_parents", "entries", "local_parents", "values")

    def __init__(self) -> None:
        self.entries: list[tuple] = []
        self.values: list[str] = []
        self.local_parents: list[tuple[int, int]] = []
        self.absolute_parents: list[tuple[int, int]] = []

    def add(self, entry: tuple, value_json: str, parent: Any) -> int:
        index = len(self.entries)
        self.entries.append(entry)
        self.values.append(value_json)
        if type(parent) is int:
            self.local_parents.append((index, parent))
        elif parent:
            self.absolute_parents.extend((index, p) for p in parent)
        return index


class _Run:
    """The state of one pipeline run (counts, timing, merge buffers)."""

    def __init__(self, pipeline: Pipeline, store: LineageStore, run_id: str, fail_fast: bool):
        self.pipeline = pipeline
        self.store = store
        self.run_id = run_id
        self.fail_fast = fail_fast
        self.counts = [0, 0, 0]  # published, rejected, failed
        self.n_input = 0
        self.n_entries = 0
        self.pending: dict[int, int] = {}  # root -> worst outcome, for split records
        n = len(pipeline.steps)
        self.busy = [0.0] * n
        self.first_seen: list[str | None] = [None] * n
        self.last_seen: list[str | None] = [None] * n

    # -- outcomes

    def end(self, roots: Any, split: bool, outcome: int) -> None:
        if type(roots) is int:
            roots = (roots,)
        if split:
            pending = self.pending
            for r in roots:
                if pending.get(r, -1) < outcome:
                    pending[r] = outcome
        else:
            self.counts[outcome] += len(roots)

    def settle(self) -> None:
        for outcome in self.pending.values():
            self.counts[outcome] += 1
        self.pending.clear()

    # -- writing

    def flush(self, chunk: _Chunk) -> int:
        if not chunk.entries:
            return 0
        base = w.write_chunk(
            self.store.con,
            chunk.entries,
            chunk.values,
            chunk.local_parents,
            chunk.absolute_parents,
        )
        self.n_entries += len(chunk.entries)
        return base

    # -- steps

    def apply(self, position: int, items: list[tuple], chunk: _Chunk) -> list[tuple]:
        st = self.pipeline.steps[position]
        started = time.perf_counter()
        stamp = _now()
        if self.first_seen[position] is None:
            self.first_seen[position] = stamp
        try:
            if st.kind == "split":
                out = self._split(st, position, items, chunk, stamp)
            elif st.batch:
                out = self._batch(st, position, items, chunk, stamp)
            else:
                out = self._map(st, position, items, chunk, stamp)
        finally:
            self.busy[position] += time.perf_counter() - started
            self.last_seen[position] = _now()
        return out

    def _stop(self, position: int, key: Any, message: str) -> None:
        if self.fail_fast:
            name = self.pipeline.steps[position].name
            raise _Abort(f"step {name!r} failed on record {key!r}: {message}")

    def _terminal(self, chunk, position, stamp, item, status, reason, error) -> None:
        key, value, vjson, vhash, parent, roots, split = item
        if vjson is None:
            vjson, vhash = _stored_form(value)
        chunk.add(
            (self.run_id, position, key, _STATUS[status], reason, error, stamp, vhash),
            vjson,
            parent,
        )
        self.end(roots, split, status)

    def _map(
        self,
        st: Step,
        position: int,
        items,
        chunk: _Chunk,
        stamp: str,
        results: Iterator[Any] | None = None,
    ) -> list[tuple]:
        """Apply a map step record by record (``results``: outputs a batch step made)."""
        run_id, identity, out = self.run_id, st.identity, []
        func = st.func if results is None else (lambda _value: next(results))
        # chunk.add() inlined for the common case (one parent in this chunk): this loop
        # runs once per record and step.
        add, entries, values = chunk.add, chunk.entries, chunk.values
        add_entry, add_value = entries.append, values.append
        add_local = chunk.local_parents.append
        append = out.append
        for item in items:
            key, value, vjson, vhash, parent, roots, split = item
            if identity:
                new = value
                if vjson is None:
                    try:
                        vjson = _dumps(value)
                    except _UNSTORABLE as exc:
                        self._terminal(
                            chunk,
                            position,
                            stamp,
                            item,
                            _REJECTED,
                            "invalid_value",
                            f"value cannot be stored as JSON: {exc}",
                        )
                        continue
                    vhash = _hash(vjson)
                njson, nhash = vjson, vhash
            else:
                try:
                    new = func(value)
                except Reject as exc:
                    self._terminal(chunk, position, stamp, item, _REJECTED, exc.reason, exc.message)
                    continue
                except Exception as exc:
                    self._terminal(chunk, position, stamp, item, _FAILED, None, _error_text(exc))
                    self._stop(position, key, _error_text(exc))
                    continue
                if not isinstance(new, dict):
                    message = (
                        f"TypeError: step returned {type(new).__name__}, not a dict; "
                        "raise lk.Reject to drop a record"
                    )
                    self._terminal(chunk, position, stamp, item, _FAILED, None, message)
                    self._stop(position, key, message)
                    continue
                try:
                    njson = _dumps(new)
                except _UNSTORABLE as exc:
                    message = f"ValueError: step output cannot be stored as JSON: {exc}"
                    self._terminal(chunk, position, stamp, item, _FAILED, None, message)
                    self._stop(position, key, message)
                    continue
                nhash = _hash(njson)
            if type(parent) is int:
                index = len(entries)
                add_entry((run_id, position, key, "ok", None, None, stamp, nhash))
                add_value(njson)
                add_local((index, parent))
            else:
                index = add((run_id, position, key, "ok", None, None, stamp, nhash), njson, parent)
            append((key, new, njson, nhash, index, roots, split))
        return out

    def _batch(self, st: Step, position: int, items, chunk: _Chunk, stamp: str) -> list[tuple]:
        try:
            results = st.func([item[1] for item in items])
            if not isinstance(results, list) or len(results) != len(items):
                raise TypeError(
                    f"batch step must return a list of {len(items)} records, got "
                    f"{type(results).__name__} of length {len(results) if hasattr(results, '__len__') else '?'}"  # noqa: E501
                )
        except Reject as exc:
            for item in items:
                self._terminal(chunk, position, stamp, item, _REJECTED, exc.reason, exc.message)
            return []
        except Exception as exc:
            for item in items:
                self._terminal(chunk, position, stamp, item, _FAILED, None, _error_text(exc))
            if items:
                self._stop(position, items[0][0], _error_text(exc))
            return []
        return self._map(st, position, items, chunk, stamp, results=iter(results))

    def _split(self, st: Step, position: int, items, chunk: _Chunk, stamp: str) -> list[tuple]:
        run_id, out = self.run_id, []
        for item in items:
            key, value, _vjson, _vhash, parent, roots, _split = item
            try:
                children = st.func(value)
                if not isinstance(children, list | tuple):
                    raise TypeError(f"split step must return a list, got {type(children).__name__}")
                pairs = []
                for i, child in enumerate(children, start=1):
                    if isinstance(child, tuple) and len(child) == 2:
                        child_key, child_value = child
                        child_key = str(child_key)
                    else:
                        child_key, child_value = f"{key}#{i}", child
                    if not isinstance(child_value, dict):
                        raise TypeError(f"split child {i} is a {type(child_value).__name__}")
                    pairs.append((child_key, child_value, _dumps(child_value)))
            except Reject as exc:
                self._terminal(chunk, position, stamp, item, _REJECTED, exc.reason, exc.message)
                continue
            except Exception as exc:
                self._terminal(chunk, position, stamp, item, _FAILED, None, _error_text(exc))
                self._stop(position, key, _error_text(exc))
                continue
            if not pairs:
                self._terminal(
                    chunk,
                    position,
                    stamp,
                    item,
                    _REJECTED,
                    "split_empty",
                    "split step returned no records",
                )
                continue
            for child_key, child_value, cjson in pairs:
                chash = _hash(cjson)
                index = chunk.add(
                    (run_id, position, child_key, "ok", None, None, stamp, chash), cjson, parent
                )
                out.append((child_key, child_value, cjson, chash, index, roots, True))
        return out

    def merge(self, position: int, members: list[tuple], chunk: _Chunk) -> list[tuple]:
        """Apply a merge step to one group (members carry absolute entry ids)."""
        st = self.pipeline.steps[position]
        started = time.perf_counter()
        stamp = _now()
        if self.first_seen[position] is None:
            self.first_seen[position] = stamp
        group_key = members[0][0]
        parents = tuple(p for m in members for p in m[4])
        roots = tuple(sorted({r for m in members for r in _as_tuple(m[5])}))
        split = any(m[6] for m in members)
        try:
            merged = st.func([m[1] for m in members])
            if not isinstance(merged, dict):
                raise TypeError(f"merge step returned {type(merged).__name__}, not a dict")
            mjson = _dumps(merged)
        except Reject as exc:
            status, reason, error = _REJECTED, exc.reason, exc.message
        except Exception as exc:
            status, reason, error = _FAILED, None, _error_text(exc)
        else:
            mhash = _hash(mjson)
            index = chunk.add(
                (self.run_id, position, group_key, "ok", None, None, stamp, mhash), mjson, parents
            )
            self.busy[position] += time.perf_counter() - started
            self.last_seen[position] = _now()
            return [(group_key, merged, mjson, mhash, index, roots, split)]
        # A failed merge stores its members' values as a JSON array.
        ajson = "[" + ",".join(m[2] for m in members) + "]"
        chunk.add(
            (self.run_id, position, group_key, _STATUS[status], reason, error, stamp, _hash(ajson)),
            ajson,
            parents,
        )
        self.end(roots, split, status)
        self.busy[position] += time.perf_counter() - started
        self.last_seen[position] = _now()
        if status == _FAILED:
            self._stop(position, group_key, error or "")
        return []


def _as_tuple(roots: Any) -> tuple:
    return (roots,) if type(roots) is int else roots


def _stored_form(value: Any) -> tuple[str, str]:
    """The JSON stored for a value; an unstorable value is kept as its repr string."""
    try:
        text = _dumps(value)
    except _UNSTORABLE:
        try:
            text = json.dumps(repr(value))
        except _UNSTORABLE:  # too deep or an int too long even for repr()
            text = json.dumps(f"<unprintable {type(value).__name__}>")
    return text, _hash(text)


def _chunks(iterable: Iterable[Any], size: int) -> Iterator[list[Any]]:
    it = iter(iterable)
    while chunk := list(islice(it, size)):
        yield chunk


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
        except _UNSTORABLE as exc:
            raise ValueError(f"parameters must be JSON-serialisable: {exc}") from None

        started = time.perf_counter()
        # Read the first chunk before touching the store: a missing, empty or
        # malformed file fails here and nothing is created or written.
        blocks = _chunks(src.items(), chunk_size)
        first = next(blocks, None)
        blocks = chain([first], blocks) if first is not None else iter(())
        store = LineageStore(db, create=True)
        try:
            _mark_dead_runs(store)
            run_id = str(uuid.uuid4())
            w.begin_run(
                store.con,
                (
                    run_id,
                    self.name,
                    _now(),
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
            state = _Run(self, store, run_id, fail_fast)
            status, error = "completed", None
            try:
                self._execute(state, blocks, chunk_size, progress)
            except InputError:
                w.discard_run(store.con, run_id)
                raise
            except _Abort as exc:
                status, error = "failed", exc.error
            except BaseException as exc:
                # Our own bug, a full disk or Ctrl-C: keep what was written as evidence.
                self._finish(state, src, "failed", _error_text(exc))
                raise
            if status == "completed" and (state.counts[1] or state.counts[2]):
                status = "completed_with_errors"
            self._finish(state, src, status, error)
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
            raise StepError(f"run {run_id} stopped (fail_fast): {error}")
        return result

    # -- internals

    def _finish(self, state: _Run, src: Source, status: str, error: str | None) -> None:
        state.settle()
        try:
            w.finish_run(
                state.store.con,
                state.run_id,
                status=status,
                finished_at=_now(),
                input_sha256=src.sha256,
                counts=(state.n_input, *state.counts),
                error=error,
                step_times=[
                    (state.first_seen[i], state.last_seen[i], state.busy[i], i)
                    for i in range(len(self.steps))
                ],
            )
        except Exception:
            if status == "failed":
                return  # the original error is more useful than this one
            raise

    def _execute(
        self,
        state: _Run,
        blocks: Iterator[list[SourceItem]],
        chunk_size: int,
        progress: bool | None,
    ) -> None:
        merges = [i for i, s in enumerate(self.steps) if s.kind == "merge"]
        end = merges[0] if merges else len(self.steps)
        bar = _progress_bar(progress)
        barrier: list[tuple] = []
        try:
            ordinal = 0
            for block in blocks:
                chunk = _Chunk()
                items = self._admit(state, block, ordinal, chunk)
                ordinal += len(block)
                state.n_input += len(block)
                try:
                    reached = self._through(state, items, 0, end, chunk)
                except _Abort:
                    state.flush(chunk)  # keep the failed entry and what led to it
                    raise
                self._settle_segment(state, reached, end, chunk, barrier)
                if bar is not None:
                    bar.update(len(block))
            self._after_merges(state, merges, barrier, chunk_size)
        finally:
            if bar is not None:
                bar.close()

    def _admit(
        self, state: _Run, block: list[SourceItem], ordinal: int, chunk: _Chunk
    ) -> list[tuple]:
        """Turn source items into items in flight; reject bad and duplicate ones."""
        keys = [it.key for it in block if it.reason is None]
        seen = (
            w.existing_keys(state.store.con, state.run_id, 0, json.dumps(keys)) if keys else set()
        )
        items, stamp = [], _now()
        for i, it in enumerate(block, start=ordinal):
            reason, message = it.reason, it.message
            if reason is None:
                if it.key in seen:
                    reason, message = "duplicate_key", f"key {it.key!r} already seen in this run"
                else:
                    seen.add(it.key)
            if reason is None:
                items.append((it.key, it.value, None, None, None, i, False))
            else:
                vjson, vhash = _stored_form(it.value)
                chunk.add(
                    (state.run_id, 0, it.key, "rejected", reason, message, stamp, vhash),
                    vjson,
                    None,
                )
                state.counts[_REJECTED] += 1
        return items

    def _through(
        self, state: _Run, items: list[tuple], start: int, end: int, chunk: _Chunk
    ) -> list[tuple]:
        for position in range(start, end):
            if not items:
                break
            items = state.apply(position, items, chunk)
        return items

    def _settle_segment(
        self, state: _Run, reached: list[tuple], end: int, chunk: _Chunk, barrier: list[tuple]
    ) -> None:
        """Write the chunk; records past the last step are published, others wait."""
        base = state.flush(chunk)
        if end == len(self.steps):
            for item in reached:
                state.end(item[5], item[6], _OK)
        else:
            barrier.extend((*item[:4], (base + item[4],), *item[5:]) for item in reached)

    def _after_merges(
        self, state: _Run, merges: list[int], barrier: list[tuple], chunk_size: int
    ) -> None:
        for n, position in enumerate(merges):
            end = merges[n + 1] if n + 1 < len(merges) else len(self.steps)
            group_by = self.steps[position].group_by
            groups: dict[str, list[tuple]] = {}
            chunk = _Chunk()
            stamp = _now()
            for item in barrier:
                try:
                    group = group_by(item[0], item[1])
                    if group is None:
                        raise ValueError("group_by returned None")
                except Exception as exc:
                    self._terminal_group_error(state, position, item, chunk, stamp, exc)
                    continue
                groups.setdefault(str(group), []).append((str(group), *item[1:]))
            barrier = []
            for block in _chunks(groups.values(), chunk_size):
                try:
                    for members in block:
                        merged = state.merge(position, members, chunk)
                        barrier.extend(self._through(state, merged, position + 1, end, chunk))
                except _Abort:
                    state.flush(chunk)
                    raise
                base = state.flush(chunk)
                if end == len(self.steps):
                    for item in barrier:
                        state.end(item[5], item[6], _OK)
                    barrier = []
                else:
                    barrier = [(*it[:4], (base + it[4],), *it[5:]) for it in barrier]
                chunk = _Chunk()
            state.flush(chunk)

    @staticmethod
    def _terminal_group_error(
        state: _Run, position: int, item: tuple, chunk: _Chunk, stamp: str, exc: Exception
    ) -> None:
        state._terminal(
            chunk, position, stamp, item, _FAILED, None, f"group_by raised {_error_text(exc)}"
        )
        state._stop(position, item[0], _error_text(exc))


def _mark_dead_runs(store: LineageStore) -> None:
    """Persist ``interrupted`` for runs whose writer on this host is gone."""

    dead = [
        run_id
        for run_id, host, pid, started in w.running_runs(store.con)
        if not writer_alive(host, pid, started)
    ]
    w.mark_interrupted(store.con, dead, _now())


def _progress_bar(progress: bool | None) -> Any:
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(unit=" records", desc="lineage-kit", leave=False)


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
        ``progress``, ``parameters``).

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


__all__ = ["Pipeline", "Reject", "RunResult", "Step", "run_pipeline", "step"]
