"""Frame steps without a Python call per row: a chunk held as arrays between steps.

While frame steps (and identity steps such as ``publish``) follow each other, a
chunk is held as its DataFrame, each field's JSON texts (per row, see
:mod:`lineage_kit.frame_values`) and its rows' keys, entry indexes, JSON and hashes
as arrays (:class:`Rows`); the engine's per-record items are brought up to date
(:meth:`~lineage_kit.frame_steps.FrameItems.sync`) only when a record step, a merge
or a rejected record needs them. Each step's entries are built from those arrays in
one pass: a cell the step left as it was keeps its JSON text, a changed or new
column is encoded once for the chunk, a row is joined from its fields' texts, and a
row the step left as it was keeps its JSON and hash.

What these arrays do not cover takes the per-row way of
:mod:`lineage_kit.frame_steps`, which stores the same: records of different fields
(or field orders), a split step, a first parent outside the chunk, a value the
column encoders do not reproduce exactly, a column name that is not text, columns
combined from several.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable
from itertools import repeat
from operator import attrgetter, itemgetter
from typing import TYPE_CHECKING, Any

import numpy as np

from .frame_steps import (
    RENAMED,
    FrameItems,
    _keep_integers,
    _pandas,
    _python_values,
    _reasons,
    _record,
    _unchanged,
    apply_frame,
    run_step,
)
from .frame_values import appended, fragments, hashes, regular_columns, rows
from .model import EntryRow, EntryStatus, StepKind
from .values import value_hash

if TYPE_CHECKING:
    from .model import Step

Run = _Chunk = Item = Any  # the engine's (not imported: the engine imports this module)

_REJECTED = 1
_OK = EntryStatus.OK.value
_entry = tuple.__new__
_key, _parent, _vjson, _vhash, _value = (
    attrgetter(name) for name in ("key", "parent", "vjson", "vhash", "value")
)


class Rows:
    """A chunk's rows between frame steps, as arrays in the order of its items.

    Attributes
    ----------
    keys : numpy.ndarray of object
    parents : numpy.ndarray of int
        The index in the chunk of each row's last entry.
    texts, hashes : numpy.ndarray of object
        Each row's stored JSON and its hash.
    names : tuple of str
        The rows' fields, in their order (every row has the same).
    fragments : dict of str to numpy.ndarray
        Per field: each row's JSON text of its value.
    """

    __slots__ = ("fragments", "hashes", "keys", "names", "parents", "texts")

    def __init__(self, keys, parents, texts, hashes, names, fragments) -> None:
        self.keys, self.parents, self.texts, self.hashes = keys, parents, texts, hashes
        self.names, self.fragments = names, fragments


def _collector_paused(func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` run with Python's cyclic garbage collector paused; it runs after.

    These builders allocate a tuple or two per row (entries, parent links) and run
    no user code: left on, the collector walks every live object again and again
    each chunk (measured: 4x the time of building the entries themselves).
    """

    @functools.wraps(func)
    def paused(*args: Any, **kwargs: Any) -> Any:
        if not gc.isenabled():
            return func(*args, **kwargs)
        gc.disable()
        try:
            return func(*args, **kwargs)
        finally:
            gc.enable()

    return paused


# ------------------------------------------------------------------ entry points


def apply(run: Run, st: Step, position: int, items: list[Item], chunk: _Chunk, stamp: str) -> Any:
    """Run frame step ``st`` (the engine's entry point for frame steps)."""
    held = _prepared(run, position, items) if st.kind != StepKind.SPLIT else None
    if held is None:
        if isinstance(items, FrameItems):
            items.sync()
        return apply_frame(run, st, position, items, chunk, stamp)
    outcome = run_step(run, st, position, held, chunk, stamp, held.frame)
    if outcome is None:
        return []
    out = _record_rows(run, st, position, held, chunk, stamp, *outcome)
    if out is None:  # something the arrays do not cover: the per-row way
        held.sync()
        return _record(run, st, position, held, chunk, stamp, held.frame, *outcome)
    return out


def identity(run: Run, position: int, items: FrameItems, chunk: _Chunk, stamp: str) -> FrameItems:
    """An identity step over held rows: one entry each, JSON and hash as they were."""
    rows_ = items.rows
    rows_.parents = _add(
        chunk, run.run_id, position, stamp, rows_.keys, rows_.hashes, rows_.texts, rows_.parents,
        unchanged=True,
    )  # fmt: skip
    return items


def into_frame(
    run: Run, position: int, items: list[Item], chunk: _Chunk, stamp: str
) -> FrameItems | None:
    """An identity step (``ingest``) whose records go on to a frame step: its entries
    and the rows held for that step; None if the arrays do not cover them."""
    n = len(items)
    parents = list(map(_parent, items))
    fresh = parents.count(None) == n
    if not fresh and not all(map(isinstance, parents, repeat(int))):
        return None
    known = list(map(_vjson, items))
    if known.count(None) not in (0, n):
        return None
    held = _held(run, position + 1, items, None if known[0] is None else known)
    if held is None:
        return None
    rows_ = held.rows
    rows_.parents = _add(
        chunk,
        run.run_id,
        position,
        stamp,
        rows_.keys,
        rows_.hashes,
        rows_.texts,
        None if fresh else parents,
        unchanged=not fresh,
    )
    return held


# ------------------------------------------------------------------ holding rows


def _prepared(run: Run, position: int, items: list[Item]) -> FrameItems | None:
    """The items with their rows held (built from the items' values if need be)."""
    if isinstance(items, FrameItems) and items.rows is not None:
        return items
    if not items:
        return None
    parents = list(map(_parent, items))
    if not all(map(isinstance, parents, repeat(int))):
        return None
    held = _held(run, position, items, list(map(_vjson, items)))
    if held is not None:
        held.rows.parents = np.array(parents, dtype=np.int64)
    return held


@_collector_paused
def _held(run: Run, position: int, items: list[Item], texts: list[str] | None) -> Any:
    """FrameItems holding the items' rows for frame step ``position``; None if the
    records differ in fields or a value is not covered. ``texts``: their stored JSON,
    None if not made yet."""
    values = list(map(_value, items))
    found = regular_columns(values)
    if found is None:
        return None
    names, columns = found
    cells = [fragments(column) for column in columns]
    if any(c is None for c in cells):
        return None
    n = len(items)
    if texts is None:
        texts = rows(names, cells, n)
        if texts is None:
            return None
        row_hashes = hashes(texts)
    else:
        row_hashes = list(map(_vhash, items))
        if None in row_hashes:
            row_hashes = [
                h if h is not None else value_hash(t)
                for t, h in zip(texts, row_hashes, strict=True)
            ]
    keys = list(map(_key, items))
    held = FrameItems(items)
    held.frame = _frame(run, position, items, values, names, columns, keys)
    held.rows = Rows(
        _objects(keys),
        None,
        _objects(texts),
        _objects(row_hashes),
        names,
        dict(zip(names, cells, strict=True)),
    )
    return held


def _frame(run: Run, position: int, items, values, names, columns, keys) -> Any:
    """The held rows' DataFrame: the input DataFrame's own rows, or built from columns."""
    pd = _pandas()
    index = pd.Index(keys, dtype=object)
    source = run.source_frame_for(position)
    if source is not None:  # a DataFrame input: its own rows (roots: input row numbers)
        frame = source.iloc[list(map(attrgetter("roots"), items))]
        frame.columns = [str(c) for c in frame.columns]
        frame.index = index
        return frame
    frame = pd.DataFrame(dict(zip(names, map(list, columns), strict=True)), index=index)
    if len(names):
        _keep_integers(pd, frame, values)
    return frame


def _objects(values: list[Any]) -> np.ndarray:
    return np.fromiter(values, dtype=object, count=len(values))


# ------------------------------------------------------------------ recording a step


@_collector_paused
def _record_rows(
    run: Run,
    st: Step,
    position: int,
    items: FrameItems,
    chunk: _Chunk,
    stamp: str,
    kept: Any,
    rejected: Any,
) -> FrameItems | None:
    """Record a (map) frame step's outcome from the held rows; None if not covered."""
    held, frame = items.rows, items.frame
    out_columns = list(kept.columns)
    if not all(map(isinstance, out_columns, repeat(str))):
        return None
    renamed = kept.attrs.get(RENAMED) or {}
    origins = [renamed.get(c, c) for c in out_columns]
    if any(isinstance(o, tuple) for o in origins) or len(set(origins)) < len(origins):
        return None
    order = {name: i for i, name in enumerate(held.names)}
    parents = frame.index.get_indexer(kept.index)  # each output row's input row
    n = len(parents)
    in_place = n == len(frame) and bool((parents == np.arange(n)).all())
    fields = []  # (place in the row, name, texts, unchanged mask or None)
    for j, (name, origin) in enumerate(zip(out_columns, origins, strict=True)):
        column = kept[name]
        if origin in order:
            mask = _unchanged(frame[origin], column, parents, in_place)
            texts = held.fragments[origin] if in_place else held.fragments[origin][parents]
            if not mask.all():
                changed = np.flatnonzero(~mask)
                new = _encode(column.iloc[changed])
                if new is None:
                    return None
                texts = texts.copy()
                texts[changed] = new
            fields.append(((0, order[origin]), name, texts, mask))
        else:
            texts = _encode(column)
            if texts is None:
                return None
            fields.append(((1, j), name, texts, None))
    # the record's fields in its own order (renamed where renamed), then new ones
    fields.sort(key=itemgetter(0))
    names = tuple(f[1] for f in fields)
    cells = [f[2] for f in fields]
    parent_texts, parent_hashes = held.texts[parents], held.hashes[parents]
    if names == held.names and origins == out_columns:
        same = np.logical_and.reduce([f[3] for f in fields]) if fields else np.ones(n, bool)
    else:
        same = np.zeros(n, dtype=bool)
    if same.all():
        texts, row_hashes = parent_texts, parent_hashes
    else:
        made = _appended(held.names, fields, parent_texts) or rows(names, cells, n)
        if made is None:
            return None
        texts, row_hashes = _objects(made), parent_hashes.copy()
        new_rows = np.flatnonzero(~same)
        row_hashes[new_rows] = hashes(texts[new_rows].tolist())
    keys = held.keys[parents]
    index = _add(
        chunk, run.run_id, position, stamp, keys, row_hashes, texts, held.parents[parents],
        unchanged=same,
    )  # fmt: skip
    # the records the step dropped or rejected, after the kept ones (as per row)
    gone = np.ones(len(frame), dtype=bool)
    gone[parents] = False
    if gone.any():
        reasons = _reasons(rejected, frame, st.name)
        default = ("filtered_out", f"dropped by frame step {st.name!r}")
        for p in np.flatnonzero(gone).tolist():
            item = items[p]
            item.parent, item.vjson, item.vhash = (
                int(held.parents[p]),
                held.texts[p],
                held.hashes[p],
            )
            reason, message = reasons.get(p, default)
            run._terminal(chunk, position, stamp, item, _REJECTED, reason, message)
    out = FrameItems(map(items.__getitem__, parents.tolist()))
    kept.attrs = {}  # the renames applied to this step's input only
    out.frame = kept
    out.rows = Rows(keys, index, texts, row_hashes, names, dict(zip(names, cells, strict=True)))
    return out


def _appended(held_names: tuple, fields: list, parent_texts: np.ndarray) -> list[str] | None:
    """The rows' JSON when the step only added columns after the record's own fields,
    leaving every cell of those as it was (``df.assign``): each parent's JSON with
    the new fields joined on; None otherwise (or if :func:`appended` declines)."""
    k = len(held_names)
    if not k or len(fields) == k:
        return None
    own, new = fields[:k], fields[k:]
    if [f[0] for f in own] != [(0, i) for i in range(k)] or any(f[0][0] != 1 for f in new):
        return None
    if tuple(f[1] for f in own) != held_names or not all(f[3].all() for f in own):
        return None
    return appended(parent_texts.tolist(), [f[1] for f in new], [f[2] for f in new])


def _encode(column: Any) -> np.ndarray | None:
    """A column's cells as the JSON a record holding them would store."""
    return fragments(_python_values(column))


@_collector_paused
def _add(
    chunk: _Chunk,
    run_id: str,
    position: int,
    stamp: str,
    keys: np.ndarray,
    row_hashes: np.ndarray,
    texts: np.ndarray,
    parents: Any,
    unchanged: Any = False,
) -> np.ndarray:
    """Append one ``ok`` entry per row to the chunk; return their indexes in it.

    ``parents``: each row's parent index in the chunk, or None (no parent).
    ``unchanged`` (True, False or a mask of the rows): the row's JSON is its
    parent's, so the chunk holds None for it (the backend stores no new value).
    """
    n = len(keys)
    base = len(chunk.entries)
    fields = zip(
        repeat(run_id, n),
        repeat(position, n),
        _list(keys),
        repeat(_OK, n),
        repeat(None, n),
        repeat(None, n),
        repeat(stamp, n),
        _list(row_hashes),
        strict=False,  # the repeats are as long as the rows
    )
    chunk.entries.extend(map(_entry, repeat(EntryRow, n), fields))
    if unchanged is True:
        chunk.values.extend(repeat(None, n))
    elif unchanged is False or not unchanged.any():
        chunk.values.extend(_list(texts))
    else:
        chunk.values.extend(np.where(unchanged, None, texts).tolist())
    if parents is not None:
        chunk.local_parents.extend(zip(range(base, base + n), _list(parents), strict=True))
    return np.arange(base, base + n, dtype=np.int64)


def _list(values: Any) -> list[Any]:
    return values.tolist() if isinstance(values, np.ndarray) else list(values)


__all__ = ["Rows", "apply", "identity", "into_frame"]
