"""Set-based SQL for the integrity checks of :mod:`lineage_kit.checks` (schema v4).

Every function reads only, takes the runs to check as a JSON array of run ids (bound
to one parameter and expanded with ``json_each``), and returns plain rows; turning
rows into violations with codes and messages is the job of :mod:`lineage_kit.checks`.
None of them runs a query per record: each is one statement over indexes and the
runs' chunks, whose id ranges are read as rowid ranges of ``entries`` (the table,
its values and its links are then read sequentially), so a run of a million records
is checked in seconds.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable

from .schema import CHUNK_TIME, STATUS_TEXT

#: The checked runs as ``(run_no, run_id)`` rows.
_WANTED = "SELECT r.run_no, r.run_id FROM json_each(:runs) j JOIN runs r ON r.run_id = j.value"
#: The run numbers of the checked runs.
_RUN_NOS = "SELECT r.run_no FROM json_each(:runs) j JOIN runs r ON r.run_id = j.value"
#: The run id of run number ``{0}`` (evaluated only for the rows returned).
_RUN_ID = "(SELECT run_id FROM runs WHERE run_no = {0})"
#: Whether entry ``{0}`` is anyone's parent.
_HAS_CHILD = (
    "(EXISTS (SELECT 1 FROM entries k WHERE k.parent_id = {0}) "
    "OR EXISTS (SELECT 1 FROM extra_parents kx WHERE kx.parent_id = {0}))"
)


def runs_param(run_ids: Iterable[str]) -> str:
    """The JSON array of run ids bound to the ``json_each(:runs)`` of every query below."""
    return json.dumps(list(run_ids))


# ------------------------------------------------------------------------- steps


def step_kinds(con: sqlite3.Connection, runs_json: str) -> list[tuple[str, int, str, str]]:
    """``(run_id, position, name, kind)`` of every step of the runs, in order."""
    return con.execute(
        f"SELECT w.run_id, s.position, s.name, s.kind FROM ({_WANTED}) w "
        "JOIN steps s ON s.run_no = w.run_no ORDER BY w.run_id, s.position",
        {"runs": runs_json},
    ).fetchall()


# ---------------------------------------------------------------------- values


def values_without_entry(con: sqlite3.Connection) -> list[tuple[int]]:
    """``(value_id,)`` of ``vals`` rows that no entry has.

    A value is stored under the id of the entry that first had it, so a value whose
    id is no entry's belongs to no run, unless an entry still points at it (an
    identity step's entry shares its parent's value, and outlives a lost parent):
    the whole store is searched. The anti-join is a ``LEFT JOIN ... IS NULL``, a
    plain rowid seek per value; the list of shared values (one scan) is built only
    when a value whose own entry is gone is met (never, in a sound store).
    """
    return con.execute(
        """
        SELECT v.value_id FROM vals v
        LEFT JOIN entries e ON e.entry_id = v.value_id
        WHERE e.entry_id IS NULL
          AND v.value_id NOT IN (SELECT value_id FROM entries WHERE value_id <> entry_id)
        ORDER BY v.value_id
        """
    ).fetchall()


def value_problems(
    con: sqlite3.Connection, runs_json: str, digest: Callable[[bytes], bytes]
) -> list[tuple]:
    """Entries of the runs whose value is missing or does not match its hash.

    Returns ``(run_id, record_key, entry_id, position, has_value, stored_hash,
    actual_hash)``, hashes as hex text. Each stored value is hashed once, on the row
    of the entry that stored it (an identity step's entry shares its parent's
    value); an entry whose value row is missing is reported itself. ``digest`` (the
    16-byte value hash of UTF-8 bytes) is registered as the SQL function
    ``lk_value_digest`` (deterministic, read-only) and compared with the stored
    bytes inside the one scan, so no hash is turned into text and only problems
    reach Python (whose hashes are then given as hex).
    """
    con.create_function("lk_value_digest", 1, digest, deterministic=True)
    rows = con.execute(
        f"""
        SELECT w.run_id, e.record_key, e.entry_id, e.position, v.value_id IS NOT NULL,
               v.hash, CASE WHEN e.value_id = e.entry_id THEN v.json END
        FROM ({_WANTED}) w
        CROSS JOIN chunks ch ON ch.run_no = w.run_no
        CROSS JOIN entries e ON e.entry_id BETWEEN ch.first_entry AND ch.last_entry
        LEFT JOIN vals v ON v.value_id = e.value_id
        WHERE v.value_id IS NULL
           OR (e.value_id = e.entry_id AND lk_value_digest(CAST(v.json AS BLOB)) IS NOT v.hash)
        """,
        {"runs": runs_json},
    ).fetchall()
    out = [
        (
            run_id,
            key,
            entry_id,
            position,
            has_value,
            None if stored is None else bytes(stored).hex(),
            None if text is None else digest(text.encode("utf-8", "surrogatepass")).hex(),
        )
        for run_id, key, entry_id, position, has_value, stored, text in rows
    ]
    return sorted(out, key=lambda row: row[2])  # by entry id: the scan goes by chunk


# ---------------------------------------------------------------- chains, links

#: Columns of :func:`chain_rows`.
CHAIN_COLUMNS = (
    "child_id",
    "run_id",
    "record_key",
    "position",
    "status",
    "created_at",
    "last_position",
    "parent_id",
    "parent_exists",
    "parent_run_id",
    "parent_key",
    "parent_position",
    "parent_created_at",
    "has_child",
)

_CHECKED = """
WITH checked(run_no, run_id, last_position) AS MATERIALIZED (
    SELECT r.run_no, r.run_id,
           CASE WHEN r.run_id IN (SELECT value FROM json_each(:finished))
                THEN (SELECT max(s.position) FROM steps s WHERE s.run_no = r.run_no)
           END
    FROM json_each(:runs) j JOIN runs r ON r.run_id = j.value
)
"""
_BAD_KEY_CHANGE = """(c.record_key IS NOT pa.record_key
      AND NOT EXISTS (SELECT 1 FROM steps s
                      WHERE s.run_no = c.run_no AND s.position = c.position
                        AND s.kind IN ('merge', 'split')))"""


def chain_rows(con: sqlite3.Connection, runs_json: str, finished_json: str) -> list[tuple]:
    """Entries of the runs, with their parent links, that break any rule of a chain.

    Two statements: one pass over the runs' entries (their chunks' rowid ranges),
    each with its first parent (``entries.parent_id``, a rowid seek), and one over
    the runs' ``extra_parents`` (a merge's further parents; a range per chunk). The
    time of an entry is its chunk's; a parent's is looked up only when it lies in an
    earlier chunk. A row (columns :data:`CHAIN_COLUMNS`) is returned for

    - an entry after the first step with no parent link at all (``parent_id`` NULL);
    - an ``ok`` entry before its run's last step that no link names as a parent
      (``has_child`` 0), in the runs of ``finished_json`` only (``last_position`` is
      NULL for the others);
    - a link, other than a self-link (left to :func:`cycle_links`), whose parent is
      missing, in another run, at the same or a later step, created after the
      child, more than one step before the child, or carrying another key although
      the child's step is a ``map`` step.

    An entry comes back once per parent link, so a row may be returned for one
    reason and repeated for another link of the same entry; callers re-test each
    row and drop repeats. The order of the rows is not defined.
    """
    params = {"runs": runs_json, "finished": finished_json}
    first = con.execute(
        _CHECKED
        + f"""
        SELECT c.entry_id, k.run_id, c.record_key, c.position, {STATUS_TEXT.format("c.status")},
               ch.written_at, k.last_position, c.parent_id, pa.entry_id IS NOT NULL,
               {_RUN_ID.format("pa.run_no")}, pa.record_key, pa.position,
               CASE WHEN c.parent_id >= ch.first_entry THEN ch.written_at
                    ELSE {CHUNK_TIME.format("c.parent_id")} END,
               {_HAS_CHILD.format("c.entry_id")}
        FROM checked k
        CROSS JOIN chunks ch ON ch.run_no = k.run_no
        CROSS JOIN entries c ON c.entry_id BETWEEN ch.first_entry AND ch.last_entry
        LEFT JOIN entries pa ON pa.entry_id = c.parent_id
        WHERE (c.parent_id IS NULL AND c.position > 0
               AND NOT EXISTS (SELECT 1 FROM extra_parents x WHERE x.child_id = c.entry_id))
           OR (c.status = 0 AND c.position < k.last_position
               AND NOT {_HAS_CHILD.format("c.entry_id")})
           OR (c.parent_id IS NOT NULL AND c.parent_id <> c.entry_id
               AND (pa.entry_id IS NULL
                    OR pa.run_no <> c.run_no
                    OR pa.position >= c.position
                    OR c.position > pa.position + 1
                    OR {_BAD_KEY_CHANGE}
                    OR (c.parent_id < ch.first_entry
                        AND {CHUNK_TIME.format("c.parent_id")} > ch.written_at)))
        """,
        params,
    ).fetchall()
    extra = con.execute(
        _CHECKED
        + f"""
        SELECT c.entry_id, k.run_id, c.record_key, c.position, {STATUS_TEXT.format("c.status")},
               ch.written_at, k.last_position, x.parent_id, pa.entry_id IS NOT NULL,
               {_RUN_ID.format("pa.run_no")}, pa.record_key, pa.position,
               {CHUNK_TIME.format("x.parent_id")}, {_HAS_CHILD.format("c.entry_id")}
        FROM checked k
        CROSS JOIN chunks ch ON ch.run_no = k.run_no
        CROSS JOIN extra_parents x ON x.child_id BETWEEN ch.first_entry AND ch.last_entry
        JOIN entries c ON c.entry_id = x.child_id
        LEFT JOIN entries pa ON pa.entry_id = x.parent_id
        WHERE x.parent_id <> x.child_id
          AND (pa.entry_id IS NULL
               OR pa.run_no <> c.run_no
               OR pa.position >= c.position
               OR c.position > pa.position + 1
               OR {_BAD_KEY_CHANGE.replace("pa.record_key", "pa.record_key")}
               OR {CHUNK_TIME.format("x.parent_id")} > ch.written_at)
        """,
        params,
    ).fetchall()
    return first + extra


def links_from_missing_children(
    con: sqlite3.Connection, runs_json: str
) -> list[tuple[int, int, str | None, str | None]]:
    """``(child_id, parent_id, parent_run_id, parent_key)`` of links whose child is gone.

    A first parent lives in its child's row, so only ``extra_parents`` can hold such
    a link. Only links whose parent is in one of the runs, or whose parent is gone
    too (such a link belongs to no run), are returned.
    """
    return con.execute(
        f"""
        SELECT x.child_id, x.parent_id, {_RUN_ID.format("pa.run_no")}, pa.record_key
        FROM extra_parents x
        LEFT JOIN entries c ON c.entry_id = x.child_id
        LEFT JOIN entries pa ON pa.entry_id = x.parent_id
        WHERE c.entry_id IS NULL
          AND (pa.entry_id IS NULL OR pa.run_no IN ({_RUN_NOS}))
        ORDER BY x.child_id, x.parent_id
        """,
        {"runs": runs_json},
    ).fetchall()


def cycle_links(con: sqlite3.Connection, runs_json: str) -> list[tuple]:
    """``(child_id, parent_id, run_id, record_key)`` of links that lie on a cycle.

    The pipeline always gives a child a larger entry id than its parents, so every
    cycle contains at least one link with ``parent_id >= child_id``: the partial
    index ``entries_backlink`` holds exactly those first parents (it is empty in a
    sound store), ``extra_parents`` is searched whole. Only those candidate links are
    followed upwards (a recursive CTE whose ``UNION`` stops at nodes already seen); a
    candidate closes a cycle when its child is among its parent's ancestors.
    """
    return con.execute(
        f"""
        WITH RECURSIVE
        candidate(child_id, parent_id) AS (
            SELECT entry_id, parent_id FROM entries
            WHERE parent_id >= entry_id
            UNION ALL
            SELECT child_id, parent_id FROM extra_parents WHERE parent_id >= child_id
        ),
        up(child_id, parent_id, node) AS (
            SELECT child_id, parent_id, parent_id FROM candidate
            UNION
            SELECT u.child_id, u.parent_id, p.parent_id
            FROM up u JOIN entries p ON p.entry_id = u.node
            WHERE u.node <> u.child_id AND p.parent_id IS NOT NULL
            UNION
            SELECT u.child_id, u.parent_id, x.parent_id
            FROM up u JOIN extra_parents x ON x.child_id = u.node
            WHERE u.node <> u.child_id
        )
        SELECT u.child_id, u.parent_id, {_RUN_ID.format("c.run_no")}, c.record_key
        FROM up u LEFT JOIN entries c ON c.entry_id = u.child_id
        WHERE u.node = u.child_id AND (c.entry_id IS NULL OR c.run_no IN ({_RUN_NOS}))
        ORDER BY u.child_id, u.parent_id
        """,
        {"runs": runs_json},
    ).fetchall()


# ------------------------------------------------------------------ duplicates


#: Runs holding less than this share of the store's entries have their repeated keys
#: looked up entry by entry (an index seek each, about twice the cost of reading an
#: entry of the key index in order); larger ones read the whole key index once.
SEEK_SHARE = 0.4


def repeated_keys(
    con: sqlite3.Connection, runs_json: str, *, scan: bool | None = None
) -> list[tuple]:
    """Entries of every (run, key, step) that occurs more than once.

    Returns ``(run_id, record_key, position, entry_id, status, reason)`` ordered by
    run, key, step and entry id. Entries without a key are not included. Two plans,
    the same rows: when the runs hold most of the store (``scan``, by default when
    their chunks claim at least :data:`SEEK_SHARE` of all chunks' entries), the
    groups are found in one pass over the covering ``entries_key`` index, the runs
    tested per repeated group, not per entry (``HAVING``: a third cheaper, and an
    equality on ``run_no`` in ``WHERE`` would make SQLite sort); otherwise each
    entry in the runs' chunks asks that index whether another entry has its run,
    key and step, so checking one run of a large store reads that run, not the
    store; entries of the runs outside every chunk are asked too. Either way only
    the repeated groups' entries are read in full. The one difference: a repeat
    whose entries all lie in another run's chunks is found by the index pass only
    (such entries are reported as ``unclaimed_entry`` in any case).
    """
    params = {"runs": runs_json}
    if scan is None:
        held, total = con.execute(
            f"""
            SELECT coalesce(sum(CASE WHEN run_no IN ({_RUN_NOS})
                                     THEN last_entry - first_entry + 1 END), 0),
                   coalesce(sum(last_entry - first_entry + 1), 0)
            FROM chunks
            """,
            params,
        ).fetchone()
        scan = held >= SEEK_SHARE * total
    if scan:
        groups = """
            SELECT record_key, run_no, position FROM entries
            WHERE record_key IS NOT NULL
            GROUP BY record_key, run_no, position
            HAVING count(*) > 1 AND run_no IN (SELECT run_no FROM wanted)
        """
    else:
        # The runs' entries in their chunks, and those outside every chunk (the gaps
        # between chunks' ranges, empty in a sound store), each asking the key index.
        repeats = """
              AND EXISTS (SELECT 1 FROM entries d
                          WHERE d.record_key = e.record_key AND d.run_no = e.run_no
                            AND d.position = e.position AND d.entry_id <> e.entry_id)
        """
        groups = (
            """
            SELECT e.record_key, e.run_no, e.position
            FROM wanted w
            CROSS JOIN chunks ch ON ch.run_no = w.run_no
            CROSS JOIN entries e ON e.entry_id BETWEEN ch.first_entry AND ch.last_entry
            WHERE e.record_key IS NOT NULL AND e.run_no = w.run_no
            """
            + repeats
            + """
            UNION
            SELECT e.record_key, e.run_no, e.position
            FROM (WITH """
            + _gaps("chunks")
            + """ SELECT lo, hi FROM gaps) g
            CROSS JOIN entries e ON e.entry_id BETWEEN g.lo AND g.hi
            WHERE e.record_key IS NOT NULL AND e.run_no IN (SELECT run_no FROM wanted)
            """
            + repeats
        )
    return con.execute(
        f"""
        WITH wanted(run_no, run_id) AS MATERIALIZED ({_WANTED}),
        repeated(record_key, run_no, position) AS ({groups})
        SELECT w.run_id, e.record_key, e.position, e.entry_id, {STATUS_TEXT.format("e.status")},
               e.reason
        FROM repeated g
        JOIN entries e
          ON e.record_key = g.record_key AND e.run_no = g.run_no AND e.position = g.position
        JOIN wanted w ON w.run_no = g.run_no
        ORDER BY w.run_id, e.record_key, e.position, e.entry_id
        """,
        params,
    ).fetchall()


# ------------------------------------------------------------------------ runs


def chunk_counts(con: sqlite3.Connection, runs_json: str) -> list[tuple]:
    """Every chunk of the runs with the counts it records and the entries it holds.

    Returns ``(run_id, chunk_no, first_entry, last_entry, counts, held)`` ordered by
    run and chunk: ``counts`` is the chunk's stored JSON (``[[position, ok,
    rejected, failed], ...]``), ``held`` a JSON array of ``[own, position, status,
    entries, owners]`` counted over the entries in the chunk's id range, ``own`` 0
    for entries that name another run than the chunk's, ``owners`` those that
    stored their value under their own id. The entries are grouped chunk by
    chunk (a correlated subquery over each chunk's rowid range, sorting a chunk's
    rows at a time) rather than sorted whole, which costs a third as much.
    """
    return con.execute(
        f"""
        SELECT w.run_id, ch.chunk_no, ch.first_entry, ch.last_entry, ch.counts,
               (SELECT json_group_array(json_array(own, position, status, n, owners)) FROM (
                    SELECT e.run_no = ch.run_no AS own, e.position, e.status, count(*) AS n,
                           sum(e.value_id = e.entry_id) AS owners
                    FROM entries e WHERE e.entry_id BETWEEN ch.first_entry AND ch.last_entry
                    GROUP BY 1, 2, 3))
        FROM ({_WANTED}) w CROSS JOIN chunks ch ON ch.run_no = w.run_no
        ORDER BY 1, 2
        """,
        {"runs": runs_json},
    ).fetchall()


def _gaps(claimed: str) -> str:
    """``gaps(lo, hi)``: the id ranges that none of the ``claimed`` rows' ``first_entry
    .. last_entry`` ranges covers (a window over those rows, by ``first_entry``)."""
    return f"""
    bounds AS (
        SELECT first_entry, max(last_entry) OVER (
            ORDER BY first_entry ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS covered
        FROM {claimed}
    ),
    gaps(lo, hi) AS (
        SELECT coalesce(covered + 1, -9223372036854775807 - 1), first_entry - 1 FROM bounds
        WHERE covered IS NULL OR first_entry > covered + 1
        UNION ALL
        SELECT coalesce(max(last_entry) + 1, -9223372036854775807 - 1), 9223372036854775807
        FROM {claimed}
    )
    """


#: The id ranges that no chunk (of any run) claims, as ``gaps(lo, hi)``.
_GAPS = "WITH " + _gaps("chunks")
#: The id ranges outside the chunks of the runs (a CTE ``checked`` of their ranges).
_CHECKED_GAPS = _gaps("checked")


def value_counts(con: sqlite3.Connection, runs_json: str) -> tuple[int, int]:
    """``(inside, outside)``: how many stored values have an id inside the runs'
    chunks' ranges, and outside all of them (counted on rowid ranges, no row read).

    With the chunks' count of entries that stored a value under their own id, this
    tells whether any value lies outside every entry (:func:`values_without_entry`
    need not search the store when ``outside`` is 0 and ``inside`` equals that count
    while no entry misses its value).
    """
    row = con.execute(
        f"""
        WITH checked AS MATERIALIZED (
            SELECT ch.first_entry, ch.last_entry
            FROM ({_WANTED}) w CROSS JOIN chunks ch ON ch.run_no = w.run_no
        ), {_CHECKED_GAPS}
        SELECT (SELECT count(*) FROM checked c
                CROSS JOIN vals v ON v.value_id BETWEEN c.first_entry AND c.last_entry),
               (SELECT count(*) FROM gaps g
                CROSS JOIN vals v ON v.value_id BETWEEN g.lo AND g.hi)
        """,
        {"runs": runs_json},
    ).fetchone()
    return int(row[0]), int(row[1])


def unclaimed_entries(
    con: sqlite3.Connection, runs_json: str, chunks_json: str
) -> list[tuple[int, str | None, str | None, int, str | None]]:
    """Entries that no chunk of their own run claims.

    Returns ``(entry_id, run_id, record_key, position, chunk_run_id)``: entries of
    the runs (or of no run at all) whose id lies in no chunk's range, and entries in
    the chunks of ``chunks_json`` (a JSON array of ``[run_id, chunk_no]``, the chunks
    :func:`chunk_counts` found holding another run's entries) that name another run;
    ``chunk_run_id`` is the run of the chunk holding the entry (None: no chunk). The
    gaps between the chunks' ranges are found from ``chunks_first`` (a window over
    the small chunks table); their entries are rowid ranges, empty in a sound store.
    """
    rows = con.execute(
        _GAPS
        + f"""
        SELECT e.entry_id, {_RUN_ID.format("e.run_no")}, e.record_key, e.position, NULL
        FROM gaps g CROSS JOIN entries e ON e.entry_id BETWEEN g.lo AND g.hi
        WHERE e.run_no IN ({_RUN_NOS})
           OR NOT EXISTS (SELECT 1 FROM runs WHERE runs.run_no = e.run_no)
        UNION ALL
        SELECT e.entry_id, {_RUN_ID.format("e.run_no")}, e.record_key, e.position, r.run_id
        FROM json_each(:chunks) j
        JOIN runs r ON r.run_id = json_extract(j.value, '$[0]')
        JOIN chunks ch ON ch.run_no = r.run_no AND ch.chunk_no = json_extract(j.value, '$[1]')
        CROSS JOIN entries e ON e.entry_id BETWEEN ch.first_entry AND ch.last_entry
        WHERE e.run_no <> ch.run_no
        """,
        {"runs": runs_json, "chunks": chunks_json},
    ).fetchall()
    return sorted(rows)  # by entry id (sorted here: there are few, if any)
