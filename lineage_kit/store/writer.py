"""Batched writes of runs, steps, entries, values, extra parent links and chunks.

Only the engine writes, through :class:`~lineage_kit.store.sqlite.SQLiteBackend`,
which calls these functions. A chunk's entry ids are reserved first
(:func:`reserve_ids`: a counter row bumped under the write lock, so concurrent
writers get disjoint ranges), then the chunk is written in one ``BEGIN IMMEDIATE``
transaction, its ``chunks`` row (the claim) first, with multi-row INSERTs and explicit
ids, so parent links are built from ids known in memory, never looked up.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from itertools import chain, compress, islice, repeat
from operator import and_, gt, is_not, not_
from typing import Any, NamedTuple

from ..model import RunEnd, RunStart, RunStatus, StepRow, StepTiming
from . import queries
from .backend import Chunk, ChunkCounts
from .schema import ENTRY_STATUSES, STATUS_CODES
from .transaction import transaction

_INSERT_RUN = """
INSERT INTO runs (run_id, pipeline, started_at, status, input_path, parameters,
                  package_version, writer_host, writer_pid, writer_started)
VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, ?)
RETURNING run_no
"""
_INSERT_STEP = """
INSERT INTO steps (run_no, run_id, position, name, kind, source, destination, description)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
"""


class _Insert(NamedTuple):
    """An INSERT of rows of one shape: its SQL for one row, and for :data:`_BATCH` rows."""

    one: str
    many: str


#: Rows per INSERT statement in :func:`insert_rows`: a statement of 100 rows of 9
#: parameters stays under SQLite's oldest limit of 999 parameters.
_BATCH = 100


def _insert(head: str, row: str) -> _Insert:
    return _Insert(head + row, head + ",".join([row] * _BATCH))


_ENTRY_COLUMNS = "INSERT INTO entries (entry_id, run_no, position, record_key, status, parent_id"
_INSERT_ENTRY = _insert(
    _ENTRY_COLUMNS + ", value_id, reason, error) VALUES ", "(?,?,?,?,?,?,?,?,?)"
)
# The usual entry (status ok, no reason, no error) binds neither None nor bytes: the
# sqlite3 module adapts each such parameter through its adapter registry (a lookup
# and two attribute probes, about half a microsecond), ints and str it binds at once.
_INSERT_LINKED = _insert(_ENTRY_COLUMNS + ", value_id) VALUES ", "(?,?,?,?,?,?,?)")
_INSERT_ROOT = _insert(_ENTRY_COLUMNS + ", value_id) VALUES ", "(?,?,?,?,?,NULL,?)")
# A hash goes in as a bytearray (bound as the same BLOB, without the adapter lookup).
_INSERT_VALUE = _insert("INSERT INTO vals (value_id, hash, json) VALUES ", "(?,?,?)")
_INSERT_EXTRA = "INSERT INTO extra_parents (child_id, parent_id) VALUES (?, ?)"


def insert_rows(con: sqlite3.Connection, insert: _Insert, rows: Sequence[tuple]) -> None:
    """Insert ``rows`` (tuples of one width) :data:`_BATCH` to a statement, the rest
    one by one.

    A statement of many rows costs about two thirds of as many ``executemany`` steps
    (the sqlite3 module's work per step: resetting, binding and stepping the
    statement once per row).

    Examples
    --------
    >>> con = sqlite3.connect(":memory:")
    >>> _ = con.execute("CREATE TABLE vals (value_id, hash, json)")
    >>> insert_rows(con, _INSERT_VALUE, [(i, None, "{}") for i in range(250)])
    >>> con.execute("SELECT count(*), sum(value_id) FROM vals").fetchone()
    (250, 31125)
    """
    full = len(rows) - len(rows) % _BATCH
    if full:
        flat = list(chain.from_iterable(islice(rows, full)))
        step = len(flat) // (full // _BATCH)
        execute, many = con.execute, insert.many
        for start in range(0, len(flat), step):
            execute(many, flat[start : start + step])
    if full < len(rows):
        con.executemany(insert.one, rows[full:])


_CLAIM = """
INSERT INTO chunks (run_no, chunk_no, first_entry, last_entry, counts, written_at)
VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING
"""
# Past the largest id written too (a seek to the table's last row), so rows written
# around the counter (by hand, or by a tool of another version) are never reused.
_RESERVE = """
UPDATE entry_ids
SET next_id = max(next_id, (SELECT coalesce(max(entry_id), 0) + 1 FROM entries)) + ?1
RETURNING next_id - ?1
"""
_RUN_NO = "SELECT run_no FROM runs WHERE run_id = ?"
# json_each as the outer table of a join, so each key is one probe of entries_key
# (an IN (SELECT ... json_each) list can be re-run per row: quadratic).
_EXISTING_KEYS = """
SELECT j.value, min(e.position) FROM json_each(?) AS j
JOIN entries AS e ON e.record_key = j.value AND e.run_no = ?
GROUP BY j.value
"""
_FINISH_RUN = """
UPDATE runs SET status = ?, finished_at = ?, input_sha256 = ?, n_input = ?, n_published = ?,
                n_rejected = ?, n_failed = ?, error = ?
WHERE run_id = ?
"""
_STEP_TIMES = """
UPDATE steps SET started_at = ?, finished_at = ?, busy_seconds = ?
WHERE run_no = ? AND position = ?
"""
_CODES = STATUS_CODES.__getitem__
_OK = ENTRY_STATUSES[0]


def begin_run(con: sqlite3.Connection, run: RunStart, steps: Iterable[StepRow]) -> int:
    """Insert a ``running`` run and its steps (one transaction); return its run number."""
    with transaction(con):
        (run_no,) = con.execute(_INSERT_RUN, run).fetchone()
        con.executemany(_INSERT_STEP, [(run_no, *step) for step in steps])
    return run_no


def run_no(con: sqlite3.Connection, run_id: str) -> int | None:
    """The run number of a run id, or None."""
    row = con.execute(_RUN_NO, (run_id,)).fetchone()
    return None if row is None else row[0]


def existing_keys(con: sqlite3.Connection, run: int, keys: Sequence[str]) -> dict[str, int]:
    """Which of ``keys`` run number ``run`` already uses: key -> the first step it has an
    entry at."""
    return dict(con.execute(_EXISTING_KEYS, (json.dumps(list(keys)), run)))


def reserve_ids(con: sqlite3.Connection, n: int) -> int:
    """Reserve ``n`` consecutive entry ids (one short transaction); return the first."""
    if n < 0:
        raise ValueError(f"cannot reserve {n} entry ids")
    with transaction(con):
        (first,) = con.execute(_RESERVE, (n,)).fetchone()
    return first


class ChunkRows(NamedTuple):
    """A chunk's rows as :func:`write_chunk` inserts them, grouped by statement."""

    linked: list[tuple]  # ok entries with a parent: _INSERT_LINKED
    roots: list[tuple]  # ok entries without one: _INSERT_ROOT
    other: list[tuple]  # the rest (a reason, an error, not ok): _INSERT_ENTRY
    vals: list[tuple]
    extra: list[tuple[int, int]]


def _plain(status: str, reason: str | None, error: str | None) -> bool:
    return status == _OK and reason is None and error is None


def _blob(hex_hash: str | None) -> bytearray | None:
    return None if hex_hash is None else bytearray.fromhex(hex_hash)


def _select(columns: Sequence[Sequence], mask: Iterable[Any]) -> list[tuple]:
    """The rows of ``columns`` (equally long) where ``mask`` is true."""
    return list(compress(zip(*columns, strict=True), mask))


def chunk_rows(first_id: int, chunk: Chunk, run: int) -> ChunkRows:
    """The ``entries``, ``vals`` and ``extra_parents`` rows of a chunk whose ids start
    at ``first_id``.

    An entry's ``parent_id`` is its first parent; further parents (a merge's) are
    ``extra_parents`` rows. An entry with a value (not None) stores it under its own id
    as ``value_id``; one without points at its first local parent's ``value_id``.

    Raises
    ------
    ValueError
        A value is None but the entry has no parent in the chunk.

    Examples
    --------
    >>> from lineage_kit.model import EntryRow
    >>> rows = [EntryRow("r", p, "k", "ok", None, None, "t", "00ff") for p in (0, 1)]
    >>> out = chunk_rows(10, Chunk(rows, ['{"a":1}', None], [(1, 0)], [], 0), run=1)
    >>> out.roots, out.linked, out.other
    ([(10, 1, 0, 'k', 0, 10)], [(11, 1, 1, 'k', 0, 10, 10)], [])
    >>> out.vals
    [(10, bytearray(b'\\x00\\xff'), '{"a":1}')]
    """
    entries = chunk.entries
    n = len(entries)
    _, positions, keys, statuses, reasons, errors, _, hashes = zip(*entries, strict=True)
    parents: list[int | None] = [None] * n
    local: dict[int, int] = {}
    extra = []
    for child, parent in chunk.local_parents:  # one link a record-step: plain Python
        if parents[child] is None:
            parents[child] = first_id + parent
            local[child] = parent
        else:
            extra.append((first_id + child, first_id + parent))
    for child, parent in chunk.absolute_parents:
        if parents[child] is None:
            parents[child] = parent
        else:
            extra.append((first_id + child, parent))
    ids = range(first_id, first_id + n)
    values = chunk.values
    value_ids = list(ids)
    stored: list[bool] | None = None
    if None in values:
        for i, value in enumerate(values):
            if value is None:
                if i not in local:
                    raise ValueError(f"entry {i} of chunk {chunk.chunk_no} has no value")
                value_ids[i] = value_ids[local[i]]  # parents come before their children
        stored = list(map(is_not, values, repeat(None)))
        hashes, values = tuple(compress(hashes, stored)), list(compress(values, stored))
    blobs = list(map(_blob if None in hashes else bytearray.fromhex, hashes))
    vals = list(zip(ids if stored is None else compress(ids, stored), blobs, values, strict=True))

    runs, codes = [run] * n, list(map(_CODES, statuses))
    with_parent = (ids, runs, positions, keys, codes, parents, value_ids)
    without = (ids, runs, positions, keys, codes, value_ids)
    if statuses.count(_OK) == n and reasons.count(None) == n and errors.count(None) == n:
        if None not in parents:  # no roots either (a chunk of merged records)
            return ChunkRows(list(zip(*with_parent, strict=True)), [], [], vals, extra)
        rooted = list(map(is_not, parents, repeat(None)))
        return ChunkRows(
            _select(with_parent, rooted), _select(without, map(not_, rooted)), [], vals, extra
        )
    plain = list(map(_plain, statuses, reasons, errors))
    rooted = list(map(is_not, parents, repeat(None)))
    return ChunkRows(
        _select(with_parent, map(and_, plain, rooted)),
        _select(without, map(gt, plain, rooted)),  # plain and not rooted
        _select((*with_parent, reasons, errors), map(not_, plain)),
        vals,
        extra,
    )


def write_chunk(
    con: sqlite3.Connection, first_id: int, chunk: Chunk, run: int, written_at: str
) -> bool:
    """Claim ``(run, chunk_no)``, then write the chunk's entries (ids ``first_id``
    onwards, in order), values and extra parent links, all in one transaction.

    Returns False, having written nothing, when the chunk was claimed before (or
    has no entries); True when it was written.

    Raises
    ------
    ValueError
        A value is None but the entry has no parent in the chunk (nothing written).
    """
    if not chunk.entries:
        return False
    rows = chunk_rows(first_id, chunk, run)
    last = first_id + len(chunk.entries) - 1
    counts = json.dumps([[p, *c] for p, c in chunk.status_counts().items()])
    with transaction(con):
        claim = (run, chunk.chunk_no, first_id, last, counts, written_at)
        if con.execute(_CLAIM, claim).rowcount == 0:
            return False
        insert_rows(con, _INSERT_ROOT, rows.roots)
        insert_rows(con, _INSERT_LINKED, rows.linked)
        insert_rows(con, _INSERT_ENTRY, rows.other)
        insert_rows(con, _INSERT_VALUE, rows.vals)
        if rows.extra:
            con.executemany(_INSERT_EXTRA, rows.extra)
    return True


def chunk_counts(con: sqlite3.Connection, run_id: str) -> ChunkCounts:
    """The run's per-position ``(ok, rejected, failed)`` sums over its chunks."""
    rows = queries.chunk_count_rows(con, run_id)
    sums = queries.sum_counts(rows)
    return ChunkCounts({p: tuple(c) for p, c in sums.items()}, len(rows))


def finish_run(
    con: sqlite3.Connection, run_id: str, end: RunEnd, timings: Iterable[StepTiming]
) -> None:
    """Record a run's outcome, counts and per-step timing (one transaction)."""
    with transaction(con):
        con.execute(_FINISH_RUN, (*end, run_id))
        run = run_no(con, run_id)
        con.executemany(
            _STEP_TIMES,
            [(t.started_at, t.finished_at, t.busy_seconds, run, t.position) for t in timings],
        )


def discard_run(con: sqlite3.Connection, run_id: str) -> None:
    """Delete every row of a run (used when its input turned out to be unreadable)."""
    with transaction(con):
        run = run_no(con, run_id)
        if run is None:
            return
        ranges = con.execute(
            "SELECT first_entry, last_entry FROM chunks WHERE run_no = ?", (run,)
        ).fetchall()
        con.executemany("DELETE FROM extra_parents WHERE child_id BETWEEN ? AND ?", ranges)
        con.executemany("DELETE FROM vals WHERE value_id BETWEEN ? AND ?", ranges)
        con.executemany("DELETE FROM entries WHERE entry_id BETWEEN ? AND ?", ranges)
        con.execute("DELETE FROM chunks WHERE run_no = ?", (run,))
        con.execute("DELETE FROM steps WHERE run_no = ?", (run,))
        con.execute("DELETE FROM runs WHERE run_no = ?", (run,))


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
