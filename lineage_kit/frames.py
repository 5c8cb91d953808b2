"""Typed pandas DataFrames (and the lineage graph) loaded from a lineage store.

Loaders never write. SQL lives in :mod:`lineage_kit.store`; this module turns rows
into DataFrames with proper dtypes: UTC timestamps, categoricals in pipeline
order, nullable integers, pandas' ``str`` dtype for text (a missing text is NaN).
:func:`lineage_graph` decodes the same columns into the input of the pure graph
builder :func:`lineage_kit.graph.entry_graph`.

Record keys are text: every ``key`` parameter also takes a number, turned into
text by the rule the sources apply to key fields
(:func:`lineage_kit.base.key_text`, ``110`` -> ``"110"``).
"""

from __future__ import annotations

import functools
import json
import operator
import re
from collections.abc import Callable, Iterable, Sequence
from itertools import chain
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .base import key_text
from .errors import InvalidArgument, InvalidEntryId, KeyNotFound
from .model import ENTRY_OUTCOME, EntryStatus, RunStatus, StepKind
from .store import RUN_COLUMNS
from .store import queries as q
from .store.queries import HASH_BYTES, STEP_META_COLUMNS, parse_id_list, parse_parameters

if TYPE_CHECKING:
    import networkx as nx

    from .store import Backend

#: What a ``run`` parameter accepts: a run id, a unique prefix, ``"latest"``,
#: ``"all"``, or a list of ids / prefixes / ``"latest"`` (see
#: :meth:`LineageStore.resolve_runs`).
Runs = str | Sequence[str] | None


def _key(key: str | int | float | None) -> str | None:
    return None if key is None else key_text(key)


def _values(enum: type) -> list[str]:
    """An enum's stored texts, in definition order (the categories of a column)."""
    return [member.value for member in enum]


def entry_id_of(value: Any) -> int:
    """An entry id given by a user, as an int.

    Parameters
    ----------
    value : int, numpy integer or str
        An integer, or its decimal text (``"42"``, as typed on a command line).

    Returns
    -------
    int

    Raises
    ------
    InvalidEntryId
        ``value`` is a bool, a float (even ``1.0``), text that is not a decimal
        integer, or anything else.

    Examples
    --------
    >>> entry_id_of(42), entry_id_of(np.int64(42)), entry_id_of(" 42 ")
    (42, 42, 42)
    """
    if isinstance(value, bool | np.bool_):
        raise InvalidEntryId(value)
    if isinstance(value, str):
        if re.fullmatch(r"\s*[+-]?[0-9]+\s*", value):
            return int(value)
        raise InvalidEntryId(value)
    try:
        return operator.index(value)
    except TypeError:
        raise InvalidEntryId(value) from None


def _utc(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, utc=True, format="ISO8601")


def runs_frame(backend: Backend) -> pd.DataFrame:
    """Backs :meth:`lineage_kit.LineageStore.runs`, where it is documented."""
    frame = pd.DataFrame.from_records(backend.run_rows(), columns=list(RUN_COLUMNS))
    frame["started_at"] = _utc(frame["started_at"])
    frame["finished_at"] = _utc(frame["finished_at"])
    frame["status"] = pd.Categorical(frame["status"], categories=_values(RunStatus))
    for column in ("n_input", "n_published", "n_rejected", "n_failed"):
        frame[column] = frame[column].astype("int64")
    frame["parameters"] = [parse_parameters(text) for text in frame["parameters"]]
    frame["writer_pid"] = frame["writer_pid"].astype("Int64")
    frame["duration_s"] = (frame["finished_at"] - frame["started_at"]).dt.total_seconds()
    return frame


# ------------------------------------------------------------------------ steps

STEPS_COLUMNS = (*STEP_META_COLUMNS, "n_ok", "n_rejected", "n_failed")


def step_names(step_rows: list[tuple]) -> list[str]:
    """Step names in pipeline order, each once (over several runs, first seen wins)."""
    ordered = sorted(step_rows, key=lambda r: r[1])
    return list(dict.fromkeys(r[2] for r in ordered))


def steps_frame(backend: Backend, run: Runs = "latest") -> pd.DataFrame:
    """Backs :meth:`lineage_kit.LineageStore.steps`, where it is documented."""
    rows: list[tuple] = []
    run_ids = backend.resolve_runs(run)
    for run_id in run_ids:
        counts: dict[tuple[int, str], int] = {
            (pos, status): n for pos, status, n in backend.step_status_counts(run_id)
        }
        rows.extend(
            (
                *meta,
                *(counts.get((meta[1], status), 0) for status in EntryStatus),
            )
            for meta in backend.step_meta_rows(run_id)
        )
    frame = pd.DataFrame.from_records(rows, columns=list(STEPS_COLUMNS))
    frame["run_id"] = pd.Categorical(frame["run_id"], categories=run_ids)
    frame["position"] = frame["position"].astype("int64")
    frame["name"] = pd.Categorical(frame["name"], categories=step_names(rows), ordered=True)
    frame["kind"] = pd.Categorical(frame["kind"], categories=_values(StepKind))
    frame["started_at"] = _utc(frame["started_at"])
    frame["finished_at"] = _utc(frame["finished_at"])
    frame["busy_seconds"] = frame["busy_seconds"].astype("float64")
    for column in ("n_ok", "n_rejected", "n_failed"):
        frame[column] = frame[column].astype("int64")
    return frame


# ---------------------------------------------------------------------- lineage

LINEAGE_COLUMNS = (
    "entry_id",
    "run_id",
    "position",
    "step",
    "key",
    *ENTRY_OUTCOME,
    "parent_id",
    "n_parents",
)


def _ints(text: str | np.ndarray | None, count: int | None = None) -> np.ndarray:
    """Integers from a comma list; or, when ``count`` is given and the text is
    exactly ``count`` characters without a comma, one digit each (``group_concat(x,
    '')`` of single-digit columns); an array as it is."""
    if isinstance(text, np.ndarray):
        return text.astype("int64", copy=False)
    if not text:
        return np.zeros(0, dtype="int64")
    if count is not None and len(text) == count and (count == 1 or "," not in text):
        digits = np.frombuffer(text.encode("ascii"), dtype=np.uint8).astype("int64")
        if ((digits >= 48) & (digits <= 57)).all():
            return digits - 48
    return np.fromstring(text, sep=",", dtype="int64")


def _sparse_texts(pairs: str | list | None, ids: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """``(rows, texts)`` of ``[entry_id, text]`` pairs (a JSON text or a list; None
    when there are none): ``texts[i]`` belongs to row ``rows[i]`` of ``ids`` (sorted);
    every other row has none."""
    if not pairs:
        return np.zeros(0, dtype=np.intp), []
    if isinstance(pairs, str):
        pairs = json.loads(pairs)
    at = np.searchsorted(ids, np.array([p[0] for p in pairs], dtype="int64"))
    return at, [p[1] for p in pairs]


def _dense(count: int, sparse: tuple[np.ndarray, list[str]], missing: Any = None) -> np.ndarray:
    """An object array of ``count`` items: the sparse texts at their rows, ``missing``
    elsewhere."""
    values = np.full(count, missing, dtype=object)
    rows, texts = sparse
    if len(rows):
        values[rows] = np.array(texts, dtype=object)
    return values


#: Width of one stamp in the comma list :func:`lineage_kit.store.queries.entry_columns`
#: returns (``datetime.isoformat(timespec="microseconds")`` of a UTC time) + the comma.
_STAMP_CELL = 33


def _split_stamps(text: str | None, count: int) -> tuple[np.ndarray, list[str]] | None:
    """``(codes, texts)`` of a comma list of ``count`` 32-character stamps: row ``i`` is
    ``texts[codes[i]]``, one text per run of equal neighbours (entries written in one
    chunk share a stamp). None if the list is not exactly that shape."""
    if count == 0:
        return np.zeros(0, dtype=np.intp), []
    if text is None or len(text) != _STAMP_CELL * count - 1:
        return None
    try:
        raw = (text + ",").encode("ascii")
    except UnicodeEncodeError:
        return None
    grid = np.frombuffer(raw, dtype=np.uint8).reshape(count, _STAMP_CELL)
    comma = grid == ord(",")
    if not comma[:, -1].all() or comma[:, :-1].any():  # a comma inside a stamp: not ours
        return None
    cells = np.frombuffer(raw, dtype=f"S{_STAMP_CELL}")
    starts = np.ones(count, dtype=bool)
    starts[1:] = cells[1:] != cells[:-1]
    codes = np.cumsum(starts) - 1
    texts = [cell[:-1].decode("ascii") for cell in cells[starts].tolist()]
    return codes, texts


def decode_entries(
    raw: tuple,
    created_json: Callable[[], str] | None = None,
    hash_table: Callable[[], tuple] | None = None,
) -> dict[str, Any]:
    """Decode :func:`lineage_kit.store.queries.entry_columns` into columns.

    Parameters
    ----------
    raw : tuple
        The aggregated columns.
    created_json : callable, optional
        Returns the selection's ``created_at`` as a JSON array; called only when
        the comma list of stamps is not the writer's fixed width (a store written
        by something else). Without it such a store raises RuntimeError.
    hash_table : callable, optional
        Returns :func:`lineage_kit.store.queries.hash_table` of the selection (the
        hashes of the values its entries point at), called once. Without it every
        entry's hash is missing.

    Returns
    -------
    dict
        ``entry_id``, ``position``, ``status_code`` as int64 arrays; ``record_key``
        as a list (None where NULL); ``reason`` and ``error`` as ``(rows, texts)``
        of the entries that have one; ``created_codes`` (intp array)
        and ``created_texts`` (list): entry ``i`` was created at
        ``created_texts[created_codes[i]]``; ``hash_codes`` and ``hash_texts``
        alike for the value hash (lowercase hex; the last text is None, the code of
        an entry whose value has no hash); ``first_parent`` (int64, 0: none), the
        entry's ``parent_id``. Sorted by entry id.

    Raises
    ------
    RuntimeError
        The columns do not line up, or the stamps are not fixed width and there is
        no ``created_json``.

    Examples
    --------
    >>> raw = (1, "7", "0", '["k"]', "0", None, '[[7, "bad"]]', None, "7", "0")
    >>> out = decode_entries(raw, lambda: '["2026-01-01T00:00:00Z"]', lambda: ("7", bytes(16)))
    >>> out["created_texts"], out["error"][1], out["hash_texts"][out["hash_codes"][0]]
    (['2026-01-01T00:00:00Z'], ['bad'], '00000000000000000000000000000000')
    """
    count, ids, positions, keys, codes, reasons, errors, created, value_ids, parents = raw
    if isinstance(created, tuple):  # (codes, texts) decoded by the backend
        stamps: tuple[np.ndarray, list[str]] | None = created
    else:
        stamps = _split_stamps(created, count)
    if stamps is None:
        if created_json is None:
            raise RuntimeError("created_at stamps are not fixed width; pass created_json")
        factorized, uniques = pd.factorize(np.asarray(json.loads(created_json()), dtype=object))
        stamps = factorized.astype(np.intp), uniques.tolist()
    table = hash_table() if hash_table is not None and count else (None, b"")
    hash_codes, hash_texts = _hash_codes(_ints(value_ids), *table)
    columns: dict[str, Any] = {
        "entry_id": _ints(ids),
        "position": _ints(positions, count),
        "record_key": json.loads(keys),
        "status_code": _ints(codes, count),
        "created_codes": np.asarray(stamps[0], dtype=np.intp),
        "hash_codes": hash_codes,
        "first_parent": _ints(parents),
    }
    if any(len(v) != count for v in columns.values()):
        raise RuntimeError("lineage columns do not line up")  # a bug, not bad data
    ids = columns["entry_id"]
    if (ids[1:] < ids[:-1]).any():  # filtered selections come in index order
        order = ids.argsort(kind="stable")
        for name, values in columns.items():
            columns[name] = (
                values[order] if isinstance(values, np.ndarray) else [values[i] for i in order]
            )
        ids = columns["entry_id"]
    columns["reason"] = _sparse_texts(reasons, ids)
    columns["error"] = _sparse_texts(errors, ids)
    columns["created_texts"] = stamps[1]
    columns["hash_texts"] = hash_texts
    return columns


def _hash_codes(
    value_ids: np.ndarray, table_ids: str | np.ndarray | None, hashes: bytes | list[str | None]
) -> tuple[np.ndarray, list[str | None]]:
    """``(codes, texts)``: entry ``i``'s value hash is ``texts[codes[i]]``.

    ``table_ids`` and ``hashes`` are :func:`lineage_kit.store.queries.hash_table`'s
    (the values' ids and digests); each entry's ``value_id`` is looked up in them by
    binary search. The last text is None: the code of a value not in the table (as a
    LEFT JOIN would give) or without a hash.
    """
    ids = _ints(table_ids)
    if isinstance(hashes, bytes):
        texts: list[str | None] = hashes.hex(",", HASH_BYTES).split(",") if hashes else []
    else:
        texts = list(hashes)
    if len(texts) != len(ids):
        raise RuntimeError("value hashes do not line up with their ids")  # a bug
    texts.append(None)
    if not len(value_ids):
        return np.zeros(0, dtype=np.intp), texts
    if (ids[1:] < ids[:-1]).any():  # chunks written out of id order (concurrent writers)
        order = ids.argsort(kind="stable")
        ids, texts = ids[order], [texts[i] for i in order.tolist()] + [None]
    codes = np.searchsorted(ids, value_ids)
    missing = codes == len(ids)
    codes[missing] = 0
    if len(ids):
        missing |= ids[codes] != value_ids
    codes[missing] = len(texts) - 1
    return codes, texts


def entry_graph_columns(run_id: str, columns: dict[str, Any]) -> dict[str, list[Any]]:
    """The columns :func:`lineage_kit.graph.entry_graph` reads, from
    :func:`decode_entries` output, as lists of Python objects."""
    n = len(columns["entry_id"])
    return {
        "entry_id": columns["entry_id"].tolist(),
        "run": [run_id] * n,
        "position": columns["position"].tolist(),
        "key": columns["record_key"],
        "status": np.array(_values(EntryStatus), dtype=object)[columns["status_code"]].tolist(),
        "reason": _dense(n, columns["reason"]).tolist(),
        "error": _dense(n, columns["error"]).tolist(),
        "created_at": np.array(columns["created_texts"], dtype=object)[
            columns["created_codes"]
        ].tolist(),
        "value_hash": np.array(columns["hash_texts"], dtype=object)[columns["hash_codes"]].tolist(),
    }


def decode_edges(raw: tuple, entry_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(parent_ids, child_ids)`` arrays of the links whose child is in ``entry_ids``.

    ``entry_ids`` must be sorted.
    """
    parents, children = _ints(raw[0]), _ints(raw[1])
    if len(children):
        where = np.searchsorted(entry_ids, children)
        where[where == len(entry_ids)] = 0
        keep = entry_ids[where] == children if len(entry_ids) else np.zeros(len(children), bool)
        if not keep.all():
            parents, children = parents[keep], children[keep]
    return parents, children


def selection_edges(
    backend: Backend,
    run_id: str,
    columns: dict[str, Any],
    key: str | None = None,
    position: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(parent_ids, child_ids)`` of the selected entries' links: first parents from
    :func:`decode_entries`' ``first_parent``, a merge's further ones read apart."""
    ids, first = columns["entry_id"], columns["first_parent"]
    has = first > 0
    extra_parents, extra_children = decode_edges(
        backend.edge_columns(run_id, key=key, position=position, extra_only=True), ids
    )
    if not len(extra_children):
        return first[has], ids[has]
    return (
        np.concatenate([first[has], extra_parents]),
        np.concatenate([ids[has], extra_children]),
    )


def _parent_columns(
    entry_ids: np.ndarray, parents: np.ndarray, children: np.ndarray
) -> tuple[pd.arrays.IntegerArray, np.ndarray]:
    """Per entry: its smallest parent id (nullable) and its number of parents."""
    n = len(entry_ids)
    parent = np.zeros(n, dtype="int64")
    mask = np.ones(n, dtype=bool)
    count = np.zeros(n, dtype="int64")
    if (
        len(children) and (children[1:] > children[:-1]).all()
    ):  # at most one parent each (no merge), in entry order: no sort
        where = np.searchsorted(entry_ids, children)
        parent[where] = parents
        mask[where] = False
        count[where] = 1
    elif len(children):
        order = np.lexsort((parents, children))
        parents, children = parents[order], children[order]
        unique, first, per_child = np.unique(children, return_index=True, return_counts=True)
        where = np.searchsorted(entry_ids, unique)
        parent[where] = parents[first]
        mask[where] = False
        count[where] = per_child
    return pd.arrays.IntegerArray(parent, mask), count


def lineage_frame(
    backend: Backend,
    run: Runs = "latest",
    key: str | int | float | None = None,
    step: str | int | None = None,
) -> pd.DataFrame:
    """Backs :meth:`lineage_kit.LineageStore.lineage`, where it is documented."""
    key = _key(key)
    parts = []
    run_ids = backend.resolve_runs(run)
    all_steps: list[tuple] = []
    for run_id in run_ids:
        steps = backend.step_meta_rows(run_id)
        all_steps.extend(steps)
        position = backend.step_position(run_id, step, steps) if step is not None else None
        if position is None and step is not None:
            continue  # "all": a run without this step contributes nothing
        columns = decode_entries(
            backend.entry_columns(run_id, key=key, position=position),
            functools.partial(backend.created_at_json, run_id, key=key, position=position),
            functools.partial(backend.hash_table, run_id, key=key, position=position),
        )
        edges = selection_edges(backend, run_id, columns, key, position)
        parts.append(_entry_block(run_id, columns, edges, [s[2] for s in steps]))
    if step is not None and not parts:
        raise InvalidArgument(f"{step!r} is not a step of the chosen run(s)")
    names = step_names(all_steps)
    if not parts:  # no entries, or no runs at all ("all" on an empty store)
        empty = decode_entries(q.EMPTY_COLUMNS)
        placeholder = run_ids[0] if run_ids else ""  # dropped by set_categories below
        parts.append(_entry_block(placeholder, empty, (_ints(None), _ints(None)), names))
    for part in parts:
        part["run_id"] = part["run_id"].cat.set_categories(run_ids)
        part["step"] = part["step"].cat.set_categories(names, ordered=True)
    frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    return frame


def _entry_block(
    run_id: str,
    columns: dict[str, Any],
    edges: tuple[np.ndarray, np.ndarray],
    step_names_: list[str],
) -> pd.DataFrame:
    ids, positions = columns["entry_id"], columns["position"]
    n = len(ids)
    parent_id, n_parents = _parent_columns(ids, *edges)
    return pd.DataFrame(
        {
            "entry_id": ids,
            "run_id": pd.Categorical.from_codes(np.zeros(n, dtype="int8"), categories=[run_id]),
            "position": positions,
            "step": pd.Categorical.from_codes(positions, categories=step_names_),
            "key": pd.array(columns["record_key"], dtype=_STR),
            "status": pd.Categorical.from_codes(
                columns["status_code"], categories=_values(EntryStatus)
            ),
            "reason": pd.arrays.StringArray(_dense(n, columns["reason"], np.nan), dtype=_STR),
            "error": pd.arrays.StringArray(_dense(n, columns["error"], np.nan), dtype=_STR),
            "created_at": _utc_texts(columns["created_texts"]).take(columns["created_codes"]),
            "value_hash": _str_take(columns["hash_texts"], columns["hash_codes"]),
            "parent_id": parent_id,
            "n_parents": n_parents,
        },
        columns=list(LINEAGE_COLUMNS),
        copy=False,  # every array is built here for this frame alone
    )


def _str_take(texts: list[str | None], codes: np.ndarray) -> pd.arrays.StringArray:
    """``pd.array([texts[c] for c in codes], dtype="str")`` (texts are str or None),
    built by one take of the distinct texts: no conversion per row."""
    distinct = np.empty(len(texts), dtype=object)
    distinct[:] = texts
    if None in texts[:-1]:  # as a rule only the last is (a scan at C speed)
        distinct[distinct == None] = np.nan  # noqa: E711 (elementwise, on an object array)
    elif texts and texts[-1] is None:
        distinct[-1] = np.nan
    return pd.arrays.StringArray(distinct.take(codes), dtype=_STR)


#: The dtype ``pd.to_datetime(..., utc=True)`` gives the writer's microsecond stamps.
_UTC_US = pd.DatetimeTZDtype("us", "UTC")
#: What ``astype("str")`` / ``pd.array(..., dtype="str")`` resolve to, looked up once.
_STR = pd.api.types.pandas_dtype("str")


def _writer_stamp(text: object) -> bool:
    # datetime.isoformat(timespec="microseconds") of a UTC time, as the writer stores it
    return (
        isinstance(text, str)
        and len(text) == 32
        and text[10] == "T"
        and text[19] == "."
        and text.endswith("+00:00")
    )


def _utc_texts(texts: Sequence[Any]) -> pd.arrays.DatetimeArray:
    """``pd.to_datetime(texts, utc=True, format="ISO8601")`` as an array, fast for the
    writer's fixed-width stamps (numpy parses those; anything else goes to pandas)."""
    if not len(texts):  # pandas would pick second resolution for an empty list
        return pd.array(np.array([], dtype="datetime64[us]"), dtype=_UTC_US)
    if all(_writer_stamp(t) for t in texts):
        try:
            naive = np.array([t[:26] for t in texts], dtype="datetime64[us]")
        except ValueError:
            pass
        else:
            return pd.array(naive, dtype=_UTC_US)  # naive values are UTC wall times
    return pd.to_datetime(texts, utc=True, format="ISO8601").array


# ------------------------------------------------------------------------ graph


def lineage_graph(
    backend: Backend, run: Runs = "latest", key: str | int | float | None = None
) -> nx.DiGraph:
    """Backs :meth:`lineage_kit.LineageStore.graph`, where it is documented."""
    from .graph import ENTRY_FIELDS, STEP_FIELDS, entry_graph

    key = _key(key)
    run_ids = backend.resolve_runs(run)
    steps = {run_id: backend.step_meta_rows(run_id) for run_id in run_ids}
    entries: dict[str, list[Any]] = {name: [] for name in (*ENTRY_FIELDS, "value")}
    edges: list[Iterable[tuple[int, int]]] = []
    for run_id in run_ids:
        if key is None:
            decoded = decode_entries(
                backend.entry_columns(run_id),
                functools.partial(backend.created_at_json, run_id),
                functools.partial(backend.hash_table, run_id),
            )
            columns = entry_graph_columns(run_id, decoded)
            parents, children = selection_edges(backend, run_id, decoded)
            edges.append(zip(parents.tolist(), children.tolist(), strict=True))
        else:
            found = backend.connected_entry_rows(run_id, key)
            columns = dict(zip((*ENTRY_FIELDS, "value"), zip(*found, strict=True), strict=False))
            edges.append(backend.links_among([r[0] for r in found]))
        for name, values in columns.items():
            entries[name].extend(values)
    if key is not None and not entries["entry_id"]:
        raise KeyNotFound(key, run_ids, all_runs=run == "all")
    newest = (run_ids[-1] if run == "all" else run_ids[0]) if run_ids else None
    return entry_graph(
        entries,
        chain.from_iterable(edges),
        step_names={run_id: [s[2] for s in rows] for run_id, rows in steps.items()},
        with_values=key is not None,
        graph_attrs={
            "run_id": run_ids[0] if len(run_ids) == 1 else None,
            "run_ids": run_ids,
            "steps": [dict(zip(STEP_FIELDS, s[1:7], strict=True)) for s in steps.get(newest, [])],
        },
    )


# ------------------------------------------------------------- traces and walks

RELATIONS = ("upstream", "self", "downstream")

_STATUS_DTYPE = pd.CategoricalDtype(_values(EntryStatus))
_KIND_DTYPE = pd.CategoricalDtype(_values(StepKind))
_RELATION_DTYPE = pd.CategoricalDtype(list(RELATIONS))


@functools.lru_cache(maxsize=256)
def _category_dtype(categories: tuple[str, ...], ordered: bool) -> pd.CategoricalDtype:
    """A categorical dtype, built once per category list (building one costs ~30 us)."""
    return pd.CategoricalDtype(list(categories), ordered=ordered)


def _categorical(values: tuple, dtype: pd.CategoricalDtype) -> pd.Categorical:
    """``pd.Categorical(values, dtype=dtype)`` for short columns: codes by dict lookup,
    -1 (NaN) for a value that is not a category, as pandas does."""
    lookup = {c: i for i, c in enumerate(dtype.categories)}
    codes = np.array([lookup.get(v, -1) for v in values], dtype=np.int16)
    return pd.Categorical.from_codes(codes, dtype=dtype, validate=False)


def _step_categories(backend: Backend, run_ids: list[str]) -> list[str]:
    rows: list[tuple] = []
    for run_id in run_ids:
        rows.extend(backend.step_name_rows(run_id))
    return step_names(rows)


_DETAIL_INTS = frozenset({"entry_id", "position", "depth"})
_DETAIL_TEXTS = frozenset({"source", "destination", "description", "record_key", "reason", "error"})
_DETAIL_FIXED = {"kind": _KIND_DTYPE, "status": _STATUS_DTYPE, "relation": _RELATION_DTYPE}


def _detail_frame(
    backend: Backend,
    rows: list[tuple],
    columns: tuple[str, ...],
    run_ids: list[str],
    skip: frozenset[str] = frozenset(),
) -> pd.DataFrame:
    """Trace / walk rows -> a typed frame (``record_key`` is renamed ``key``).

    Columns named in ``skip`` are left out. Each column is built already typed and
    the frame in one constructor call: a trace is a handful of rows, so per-call
    pandas overhead (dtype inference, ``astype`` copies) is what costs.
    """
    data: dict[str, Any] = {}
    for name, values in zip(columns, zip(*rows, strict=True), strict=True):
        if name in skip:
            continue
        if name in _DETAIL_INTS:
            data[name] = np.array(values, dtype=np.int64)
        elif name in _DETAIL_TEXTS:
            data["key" if name == "record_key" else name] = pd.array(values, dtype=_STR)
        elif name in _DETAIL_FIXED:
            data[name] = _categorical(values, _DETAIL_FIXED[name])
        elif name == "run_id":
            data[name] = _categorical(values, _category_dtype(tuple(run_ids), False))
        elif name == "step":
            steps = tuple(_step_categories(backend, run_ids))
            data[name] = _categorical(values, _category_dtype(steps, True))
        elif name == "value_hash":  # as DataFrame.from_records infers it: all NULL -> object
            none = all(v is None for v in values)
            data[name] = np.array(values, dtype=object) if none else pd.array(values, dtype=_STR)
        elif name == "created_at":
            data[name] = _utc_texts(list(values))
        elif name == "parent_ids":
            data[name] = [parse_id_list(text) for text in values]
        else:  # pragma: no cover - a column added to the queries without a type here
            raise RuntimeError(f"no type for trace column {name!r}")
    return pd.DataFrame(data, copy=False)


def trace_frame(backend: Backend, key: str | int | float, run: Runs = "latest") -> pd.DataFrame:
    """Backs :meth:`lineage_kit.LineageStore.trace`, where it is documented."""
    key = key_text(key)
    run_ids = backend.resolve_runs(run)
    rows: list[tuple] = []
    for run_id in run_ids:
        rows.extend(backend.trace_rows(run_id, key))
    if not rows:
        raise KeyNotFound(key, run_ids, all_runs=run == "all")
    return _detail_frame(backend, rows, q.TRACE_COLUMNS, run_ids)


def walk_frame(
    backend: Backend, entry_id: int, depth: int | None = None, direction: str = "up"
) -> pd.DataFrame:
    """The frame behind :meth:`LineageStore.upstream <lineage_kit.LineageStore.upstream>` and
    :meth:`~lineage_kit.LineageStore.downstream` (documented there)."""
    from .errors import EntryNotFound

    if direction not in ("up", "down"):
        raise InvalidArgument(f"direction must be 'up' or 'down', not {direction!r}")
    if depth is not None and (not isinstance(depth, int) or depth < 0):
        raise InvalidArgument(f"depth must be None or a non-negative integer, not {depth!r}")
    entry_id = entry_id_of(entry_id)
    rows = backend.walk_rows(entry_id, depth, direction)
    if not rows:
        raise EntryNotFound(f"no lineage entry {entry_id} in {backend.location}")
    columns = ("entry_id", "depth", *q.TRACE_COLUMNS[1:])
    run_ids = list(dict.fromkeys(r[2] for r in rows))
    return _detail_frame(backend, rows, columns, run_ids, skip=frozenset({"relation"}))


def source_frame(
    backend: Backend,
    key: str | int | float | None = None,
    run: str | None = "latest",
    *,
    entry_id: int | None = None,
) -> pd.DataFrame:
    """Backs :meth:`lineage_kit.LineageStore.source_of`, where it is documented."""
    from .errors import EntryNotFound

    if (key is None) == (entry_id is None):
        raise InvalidArgument("give exactly one of key and entry_id")
    if key is not None:
        key = key_text(key)
        run_id = backend.resolve_run(run)
        seeds = backend.last_entries_of_key(run_id, key)
        if not seeds:
            raise KeyNotFound(key, [run_id])
    else:
        seeds = [entry_id_of(entry_id)]
        if not backend.entry_exists(seeds[0]):
            raise EntryNotFound(f"no lineage entry {seeds[0]} in {backend.location}")
    rows = backend.source_rows(seeds)
    frame = pd.DataFrame.from_records(
        rows,
        columns=[
            "entry_id",
            "run_id",
            "key",
            "status",
            "reason",
            "created_at",
            "value_hash",
            "value",
        ],
    )
    frame["entry_id"] = frame["entry_id"].astype("int64")
    for column in ("key", "reason"):
        frame[column] = frame[column].astype(_STR)
    frame["status"] = pd.Categorical(frame["status"], categories=_values(EntryStatus))
    frame["created_at"] = _utc(frame["created_at"])
    frame["value"] = [json.loads(v) for v in frame["value"]]
    return frame


# ---------------------------------------------------------------------- records


def records_frame(
    backend: Backend,
    run: Runs = "latest",
    key: str | int | float | None = None,
    step: str | int | None = None,
    expand: bool = False,
) -> pd.DataFrame:
    """Backs :meth:`lineage_kit.LineageStore.records`, where it is documented."""
    key = _key(key)
    meta = lineage_frame(backend, run, key=key, step=step)[
        ["entry_id", "run_id", "step", "position", "key", "status"]
    ]
    ids: list[np.ndarray] = []
    values: list[Any] = []
    for run_id in meta["run_id"].cat.categories:
        position = backend.step_position(run_id, step) if step is not None else None
        if step is not None and position is None:
            continue
        raw_ids, raw_values = backend.value_columns(run_id, key=key, position=position)
        run_ids_, run_values = _ints(raw_ids), json.loads(raw_values) if raw_values else []
        if (run_ids_[1:] < run_ids_[:-1]).any():
            order = run_ids_.argsort(kind="stable")
            run_ids_, run_values = run_ids_[order], [run_values[i] for i in order]
        ids.append(run_ids_)
        values.extend(run_values)
    if not np.array_equal(np.concatenate(ids) if ids else _ints(None), meta["entry_id"]):
        raise RuntimeError("record values do not line up with their entries")  # a bug
    frame = meta.reset_index(drop=True)
    if not expand:
        frame["value"] = values
        return frame
    expanded = pd.DataFrame(
        [flatten(v) if isinstance(v, dict) else {} for v in values], index=frame.index
    )
    expanded.columns = [f"value.{c}" for c in expanded.columns]
    return pd.concat([frame, expanded], axis=1)


# ------------------------------------------------------------------------ diffs

CHANGE_KINDS = ("added", "removed", "changed")
WHOLE_VALUE = "(value)"


def field_name(name: object) -> str:
    r"""One level of a flattened field path: a dot or backslash in the name escaped.

    Examples
    --------
    >>> print(field_name("amount"), field_name("n.x"), field_name("a\\b"))
    amount n\.x a\\b
    """
    text = str(name)
    if "." in text or "\\" in text:
        text = text.replace("\\", "\\\\").replace(".", "\\.")
    return text


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    r"""Flatten nested objects into dotted field paths; lists and ``{}`` stay whole values.

    The path joins the field names with ``.``; a name that holds a dot or a
    backslash has them escaped with a backslash (:func:`field_name`), so every
    path names one field: ``{"n": {"x": 1}}`` gives ``n.x``, a top-level field
    ``"n.x"`` gives ``n\.x``. Splitting a path at the dots not preceded by a
    backslash gives the names back. A value that is not an object becomes the
    single field ``"(value)"``.

    Parameters
    ----------
    value : object
        A parsed JSON value.
    prefix : str, optional
        The (already escaped) path of ``value`` itself, for the recursion.

    Returns
    -------
    dict
        Path -> leaf value, in the order the fields appear.

    Examples
    --------
    >>> print(list(flatten({"a": 1, "b": {"c": 2}, "b.c": 3})))
    ['a', 'b.c', 'b\\.c']
    """
    if not isinstance(value, dict):
        return {prefix or WHOLE_VALUE: value}
    out: dict[str, Any] = {}
    for field, item in value.items():
        name = field_name(field)
        path = f"{prefix}.{name}" if prefix else name
        if isinstance(item, dict) and item:
            out.update(flatten(item, path))
        else:
            out[path] = item
    return out


def diff_values(before: Any, after: Any) -> list[tuple[str, str, Any, Any]]:
    """``(field, change, old, new)`` for every field that differs, by field name.

    Examples
    --------
    >>> diff_values({"A": 1, "b": 2}, {"a": 1, "b": 3})
    [('A', 'removed', 1, None), ('a', 'added', None, 1), ('b', 'changed', 2, 3)]
    """
    old, new = flatten(before), flatten(after)
    out = []
    for field in sorted(old.keys() | new.keys()):
        if field not in new:
            out.append((field, "removed", old[field], None))
        elif field not in old:
            out.append((field, "added", None, new[field]))
        elif old[field] != new[field] or type(old[field]) is not type(new[field]):
            out.append((field, "changed", old[field], new[field]))
    return out


def changes_frame(backend: Backend, key: str | int | float, run: Runs = "latest") -> pd.DataFrame:
    """Backs :meth:`lineage_kit.LineageStore.changes`, where it is documented."""
    trace = trace_frame(backend, key, run)
    own = trace[trace["relation"] == "self"]
    parent_ids = sorted({p for ps in own["parent_ids"] for p in ps})
    wanted = [*own["entry_id"].tolist(), *parent_ids]
    values = {i: json.loads(v) for i, v in backend.value_rows(wanted)}
    keys = dict(zip(trace["entry_id"], trace["key"], strict=True))
    missing = [p for p in parent_ids if p not in keys]
    if missing:  # a parent outside the trace cannot happen; keep the key lookup total
        keys.update({p: None for p in missing})
    rows = []
    for entry in own.itertuples(index=False):
        for parent in entry.parent_ids:
            for field, change, old, new in diff_values(values[parent], values[entry.entry_id]):
                rows.append(
                    (
                        entry.run_id,
                        entry.entry_id,
                        entry.step,
                        entry.position,
                        parent,
                        keys[parent],
                        field,
                        change,
                        old,
                        new,
                    )
                )
    frame = pd.DataFrame.from_records(
        rows,
        columns=[
            "run_id",
            "entry_id",
            "step",
            "position",
            "parent_id",
            "parent_key",
            "field",
            "change",
            "old",
            "new",
        ],
    )
    frame["run_id"] = pd.Categorical(frame["run_id"], categories=trace["run_id"].cat.categories)
    frame["step"] = pd.Categorical(
        frame["step"], categories=trace["step"].cat.categories, ordered=True
    )
    for column in ("entry_id", "position", "parent_id"):
        frame[column] = frame[column].astype("int64")
    frame["change"] = pd.Categorical(frame["change"], categories=list(CHANGE_KINDS))
    frame["old"] = frame["old"].astype(object)
    frame["new"] = frame["new"].astype(object)
    return frame


DIFFERENCES = ("only_in_a", "only_in_b", "different_path", "different_value")


def _paths(frame: pd.DataFrame) -> pd.DataFrame:
    """Per key: its path (``step:status`` in order), final status and value hash."""
    keyed = frame[frame["key"].notna()].sort_values(["key", "position", "entry_id"])
    token = keyed["step"].astype(str) + ":" + keyed["status"].astype(str)
    groups = token.groupby(keyed["key"], sort=True)
    last = keyed.groupby("key", sort=True)[["status", "value_hash"]].last()
    return pd.DataFrame(
        {
            "path": groups.agg(" > ".join),
            "status": last["status"].astype(str),
            "value_hash": last["value_hash"],
        }
    )


def compare_frame(backend: Backend, run_a: str, run_b: str) -> pd.DataFrame:
    """Backs :meth:`lineage_kit.LineageStore.compare_runs`, where it is documented."""
    if "all" in (run_a, run_b):
        raise InvalidArgument("compare_runs compares two runs; 'all' is not one run")
    a = _paths(lineage_frame(backend, backend.resolve_run(run_a)))
    b = _paths(lineage_frame(backend, backend.resolve_run(run_b)))
    both = a.merge(b, how="outer", left_index=True, right_index=True, suffixes=("_a", "_b"))
    both.index.name = "key"
    difference = np.select(
        [
            both["path_b"].isna(),
            both["path_a"].isna(),
            both["path_a"] != both["path_b"],
            both["value_hash_a"] != both["value_hash_b"],
        ],
        list(DIFFERENCES),
        default="",
    )
    out = both.reset_index().rename(columns={"value_hash_a": "hash_a", "value_hash_b": "hash_b"})
    out.insert(1, "difference", difference)
    out = out[out["difference"] != ""]
    out["difference"] = pd.Categorical(out["difference"], categories=list(DIFFERENCES))
    out = out.sort_values(["difference", "key"]).reset_index(drop=True)
    return out[
        ["key", "difference", "path_a", "path_b", "status_a", "status_b", "hash_a", "hash_b"]
    ]
