"""Read queries over a lineage store. Every statement is parameterised."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator

STEP_COLUMNS = (
    "position",
    "name",
    "kind",
    "source",
    "destination",
    "description",
    "started_at",
    "finished_at",
    "busy_seconds",
)


def step_rows(con: sqlite3.Connection, run_id: str) -> list[tuple]:
    """The steps of a run, in pipeline order (columns :data:`STEP_COLUMNS`)."""
    return con.execute(
        f"SELECT {', '.join(STEP_COLUMNS)} FROM steps WHERE run_id = ? ORDER BY position",
        (run_id,),
    ).fetchall()


def count_entries(con: sqlite3.Connection, run_id: str) -> int:
    """How many lineage entries a run has."""
    return con.execute("SELECT count(*) FROM lineage WHERE run_id = ?", (run_id,)).fetchone()[0]


REPORT_COLUMNS = (
    "entry_id",
    "record_key",
    "position",
    "status",
    "reason",
    "error",
    "created_at",
    "parent_ids",
)


def report_rows(con: sqlite3.Connection, run_id: str) -> Iterator[tuple]:
    """Every entry of a run with its parent ids (comma-separated), by key then step."""
    return con.execute(
        """
        SELECT l.entry_id, l.record_key, l.position, l.status, l.reason, l.error, l.created_at,
               (SELECT group_concat(p.parent_id) FROM parents p WHERE p.child_id = l.entry_id)
        FROM lineage l
        WHERE l.run_id = ?
        ORDER BY l.record_key, l.position, l.entry_id
        """,
        (run_id,),
    )


# --------------------------------------------------------------------- explore
# Queries behind LineageStore.steps(), .lineage(), .graph() and friends. Optional
# filters are chosen from fixed SQL fragments; values are always bound parameters.

ALL_RUN_IDS = "SELECT run_id FROM runs ORDER BY started_at, rowid"

STEP_META_COLUMNS = (
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
)

#: Entry columns, in the order :func:`entry_rows` returns them.
ENTRY_COLUMNS = (
    "entry_id",
    "run_id",
    "position",
    "record_key",
    "status",
    "reason",
    "error",
    "created_at",
    "value_hash",
)


def all_run_ids(con: sqlite3.Connection) -> list[str]:
    """Every run id, oldest first."""
    return [r[0] for r in con.execute(ALL_RUN_IDS)]


def step_meta_rows(con: sqlite3.Connection, run_id: str) -> list[tuple]:
    """A run's steps in pipeline order (columns :data:`STEP_META_COLUMNS`)."""
    return con.execute(
        f"SELECT {', '.join(STEP_META_COLUMNS)} FROM steps WHERE run_id = ? ORDER BY position",
        (run_id,),
    ).fetchall()


def step_status_counts(con: sqlite3.Connection, run_id: str) -> list[tuple[int, str, int]]:
    """``(position, status, count)`` for a run (a scan of the covering run index)."""
    return con.execute(
        "SELECT position, status, count(*) FROM lineage WHERE run_id = ? GROUP BY position, status",
        (run_id,),
    ).fetchall()


def _entry_filter(key: bool, position: bool) -> str:
    where = "l.run_id = ?"
    if key:
        where = "l.record_key = ? AND " + where
    if position:
        where += " AND l.position = ?"
    return where


def _entry_params(run_id: str, key: str | None, position: int | None) -> tuple:
    params: tuple = (run_id,)
    if key is not None:
        params = (key, *params)
    if position is not None:
        params = (*params, position)
    return params


def entry_rows(
    con: sqlite3.Connection,
    run_id: str,
    *,
    key: str | None = None,
    position: int | None = None,
    columns: tuple[str, ...] = ENTRY_COLUMNS,
) -> list[tuple]:
    """The lineage entries of a run (optionally one key, one step), by entry id.

    ``columns`` is a subset of :data:`ENTRY_COLUMNS` (fixed names, never user text).
    """
    if not set(columns) <= set(ENTRY_COLUMNS):
        raise ValueError(f"unknown entry columns: {sorted(set(columns) - set(ENTRY_COLUMNS))}")
    select = ", ".join(f"l.{c}" for c in columns)
    where = _entry_filter(key is not None, position is not None)
    sql = f"SELECT {select} FROM lineage l WHERE {where} ORDER BY l.entry_id"
    return con.execute(sql, _entry_params(run_id, key, position)).fetchall()


def edge_rows(
    con: sqlite3.Connection,
    run_id: str,
    *,
    key: str | None = None,
    position: int | None = None,
) -> list[tuple[int, int]]:
    """``(parent_id, child_id)`` links of the selected entries (the child is selected)."""
    sql = (
        "SELECT p.parent_id, p.child_id FROM lineage l "
        "JOIN parents p ON p.child_id = l.entry_id "
        f"WHERE {_entry_filter(key is not None, position is not None)}"
    )
    return con.execute(sql, _entry_params(run_id, key, position)).fetchall()


# Everything connected to one key's entries in one run: the entries themselves, all
# their ancestors and all their descendants (parent links never cross runs).
CONNECTED_ENTRIES = """
WITH RECURSIVE
    seed(entry_id) AS (
        SELECT entry_id FROM lineage WHERE record_key = ? AND run_id = ?
    ),
    up(entry_id) AS (
        SELECT entry_id FROM seed
        UNION
        SELECT p.parent_id FROM parents p JOIN up ON p.child_id = up.entry_id
    ),
    down(entry_id) AS (
        SELECT entry_id FROM seed
        UNION
        SELECT p.child_id FROM parents p JOIN down ON p.parent_id = down.entry_id
    ),
    nodes(entry_id) AS (SELECT entry_id FROM up UNION SELECT entry_id FROM down)
SELECT {columns}, r.value
FROM nodes n
JOIN lineage l ON l.entry_id = n.entry_id
LEFT JOIN records r ON r.entry_id = n.entry_id
ORDER BY l.entry_id
"""


def connected_entry_rows(con: sqlite3.Connection, run_id: str, key: str) -> list[tuple]:
    """Entries connected to ``key`` in the run (:data:`ENTRY_COLUMNS` + the value JSON)."""
    sql = CONNECTED_ENTRIES.format(columns=", ".join(f"l.{c}" for c in ENTRY_COLUMNS))
    return con.execute(sql, (key, run_id)).fetchall()


def links_among(con: sqlite3.Connection, entry_ids: list[int]) -> list[tuple[int, int]]:
    """``(parent_id, child_id)`` links whose both ends are in ``entry_ids``."""
    return con.execute(
        """
        SELECT p.parent_id, p.child_id
        FROM json_each(?) c JOIN parents p ON p.child_id = c.value
        WHERE p.parent_id IN (SELECT value FROM json_each(?))
        """,
        (json.dumps(entry_ids), json.dumps(entry_ids)),
    ).fetchall()


# Entry rows shaped for DataFrames: the status comes back as its small-integer code
# (index into ENTRY_STATUSES) so no string is built per row for it.
FRAME_COLUMNS = (
    "entry_id",
    "position",
    "record_key",
    "status_code",
    "reason",
    "error",
    "created_at",
    "value_hash",
)
_FRAME_SELECT = (
    "SELECT l.entry_id, l.position, l.record_key, "
    "CASE l.status WHEN 'ok' THEN 0 WHEN 'rejected' THEN 1 ELSE 2 END, "
    "l.reason, l.error, l.created_at, l.value_hash FROM lineage l WHERE "
)


def frame_entry_rows(
    con: sqlite3.Connection,
    run_id: str,
    *,
    key: str | None = None,
    position: int | None = None,
) -> list[tuple]:
    """A run's entries (columns :data:`FRAME_COLUMNS`), ordered by entry id."""
    sql = (
        _FRAME_SELECT
        + _entry_filter(key is not None, position is not None)
        + " ORDER BY l.entry_id"
    )
    return con.execute(sql, _entry_params(run_id, key, position)).fetchall()
