"""Typed pandas DataFrames loaded from a lineage store.

Loaders never write. SQL lives in :mod:`lineage_kit.store`; this module turns rows
into DataFrames with proper dtypes: UTC timestamps, categoricals in pipeline
order, nullable integers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from .store import RUN_COLUMNS
from .store.schema import RUN_STATUSES

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
