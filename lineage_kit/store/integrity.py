"""Set-based SQL for the integrity checks of :mod:`lineage_kit.checks`.

Every function reads only, takes the runs to check as a JSON array (bound to one
parameter and expanded with ``json_each``), and returns plain rows; turning rows
into violations with codes and messages is the job of :mod:`lineage_kit.checks`.
None of them runs a query per record: each is one statement over indexes
(``lineage_run``, ``lineage_key``, ``parents_parent`` and the primary keys), so a
run of a million records is checked in seconds.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable

_RUNS = "SELECT value FROM json_each(:runs)"

# Scans of every entry of the runs walk the lineage table in entry_id order (a
# rowid range, filtered by run) rather than through the lineage_run index: entries
# of a run are (nearly) contiguous, so the table, its values and its links are then
# read sequentially, which halves the time of the big scans. The unary ``+`` keeps
# SQLite from choosing the index instead. The range (``:lo``, ``:hi``) comes from
# :func:`entry_counts` (see :func:`span`): a ``min(entry_id)`` per statement would
# read the run's whole ``lineage_run`` index again, as that index is not ordered by
# entry id within a run.
_SPAN = f"BETWEEN :lo AND :hi AND +{{alias}}.run_id IN ({_RUNS})"


def runs_param(run_ids: Iterable[str]) -> str:
    """The JSON array of run ids bound to the ``json_each(:runs)`` of every query below."""
    return json.dumps(list(run_ids))


# ------------------------------------------------------------------------- steps


def step_kinds(con: sqlite3.Connection, runs_json: str) -> list[tuple[str, int, str, str]]:
    """``(run_id, position, name, kind)`` of every step of the runs, in order."""
    return con.execute(
        f"SELECT run_id, position, name, kind FROM steps WHERE run_id IN ({_RUNS}) "
        "ORDER BY run_id, position",
        {"runs": runs_json},
    ).fetchall()


# ---------------------------------------------------------------------- values


def values_without_entry(con: sqlite3.Connection) -> list[tuple[int]]:
    """``(entry_id,)`` of ``records`` rows whose lineage entry does not exist.

    Such a value belongs to no run, so the whole store is searched. The anti-join
    is written as a ``LEFT JOIN ... IS NULL`` rather than ``NOT EXISTS``: SQLite runs
    it as a plain rowid seek per value instead of a correlated subquery, which is
    about twice as fast over millions of rows.
    """
    return con.execute(
        """
        SELECT r.entry_id FROM records r
        LEFT JOIN lineage l ON l.entry_id = r.entry_id
        WHERE l.entry_id IS NULL
        ORDER BY r.entry_id
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
    actual_hash)``. ``hash_bytes`` (the value hash of UTF-8 bytes) is registered as
    the SQL function ``lk_value_hash`` on the connection (deterministic and
    read-only: nothing is written), so the hashing runs inside the one scan and only
    problems reach Python; values are passed as bytes to spare a decode per value.
    ``entry_span`` is the :func:`span` of the runs' entries.
    """
    con.create_function("lk_value_hash", 1, hash_bytes, deterministic=True)
    return con.execute(
        f"""
        SELECT run_id, record_key, entry_id, position, has_value, value_hash, actual FROM (
            SELECT l.run_id, l.record_key, l.entry_id, l.position, l.value_hash,
                   r.entry_id IS NOT NULL AS has_value,
                   CASE WHEN r.entry_id IS NOT NULL
                        THEN lk_value_hash(CAST(r.value AS BLOB)) END AS actual
            FROM lineage l LEFT JOIN records r ON r.entry_id = l.entry_id
            WHERE l.entry_id {_SPAN.format(alias="l")}
        )
        WHERE NOT has_value OR value_hash IS NOT actual
        ORDER BY entry_id
        """,
        {"runs": runs_json, "lo": entry_span[0], "hi": entry_span[1]},
    ).fetchall()


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


def chain_rows(
    con: sqlite3.Connection,
    runs_json: str,
    finished_json: str,
    entry_span: tuple[int | None, int | None],
) -> list[tuple]:
    """Entries of the runs, with their parent links, that break any rule of a chain.

    One pass over the runs' entries in entry-id order (the rowid range
    ``entry_span``, the :func:`span` of the runs' entries), each joined to its parent
    links (``parents`` primary key) and the parent entries (rowid). The anti-join
    for a missing parent is a ``LEFT JOIN ... IS NULL``, which SQLite runs as a plain
    seek rather than a correlated subquery per entry. A row (columns
    :data:`CHAIN_COLUMNS`) is returned for

    - an entry after the first step with no parent link at all (``parent_id`` NULL);
    - an ``ok`` entry before its run's last step that no link names as a parent
      (``has_child`` 0), in the runs of ``finished_json`` only (``last_position`` is
      NULL for the others); the ``parents_parent`` lookup runs only for such entries
      and is a subquery, not a join, so an entry with many parents and many children
      does not multiply into parents x children rows;
    - a link, other than a self-link (left to :func:`cycle_links`), whose parent is
      missing, in another run, at the same or a later step, created after the
      child, more than one step before the child, or carrying another key although
      the child's step is a ``map`` step.

    An entry comes back once per parent link, so a row may be returned for one
    reason and repeated for another link of the same entry; callers re-test each
    row and drop repeats. Rows are ordered by child entry id (the scan's own order,
    so no sort); the order of one entry's rows is not defined.
    """
    return con.execute(
        """
        WITH checked(run_id, last_position) AS MATERIALIZED (
            SELECT j.value,
                   CASE WHEN j.value IN (SELECT value FROM json_each(:finished))
                        THEN (SELECT max(s.position) FROM steps s WHERE s.run_id = j.value)
                   END
            FROM json_each(:runs) j
        )
        SELECT c.entry_id, c.run_id, c.record_key, c.position, c.status, c.created_at,
               k.last_position, p.parent_id, pa.entry_id IS NOT NULL, pa.run_id,
               pa.record_key, pa.position, pa.created_at,
               EXISTS (SELECT 1 FROM parents ch WHERE ch.parent_id = c.entry_id)
        FROM lineage c
        CROSS JOIN checked k ON k.run_id = c.run_id
        LEFT JOIN parents p ON p.child_id = c.entry_id
        LEFT JOIN lineage pa ON pa.entry_id = p.parent_id
        WHERE c.entry_id BETWEEN :lo AND :hi
          AND ((p.child_id IS NULL AND c.position > 0)
               OR (c.status = 'ok' AND c.position < k.last_position
                   AND NOT EXISTS (SELECT 1 FROM parents ch WHERE ch.parent_id = c.entry_id))
               OR (p.parent_id <> p.child_id
                   AND (pa.entry_id IS NULL
                        OR pa.run_id <> c.run_id
                        OR pa.position >= c.position
                        OR c.position > pa.position + 1
                        OR pa.created_at > c.created_at
                        OR (c.record_key IS NOT pa.record_key
                            AND NOT EXISTS (SELECT 1 FROM steps s
                                            WHERE s.run_id = c.run_id
                                              AND s.position = c.position
                                              AND s.kind IN ('merge', 'split'))))))
        ORDER BY c.entry_id
        """,
        {"runs": runs_json, "finished": finished_json, "lo": entry_span[0], "hi": entry_span[1]},
    ).fetchall()


def links_from_missing_children(
    con: sqlite3.Connection, runs_json: str
) -> list[tuple[int, int, str | None, str | None]]:
    """``(child_id, parent_id, parent_run_id, parent_key)`` of links whose child is gone.

    Only links whose parent is in one of the runs, or whose parent is gone too
    (such a link belongs to no run), are returned.
    """
    return con.execute(
        f"""
        SELECT p.child_id, p.parent_id, pa.run_id, pa.record_key
        FROM parents p
        LEFT JOIN lineage c ON c.entry_id = p.child_id
        LEFT JOIN lineage pa ON pa.entry_id = p.parent_id
        WHERE c.entry_id IS NULL
          AND (pa.entry_id IS NULL OR pa.run_id IN ({_RUNS}))
        ORDER BY p.child_id, p.parent_id
        """,
        {"runs": runs_json},
    ).fetchall()


def cycle_links(con: sqlite3.Connection, runs_json: str) -> list[tuple]:
    """``(child_id, parent_id, run_id, record_key)`` of links that lie on a cycle.

    The pipeline always gives a child a larger entry id than its parents, so every
    cycle contains at least one link with ``parent_id >= child_id``. Only those
    candidate links are followed upwards (a recursive CTE whose ``UNION`` stops at
    nodes already seen); a candidate closes a cycle when its child is among its
    parent's ancestors.
    """
    return con.execute(
        f"""
        WITH RECURSIVE
        candidate(child_id, parent_id) AS (
            SELECT p.child_id, p.parent_id FROM parents p
            WHERE p.parent_id >= p.child_id
        ),
        up(child_id, parent_id, node) AS (
            SELECT child_id, parent_id, parent_id FROM candidate
            UNION
            SELECT u.child_id, u.parent_id, p.parent_id
            FROM up u JOIN parents p ON p.child_id = u.node
            WHERE u.node <> u.child_id
        )
        SELECT u.child_id, u.parent_id, c.run_id, c.record_key
        FROM up u LEFT JOIN lineage c ON c.entry_id = u.child_id
        WHERE u.node = u.child_id AND (c.entry_id IS NULL OR c.run_id IN ({_RUNS}))
        ORDER BY u.child_id, u.parent_id
        """,
        {"runs": runs_json},
    ).fetchall()


# ------------------------------------------------------------------ duplicates


def repeated_keys(con: sqlite3.Connection, runs_json: str) -> list[tuple]:
    """Entries of every (run, key, step) that occurs more than once.

    Returns ``(run_id, record_key, position, entry_id, status, reason)`` ordered by
    run, key, step and entry id. Entries without a key are not included. The groups
    are found on the covering ``lineage_key`` index; only their entries are read.
    """
    return con.execute(
        f"""
        WITH repeated(record_key, run_id, position) AS (
            SELECT record_key, run_id, position FROM lineage INDEXED BY lineage_key
            WHERE record_key IS NOT NULL AND run_id IN ({_RUNS})
            GROUP BY record_key, run_id, position
            HAVING count(*) > 1
        )
        SELECT l.run_id, l.record_key, l.position, l.entry_id, l.status, l.reason
        FROM repeated g
        JOIN lineage l INDEXED BY lineage_key
          ON l.record_key = g.record_key AND l.run_id = g.run_id AND l.position = g.position
        ORDER BY l.run_id, l.record_key, l.position, l.entry_id
        """,
        {"runs": runs_json},
    ).fetchall()


# ------------------------------------------------------------------------ runs


def entry_counts(
    con: sqlite3.Connection, runs_json: str
) -> list[tuple[str, int, str, int, int, int]]:
    """``(run_id, position, status, entries, min_entry_id, max_entry_id)`` for the
    runs, from one scan of the covering ``lineage_run`` index."""
    return con.execute(
        f"""
        SELECT run_id, position, status, count(*), min(entry_id), max(entry_id) FROM lineage
        WHERE run_id IN ({_RUNS})
        GROUP BY run_id, position, status
        ORDER BY run_id, position, status
        """,
        {"runs": runs_json},
    ).fetchall()
