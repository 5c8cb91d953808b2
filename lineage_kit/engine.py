"""The runner behind :meth:`Pipeline.run`: steps applied to chunks of records.

Chunks are computed in memory and written in one transaction each (all steps of the
chunk together, so a reader never sees half a chunk). The chunk's entry ids are
reserved from the backend just before it is written, so parent links are built from
indexes known in memory, never looked up. Merge steps are barriers: their inputs
wait until every chunk before them is written.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from itertools import islice, repeat
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from .base import key_or_reason
from .errors import Reject
from .frame_steps import FrameItems
from .model import EntryRow, EntryStatus, RunEnd, RunStatus, StepKind, StepTiming
from .store import Backend, Chunk
from .values import UNSTORABLE, stored_form, to_json, value_hash

if TYPE_CHECKING:
    from .model import Step
    from .sources import Source, SourceItem

_OK, _REJECTED, _FAILED = 0, 1, 2  # outcome ranks: the worst outcome of a record wins
_STATUS = (EntryStatus.OK.value, EntryStatus.REJECTED.value, EntryStatus.FAILED.value)
_ENTRY = tuple.__new__  # builds an EntryRow without the Python-level __new__ (hot loop)
_KEY_JSON_HASH_PARENT = attrgetter("key", "vjson", "vhash", "parent")
_VALUE = attrgetter("value")


@contextmanager
def paused_gc() -> Iterator[None]:
    """Hold Python's cyclic garbage collector off for one chunk; restore it after.

    A chunk allocates tens of thousands of small objects (values, rows, tuples)
    that nearly all die by reference counting once it is written; the generational
    collector would meanwhile traverse them again and again (about a tenth of the
    run's time). Re-enabled at the end of every chunk, it still collects whatever
    cycles a step made, at chunk boundaries; a collector the caller had turned off
    stays off.

    Examples
    --------
    >>> with paused_gc():
    ...     gc.isenabled()
    False
    >>> gc.isenabled()
    True
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def consume(iterator: Iterator[Any]) -> None:
    """Run an iterator to its end (a C-level loop), keeping nothing."""
    deque(iterator, maxlen=0)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class Abort(Exception):
    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class _Recut(Exception):
    """A split child would take the key of a record later in input order, in the same
    chunk: the chunk is run again as two, cut before that record (``ordinal``)."""

    def __init__(self, ordinal: int) -> None:
        super().__init__(ordinal)
        self.ordinal = ordinal


_Refused = tuple["SourceItem", str, str | None]  # a source item refused, with reason and message


class Item:
    """A record in flight between steps; a step's output updates it in place.

    Attributes
    ----------
    key : str or None
    value : Any
        The record as the last step returned it.
    vjson : str or None
        The JSON stored for the value (None only fresh from the source, before a
        step needed it).
    vhash : str or None
        Its hash; may lag behind ``vjson`` (None) until it is stored.
    parent : int, tuple of int or None
        The index of its last entry in the current chunk (int), the entry ids of
        its parents written by an earlier chunk (tuple), or None (fresh from the
        source).
    roots : int or tuple of int
        The input ordinal(s) it descends from.
    split : bool
        A split step is on its path (its roots may end several times).
    """

    __slots__ = ("key", "parent", "roots", "split", "value", "vhash", "vjson")

    def __init__(
        self,
        key: str | None,
        value: Any,
        vjson: str | None,
        vhash: str | None,
        parent: Any,
        roots: Any,
        split: bool,
    ) -> None:
        self.key = key
        self.value = value
        self.vjson = vjson
        self.vhash = vhash
        self.parent = parent
        self.roots = roots
        self.split = split


# What is recorded for a value is its JSON text, made before the value is handed to a
# step that might change it in place (every step but the pure built-ins). A step is
# handed a fresh copy (the JSON loaded again) where another may hold the same object:
# the caller's own records, or what a user's step returned; see copies_needed().


class _Chunk:
    """Rows of one chunk, in the order their entry ids will be given."""

    __slots__ = ("absolute_parents", "entries", "local_parents", "values")

    def __init__(self) -> None:
        self.entries: list[EntryRow] = []
        self.values: list[str | None] = []  # None: the local parent's value
        self.local_parents: list[tuple[int, int]] = []
        self.absolute_parents: list[tuple[int, int]] = []

    def rows(self, chunk_no: int) -> Chunk:
        return Chunk(self.entries, self.values, self.local_parents, self.absolute_parents, chunk_no)

    def add(self, entry: EntryRow, value_json: str, parent: Any) -> int:
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
        steps: Sequence[Step],
        backend: Backend,
        run_id: str,
        fail_fast: bool,
        *,
        fresh_input: bool = False,
        source_frame: Any = None,
        listener: Any = None,
    ):
        self.steps = tuple(steps)
        self.listener = listener  # told when each step starts (live OpenLineage events)
        self.backend = backend
        self.run_id = run_id
        self.fail_fast = fail_fast
        self.counts = [0, 0, 0]  # published, rejected, failed
        self.n_input = 0
        self.n_entries = 0
        self.n_chunks = 0  # chunks cut so far: the next chunk's number
        self.pending: dict[int, int] = {}  # root -> worst outcome, for split records
        n = len(self.steps)
        self.busy = [0.0] * n
        self.first_seen: list[str | None] = [None] * n
        self.last_seen: list[str | None] = [None] * n
        self.copy_input = copies_needed(self.steps, fresh_input)
        self.source_frame = source_frame  # a DataFrame input, for a first frame step
        # Who holds a key first used in the chunk being run (input order decides who
        # keeps a contested key, whatever the chunk size): its source items, from
        # ``block_start`` on, and split children's keys -> their parent's ordinal.
        # None while merged records run (after every input record was admitted).
        self.block: list[SourceItem] | None = None
        self.block_start = 0
        self.child_holders: dict[str, int] = {}
        self.input_holders: dict[str, int] | None = None
        self.written: dict[str, int] = {}
        # The source items come with duplicates already refused (reason set) by a
        # driver that knows every key admitted so far (lineage_kit.distributed).
        self.admitted = False

    # -- outcomes

    @property
    def n_published(self) -> int:
        return self.counts[_OK]

    @property
    def n_rejected(self) -> int:
        return self.counts[_REJECTED]

    @property
    def n_failed(self) -> int:
        return self.counts[_FAILED]

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
        """Write the chunk under ids reserved for it, as the run's next chunk number;
        return the first id."""
        if not chunk.entries:
            return 0
        first = self.backend.reserve_ids(len(chunk.entries))
        chunk_no, self.n_chunks = self.n_chunks, self.n_chunks + 1
        if self.backend.write_chunk(first, chunk.rows(chunk_no)):
            self.n_entries += len(chunk.entries)
        return first

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

    def apply(self, position: int, items: list[Item], chunk: _Chunk) -> list[Item]:
        st = self.steps[position]
        with self._timing(position) as stamp:
            if isinstance(items, FrameItems) and items.rows is not None:
                from . import frame_rows  # rows held as arrays since a frame step

                if st.frame:
                    return frame_rows.apply(self, st, position, items, chunk, stamp)
                if st.identity:
                    return frame_rows.identity(self, position, items, chunk, stamp)
                items.sync()
            if not st.pure:
                items = self._guard(position, items)
            if st.frame:
                from . import frame_rows

                return frame_rows.apply(self, st, position, items, chunk, stamp)
            if st.identity and self._feeds_frame(position, items):
                from . import frame_rows

                held = frame_rows.into_frame(self, position, items, chunk, stamp)
                if held is not None:
                    return held
            if st.identity and isinstance(items, FrameItems):  # keep the DataFrame on
                out = FrameItems(self._map(st, position, items, chunk, stamp))
                out.frame = items.frame if len(out) == len(items) else None
                return out
            if st.kind == StepKind.SPLIT:
                return self._split(st, position, items, chunk, stamp)
            if st.batch:
                return self._batch(st, position, items, chunk, stamp)
            if st.identity and type(items) is list:
                done = self._identity(position, items, chunk, stamp)
                if done is not None:
                    return done
            return self._map(st, position, items, chunk, stamp)

    def _feeds_frame(self, position: int, items: list[Item]) -> bool:
        """Does identity step ``position`` hand plain items on to a frame step?"""
        following = position + 1 < len(self.steps) and self.steps[position + 1].frame
        return following and bool(items) and not isinstance(items, FrameItems)

    def source_frame_for(self, position: int) -> Any:
        """The input DataFrame, when the records reach ``position`` as they were read."""
        if self.source_frame is None:
            return None
        if all(s.identity for s in self.steps[:position]):
            return self.source_frame
        return None

    def _guard(self, position: int, items: list[Item]) -> list[Item]:
        """Fix the stored JSON of each input before a step that may change it runs.

        Where :func:`copies_needed` says so, the step is handed the JSON loaded again
        (the value exactly as recorded) instead of an object someone else holds.
        """
        copy = self.copy_input[position]
        if not items or (not copy and items[0].vjson is not None):
            return items
        loads = json.loads
        for item in items:
            if item.vjson is None:
                try:
                    item.vjson = to_json(item.value)
                except UNSTORABLE:
                    # Kept as its repr; no faithful copy to hand over, so the object is.
                    item.vjson, item.vhash = stored_form(item.value)
                    continue
            if copy:
                item.value = loads(item.vjson)
        return items

    def _stop(self, position: int, key: Any, message: str) -> None:
        if self.fail_fast:
            name = self.steps[position].name
            raise Abort(f"step {name!r} failed on record {key!r}: {message}")

    def _terminal(self, chunk, position, stamp, item: Item, status, reason, error) -> None:
        vjson, vhash = item.vjson, item.vhash
        if vjson is None:
            vjson, vhash = stored_form(item.value)
        elif vhash is None:
            vhash = value_hash(vjson)
        entry = (self.run_id, position, item.key, _STATUS[status], reason, error, stamp, vhash)
        chunk.add(EntryRow(*entry), vjson, item.parent)
        self.end(item.roots, item.split, status)

    def _identity(
        self, position: int, items: list[Item], chunk: _Chunk, stamp: str
    ) -> list[Item] | None:
        """An identity step (ingest, publish) over a whole chunk without a Python loop
        per record: each item already has its JSON and hash and one parent in this
        chunk (after a map step), or none has either (fresh from the source).

        Returns None, having changed nothing, when the items are of neither kind or a
        value cannot be stored (:meth:`_map` then takes them record by record).
        """
        n = len(items)
        if not n:
            return items
        keys, texts, hashes, parents = zip(*map(_KEY_JSON_HASH_PARENT, items), strict=True)
        kinds = set(map(type, parents))
        base = len(chunk.entries)
        indexes = range(base, base + n)
        if kinds == {int} and None not in texts and None not in hashes:
            chunk.values.extend(repeat(None, n))  # the parent's value, unchanged
            chunk.local_parents.extend(zip(indexes, parents, strict=True))
        elif kinds == {type(None)} and texts.count(None) == n:
            try:
                texts = list(map(to_json, map(_VALUE, items)))
            except UNSTORABLE:
                return None
            hashes = list(map(value_hash, texts))
            chunk.values.extend(texts)
            consume(map(setattr, items, repeat("vjson", n), texts))
            consume(map(setattr, items, repeat("vhash", n), hashes))
        else:
            return None
        fields = zip(
            repeat(self.run_id, n),
            repeat(position, n),
            keys,
            repeat(_STATUS[_OK], n),
            repeat(None, n),
            repeat(None, n),
            repeat(stamp, n),
            hashes,
            strict=True,
        )
        chunk.entries.extend(map(_ENTRY, repeat(EntryRow, n), fields))
        consume(map(setattr, items, repeat("parent", n), indexes))
        return items

    def _map(
        self,
        st: Step,
        position: int,
        items,
        chunk: _Chunk,
        stamp: str,
        results: Iterator[Any] | None = None,
    ) -> list[Item]:
        """Apply a map step record by record (``results``: outputs a batch step made)."""
        run_id, identity, out = self.run_id, st.identity, []
        func = st.func if results is None else (lambda _value: next(results))
        # chunk.add() inlined for the common case (one parent in this chunk): this loop
        # runs once per record and step.
        add, entries, values = chunk.add, chunk.entries, chunk.values
        add_entry, add_value = entries.append, values.append
        add_local = chunk.local_parents.append
        append = out.append
        ok = _STATUS[_OK]
        for item in items:
            key, value, vjson, vhash, parent = (
                item.key,
                item.value,
                item.vjson,
                item.vhash,
                item.parent,
            )
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
            entry = _ENTRY(EntryRow, (run_id, position, key, ok, None, None, stamp, nhash))
            if type(parent) is int:
                index = len(entries)
                add_entry(entry)
                add_value(None if identity else njson)  # None: the parent's value, unchanged
                add_local((index, parent))
            elif parent is None:  # fresh from the source: a first step
                index = len(entries)
                add_entry(entry)
                add_value(njson)
            else:
                index = add(entry, njson, parent)
            item.value, item.vjson, item.vhash, item.parent = new, njson, nhash, index
            append(item)
        return out

    def _batch(self, st: Step, position: int, items, chunk: _Chunk, stamp: str) -> list[Item]:
        try:
            results = st.func([item.value for item in items])
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
                self._stop(position, items[0].key, error_text(exc))
            return []
        return self._map(st, position, items, chunk, stamp, results=iter(results))

    def _split(self, st: Step, position: int, items, chunk: _Chunk, stamp: str) -> list[Item]:
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
                children = _children(st.func(item.value), item.key)
            except Reject as exc:
                planned.append((item, None, _REJECTED, exc.reason, exc.message))
                continue
            except Exception as exc:
                planned.append((item, None, _FAILED, None, error_text(exc)))
                if self.fail_fast:
                    stopped = (item.key, error_text(exc))
                    break
                continue
            if not children:
                planned.append(
                    (item, None, _REJECTED, "split_empty", "split step returned no records")
                )
            else:
                planned.append((item, children, _OK, None, None))
        taken = self._keys_taken([c[0] for p in planned if p[1] for c in p[1]], items, chunk)
        run_id, out, ok = self.run_id, [], _STATUS[_OK]
        for item, children, status, reason, error in planned:
            if children is not None:
                own = item.key
                clash = next((c[0] for c in children if c[0] in taken and c[0] != own), None)
                if clash is not None:
                    self.first_use(clash, item)
                else:
                    taken.update(c[0] for c in children)
                    self.hold((c[0] for c in children), item)
                    for child_key, child_value, cjson in children:
                        chash = value_hash(cjson)
                        entry = EntryRow(run_id, position, child_key, ok, None, None, stamp, chash)
                        index = chunk.add(entry, cjson, item.parent)
                        out.append(
                            Item(child_key, child_value, cjson, chash, index, item.roots, True)
                        )
                    continue
                status, reason = _REJECTED, "duplicate_key"
                error = (
                    f"split child key {clash!r} is already the key of another record in this run"
                )
            self._terminal(chunk, position, stamp, item, status, reason, error)
        if stopped is not None:
            self._stop(position, *stopped)
        return out

    def _keys_taken(self, keys: list[str], items: list[Item], chunk: _Chunk) -> set[str]:
        """The keys among ``keys`` already used in the run: written, or in this chunk."""
        if not keys:
            return set()
        self.written = self.backend.existing_keys(self.run_id, keys)
        taken = set(self.written)
        taken.update(entry.record_key for entry in chunk.entries)
        taken.update(item.key for item in items)  # a first step's inputs have no entry yet
        return taken

    def first_use(self, key: str, item: Item) -> None:
        """Let ``item``'s child keep ``key`` if ``item`` comes first in input order.

        ``key`` is taken (:meth:`_keys_taken`). Taken by an earlier chunk or by an
        earlier record, the child's parent is rejected (the caller's part). Taken in
        this chunk by a record later in input order, this raises :class:`_Recut`: run
        as one record per chunk, ``item`` would have been first, so the chunk is run
        again cut before that record (whose key is then refused as already seen).
        """
        if self.block is None or key in self.written:
            return
        if self.input_holders is None:  # made once per chunk, only if a key is contested
            self.input_holders = {}
            for i, it in enumerate(self.block, start=self.block_start):
                if it.reason is None:
                    self.input_holders.setdefault(it.key, i)
        holders = (self.child_holders.get(key), self.input_holders.get(key))
        holder = min((h for h in holders if h is not None), default=None)
        if holder is not None and holder > _first_root(item.roots):
            raise _Recut(holder)

    def hold(self, keys: Iterable[str], item: Item) -> None:
        """Note that split children of ``item`` now hold ``keys`` (see :meth:`first_use`)."""
        if self.block is not None:
            root = _first_root(item.roots)
            for key in keys:
                self.child_holders.setdefault(key, root)

    def merge(self, position: int, members: list[Item], chunk: _Chunk) -> list[Item]:
        """Apply a merge step to one group (members carry absolute entry ids)."""
        with self._timing(position) as stamp:
            out, failure = self._merge(position, members, chunk, stamp)
        if failure is not None:
            self._stop(position, members[0].key, failure)
        return out

    def _merge(
        self, position: int, members: list[Item], chunk: _Chunk, stamp: str
    ) -> tuple[list[Item], str | None]:
        st = self.steps[position]
        group_key = members[0].key
        parents = tuple(p for m in members for p in m.parent)
        roots = tuple(sorted({r for m in members for r in _as_tuple(m.roots)}))
        split = any(m.split for m in members)
        try:
            merged = st.func([m.value for m in members])
            if not isinstance(merged, dict):
                raise TypeError(f"merge step returned {type(merged).__name__}, not a dict")
            mjson = to_json(merged)
        except Reject as exc:
            status, reason, error = _REJECTED, exc.reason, exc.message
        except Exception as exc:
            status, reason, error = _FAILED, None, error_text(exc)
        else:
            mhash = value_hash(mjson)
            ok = _STATUS[_OK]
            entry = EntryRow(self.run_id, position, group_key, ok, None, None, stamp, mhash)
            index = chunk.add(entry, mjson, parents)
            return [Item(group_key, merged, mjson, mhash, index, roots, split)], None
        # A merge that did not succeed stores its members' values as a JSON array.
        ajson = "[" + ",".join(m.vjson for m in members) + "]"
        ahash = value_hash(ajson)
        status_text = _STATUS[status]
        entry = EntryRow(self.run_id, position, group_key, status_text, reason, error, stamp, ahash)
        chunk.add(entry, ajson, parents)
        self.end(roots, split, status)
        return [], (error if status == _FAILED else None)

    # -- a whole run

    def finish(self, src: Source, status: RunStatus, error: str | None) -> None:
        self.settle()
        end = RunEnd(status, now(), src.sha256, self.n_input, *self.counts, error)
        timings = [
            StepTiming(i, self.first_seen[i], self.last_seen[i], self.busy[i])
            for i in range(len(self.steps))
        ]
        try:
            self.backend.finish_run(self.run_id, end, timings)
        except Exception:
            if status in (RunStatus.FAILED, RunStatus.INTERRUPTED):
                return  # the original error is more useful than this one
            raise

    def execute(
        self,
        blocks: Iterator[list[SourceItem]],
        chunk_size: int,
        progress: bool | None,
    ) -> None:
        merges = [i for i, s in enumerate(self.steps) if s.kind == StepKind.MERGE]
        end = merges[0] if merges else len(self.steps)
        bar = progress_bar(progress)
        barrier: list[Item] = []
        try:
            ordinal = 0
            for block in blocks:
                self.n_input += len(block)
                parts = [(block, ordinal)]
                ordinal += len(block)
                while parts:
                    part, start = parts.pop(0)
                    try:
                        with paused_gc():
                            self._run_chunk(part, start, end, barrier)
                    except _Recut as cut:
                        parts[:0] = cut_at(part, start, cut.ordinal)
                if bar is not None:
                    bar.update(len(block))
            self.block = None
            self._after_merges(merges, barrier, chunk_size)
        finally:
            if bar is not None:
                bar.close()

    def _run_chunk(self, block: list[SourceItem], start: int, end: int, barrier: list) -> None:
        """Run source items ``start``... through the steps before the first merge.

        Raises
        ------
        _Recut
            Nothing of the chunk was written, and its outcomes are undone.
        """
        self.block, self.block_start = block, start
        self.child_holders, self.input_holders = {}, None
        counts = list(self.counts)
        chunk = _Chunk()
        items, refused = self._admit(block, start)
        try:
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
        except _Recut:
            self.counts[:] = counts
            for r in range(start, start + len(block)):
                self.pending.pop(r, None)
            raise
        self._settle_segment(reached, end, chunk, barrier)

    def _admit(self, block: list[SourceItem], ordinal: int) -> tuple[list[Item], list[_Refused]]:
        """Split source items into items in flight and refused ``(item, reason, message)``.

        Records without a usable key, and keys already used in this run (one indexed
        query per chunk for earlier chunks: input records and split children), are
        refused.
        """
        keys = [it.key for it in block if it.reason is None and not self.admitted]
        seen = self.backend.existing_keys(self.run_id, keys) if keys else {}
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
                items.append(Item(it.key, it.value, None, None, None, i, False))
        return items, refused

    def _refuse(self, refused: list[_Refused], chunk: _Chunk) -> None:
        """Record refused source items as rejected entries at the first step."""
        stamp, rejected = now(), _STATUS[_REJECTED]
        for it, reason, message in refused:
            vjson, vhash = stored_form(it.value)
            entry = EntryRow(self.run_id, 0, it.key, rejected, reason, message, stamp, vhash)
            chunk.add(entry, vjson, None)
        self.counts[_REJECTED] += len(refused)
        refused.clear()

    def _through(self, items: list[Item], start: int, end: int, chunk: _Chunk) -> list[Item]:
        for position in range(start, end):
            if not items:
                break
            items = self.apply(position, items, chunk)
        return items

    def _settle_segment(
        self, reached: list[Item], end: int, chunk: _Chunk, barrier: list[Item]
    ) -> None:
        """Write the chunk; records past the last step are published, others wait."""
        base = self.flush(chunk)
        if isinstance(reached, FrameItems):
            if end == len(self.steps) and reached.plain():
                self.counts[_OK] += len(reached)  # one input record each, no split
                return
            reached.sync()
        if end == len(self.steps):
            for item in reached:
                self.end(item.roots, item.split, _OK)
        else:
            barrier.extend(_absolute(reached, base))

    def _after_merges(self, merges: list[int], barrier: list[Item], chunk_size: int) -> None:
        for n, position in enumerate(merges):
            end = merges[n + 1] if n + 1 < len(merges) else len(self.steps)
            groups, chunk = self.group(position, barrier)
            barrier = []
            for block in chunked(groups.values(), chunk_size):
                with paused_gc():
                    barrier.extend(self.merge_chunk(position, end, block, chunk))
                chunk = _Chunk()
            self.flush(chunk)

    def group(self, position: int, barrier: list[Item]) -> tuple[dict[str, list[Item]], _Chunk]:
        """Group the records waiting at the merge step ``position`` by group key.

        Returns the groups (members in barrier order, keyed by the group key) and a
        chunk holding the entries of records that could not be grouped (written with
        the first merge chunk).
        """
        group_by = self.steps[position].group_by
        groups: dict[str, list[Item]] = {}
        chunk = _Chunk()
        stamp = now()
        if self.copy_input[position]:
            for item in barrier:
                item.value = json.loads(item.vjson)
        for item in barrier:
            try:
                group = group_by(item.key, item.value)
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
            groups.setdefault(text, []).append(item)
        self._unique_groups(position, groups, chunk, stamp)
        return groups, chunk

    def merge_chunk(
        self, position: int, end: int, block: list[list[Item]], chunk: _Chunk
    ) -> list[Item]:
        """Merge each group of ``block``, run the merged records through the steps up to
        ``end`` and write the chunk; return the records waiting at the merge ``end``."""
        out: list[Item] = []
        try:
            for members in block:
                merged = self.merge(position, members, chunk)
                out.extend(self._through(merged, position + 1, end, chunk))
        except Abort:
            self.flush(chunk)
            raise
        base = self.flush(chunk)
        if end < len(self.steps):
            return _absolute(out, base)
        for item in out:
            self.end(item.roots, item.split, _OK)
        return []

    def _unique_groups(
        self, position: int, groups: dict[str, list[Item]], chunk: _Chunk, stamp: str
    ) -> None:
        """Keep the groups whose key no other record of the run has; key the members.

        A group key follows the rule of split children's keys: unique in the run, and
        only a member's own key may be reused. A group whose key another record holds
        (an input record's, a split child's, an earlier group's) rejects its members,
        each under its own key, as ``duplicate_key``; they are not merged.
        """
        taken = self.backend.existing_keys(self.run_id, list(groups)) if groups else {}
        for text in [t for t in taken if t in groups]:
            members = groups[text]
            if any(m.key == text for m in members):
                continue
            del groups[text]
            message = f"group key {text!r} is already the key of another record in this run"
            for item in members:
                self._terminal(chunk, position, stamp, item, _REJECTED, "duplicate_key", message)
        for text, members in groups.items():
            for item in members:
                item.key = text  # the group key becomes the merged record's key

    def _terminal_group_error(
        self, position: int, item: Item, chunk: _Chunk, stamp: str, exc: Exception
    ) -> None:
        self._terminal(
            chunk, position, stamp, item, _FAILED, None, f"group_by raised {error_text(exc)}"
        )
        self._stop(position, item.key, error_text(exc))


def cut_at(part: list[SourceItem], start: int, ordinal: int) -> list[tuple[list, int]]:
    """A chunk's source items (the first at ``start``) as two parts, cut before
    ``ordinal`` (see :class:`_Recut`), each with its first ordinal."""
    n = ordinal - start
    return [(part[:n], start), (part[n:], ordinal)]


def _absolute(items: list[Item], base: int) -> list[Item]:
    """The items, their parent turned from an index in the chunk just written (whose
    ids start at ``base``) into that entry's id."""
    for item in items:
        item.parent = (base + item.parent,)
    return items


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
    >>> from lineage_kit.model import step
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


def _first_root(roots: Any) -> int:
    return roots if type(roots) is int else min(roots)


def _as_tuple(roots: Any) -> tuple:
    return (roots,) if type(roots) is int else roots


def chunked(iterable: Iterable[Any], size: int) -> Iterator[list[Any]]:
    it = iter(iterable)
    while chunk := list(islice(it, size)):
        yield chunk


def progress_bar(progress: bool | None) -> Any:
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(unit=" records", desc="lineage-kit", leave=False)
