"""Batched writes of runs, steps, lineage entries, parent links and values.

Only the engine writes, through :class:`~lineage_kit.store.sqlite.SQLiteBackend`,
which calls these functions. A chunk's entry ids are reserved first
(:func:`reserve_ids`: a counter row bumped under the write lock, so concurrent
writers get disjoint ranges), then the chunk is written in one ``BEGIN IMMEDIATE``
transaction with ``executemany`` and explicit ids, so parent links are built from
ids known in memory, never looked up.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence

from ..model import RunEnd, RunStart, RunStatus, StepRow, StepTiming
from .backend import Chunk, ChunkCounts
from .transaction import transaction

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
INSERT INTO lineage (entry_id, run_id, position, record_key, status, reason, error, created_at,
                     value_hash)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
# Past the largest id written too (a seek to the table's last row), so rows written
# around the counter (by hand, or by a tool of another version) are never reused.
_RESERVE = """
UPDATE entry_ids
SET next_id = max(next_id, (SELECT coalesce(max(entry_id), 0) + 1 FROM lineage)) + ?1
RETURNING next_id - ?1
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


def begin_run(con: sqlite3.Connection, run: RunStart, steps: Iterable[StepRow]) -> None:
    """Insert a ``running`` run and its steps (one transaction)."""
    with transaction(con):
        con.execute(_INSERT_RUN, run)
        con.executemany(_INSERT_STEP, steps)


def existing_keys(con: sqlite3.Connection, run_id: str, keys: Sequence[str]) -> dict[str, int]:
    """Which of ``keys`` the run already uses: key -> the first step it has an entry at."""
    return dict(con.execute(_EXISTING_KEYS, (json.dumps(list(keys)), run_id)))


def reserve_ids(con: sqlite3.Connection, n: int) -> int:
    """Reserve ``n`` consecutive entry ids (one short transaction); return the first."""
    if n < 0:
        raise ValueError(f"cannot reserve {n} entry ids")
    with transaction(con):
        (first,) = con.execute(_RESERVE, (n,)).fetchone()
    return first


_CLAIM = """
INSERT INTO chunks (run_id, chunk_no, first_entry, last_entry, counts, written_at)
VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING
"""


def write_chunk(con: sqlite3.Connection, first_id: int, chunk: Chunk, written_at: str) -> bool:
    """Claim ``(run, chunk_no)``, then write the chunk's entries (ids ``first_id``
    onwards, in order), values and parent links, all in one transaction.

    Returns False, having written nothing, when the chunk was claimed before (or
    has no entries); True when it was written.
    """
    entries = chunk.entries
    if not entries:
        return False
    ids = range(first_id, first_id + len(entries))
    counts = json.dumps([[p, *c] for p, c in chunk.status_counts().items()])
    claim = (entries[0].run_id, chunk.chunk_no, first_id, ids[-1], counts, written_at)
    values = chunk.resolved_values()
    links = chunk.links(first_id)
    with transaction(con):
        if con.execute(_CLAIM, claim).rowcount == 0:
            return False
        # the ids zipped onto the transposed columns: no Python call per row
        con.executemany(_INSERT_ENTRY, zip(ids, *zip(*entries, strict=True), strict=False))
        con.executemany(_INSERT_VALUE, zip(ids, values, strict=True))
        con.executemany(_INSERT_PARENT, links)
    return True


def chunk_counts(con: sqlite3.Connection, run_id: str) -> ChunkCounts:
    """The run's per-position ``(ok, rejected, failed)`` sums over its chunks' claims."""
    sums: dict[int, list[int]] = {}
    n = 0
    for (text,) in con.execute("SELECT counts FROM chunks WHERE run_id = ?", (run_id,)):
        n += 1
        for position, *c in json.loads(text):
            total = sums.setdefault(position, [0, 0, 0])
            for i in range(3):
                total[i] += c[i]
    return ChunkCounts({p: tuple(c) for p, c in sorted(sums.items())}, n)


def finish_run(
    con: sqlite3.Connection, run_id: str, end: RunEnd, timings: Iterable[StepTiming]
) -> None:
    """Record a run's outcome, counts and per-step timing (one transaction)."""
    with transaction(con):
        con.execute(_FINISH_RUN, (*end, run_id))
        con.executemany(
            _STEP_TIMES,
            [(t.started_at, t.finished_at, t.busy_seconds, run_id, t.position) for t in timings],
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
        con.execute("DELETE FROM chunks WHERE run_id = ?", (run_id,))
        con.execute("DELETE FROM steps WHERE run_id = ?", (run_id,))
        con.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))


def running_runs(con: sqlite3.Connection) -> list[tuple[str, str | None, int | None, str | None]]:
    """``(run_id, writer_host, writer_pid, writer_started)`` of every ``running`` run."""
    return con.execute(
        "SELECT run_id, writer_host, writer_pid, writer_started FROM runs WHERE status = ?",
        (RunStatus.RUNNING.value,),
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
