"""Read queries over a lineage store. Every statement is parameterised."""

from __future__ import annotations

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


def chunk_moments(con: sqlite3.Connection, run_id: str) -> list[tuple]:
    """When each chunk entered each step: ``(position, created_at, entries)`` rows.

    The pipeline stamps every entry a step makes for one chunk with the same
    ``created_at``, so the distinct stamps of a step are the moments it started on a
    chunk. One set-based query, grouped in SQLite.
    """
    return con.execute(
        """
        SELECT position, created_at, count(*)
        FROM lineage
        WHERE run_id = ?
        GROUP BY position, created_at
        ORDER BY position, created_at
        """,
        (run_id,),
    ).fetchall()
