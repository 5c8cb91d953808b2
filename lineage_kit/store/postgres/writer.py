"""Writes into a PostgreSQL store: runs, steps, chunks by COPY, liveness.

A chunk is one transaction: its claim row in ``chunks`` first (a chunk written
before is skipped), then its entries, new values and extra parent links, each one
``COPY ... FROM STDIN`` in text format built in memory (no round trip per
record). Entry ids come from :func:`reserve_ids` (one ``UPDATE`` of a counter row,
so writers on any host get disjoint ranges).

The writer of a run holds a session-level advisory lock ``(lock space, run_no)``
from :func:`begin_run` to :func:`finish_run`; the server drops it when the
writer's session ends (process killed, host gone), so any host can tell a live
run from an interrupted one by asking ``pg_locks``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ...model import RunEnd, RunStart, RunStatus, StepRow, StepTiming
from .text import encode, encode_all

_CODE = {"ok": "0", "rejected": "1", "failed": "2"}
_COPY_SPECIAL = ("\\", "\t", "\n", "\r")
_NULL, _HEX = r"\N", r"\\x"

#: ``pg_locks`` shows an advisory lock on two int4 keys as classid, objid, objsubid 2.
WRITER_LOCK_HELD = """
EXISTS (SELECT 1 FROM pg_locks k
        WHERE k.locktype = 'advisory' AND k.granted AND k.objsubid = 2
          AND k.classid = %(space)s::oid AND k.objid = r.run_no::oid
          AND k.database = (SELECT oid FROM pg_database WHERE datname = current_database()))
"""


def _copy_field(texts: Sequence[str | None]) -> Sequence[str]:
    """Texts as COPY text-format fields (``\\N`` for NULL, specials escaped)."""
    present = [t for t in texts if t is not None]
    joined = "".join(present)
    if any(c in joined for c in _COPY_SPECIAL):
        return [
            r"\N"
            if t is None
            else t.replace("\\", "\\\\")
            .replace("\t", "\\t")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
            for t in texts
        ]
    if len(present) != len(texts):
        return [r"\N" if t is None else t for t in texts]
    return texts  # type: ignore[return-value]


def begin_run(con: Any, space: int, run: RunStart, steps: Sequence[StepRow]) -> int:
    """Insert a ``running`` run and its steps; take the run's writer lock first.

    Returns
    -------
    int
        The run's number.
    """
    (run_no,) = con.execute("SELECT nextval('run_nos')").fetchone()
    con.execute("SELECT pg_advisory_lock(%s, %s)", (space, run_no))
    try:
        with con.transaction():
            con.execute(
                "INSERT INTO runs (run_no, run_id, pipeline, started_at, status, input_path, "
                "parameters, package_version, writer_host, writer_pid, writer_started) "
                "VALUES (%s, %s, %s, %s, 'running', %s, %s, %s, %s, %s, %s)",
                (
                    run_no,
                    run.run_id,
                    encode(run.pipeline),
                    run.started_at,
                    encode(run.input_path),
                    encode(run.parameters),
                    run.package_version,
                    encode(run.writer_host),
                    run.writer_pid,
                    run.writer_started,
                ),
            )
            with con.cursor() as cur:
                cur.executemany(
                    "INSERT INTO steps (run_no, position, name, kind, source, destination, "
                    "description) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    [
                        (
                            run_no,
                            s.position,
                            encode(s.name),
                            s.kind,
                            encode(s.source),
                            encode(s.destination),
                            encode(s.description),
                        )
                        for s in steps
                    ],
                )
    except BaseException:
        con.execute("SELECT pg_advisory_unlock(%s, %s)", (space, run_no))
        raise
    return run_no


def existing_keys(con: Any, run_no: int, keys: Sequence[str]) -> dict[str, int]:
    """Which of ``keys`` the run already uses: key -> the first step it has an entry at
    (one statement: the key index probed once per key)."""
    stored = encode_all(list(keys))
    back = dict(zip(stored, keys, strict=True)) if stored is not keys else None
    rows = con.execute(
        "SELECT k.key, min(l.position) FROM unnest(%s::text[]) AS k(key) "
        "JOIN entries l ON l.record_key = k.key AND l.run_no = %s GROUP BY k.key",
        (list(stored), run_no),
    ).fetchall()
    if back is None:
        return dict(rows)
    return {back[k]: p for k, p in rows}


def reserve_ids(con: Any, n: int) -> int:
    """Reserve ``n`` consecutive entry ids (one statement); return the first."""
    if n < 0:
        raise ValueError(f"cannot reserve {n} entry ids")
    (first,) = con.execute(
        "UPDATE entry_ids SET next_id = next_id + %s RETURNING next_id - %s", (n, n)
    ).fetchone()
    return first


def chunk_rows(first_id: int, run_no: int, chunk: Any) -> tuple[str, str, str, str]:
    """The chunk as COPY text: ``(entries, vals, extra_parents, counts JSON)``."""
    entries, values = chunk.entries, chunk.values
    n = len(entries)
    _run, positions, keys, statuses, reasons, errors, created, hashes = zip(*entries, strict=True)
    parent: list[Any] = [None] * n
    extra: list[tuple[int, int]] = []
    for c, p in chunk.local_parents:
        if parent[c] is None:
            parent[c] = first_id + p
        else:
            extra.append((c, first_id + p))
    for c, p in chunk.absolute_parents:
        if parent[c] is None:
            parent[c] = p
        else:
            extra.append((c, p))
    extra_rows = []
    for c, p in extra:  # the smallest parent in the row, the others beside it
        if p < parent[c]:
            p, parent[c] = parent[c], p
        extra_rows.append(f"{first_id + c}\t{p}\n")
    value_ids = list(range(first_id, first_id + n))
    if None in values:
        for c, p in chunk.local_parents:
            if values[c] is None:
                value_ids[c] = value_ids[p]
    ids = range(first_id, first_id + n)
    parent_text = [r"\N" if p is None else str(p) for p in parent]
    lines = [
        f"{i}\t{run_no}\t{pos}\t{_CODE[st]}\t{par}\t{vid}\t{ts}\t{k}\t{r}\t{e}\n"
        for i, pos, st, par, vid, ts, k, r, e in zip(
            ids,
            positions,
            statuses,
            parent_text,
            value_ids,
            created,
            _copy_field(encode_all(keys)),
            _copy_field(encode_all(reasons)),
            _copy_field(encode_all(errors)),
            strict=True,
        )
    ]
    stored = [(i, h, v) for i, h, v in zip(ids, hashes, values, strict=True) if v is not None]
    texts = [v for _i, _h, v in stored]
    if any(c in "".join(texts) for c in _COPY_SPECIAL):
        texts = list(_copy_field(texts))
    # a bytea in COPY text: \\x and the hex digits (COPY reads the backslash escaped)
    vals = [
        f"{i}\t{_NULL if h is None else _HEX + h}\t{v}\n"
        for (i, h, _v), v in zip(stored, texts, strict=True)
    ]
    counts: dict[int, list[int]] = {}
    for pos, st in zip(positions, statuses, strict=True):
        row = counts.get(pos)
        if row is None:
            row = counts[pos] = [0, 0, 0]
        row[int(_CODE[st])] += 1
    counts_json = json.dumps([[p, *c] for p, c in sorted(counts.items())])
    return "".join(lines), "".join(vals), "".join(extra_rows), counts_json


def write_chunk(
    con: Any, run_no: int, chunk_no: int, first_id: int, chunk: Any, written_at: str
) -> bool:
    """Claim ``(run_no, chunk_no)`` and write the chunk, in one transaction.

    Returns False, having written nothing, when the chunk was claimed before (or
    has no entries); True when it was written.
    """
    n = len(chunk.entries)
    if not n:
        return False
    entries, vals, extra, counts = chunk_rows(first_id, run_no, chunk)
    with con.transaction(), con.cursor() as cur:
        claimed = cur.execute(
            "INSERT INTO chunks (run_no, chunk_no, first_entry, last_entry, n_entries, counts, "
            "written_at) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING 1",
            (run_no, chunk_no, first_id, first_id + n - 1, n, counts, written_at),
        ).fetchone()
        if claimed is None:
            return False
        with cur.copy(
            "COPY entries (entry_id, run_no, position, status, parent_id, value_id, created_at, "
            "record_key, reason, error) FROM STDIN"
        ) as copy:
            copy.write(entries)
        if vals:
            with cur.copy("COPY vals (value_id, hash, json) FROM STDIN") as copy:
                copy.write(vals)
        if extra:
            with cur.copy("COPY extra_parents (child_id, parent_id) FROM STDIN") as copy:
                copy.write(extra)
    return True


def chunk_count_rows(con: Any, run_no: int) -> list[str]:
    """The ``counts`` JSON of every chunk of a run."""
    return [r[0] for r in con.execute("SELECT counts FROM chunks WHERE run_no = %s", (run_no,))]


def finish_run(
    con: Any, space: int, run_no: int, end: RunEnd, timings: Sequence[StepTiming]
) -> None:
    """Record a run's outcome, counts and step timing (one transaction); release
    the writer lock."""
    with con.transaction(), con.cursor() as cur:
        cur.execute(
            "UPDATE runs SET status = %s, finished_at = %s, input_sha256 = %s, n_input = %s, "
            "n_published = %s, n_rejected = %s, n_failed = %s, error = %s WHERE run_no = %s",
            (*end[:7], encode(end.error), run_no),
        )
        cur.executemany(
            "UPDATE steps SET started_at = %s, finished_at = %s, busy_seconds = %s "
            "WHERE run_no = %s AND position = %s",
            [(t.started_at, t.finished_at, t.busy_seconds, run_no, t.position) for t in timings],
        )
    release(con, space, run_no)


def release(con: Any, space: int, run_no: int) -> None:
    """Release the run's writer lock if this session holds it."""
    held = con.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() "
        "AND objsubid = 2 AND classid = %s::oid AND objid = %s::oid",
        (space, run_no),
    ).fetchone()[0]
    for _ in range(held):
        con.execute("SELECT pg_advisory_unlock(%s, %s)", (space, run_no))


def discard_run(con: Any, space: int, run_no: int) -> None:
    """Delete every row of a run (its input turned out to be unreadable)."""
    ranges = "SELECT first_entry, last_entry FROM chunks WHERE run_no = %(run)s"
    with con.transaction(), con.cursor() as cur:
        params = {"run": run_no}
        cur.execute(
            f"DELETE FROM extra_parents p USING ({ranges}) c "
            "WHERE p.child_id BETWEEN c.first_entry AND c.last_entry",
            params,
        )
        cur.execute(
            f"DELETE FROM vals v USING ({ranges}) c "
            "WHERE v.value_id BETWEEN c.first_entry AND c.last_entry",
            params,
        )
        cur.execute("DELETE FROM entries WHERE run_no = %(run)s", params)
        cur.execute("DELETE FROM chunks WHERE run_no = %(run)s", params)
        cur.execute("DELETE FROM steps WHERE run_no = %(run)s", params)
        cur.execute("DELETE FROM runs WHERE run_no = %(run)s", params)
    release(con, space, run_no)


def dead_runs(con: Any, space: int) -> list[str]:
    """Run ids stored as ``running`` whose writer holds no lock (its session ended)."""
    return [
        r[0]
        for r in con.execute(
            f"SELECT r.run_id FROM runs r WHERE r.status = %(running)s AND NOT {WRITER_LOCK_HELD}",
            {"running": RunStatus.RUNNING.value, "space": space},
        )
    ]


def running_runs(con: Any) -> list[tuple]:
    """``(run_id, writer_host, writer_pid, writer_started)`` of every ``running`` run."""
    return con.execute(
        "SELECT run_id, writer_host, writer_pid, writer_started FROM runs WHERE status = %s",
        (RunStatus.RUNNING.value,),
    ).fetchall()


def mark_interrupted(con: Any, space: int, run_ids: Sequence[str], finished_at: str) -> None:
    """Mark runs whose writer is gone as ``interrupted`` (a run whose writer still
    holds its lock is left alone)."""
    if not run_ids:
        return
    con.execute(
        "UPDATE runs r SET status = 'interrupted', finished_at = %(at)s, "
        "error = 'the writing process ended before the run finished' "
        f"WHERE r.run_id = ANY(%(runs)s) AND r.status = 'running' AND NOT {WRITER_LOCK_HELD}",
        {"at": finished_at, "runs": list(run_ids), "space": space},
    )
