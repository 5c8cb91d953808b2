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

from .queries import HASH_TEXT
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
    con: sqlite3.Connection,
    runs_json: str,
    entry_span: tuple[int | None, int | None],
    hash_bytes: Callable[[bytes], str],
) -> list[tuple]:
    """Entries of the runs whose value is missing or does not match its hash.

    Returns ``(run_id, record_key, entry_id, position, has_value, stored_hash,
    actual_hash)``. Each stored value is hashed once, on the row of the entry that
    stored it (an identity step's entry shares its parent's value); an entry whose
    value row is missing is reported itself. ``hash_bytes`` (the value hash of UTF-8
    bytes) is registered as the SQL function ``lk_value_hash`` (deterministic,
    read-only), so the hashing runs inside the one scan and only problems reach
    Python. ``entry_span`` is not needed by this layout (the chunks give the ranges).
    """
    con.create_function("lk_value_hash", 1, hash_bytes, deterministic=True)
    rows = con.execute(
        f"""
        SELECT run_id, record_key, entry_id, position, has_value, stored, actual FROM (
            SELECT w.run_id, e.record_key, e.entry_id, e.position,
                   v.value_id IS NOT NULL AS has_value, {HASH_TEXT.format("v")} AS stored,
                   CASE WHEN v.value_id IS NOT NULL AND e.value_id = e.entry_id
                        THEN lk_value_hash(CAST(v.json AS BLOB)) END AS actual,
                   e.value_id = e.entry_id AS owner
            FROM ({_WANTED}) w
            CROSS JOIN chunks ch ON ch.run_no = w.run_no
            CROSS JOIN entries e ON e.entry_id BETWEEN ch.first_entry AND ch.last_entry
            LEFT JOIN vals v ON v.value_id = e.value_id
        )
        WHERE NOT has_value OR (owner AND stored IS NOT actual)
        """,
        {"runs": runs_json},
    ).fetchall()
    return sorted(rows, key=lambda row: row[2])  # by entry id: the scan goes by chunk


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


def chain_rows(
    con: sqlite3.Connection,
    runs_json: str,
    finished_json: str,
    entry_span: tuple[int | None, int | None],
) -> list[tuple]:
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
    row and drop repeats. The order of the rows is not defined. ``entry_span`` is
    not needed by this layout.
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


def repeated_keys(con: sqlite3.Connection, runs_json: str) -> list[tuple]:
    """Entries of every (run, key, step) that occurs more than once.

    Returns ``(run_id, record_key, position, entry_id, status, reason)`` ordered by
    run, key, step and entry id. Entries without a key are not included. The groups
    are found on the covering ``entries_key`` index; only their entries are read.
    """
    return con.execute(
        f"""
        WITH wanted(run_no, run_id) AS MATERIALIZED ({_WANTED}),
        repeated(record_key, run_no, position) AS (
            SELECT record_key, run_no, position FROM entries
            WHERE record_key IS NOT NULL AND run_no IN (SELECT run_no FROM wanted)
            GROUP BY record_key, run_no, position
            HAVING count(*) > 1
        )
        SELECT w.run_id, e.record_key, e.position, e.entry_id, {STATUS_TEXT.format("e.status")},
               e.reason
        FROM repeated g
        JOIN entries e
          ON e.record_key = g.record_key AND e.run_no = g.run_no AND e.position = g.position
        JOIN wanted w ON w.run_no = g.run_no
        ORDER BY w.run_id, e.record_key, e.position, e.entry_id
        """,
        {"runs": runs_json},
    ).fetchall()


# ------------------------------------------------------------------------ runs


def entry_counts(
    con: sqlite3.Connection, runs_json: str
) -> list[tuple[str, int, str, int, int, int]]:
    """``(run_id, position, status, entries, min_entry_id, max_entry_id)`` for the
    runs, from one pass over their chunks' id ranges."""
    return con.execute(
        f"""
        SELECT run_id, position, {STATUS_TEXT.format("status")}, n, lo, hi FROM (
            SELECT w.run_id, e.position, e.status, count(*) AS n, min(e.entry_id) AS lo,
                   max(e.entry_id) AS hi
            FROM ({_WANTED}) w
            CROSS JOIN chunks ch ON ch.run_no = w.run_no
            CROSS JOIN entries e ON e.entry_id BETWEEN ch.first_entry AND ch.last_entry
            GROUP BY w.run_id, e.position, e.status
        )
        ORDER BY 1, 2, 3
        """,
        {"runs": runs_json},
    ).fetchall()
