"""Running a frame step (``@lk.step(..., frame=True)``): a whole chunk as a DataFrame.

The step's function takes the chunk's records as a :class:`pandas.DataFrame` indexed
by record key and returns a DataFrame; rows are matched to records by index label:

- a label of the input in the output once: the record is ``ok`` with that row;
- a label of the input missing from the output: ``rejected`` as ``filtered_out``;
- a label repeated (after ``explode``): a split, one child per row keyed ``key#1``,
  ``key#2``, ... (the step must be declared ``kind="split"``); children's keys follow
  the split rules of the engine (unique in the run);
- a label that was not in the input, an output that is not a DataFrame, a repeated
  column name: every record of the chunk ``failed``;
- ``lk.Reject`` raised: every record rejected with its reason; another exception:
  every record failed.

The function may instead return ``(kept, rejected)``: ``rejected`` is a Series of
reason codes by label, or a DataFrame with a ``reason`` column and optionally a
``message`` column; its labels must be input labels that ``kept`` does not hold.

A row is stored as the JSON a record step returning the same row would store. A
cell the step did not change keeps the record's own value (an int stays an int even
where pandas made the column float; a field the record did not have stays absent);
a changed or new cell is converted per column: NaN, NA and NaT become null,
timestamps ISO-8601 text, numpy scalars Python numbers, categoricals their values.
pandas is imported only here, when a frame step runs.
"""

from __future__ import annotations

import copy
import json
import math
import operator
from itertools import repeat
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from .errors import Reject
from .model import EntryRow, EntryStatus, StepKind
from .values import UNSTORABLE, to_json, value_hash

if TYPE_CHECKING:
    from .model import Step

# The engine's Run, _Chunk and Item (not imported: the engine imports this module).
Run = _Chunk = Item = Any

_OK, _REJECTED, _FAILED = 0, 1, 2
_ABSENT = object()
_entry = tuple.__new__  # an EntryRow without the Python-level __new__ (once per row)
_split, _roots = attrgetter("split"), attrgetter("roots")

#: ``DataFrame.attrs`` key of a step's ``{new column: input column}`` renames: a
#: renamed cell the step did not change keeps the record's own value (the built-in
#: frame normalize sets it, so a field a record lacked stays absent). A tuple of input
#: columns: the column combines them, and stands where the record had one of them.
RENAMED = "lineage_kit.renamed"


class FrameItems(list):
    """Items in flight (engine tuples) that also carry their rows as a DataFrame.

    ``frame`` holds one row per item, in the same order, indexed by the items' keys;
    a following frame step starts from it instead of rebuilding it from dicts.
    ``rows``: while set (a :class:`lineage_kit.frame_rows.Rows`), the rows' keys,
    entry indexes, JSON and hashes are held there, not yet in the items, whose values
    are not loaded either; :meth:`sync` brings the items up to date.
    """

    frame: Any = None
    rows: Any = None

    def plain(self) -> bool:
        """Is each item one input record (not a split's child, not a merge)?"""
        return not any(map(_split, self)) and all(map(isinstance, map(_roots, self), repeat(int)))

    def sync(self) -> FrameItems:
        """Set each item's parent, JSON, hash and value (a dict loaded from its JSON)."""
        rows = self.rows
        if rows is None:
            return self
        loads = json.loads
        parents, texts, hashes = rows.parents.tolist(), rows.texts.tolist(), rows.hashes.tolist()
        for item, parent, text, vhash in zip(self, parents, texts, hashes, strict=True):
            item.parent, item.vjson, item.vhash, item.value = parent, text, vhash, loads(text)
        self.rows = None
        return self


def _pandas() -> Any:
    import pandas as pd  # a dependency of lineage_kit, imported only when a frame step runs

    return pd


# ------------------------------------------------------------------ the input frame


def input_frame(items: list[Item], source_frame: Any = None) -> Any:
    """The chunk as a DataFrame indexed by record key (its rows in items order)."""
    pd = _pandas()
    keys = [item.key for item in items]
    frame = getattr(items, "frame", None)
    if frame is not None:
        return frame
    if source_frame is not None:
        # A DataFrame input: its own rows (roots are the input row numbers).
        frame = source_frame.iloc[[item.roots for item in items]]
        frame.columns = [str(c) for c in frame.columns]
        frame.index = pd.Index(keys, dtype=object)
        return frame
    values = [item.value for item in items]
    frame = pd.DataFrame(values, index=pd.Index(keys, dtype=object))
    if len(frame.columns) and len(values):
        _keep_integers(pd, frame, values)
    return frame


def _keep_integers(pd: Any, frame: Any, values: list[Any]) -> None:
    """Integer fields with a missing value become nullable Int64, not float64."""
    for name in frame.columns[frame.dtypes == "float64"]:
        column = frame[name]
        if not column.isna().any():
            continue
        present = [v.get(name) for v in values]
        if all(v is None or (type(v) is int) for v in present):
            frame[name] = pd.array(present, dtype="Int64")


# ------------------------------------------------------------------ running the step


def apply_frame(
    run: Run, st: Step, position: int, items: list[Item], chunk: _Chunk, stamp: str
) -> list[Item]:
    """Run frame step ``st`` over the chunk's ``items``; record one outcome per record."""
    frame = input_frame(items, run.source_frame_for(position))
    outcome = run_step(run, st, position, items, chunk, stamp, frame)
    if outcome is None:
        return []
    return _record(run, st, position, items, chunk, stamp, frame, *outcome)


def run_step(
    run: Run, st: Step, position: int, items: list[Item], chunk: _Chunk, stamp: str, frame: Any
) -> tuple[Any, Any] | None:
    """Call the step on ``frame``: its ``(kept, rejected)``, or None when every record
    of the chunk was rejected or failed (and recorded so)."""
    try:
        # A shallow copy is enough: pandas copies on write, so nothing the step does
        # to its DataFrame reaches ours, and the columns it leaves alone stay shared.
        result = st.func(frame.copy(deep=False))
        kept, rejected = _unpack(result)
        problem = _problem(kept, rejected, frame, st)
    except Reject as exc:
        for item in _synced(items):
            run._terminal(chunk, position, stamp, item, _REJECTED, exc.reason, exc.message)
        return None
    except Exception as exc:
        problem = f"{type(exc).__name__}: {exc}"
    if problem is not None:
        for item in _synced(items):
            run._terminal(chunk, position, stamp, item, _FAILED, None, problem)
        if items:
            run._stop(position, items[0].key, problem)
        return None
    return kept, rejected


def _synced(items: list[Item]) -> list[Item]:
    return items.sync() if isinstance(items, FrameItems) else items


def _unpack(result: Any) -> tuple[Any, Any]:
    if isinstance(result, tuple) and len(result) == 2:
        return result
    return result, None


def _problem(kept: Any, rejected: Any, frame: Any, st: Step) -> str | None:
    """What is wrong with a frame step's output, as an error text; None if nothing."""
    pd = _pandas()
    name = st.name
    if not isinstance(kept, pd.DataFrame):
        return (
            f"TypeError: frame step {name!r} returned {type(kept).__name__}, not a DataFrame "
            "(or a (kept, rejected) pair)"
        )
    if kept.columns.duplicated().any():
        repeated = sorted({str(c) for c in kept.columns[kept.columns.duplicated()]})
        return f"ValueError: frame step {name!r} returned repeated column names: {repeated}"
    foreign = kept.index[~kept.index.isin(frame.index)]
    if len(foreign):
        return (
            f"ValueError: frame step {name!r} returned rows whose labels are not in its input "
            f"({_some(foreign)}): keep the index (no reset_index; merge with left_index=True)"
        )
    if st.kind != StepKind.SPLIT and kept.index.has_duplicates:
        repeated = kept.index[kept.index.duplicated()].unique()
        return (
            f"ValueError: frame step {name!r} returned the label(s) {_some(repeated)} more than "
            "once; a frame step that repeats rows (explode) must be declared kind='split'"
        )
    if rejected is not None:
        if not isinstance(rejected, pd.Series | pd.DataFrame):
            return (
                f"TypeError: frame step {name!r}: rejected must be a Series of reasons or a "
                f"DataFrame with a 'reason' column, not {type(rejected).__name__}"
            )
        if isinstance(rejected, pd.DataFrame) and "reason" not in rejected.columns:
            return f"ValueError: frame step {name!r}: the rejected DataFrame has no 'reason' column"
        index = rejected.index
        foreign = index[~index.isin(frame.index)]
        if len(foreign):
            return (
                f"ValueError: frame step {name!r} rejected labels that are not in its input "
                f"({_some(foreign)})"
            )
        both = index[index.isin(kept.index)]
        if len(both) or index.has_duplicates:
            twice = both if len(both) else index[index.duplicated()]
            return (
                f"ValueError: frame step {name!r} both kept and rejected, or rejected twice, "
                f"the label(s) {_some(twice)}"
            )
    return None


def _some(labels: Any) -> str:
    shown = [repr(x) for x in list(labels[:5])]
    return ", ".join(shown) + (", ..." if len(labels) > 5 else "")


def _record(
    run: Run,
    st: Step,
    position: int,
    items: list[Item],
    chunk: _Chunk,
    stamp: str,
    frame: Any,
    kept: Any,
    rejected: Any,
) -> list[Item]:
    """Write one entry per outcome; return the kept rows as items (with their frame)."""
    parents = frame.index.get_indexer(kept.index)  # each output row's input row
    rows = _rows(frame, items, kept, parents)
    run_id, name, ok = run.run_id, st.name, EntryStatus.OK.value
    split = st.kind == StepKind.SPLIT
    parents_list = parents.tolist()
    if not split:  # labels are unique (checked): every record keeps its key
        keys = [items[p].key for p in parents_list]
        counts = dict.fromkeys(parents_list, 1)
    else:
        counts = {}
        for p in parents_list:
            counts[p] = counts.get(p, 0) + 1
        keys, numbers = [], {}
        for p in parents_list:
            parent_key = items[p].key
            if counts[p] == 1:
                keys.append(parent_key)
            else:
                n = numbers[p] = numbers.get(p, 0) + 1
                keys.append(f"{parent_key}#{n}")
    refused: set[int] = set()
    if split:
        own = {p: items[p].key for p in counts}
        generated = [k for k, p in zip(keys, parents_list, strict=True) if k != own[p]]
        taken = run._keys_taken(generated, items, chunk)
        refused = {p for k, p in zip(keys, parents_list, strict=True) if k != own[p] and k in taken}
        for k, p in zip(keys, parents_list, strict=True):
            if p in refused and k != own[p] and k in taken:
                run.first_use(k, items[p])  # may cut the chunk: see Run.first_use
        for k, p in zip(keys, parents_list, strict=True):
            if p not in refused:
                run.hold((k,), items[p])
    # a row that cannot be stored as JSON fails its record (all of a split's children)
    failed = {p: rows[i][0] for i, p in enumerate(parents_list) if rows[i][1] is None}
    out = FrameItems()
    keep_rows = []
    entries, add_local = chunk.entries, chunk.local_parents.append
    add_entry, add_value = entries.append, chunk.values.append
    for i, (key, p, (value, vjson, vhash)) in enumerate(zip(keys, parents_list, rows, strict=True)):
        if p in refused or p in failed:
            continue
        item = items[p]
        entry = _entry(EntryRow, (run_id, position, key, ok, None, None, stamp, vhash))
        parent = item.parent
        if type(parent) is int:  # chunk.add() inlined: this loop runs once per row
            index = len(entries)
            add_entry(entry)
            add_value(vjson)
            add_local((index, parent))
        else:
            index = chunk.add(entry, vjson, parent)
        # a record kept once goes on as itself; each row of a split, as a child
        new = item if counts[p] == 1 else copy.copy(item)
        new.key, new.value, new.vjson, new.vhash, new.parent = key, value, vjson, vhash, index
        new.split = item.split or split
        out.append(new)
        keep_rows.append(i)
    reasons = _reasons(rejected, frame, name)
    for p, item in enumerate(items):
        if p in failed:
            message = f"ValueError: step output cannot be stored as JSON: {failed[p]}"
            run._terminal(chunk, position, stamp, item, _FAILED, None, message)
            run._stop(position, item.key, message)
        elif p in refused:
            clash = next(
                k for k, q in zip(keys, parents_list, strict=True) if q == p and k != item.key
            )
            message = f"split child key {clash!r} is already the key of another record in this run"
            run._terminal(chunk, position, stamp, item, _REJECTED, "duplicate_key", message)
        elif p not in counts:
            reason, message = reasons.get(p, ("filtered_out", f"dropped by frame step {name!r}"))
            run._terminal(chunk, position, stamp, item, _REJECTED, reason, message)
    if keep_rows:
        pd = _pandas()
        next_frame = kept.iloc[keep_rows] if len(keep_rows) != len(kept) else kept
        next_frame.index = pd.Index([it.key for it in out], dtype=object)
        next_frame.attrs = {}  # the renames applied to this step's input only
        out.frame = next_frame
    return out


def _reasons(rejected: Any, frame: Any, name: str) -> dict[int, tuple[str, str]]:
    """Input row -> (reason, message) of the rows the step rejected."""
    if rejected is None or not len(rejected):
        return {}
    pd = _pandas()
    if isinstance(rejected, pd.DataFrame):
        reasons = rejected["reason"].tolist()
        messages = (
            rejected["message"].tolist() if "message" in rejected.columns else [None] * len(reasons)
        )
    else:
        reasons, messages = rejected.tolist(), [None] * len(rejected)
    rows = frame.index.get_indexer(rejected.index)
    out = {}
    for row, reason, message in zip(rows, reasons, messages, strict=True):
        text = str(reason) if _present(reason) else "rejected"
        out[int(row)] = (
            text,
            str(message) if _present(message) else f"rejected by frame step {name!r}",
        )
    return out


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


# ------------------------------------------------------------------ row values


def _rows(frame: Any, items: list[Item], kept: Any, parents: Any) -> list[tuple]:
    """``(value, json, hash)`` per output row; json None (value: the error) if unstorable."""
    import numpy as np

    renamed = kept.attrs.get(RENAMED) or {}
    in_place = len(parents) == len(frame) and bool((parents == np.arange(len(frame))).all())
    in_columns = list(frame.columns)
    out_columns = list(kept.columns)
    origins = [renamed.get(name, name) for name in out_columns]
    # per output column: which rows hold the cell their input row held (None: a new column)
    masks = [
        _unchanged(frame[origin], kept[name], parents, in_place)
        if not isinstance(origin, tuple) and origin in frame.columns
        else None
        for name, origin in zip(out_columns, origins, strict=True)
    ]
    every = [m is not None and bool(m.all()) for m in masks]
    converted = {
        name: _python_values(kept[name])
        for name, e in zip(out_columns, every, strict=True)
        if not e
    }
    n = len(parents)
    if out_columns == in_columns and all(m is not None for m in masks):
        # rows the step left as they were keep the record's JSON
        same_rows = np.logical_and.reduce(masks).tolist() if masks else [True] * n
    else:
        same_rows = [False] * n
    k = len(in_columns)
    # rows that only gained columns after the input's, all unchanged: {**record, new: ...}
    appended = not renamed and out_columns[:k] == in_columns and all(every[:k])
    added = [(name, converted[name]) for name in out_columns[k:]] if appended else []
    general = [
        (name, origin, e, None if e or m is None else m.tolist(), converted.get(name))
        for name, origin, e, m in zip(out_columns, origins, every, masks, strict=True)
    ]
    by_origin = {}
    for name, origin, e, mask, values in general:
        for field in origin if isinstance(origin, tuple) else (origin,):
            by_origin[field] = (name, e, mask, values)
    # every cell kept its value, columns renamed, dropped or reordered at most: each
    # record keeps its fields (those still there), in its order, under the new names
    renaming = (
        not appended
        and all(every)
        and len(set(origins)) == len(origins)
        and not any(isinstance(o, tuple) for o in origins)
    )
    new_name = dict(zip(origins, out_columns, strict=True))
    rows = []
    for i, p in enumerate(parents.tolist()):
        item = items[p]
        if same_rows[i]:
            vhash = item.vhash if item.vhash is not None else value_hash(item.vjson)
            rows.append((item.value, item.vjson, vhash))
            continue
        original = item.value
        if renaming:
            value = {new_name[f]: v for f, v in original.items() if f in new_name}
        elif appended:
            value = {**original}
            for name, values in added:
                value[name] = values[i]
        else:
            # the record's fields in its own order, as a record step would keep them ...
            value = {}
            for field, v in original.items():
                column = by_origin.get(field)
                if column is not None:
                    name, e, mask, values = column
                    value[name] = v if e or (mask is not None and mask[i]) else values[i]
            # ... then the cells it did not have, where the step gave them a value
            for name, origin, e, mask, values in general:
                if isinstance(origin, tuple) or name in value:
                    continue  # columns combined from several: only where the record had one
                if origin not in original and not (e or (mask is not None and mask[i])):
                    value[name] = values[i]
        try:
            text = to_json(value)
        except UNSTORABLE as exc:
            rows.append((exc, None, None))
            continue
        rows.append((value, text, value_hash(text)))
    return rows


def _unchanged(before: Any, after: Any, parents: Any, in_place: bool) -> Any:
    """Per output row: is the cell what its input row held (same type and value)?

    ``in_place``: each output row is the input row at the same position.
    """
    import numpy as np

    pd = _pandas()
    if before.dtype != after.dtype:
        return np.zeros(len(after), dtype=bool)
    a, b = before.to_numpy(), after.to_numpy()
    if in_place and _same_buffer(a, b):  # a column the step did not touch (shared data)
        return np.ones(len(b), dtype=bool)
    if not in_place:
        a = a[parents]  # numpy's take: a Series' iloc costs more than the comparison
    if a.dtype.kind == "O":
        # the very same objects (a filter, a column left alone), without a Python call
        # per cell; text columns included (pandas hands the cells over as they are)
        same = np.fromiter(map(operator.is_, a, b), dtype=bool, count=len(a))
        if same.all():
            return same
    if a.dtype.kind == "f":  # bit for bit: -0.0 is not 0.0 (their JSON differs)
        bits = f"i{a.dtype.itemsize}"
        same = (a.view(bits) == b.view(bits)) | (np.isnan(a) & np.isnan(b))
    elif a.dtype.kind in "iub":
        same = a == b
    elif a.dtype.kind in "mM":
        same = (a == b) | (np.isnat(a) & np.isnat(b))
    elif isinstance(before.dtype, pd.StringDtype):  # text or missing: compared at once
        old = before if in_place else before.iloc[parents]
        same = np.asarray(old.array == after.array, dtype=bool) | (
            old.isna().to_numpy() & after.isna().to_numpy()
        )
    else:  # the cells that are not the same objects, one by one
        for i in np.flatnonzero(~same).tolist():
            x, y = a[i], b[i]
            same[i] = type(x) is type(y) and _equal(x, y)
    return np.asarray(same, dtype=bool)


def _same_buffer(a: Any, b: Any) -> bool:
    """Are two arrays the very same memory (one column, not two equal ones)?"""
    if a.shape != b.shape or a.dtype != b.dtype or a.strides != b.strides:
        return False
    return a.__array_interface__["data"][0] == b.__array_interface__["data"][0]


def _equal(x: Any, y: Any) -> bool:
    try:
        return bool(x == y)
    except Exception:
        return False


def _python_values(column: Any) -> list[Any]:
    """A column's cells as the Python values a record would hold (vectorised)."""
    import numpy as np

    pd = _pandas()
    dtype = column.dtype
    kind = getattr(dtype, "kind", "O")
    if isinstance(dtype, pd.CategoricalDtype):
        return _python_values(column.astype(column.cat.categories.dtype).astype(object))
    if kind in "iubf" and not column.hasnans:
        return column.tolist()
    if kind == "M" or isinstance(dtype, pd.DatetimeTZDtype):
        mask = column.isna().tolist()
        texts = column.map(lambda t: t.isoformat(), na_action="ignore").tolist()
        return [None if m else t for t, m in zip(texts, mask, strict=True)]
    if kind == "m":
        mask = column.isna().tolist()
        texts = column.map(lambda t: t.isoformat(), na_action="ignore").tolist()
        return [None if m else t for t, m in zip(texts, mask, strict=True)]
    plain_objects = isinstance(dtype, np.dtype) and dtype.kind == "O"
    values = column if plain_objects else column.astype(object)
    mask = column.isna()
    if mask.any():
        values = values.where(~mask, None)
    out = values.tolist()
    if plain_objects and not set(map(type, out)) <= _PLAIN:
        out = [_clean(v) for v in out]
    return out


# cells :func:`_clean` returns as they are (NaN is gone: missing cells became None)
_PLAIN = {str, int, bool, float, dict, list, type(None)}


def _clean(value: Any) -> Any:
    """One object cell as a record value (numpy scalars, NaN, NA, NaT, timestamps)."""
    if value is None or isinstance(value, str | int | dict | list | bool):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    name = type(value).__name__
    if name in ("NaTType", "NAType"):
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        item = value.item()
        return None if isinstance(item, float) and math.isnan(item) else item
    return value
