"""Typed pandas DataFrames loaded from a lineage store.

Loaders never write. SQL lives in :mod:`lineage_kit.store`; this module turns rows
into DataFrames with proper dtypes: UTC timestamps, categoricals in pipeline
order, nullable integers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .store import RUN_COLUMNS
from .store.schema import ENTRY_STATUSES, RUN_STATUSES, STEP_KINDS

if TYPE_CHECKING:
    from .store import LineageStore


def _utc(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, utc=True, format="ISO8601")


def runs_frame(store: LineageStore) -> pd.DataFrame:
    """Every run in the store, newest first.

    Returns
    -------
    pandas.DataFrame
        One row per run: ``run_id``, ``pipeline``, ``started_at`` and ``finished_at``
        (UTC), ``status`` (categorical; a run whose writer died shows
        ``interrupted``), the input path and sha256, counts ``n_input``,
        ``n_published``, ``n_rejected``, ``n_failed``, ``parameters`` (JSON text),
        ``package_version``, ``error``, and ``duration_s``.
    """
    frame = pd.DataFrame.from_records(store.run_rows(), columns=list(RUN_COLUMNS))
    frame["started_at"] = _utc(frame["started_at"])
    frame["finished_at"] = _utc(frame["finished_at"])
    frame["status"] = pd.Categorical(frame["status"], categories=list(RUN_STATUSES))
    for column in ("n_input", "n_published", "n_rejected", "n_failed"):
        frame[column] = frame[column].astype("int64")
    frame["writer_pid"] = frame["writer_pid"].astype("Int64")
    frame["duration_s"] = (frame["finished_at"] - frame["started_at"]).dt.total_seconds()
    return frame


# ------------------------------------------------------------------------ steps

STEPS_COLUMNS = (
    "run_id",
    "position",
    "name",
    "kind",
    "source",
    "destination",
    "description",
    "started_at",
    "finished_at",
    "busy_seconds",
    "n_ok",
    "n_rejected",
    "n_failed",
)


def step_names(step_rows: list[tuple]) -> list[str]:
    """Step names in pipeline order, each once (over several runs, first seen wins)."""
    ordered = sorted(step_rows, key=lambda r: r[1])
    return list(dict.fromkeys(r[2] for r in ordered))


def steps_frame(store: LineageStore, run: str | None = "latest") -> pd.DataFrame:
    """The steps of a run, one row per step in pipeline order.

    Parameters
    ----------
    store : LineageStore
    run : str, default "latest"
        A run id, a unique prefix, ``"latest"`` or ``"all"``.

    Returns
    -------
    pandas.DataFrame
        Columns ``run_id`` (categorical), ``position`` (int64), ``name``
        (categorical in pipeline order), ``kind`` (categorical map/merge/split),
        ``source``, ``destination``, ``description``, ``started_at`` and
        ``finished_at`` (UTC; NaT when the step never ran), ``busy_seconds``
        (float64), ``n_ok``, ``n_rejected``, ``n_failed`` (int64: the step's entries
        by status). With ``run="all"``, runs oldest first.

    Raises
    ------
    RunNotFound
        ``run`` matches no run.
    """
    from .store import queries as q

    rows: list[tuple] = []
    run_ids = store.resolve_runs(run)
    for run_id in run_ids:
        counts: dict[tuple[int, str], int] = {
            (pos, status): n for pos, status, n in q.step_status_counts(store.con, run_id)
        }
        rows.extend(
            (
                *meta,
                counts.get((meta[1], "ok"), 0),
                counts.get((meta[1], "rejected"), 0),
                counts.get((meta[1], "failed"), 0),
            )
            for meta in q.step_meta_rows(store.con, run_id)
        )
    frame = pd.DataFrame.from_records(rows, columns=list(STEPS_COLUMNS))
    frame["run_id"] = pd.Categorical(frame["run_id"], categories=run_ids)
    frame["position"] = frame["position"].astype("int64")
    frame["name"] = pd.Categorical(frame["name"], categories=step_names(rows), ordered=True)
    frame["kind"] = pd.Categorical(frame["kind"], categories=list(STEP_KINDS))
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
    "status",
    "reason",
    "error",
    "created_at",
    "value_hash",
    "parent_id",
    "n_parents",
)


def _parent_columns(
    entry_ids: np.ndarray, edges: list[tuple[int, int]]
) -> tuple[pd.array, np.ndarray]:
    """Per entry: its smallest parent id (nullable) and its number of parents."""
    n = len(entry_ids)
    parent = np.zeros(n, dtype="int64")
    mask = np.ones(n, dtype=bool)
    count = np.zeros(n, dtype="int64")
    if edges:
        links = np.array(edges, dtype="int64")  # (parent_id, child_id)
        order = np.lexsort((links[:, 0], links[:, 1]))
        links = links[order]
        children, first, per_child = np.unique(links[:, 1], return_index=True, return_counts=True)
        where = np.searchsorted(entry_ids, children)
        parent[where] = links[first, 0]
        mask[where] = False
        count[where] = per_child
    return pd.arrays.IntegerArray(parent, mask), count


def lineage_frame(
    store: LineageStore,
    run: str | None = "latest",
    key: str | None = None,
    step: str | int | None = None,
) -> pd.DataFrame:
    """The lineage entries of a run, one row per entry, by entry id.

    Parameters
    ----------
    store : LineageStore
    run : str, default "latest"
        A run id, a unique prefix, ``"latest"`` or ``"all"``.
    key : str, optional
        Only this record key's entries.
    step : str or int, optional
        Only this step's entries (its name or position).

    Returns
    -------
    pandas.DataFrame
        Columns ``entry_id`` (int64), ``run_id`` (categorical), ``position``
        (int64), ``step`` (categorical in pipeline order), ``key`` (None for
        records rejected before they had a key), ``status`` (categorical
        ok/rejected/failed), ``reason``, ``error``, ``created_at`` (UTC),
        ``value_hash``, ``parent_id`` (Int64: the parent entry, the smallest one for
        a merged entry, ``<NA>`` for a first-step entry) and ``n_parents`` (int64;
        more than 1 for a merged entry).

    Raises
    ------
    RunNotFound
        ``run`` matches no run.
    ValueError
        ``step`` is not a step of the run.

    Examples
    --------
    >>> store.lineage(key="order-101")[["step", "status"]]  # doctest: +SKIP
    """
    from .store import queries as q

    parts = []
    run_ids = store.resolve_runs(run)
    all_steps: list[tuple] = []
    for run_id in run_ids:
        steps = q.step_meta_rows(store.con, run_id)
        all_steps.extend(steps)
        position = store.step_position(run_id, step, steps) if step is not None else None
        if position is None and step is not None:
            continue  # "all": a run without this step contributes nothing
        rows = q.frame_entry_rows(store.con, run_id, key=key, position=position)
        edges = q.edge_rows(store.con, run_id, key=key, position=position)
        parts.append(_entry_block(run_id, rows, edges, [s[2] for s in steps]))
    if step is not None and not parts:
        raise ValueError(f"{step!r} is not a step of the chosen run(s)")
    names = step_names(all_steps)
    if not parts:
        parts.append(_entry_block(run_ids[0], [], [], names))
    for part in parts:
        part["run_id"] = part["run_id"].cat.set_categories(run_ids)
        part["step"] = part["step"].cat.set_categories(names, ordered=True)
    frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    return frame


def _entry_block(
    run_id: str, rows: list[tuple], edges: list[tuple[int, int]], step_names_: list[str]
) -> pd.DataFrame:
    n = len(rows)
    if n:
        entry_id, position, key, status, reason, error, created_at, value_hash = zip(
            *rows, strict=True
        )
    else:
        entry_id = position = key = status = reason = error = created_at = value_hash = ()
    ids = np.fromiter(entry_id, dtype="int64", count=n)
    pos = np.fromiter(position, dtype="int64", count=n)
    parent_id, n_parents = _parent_columns(ids, edges)
    return pd.DataFrame(
        {
            "entry_id": ids,
            "run_id": pd.Categorical.from_codes(np.zeros(n, dtype="int8"), categories=[run_id]),
            "position": pos,
            "step": pd.Categorical.from_codes(pos, categories=step_names_),
            "key": pd.array(key, dtype="str"),
            "status": pd.Categorical.from_codes(
                np.fromiter(status, dtype="int8", count=n), categories=list(ENTRY_STATUSES)
            ),
            "reason": pd.array(reason, dtype="str"),
            "error": pd.array(error, dtype="str"),
            "created_at": _utc(pd.Series(created_at, dtype="object")),
            "value_hash": pd.array(value_hash, dtype="str"),
            "parent_id": parent_id,
            "n_parents": n_parents,
        },
        columns=list(LINEAGE_COLUMNS),
    )
