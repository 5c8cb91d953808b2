"""Read queries for timeline plots. Every statement is parameterised."""

from __future__ import annotations

import sqlite3


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
