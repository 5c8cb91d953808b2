"""The runner behind :meth:`Pipeline.run`: steps applied to chunks of records.

Chunks are computed in memory and written in one transaction each (all steps of the
chunk together, so a reader never sees half a chunk). Entry ids are assigned by
SQLite in insertion order, so parent links are built from indexes known in memory,
never looked up. Merge steps are barriers: their inputs wait until every chunk
before them is written.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from itertools import islice
from typing import TYPE_CHECKING, Any

from .errors import Reject
from .frame_steps import FrameItems, apply_frame
from .sources import key_or_reason
from .store import writer as w
from .store.liveness import writer_alive
from .values import UNSTORABLE, stored_form, to_json, value_hash

if TYPE_CHECKING:
    from .pipeline import Pipeline, Step
    from .sources import Source, SourceItem
    from .store import LineageStore

_OK, _REJECTED, _FAILED = 0, 1, 2  # outcome ranks: the worst outcome of a record wins
_STATUS = ("ok", "rejected", "failed")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class Abort(Exception):
    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


# An item in flight: (key, value, value_json, value_hash, parent, roots, split)
#   value_json: the JSON stored for the value (None only fresh from the source, before
#           a step needed it); value_hash may lag behind it (None) until it is stored
#   parent: index of its entry in the current chunk (int), a tuple of entry ids
#           written by an earlier chunk, or None (fresh from the source)
#   roots:  the input ordinal (int) or ordinals (tuple) it descends from
#   split:  whether a split step is on its path (its roots may end several times)
#
# What is recorded for a value is its JSON text, made before the value is handed to a
# step that might change it in place (every step but the pure built-ins). A step is
# handed a fresh copy (the JSON loaded again) where another may hold the same object:
# the caller's own records, or what a user's step returned; see copies_needed().


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


class Run:
    """The state of one pipeline run (counts, timing, merge buffers)."""

    def __init__(
        self,
        pipeline: Pipeline,
        store: LineageStore,
        run_id: str,
        fail_fast: bool,
        *,
        fresh_input: bool = False,
        source_frame: Any = None,
        listener: Any = None,
    ):
        self.pipeline = pipeline
        self.listener = listener  # told when each step starts (live OpenLineage events)
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
        self.copy_input = copies_needed(pipeline.steps, fresh_input)
        self.source_frame = source_frame

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

    @contextmanager
    def _timing(self, position: int) -> Iterator[str]:
        """Account the block's time to a step; yields the stamp for its entries."""
        started = time.perf_counter()
        stamp = now()
        if self.first_seen[position] is None:
            self.first_seen[position] = stamp
            if self.listener is not None:
                self.listener.step_started(position, stamp)
        try:
            yield stamp
        finally:
            self.busy[position] += time.perf_counter() - started
            self.last_seen[position] = now()

    def apply(self, position: int, items: list[tuple], chunk: _Chunk) -> list[tuple]:
        st = self.pipeline.steps[position]
        with self._timing(position) as stamp:
            if not st.pure:
                items = self._guard(position, items)
            if st.frame:
                return apply_frame(self, st, position, items, chunk, stamp)
            if st.identity and isinstance(items, FrameItems):
                out = FrameItems(self._map(st, position, items, chunk, stamp))
                out.frame = items.frame if len(out) == len(items) else None
                return out
            if st.kind == "split":
                return self._split(st, position, items, chunk, stamp)
            if st.batch:
                return self._batch(st, position, items, chunk, stamp)
            return self._map(st, position, items, chunk, stamp)

    def source_frame_for(self, position: int) -> Any:
        """The input DataFrame, when the records reach ``position`` as they were read."""
        if self.source_frame is None:
            return None
        if all(s.identity for s in self.pipeline.steps[:position]):
            return self.source_frame
        return None

    def _guard(self, position: int, items: list[tuple]) -> list[tuple]:
        """Fix the stored JSON of each input before a step that may change it runs.

        Where :func:`copies_needed` says so, the step is handed the JSON loaded again
        (the value exactly as recorded) instead of an object someone else holds.
        """
        copy = self.copy_input[position]
        if not items or (not copy and items[0][2] is not None):
            return items
        loads, out = json.loads, []
        for key, value, vjson, vhash, parent, roots, split in items:
            if vjson is None:
                try:
                    vjson = to_json(value)
                except UNSTORABLE:
                    # Kept as its repr; no faithful copy to hand over, so the object is.
                    vjson, vhash = stored_form(value)
                    out.append((key, value, vjson, vhash, parent, roots, split))
                    continue
            out.append((key, loads(vjson) if copy else value, vjson, vhash, parent, roots, split))
        return out

    def _stop(self, position: int, key: Any, message: str) -> None:
        if self.fail_fast:
            name = self.pipeline.steps[position].name
            raise Abort(f"step {name!r} failed on record {key!r}: {message}")

    def _terminal(self, chunk, position, stamp, item, status, reason, error) -> None:
        key, value, vjson, vhash, parent, roots, split = item
        if vjson is None:
            vjson, vhash = stored_form(value)
        elif vhash is None:
            vhash = value_hash(vjson)
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
                        vjson = to_json(value)
                    except UNSTORABLE as exc:
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
                    vhash = value_hash(vjson)
                elif vhash is None:
                    vhash = value_hash(vjson)
                njson, nhash = vjson, vhash
            else:
                try:
                    new = func(value)
                except Reject as exc:
                    self._terminal(chunk, position, stamp, item, _REJECTED, exc.reason, exc.message)
                    continue
                except Exception as exc:
                    self._terminal(chunk, position, stamp, item, _FAILED, None, error_text(exc))
                    self._stop(position, key, error_text(exc))
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
                    njson = to_json(new)
                except UNSTORABLE as exc:
                    message = f"ValueError: step output cannot be stored as JSON: {exc}"
                    self._terminal(chunk, position, stamp, item, _FAILED, None, message)
                    self._stop(position, key, message)
                    continue
                nhash = value_hash(njson)
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
                self._terminal(chunk, position, stamp, item, _FAILED, None, error_text(exc))
            if items:
                self._stop(position, items[0][0], error_text(exc))
            return []
        return self._map(st, position, items, chunk, stamp, results=iter(results))

    def _split(self, st: Step, position: int, items, chunk: _Chunk, stamp: str) -> list[tuple]:
        """Apply a split step; children's keys follow the sources' key rule, unique in the run.

        A child's key is its parent's key plus ``#1``, ``#2``, ... unless the step gives
        ``(key, record)`` pairs. A key no source would accept (None, a bool, a list,
        NaN) rejects the parent with the source's reason code; a key repeated among the
        children, or already the key of another record of the run (an input record's,
        another split child's), rejects the parent as ``duplicate_key``. Only a child
        may keep its own parent's key.
        """
        planned: list[tuple] = []  # (item, children, status, reason, error)
        stopped: tuple[Any, str] | None = None
        for item in items:
            try:
                children = _children(st.func(item[1]), item[0])
            except Reject as exc:
                planned.append((item, None, _REJECTED, exc.reason, exc.message))
                continue
            except Exception as exc:
                planned.append((item, None, _FAILED, None, error_text(exc)))
                if self.fail_fast:
                    stopped = (item[0], error_text(exc))
                    break
                continue
            if not children:
                planned.append(
                    (item, None, _REJECTED, "split_empty", "split step returned no records")
                )
            else:
                planned.append((item, children, _OK, None, None))
        taken = self._keys_taken([c[0] for p in planned if p[1] for c in p[1]], items, chunk)
        run_id, out = self.run_id, []
        for item, children, status, reason, error in planned:
            if children is not None:
                own = item[0]
                clash = next((c[0] for c in children if c[0] in taken and c[0] != own), None)
                if clash is None:
                    taken.update(c[0] for c in children)
                    for child_key, child_value, cjson in children:
                        chash = value_hash(cjson)
                        index = chunk.add(
                            (run_id, position, child_key, "ok", None, None, stamp, chash),
                            cjson,
                            item[4],
                        )
                        out.append((child_key, child_value, cjson, chash, index, item[5], True))
                    continue
                status, reason = _REJECTED, "duplicate_key"
                error = (
                    f"split child key {clash!r} is already the key of another record in this run"
                )
            self._terminal(chunk, position, stamp, item, status, reason, error)
        if stopped is not None:
            self._stop(position, *stopped)
        return out

    def _keys_taken(self, keys: list[str], items: list[tuple], chunk: _Chunk) -> set[str]:
        """The keys among ``keys`` already used in the run: written, or in this chunk."""
        if not keys:
            return set()
        taken = set(w.existing_keys(self.store.con, self.run_id, json.dumps(keys)))
        taken.update(entry[2] for entry in chunk.entries)
        taken.update(item[0] for item in items)  # a first step's inputs have no entry yet
        return taken

    def merge(self, position: int, members: list[tuple], chunk: _Chunk) -> list[tuple]:
        """Apply a merge step to one group (members carry absolute entry ids)."""
        with self._timing(position) as stamp:
            out, failure = self._merge(position, members, chunk, stamp)
        if failure is not None:
            self._stop(position, members[0][0], failure)
        return out

    def _merge(
        self, position: int, members: list[tuple], chunk: _Chunk, stamp: str
    ) -> tuple[list[tuple], str | None]:
        st = self.pipeline.steps[position]
        group_key = members[0][0]
        parents = tuple(p for m in members for p in m[4])
        roots = tuple(sorted({r for m in members for r in _as_tuple(m[5])}))
        split = any(m[6] for m in members)
        try:
            merged = st.func([m[1] for m in members])
            if not isinstance(merged, dict):
                raise TypeError(f"merge step returned {type(merged).__name__}, not a dict")
            mjson = to_json(merged)
        except Reject as exc:
            status, reason, error = _REJECTED, exc.reason, exc.message
        except Exception as exc:
            status, reason, error = _FAILED, None, error_text(exc)
        else:
            mhash = value_hash(mjson)
            index = chunk.add(
                (self.run_id, position, group_key, "ok", None, None, stamp, mhash), mjson, parents
            )
            return [(group_key, merged, mjson, mhash, index, roots, split)], None
        # A merge that did not succeed stores its members' values as a JSON array.
        ajson = "[" + ",".join(m[2] for m in members) + "]"
        entry = (self.run_id, position, group_key, _STATUS[status], reason, error, stamp)
        chunk.add((*entry, value_hash(ajson)), ajson, parents)
        self.end(roots, split, status)
        return [], (error if status == _FAILED else None)

    # -- a whole run

    def finish(self, src: Source, status: str, error: str | None) -> None:
        self.settle()
        try:
            w.finish_run(
                self.store.con,
                self.run_id,
                status=status,
                finished_at=now(),
                input_sha256=src.sha256,
                counts=(self.n_input, *self.counts),
                error=error,
                step_times=[
                    (self.first_seen[i], self.last_seen[i], self.busy[i], i)
                    for i in range(len(self.pipeline.steps))
                ],
            )
        except Exception:
            if status in ("failed", "interrupted"):
                return  # the original error is more useful than this one
            raise

    def execute(
        self,
        blocks: Iterator[list[SourceItem]],
        chunk_size: int,
        progress: bool | None,
    ) -> None:
        merges = [i for i, s in enumerate(self.pipeline.steps) if s.kind == "merge"]
        end = merges[0] if merges else len(self.pipeline.steps)
        bar = progress_bar(progress)
        barrier: list[tuple] = []
        try:
            ordinal = 0
            for block in blocks:
                chunk = _Chunk()
                items, refused = self._admit(block, ordinal)
                ordinal += len(block)
                self.n_input += len(block)
                try:
                    items = self.apply(0, items, chunk) if items else items
                except Abort:
                    self._refuse(refused, chunk)
                    self.flush(chunk)  # keep the failed entry and what led to it
                    raise
                # Refused records follow the first step's entries, so a duplicate
                # comes after the record it duplicates, in ids and in time.
                self._refuse(refused, chunk)
                try:
                    reached = self._through(items, 1, end, chunk)
                except Abort:
                    self.flush(chunk)
                    raise
                self._settle_segment(reached, end, chunk, barrier)
                if bar is not None:
                    bar.update(len(block))
            self._after_merges(merges, barrier, chunk_size)
        finally:
            if bar is not None:
                bar.close()

    def _admit(self, block: list[SourceItem], ordinal: int) -> tuple[list[tuple], list[tuple]]:
        """Split source items into items in flight and refused ``(item, reason, message)``.

        Records without a usable key, and keys already used in this run (one indexed
        query per chunk for earlier chunks: input records and split children), are
        refused.
        """
        keys = [it.key for it in block if it.reason is None]
        con, run_id = self.store.con, self.run_id
        seen = w.existing_keys(con, run_id, json.dumps(keys)) if keys else {}
        items, refused = [], []
        for i, it in enumerate(block, start=ordinal):
            if it.reason is not None:
                refused.append((it, it.reason, it.message))
            elif it.key in seen:
                # a key first used at a later step is a split child's
                by = " (as a split step's child)" if seen[it.key] else ""
                message = f"key {it.key!r} already seen in this run{by}"
                refused.append((it, "duplicate_key", message))
            else:
                seen[it.key] = 0
                items.append((it.key, it.value, None, None, None, i, False))
        return items, refused

    def _refuse(self, refused: list[tuple], chunk: _Chunk) -> None:
        """Record refused source items as rejected entries at the first step."""
        stamp = now()
        for it, reason, message in refused:
            vjson, vhash = stored_form(it.value)
            chunk.add(
                (self.run_id, 0, it.key, "rejected", reason, message, stamp, vhash), vjson, None
            )
        self.counts[_REJECTED] += len(refused)
        refused.clear()

    def _through(self, items: list[tuple], start: int, end: int, chunk: _Chunk) -> list[tuple]:
        for position in range(start, end):
            if not items:
                break
            items = self.apply(position, items, chunk)
        return items

    def _settle_segment(
        self, reached: list[tuple], end: int, chunk: _Chunk, barrier: list[tuple]
    ) -> None:
        """Write the chunk; records past the last step are published, others wait."""
        base = self.flush(chunk)
        if end == len(self.pipeline.steps):
            for item in reached:
                self.end(item[5], item[6], _OK)
        else:
            barrier.extend((*item[:4], (base + item[4],), *item[5:]) for item in reached)

    def _after_merges(self, merges: list[int], barrier: list[tuple], chunk_size: int) -> None:
        for n, position in enumerate(merges):
            end = merges[n + 1] if n + 1 < len(merges) else len(self.pipeline.steps)
            group_by = self.pipeline.steps[position].group_by
            groups: dict[str, list[tuple]] = {}
            chunk = _Chunk()
            stamp = now()
            if self.copy_input[position]:
                barrier = [(it[0], json.loads(it[2]), *it[2:]) for it in barrier]
            for item in barrier:
                try:
                    group = group_by(item[0], item[1])
                except Exception as exc:
                    try:
                        self._terminal_group_error(position, item, chunk, stamp, exc)
                    except Abort:
                        self.flush(chunk)  # keep the failed entry (fail_fast)
                        raise
                    continue
                # Group keys follow the sources' key rule: 1 and "1" are one key, as
                # they are for trace(); None, bools and containers reject the record.
                text, reason, message = key_or_reason(group, "group")
                if text is None:
                    message = f"group_by gave no usable group key: {message}"
                    self._terminal(chunk, position, stamp, item, _REJECTED, reason, message)
                    continue
                groups.setdefault(text, []).append((text, *item[1:]))
            barrier = []
            for block in chunked(groups.values(), chunk_size):
                try:
                    for members in block:
                        merged = self.merge(position, members, chunk)
                        barrier.extend(self._through(merged, position + 1, end, chunk))
                except Abort:
                    self.flush(chunk)
                    raise
                base = self.flush(chunk)
                if end == len(self.pipeline.steps):
                    for item in barrier:
                        self.end(item[5], item[6], _OK)
                    barrier = []
                else:
                    barrier = [(*it[:4], (base + it[4],), *it[5:]) for it in barrier]
                chunk = _Chunk()
            self.flush(chunk)

    def _terminal_group_error(
        self, position: int, item: tuple, chunk: _Chunk, stamp: str, exc: Exception
    ) -> None:
        self._terminal(
            chunk, position, stamp, item, _FAILED, None, f"group_by raised {error_text(exc)}"
        )
        self._stop(position, item[0], error_text(exc))


def _children(children: Any, key: str) -> list[tuple[str, Any, str]]:
    """A split step's output as ``(key, value, value JSON)`` triples, keys checked.

    Raises
    ------
    Reject
        A child's key is unusable (the sources' reason code), or repeated.
    TypeError, ValueError
        The output is not a list of records or pairs, or a child cannot be stored.
    """
    if not isinstance(children, list | tuple):
        raise TypeError(f"split step must return a list, got {type(children).__name__}")
    out, seen = [], {}
    for i, child in enumerate(children, start=1):
        if isinstance(child, tuple) and len(child) == 2:
            given, child_value = child
            child_key, reason, message = key_or_reason(given, "key")
            if child_key is None:
                raise Reject(reason, f"split child {i}: {message}")
        else:
            child_key, child_value = f"{key}#{i}", child
        if child_key in seen:
            raise Reject(
                "duplicate_key",
                f"split children {seen[child_key]} and {i} share the key {child_key!r}",
            )
        seen[child_key] = i
        if not isinstance(child_value, dict):
            raise TypeError(f"split child {i} is a {type(child_value).__name__}")
        out.append((child_key, child_value, to_json(child_value)))
    return out


def copies_needed(steps: Sequence[Step], fresh_input: bool) -> list[bool]:
    """For each step: must it be handed copies of its input values?

    A step that is not pure may change its input in place. That is harmless (the
    input's JSON is already fixed) unless another holds the same objects: the caller
    (records given in memory) or other records (what a user's step returned may share
    objects between records, or with the step's own state).

    Examples
    --------
    >>> from lineage_kit.steps import ingest, normalize
    >>> from lineage_kit.pipeline import step
    >>> user = step("user")(lambda r: r)
    >>> copies_needed([ingest, normalize, user, user], fresh_input=True)
    [False, False, False, True]
    >>> copies_needed([ingest, user], fresh_input=False)
    [False, True]
    """
    out, owned = [], fresh_input
    for st in steps:
        if st.frame:  # handed a DataFrame copy; its rows may share the step's objects
            out.append(False)
            owned = False
        elif st.pure:
            out.append(False)
        else:
            out.append(not owned)
            owned = False  # a user's step: who else holds its output is unknown
    return out


def _as_tuple(roots: Any) -> tuple:
    return (roots,) if type(roots) is int else roots


def chunked(iterable: Iterable[Any], size: int) -> Iterator[list[Any]]:
    it = iter(iterable)
    while chunk := list(islice(it, size)):
        yield chunk


def mark_dead_runs(store: LineageStore) -> None:
    """Persist ``interrupted`` for runs whose writer on this host is gone."""

    dead = [
        run_id
        for run_id, host, pid, started in w.running_runs(store.con)
        if not writer_alive(host, pid, started)
    ]
    w.mark_interrupted(store.con, dead, now())


def progress_bar(progress: bool | None) -> Any:
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(unit=" records", desc="lineage-kit", leave=False)
