"""Batched writes of runs, steps, lineage entries, parent links and values.

Only the pipeline writes, and only through these functions. Each chunk of records
is written in one ``BEGIN IMMEDIATE`` transaction with ``executemany``: entry ids
are assigned by SQLite in insertion order (``max(entry_id) + 1`` onwards, under the
write lock), so parent links are built from ids known in memory, never looked up.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from typing import Any

from ..errors import StoreFull, StoreWriteError

_SQLITE_IOERR = 10  # primary result code of "disk I/O error" (EIO, EFBIG, ...)
_SQLITE_FULL = 13  # primary result code of "database or disk is full"

_INSERT_RUN = """
INSERT INTO runs (run_id, pipeline, started_at, status, input_path, parameters,
                  package_version, writer_host, writer_pid, writer_started)
VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, ?)
"""
_INSERT_STEP = """
INSERT INTO steps (run_id, position, name, kind, source, destination, description)
VALUES (?, ?, ?, ?, ?, ?, ?)
"""
_INSERT_ENTRY = """
INSERT INTO lineage (run_id, position, record_key, status, reason, error, created_at, value_hash)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
"""
_INSERT_PARENT = "INSERT INTO parents (child_id, parent_id) VALUES (?, ?)"
_INSERT_VALUE = "INSERT INTO records (entry_id, value) VALUES (?, ?)"
# json_each as the outer table of a join, so each key is one probe of lineage_key
# (an IN (SELECT ... json_each) list can be re-run per row: quadratic).
_EXISTING_KEYS = """
SELECT j.value, min(l.position) FROM json_each(?) AS j
JOIN lineage AS l ON l.record_key = j.value AND l.run_id = ?
GROUP BY j.value
"""
_FINISH_RUN = """
UPDATE runs SET status = ?, finished_at = ?, input_sha256 = ?, n_input = ?, n_published = ?,
                n_rejected = ?, n_failed = ?, error = ?
WHERE run_id = ?
"""
_STEP_TIMES = """
UPDATE steps SET started_at = ?, finished_at = ?, busy_seconds = ?
WHERE run_id = ? AND position = ?
"""


@contextmanager
def transaction(con: sqlite3.Connection, *, immediate: bool = True):
    """Run a block in one transaction; roll back and re-raise the original error.

    ``immediate=True`` takes the write lock at once (``BEGIN IMMEDIATE``), so a
    writer waits for the lock up front instead of failing half-way.

    Raises
    ------
    StoreFull
        SQLite reported the disk (or ``max_page_count``) full; rolled back first.
    StoreWriteError
        Any other I/O error while writing; rolled back first.
    """
    con.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
    try:
        yield con
        con.execute("COMMIT")
    except BaseException as exc:
        if con.in_transaction:
            con.execute("ROLLBACK")
        code = _primary_code(exc)
        if code == _SQLITE_FULL:
            raise StoreFull(
                f"the lineage store {_store_path(con)} is full (the disk has no space left "
                "or the store reached its size limit); the transaction was rolled back. "
                "Free some space and run again."
            ) from exc
        if code == _SQLITE_IOERR:
            raise StoreWriteError(
                f"could not write to the lineage store {_store_path(con)} ({exc}: the disk "
                "may be full, the file over a size limit or quota, or the device failing); "
                "the transaction was rolled back."
            ) from exc
        raise


def _primary_code(exc: BaseException) -> int | None:
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorcode", 0) & 0xFF
    return None


def _store_path(con: sqlite3.Connection) -> str:
    try:
        return con.execute("PRAGMA database_list").fetchone()[2] or "(in memory)"
    except sqlite3.Error:
        return "(unknown path)"


def begin_run(
    con: sqlite3.Connection,
    run: Sequence[Any],
    steps: Iterable[Sequence[Any]],
) -> None:
    """Insert a ``running`` run and its steps (one transaction)."""
    with transaction(con):
        con.execute(_INSERT_RUN, run)
        con.executemany(_INSERT_STEP, steps)


def existing_keys(con: sqlite3.Connection, run_id: str, keys_json: str) -> dict[str, int]:
    """Which of the keys (a JSON array of text) the run already uses: key -> first step."""
    return dict(con.execute(_EXISTING_KEYS, (keys_json, run_id)))


def write_chunk(
    con: sqlite3.Connection,
    entries: list[tuple],
    values: list[str],
    local_parents: list[tuple[int, int]],
    absolute_parents: list[tuple[int, int]],
) -> int:
    """Write one chunk's entries, values and parent links in one transaction.

    Parameters
    ----------
    entries : list of tuple
        ``(run_id, position, record_key, status, reason, error, created_at, value_hash)``
        in the order their ids are to be assigned.
    values : list of str
        The JSON value of each entry, in the same order.
    local_parents : list of (int, int)
        ``(child, parent)`` as indexes into ``entries``.
    absolute_parents : list of (int, int)
        ``(child index, parent entry_id)`` for parents written by earlier chunks.

    Returns
    -------
    int
        The entry id given to ``entries[0]``.
    """
    with transaction(con):
        base = con.execute("SELECT coalesce(max(entry_id), 0) + 1 FROM lineage").fetchone()[0]
        con.executemany(_INSERT_ENTRY, entries)
        last = con.execute("SELECT max(entry_id) FROM lineage").fetchone()[0]
        if last != base + len(entries) - 1:  # pragma: no cover - SQLite guarantees this
            raise RuntimeError("entry ids were not assigned contiguously")
        con.executemany(_INSERT_VALUE, zip(range(base, base + len(values)), values, strict=True))
        con.executemany(
            _INSERT_PARENT,
            [(base + c, base + p) for c, p in local_parents]
            + [(base + c, p) for c, p in absolute_parents],
        )
    return base


def finish_run(
    con: sqlite3.Connection,
    run_id: str,
    *,
    status: str,
    finished_at: str,
    input_sha256: str | None,
    counts: Sequence[int],
    error: str | None,
    step_times: Iterable[tuple[str | None, str | None, float, int]],
) -> None:
    """Record a run's outcome, counts and per-step timing (one transaction)."""
    with transaction(con):
        con.execute(_FINISH_RUN, (status, finished_at, input_sha256, *counts, error, run_id))
        con.executemany(
            _STEP_TIMES, [(s, f, busy, run_id, position) for s, f, busy, position in step_times]
        )


def discard_run(con: sqlite3.Connection, run_id: str) -> None:
    """Delete every row of a run (used when its input turned out to be unreadable)."""
    with transaction(con):
        con.execute(
            "DELETE FROM parents WHERE child_id IN (SELECT entry_id FROM lineage WHERE run_id = ?)",
            (run_id,),
        )
        con.execute(
            "DELETE FROM records WHERE entry_id IN (SELECT entry_id FROM lineage WHERE run_id = ?)",
            (run_id,),
        )
        con.execute("DELETE FROM lineage WHERE run_id = ?", (run_id,))
        con.execute("DELETE FROM steps WHERE run_id = ?", (run_id,))
        con.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))


def running_runs(con: sqlite3.Connection) -> list[tuple[str, str | None, int | None, str | None]]:
    """``(run_id, writer_host, writer_pid, writer_started)`` of every ``running`` run."""
    return con.execute(
        "SELECT run_id, writer_host, writer_pid, writer_started FROM runs WHERE status = 'running'"
    ).fetchall()


def mark_interrupted(con: sqlite3.Connection, run_ids: Sequence[str], finished_at: str) -> None:
    """Mark runs whose writer is gone as ``interrupted``."""
    if not run_ids:
        return
    with transaction(con):
        con.executemany(
            "UPDATE runs SET status = 'interrupted', finished_at = ?, "
            "error = 'the writing process ended before the run finished' "
            "WHERE run_id = ? AND status = 'running'",
            [(finished_at, run_id) for run_id in run_ids],
        )
