"""Read queries over a lineage store. Every statement is parameterised."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any

#: The columns of :meth:`Backend.run_rows`, in order.
RUN_COLUMNS = (
    "run_id",
    "pipeline",
    "started_at",
    "finished_at",
    "status",
    "input_path",
    "input_sha256",
    "n_input",
    "n_published",
    "n_rejected",
    "n_failed",
    "parameters",
    "package_version",
    "error",
    "writer_host",
    "writer_pid",
    "writer_started",
)


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


def parse_parameters(text: str | None) -> Any:
    """A run's stored ``parameters`` (JSON text) as the dict the run was given.

    What ``runs()``, ``runs --json`` and the ``--report`` show; text that is not
    JSON (no lineage_kit writes it) is returned as it is.

    Examples
    --------
    >>> parse_parameters('{"key": "id", "chunk_size": 2000}')
    {'key': 'id', 'chunk_size': 2000}
    """
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_id_list(text: str | None) -> list[int]:
    """The entry ids of a ``group_concat`` comma list (such as ``parent_ids``).

    Parameters
    ----------
    text : str or None
        Comma-separated integers; None or ``""`` (no parents) gives an empty list.

    Returns
    -------
    list of int
        The ids, in the order listed.

    Raises
    ------
    ValueError
        A part is not an integer.

    Examples
    --------
    >>> parse_id_list("12,3"), parse_id_list(None)
    ([12, 3], [])
    """
    return [int(part) for part in text.split(",")] if text else []


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
_SELECT_RUNS = f"SELECT {', '.join(RUN_COLUMNS)} FROM runs ORDER BY started_at DESC, rowid DESC"

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

#: Entry columns, in the order :func:`connected_entry_rows` returns them (then the value).
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


def stored_run_rows(con: sqlite3.Connection) -> list[tuple]:
    """Every run as stored (columns ``RUN_COLUMNS``), newest first."""
    return con.execute(_SELECT_RUNS).fetchall()


def latest_run_id(con: sqlite3.Connection) -> str | None:
    """The newest run's id, or None."""
    row = con.execute(
        "SELECT run_id FROM runs ORDER BY started_at DESC, rowid DESC LIMIT 1"
    ).fetchone()
    return None if row is None else row[0]


def run_ids_with_prefix(con: sqlite3.Connection, prefix: str, limit: int) -> list[str]:
    """Up to ``limit`` run ids starting with ``prefix`` (a range on the primary key)."""
    return [
        r[0]
        for r in con.execute(
            "SELECT run_id FROM runs WHERE run_id >= ? AND run_id < ? LIMIT ?",
            (prefix, prefix + "\U0010ffff", limit),
        )
    ]


def all_run_ids(con: sqlite3.Connection) -> list[str]:
    """Every run id, oldest first."""
    return [r[0] for r in con.execute(ALL_RUN_IDS)]


def step_meta_rows(con: sqlite3.Connection, run_id: str) -> list[tuple]:
    """A run's steps in pipeline order (columns :data:`STEP_META_COLUMNS`)."""
    return con.execute(
        f"SELECT {', '.join(STEP_META_COLUMNS)} FROM steps WHERE run_id = ? ORDER BY position",
        (run_id,),
    ).fetchall()


def step_name_rows(con: sqlite3.Connection, run_id: str) -> list[tuple[str, int, str]]:
    """``(run_id, position, name)`` of a run's steps in pipeline order (the shape
    :func:`lineage_kit.frames.step_names` reads; lighter than :func:`step_meta_rows`)."""
    return con.execute(
        "SELECT run_id, position, name FROM steps WHERE run_id = ? ORDER BY position", (run_id,)
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


# Everything connected to one key's entries in one run, as the CTE ``connected``: the
# entries themselves, all their ancestors (``up``) and all their descendants
# (``down``). Parent links never cross runs. Parameters: key, run id.
_CONNECTED_CTE = """
WITH RECURSIVE
    seed(entry_id) AS (
        SELECT entry_id FROM lineage WHERE record_key = ? AND run_id = ?
    ),
    up(entry_id) AS (
        SELECT entry_id FROM seed
        UNION
        SELECT p.parent_id FROM up JOIN parents p ON p.child_id = up.entry_id
    ),
    down(entry_id) AS (
        SELECT entry_id FROM seed
        UNION
        SELECT p.child_id FROM down JOIN parents p ON p.parent_id = down.entry_id
    ),
    connected(entry_id) AS (SELECT entry_id FROM up UNION SELECT entry_id FROM down)
"""

CONNECTED_ENTRIES = (
    _CONNECTED_CTE
    + """SELECT {columns}, r.value
FROM connected n
JOIN lineage l ON l.entry_id = n.entry_id
LEFT JOIN records r ON r.entry_id = n.entry_id
ORDER BY l.entry_id
"""
)


def connected_entry_rows(con: sqlite3.Connection, run_id: str, key: str) -> list[tuple]:
    """Entries connected to ``key`` in the run (:data:`ENTRY_COLUMNS` + the value JSON)."""
    sql = CONNECTED_ENTRIES.format(columns=", ".join(f"l.{c}" for c in ENTRY_COLUMNS))
    return con.execute(sql, (key, run_id)).fetchall()


def links_among(con: sqlite3.Connection, entry_ids: list[int]) -> list[tuple[int, int]]:
    """``(parent_id, child_id)`` links whose both ends are in ``entry_ids``.

    Linear in the number of ids: the ids drive the loop (``CROSS JOIN`` fixes the
    order), each child's links come from the parents primary key, and the parent
    test is a lookup in the list subquery, built once (the ``+`` keeps SQLite from
    using it as an index constraint, which would seek every id for every child; left
    to itself, SQLite also drove the loop by that list and scanned the ids per link:
    quadratic in a merge group).
    """
    return con.execute(LINKS_AMONG, (json.dumps(entry_ids),)).fetchall()


LINKS_AMONG = """
SELECT p.parent_id, p.child_id
FROM json_each(?1) c CROSS JOIN parents p ON p.child_id = c.value
WHERE +p.parent_id IN (SELECT value FROM json_each(?1))
"""


# Entry columns for DataFrames and graphs. Each column comes back as ONE string (a
# comma list of integers, or a JSON array of texts) from one aggregate pass, so no
# Python tuple is built per row; all aggregates of a statement step through the same
# rows in the same order, so the columns line up. A whole run is read as a rowid
# range (``+run_id`` keeps the planner on the primary key), which also gives entry-id
# order without a sort.
_COLUMNS_SELECT = (
    "SELECT count(*), group_concat(l.entry_id), group_concat(l.position), "
    "json_group_array(l.record_key), "
    "group_concat(CASE l.status WHEN 'ok' THEN 0 WHEN 'rejected' THEN 1 ELSE 2 END), "
    "json_group_array(l.reason), json_group_array(l.error), group_concat(l.created_at), "
    "json_group_array(l.value_hash) FROM lineage l WHERE "
)
_RUN_RANGE = """
SELECT min(lo), max(hi) FROM (
    SELECT (SELECT min(l.entry_id) FROM lineage l
            WHERE l.run_id = s.run_id AND l.position = s.position AND l.status = st.value) AS lo,
           (SELECT max(l.entry_id) FROM lineage l
            WHERE l.run_id = s.run_id AND l.position = s.position AND l.status = st.value) AS hi
    FROM steps s, json_each('["ok", "rejected", "failed"]') st
    WHERE s.run_id = ?
)
"""


def run_entry_range(con: sqlite3.Connection, run_id: str) -> tuple[int, int] | None:
    """The smallest and largest entry id of a run (index seeks only), or None if empty."""
    lo, hi = con.execute(_RUN_RANGE, (run_id,)).fetchone()
    return None if lo is None else (lo, hi)


def _selection(
    con: sqlite3.Connection, run_id: str, key: str | None, position: int | None
) -> tuple[str, tuple] | None:
    if key is None and position is None:
        bounds = run_entry_range(con, run_id)
        if bounds is None:
            return None
        return "l.entry_id BETWEEN ? AND ? AND +l.run_id = ?", (*bounds, run_id)
    return _entry_filter(key is not None, position is not None), _entry_params(
        run_id, key, position
    )


def entry_columns(
    con: sqlite3.Connection,
    run_id: str,
    *,
    key: str | None = None,
    position: int | None = None,
) -> tuple:
    """A run's entries as aggregated columns.

    Returns ``(count, entry_ids, positions, keys, status_codes, reasons, errors,
    created_ats, value_hashes)``: integers and stamps as comma-separated text
    (``None`` when empty; the writer's stamps are fixed width and hold no comma, so
    splitting them needs no parser: :func:`created_at_json` reads them as JSON for
    a store where that does not hold), other texts as JSON arrays; status codes
    index ``ENTRY_STATUSES``. A whole run comes in entry-id order; a filtered
    selection in index order.
    """
    selection = _selection(con, run_id, key, position)
    if selection is None:
        return (0, None, None, "[]", None, "[]", "[]", None, "[]")
    where, params = selection
    return con.execute(_COLUMNS_SELECT + where, params).fetchone()


def created_at_json(
    con: sqlite3.Connection,
    run_id: str,
    *,
    key: str | None = None,
    position: int | None = None,
) -> str:
    """The ``created_at`` of the selection of :func:`entry_columns` as a JSON array."""
    selection = _selection(con, run_id, key, position)
    if selection is None:
        return "[]"
    where, params = selection
    return con.execute(
        "SELECT json_group_array(l.created_at) FROM lineage l WHERE " + where, params
    ).fetchone()[0]


def edge_columns(
    con: sqlite3.Connection,
    run_id: str,
    *,
    key: str | None = None,
    position: int | None = None,
) -> tuple[str | None, str | None]:
    """Parent links of the selected entries as ``(parent_ids, child_ids)`` comma lists.

    For a whole run the links of every child in the run's entry-id range are
    returned, ordered by (child, parent); a caller whose run shares that range with
    another run (concurrent writers) drops children that are not its entries.
    """
    if key is None and position is None:
        bounds = run_entry_range(con, run_id)
        if bounds is None:
            return None, None
        return con.execute(
            "SELECT group_concat(parent_id), group_concat(child_id) FROM parents "
            "WHERE child_id BETWEEN ? AND ?",
            bounds,
        ).fetchone()
    where = _entry_filter(key is not None, position is not None)
    return con.execute(
        "SELECT group_concat(p.parent_id), group_concat(p.child_id) FROM lineage l "
        f"JOIN parents p ON p.child_id = l.entry_id WHERE {where}",
        _entry_params(run_id, key, position),
    ).fetchone()


# ------------------------------------------------------------------ walks
# Recursive CTEs over the parent links. The up-walk follows the parents primary key
# (child_id, parent_id), the down-walk the parents_parent index; the seed uses the
# lineage_key index; tests assert the plans with EXPLAIN QUERY PLAN.

#: Columns of :func:`trace_rows`, :func:`walk_rows` adds ``depth`` after entry_id.
TRACE_COLUMNS = (
    "entry_id",
    "run_id",
    "position",
    "step",
    "kind",
    "source",
    "destination",
    "description",
    "record_key",
    "relation",
    "status",
    "reason",
    "error",
    "value_hash",
    "created_at",
    "parent_ids",
)
_ENTRY_DETAIL = """
    l.run_id, l.position, s.name, s.kind, s.source, s.destination, s.description,
    l.record_key, {relation}, l.status, l.reason, l.error, l.value_hash, l.created_at,
    (SELECT group_concat(pp.parent_id) FROM parents pp WHERE pp.child_id = l.entry_id)
"""

TRACE = (
    _CONNECTED_CTE
    + """
SELECT l.entry_id, """
    + _ENTRY_DETAIL.format(
        relation="CASE WHEN l.record_key IS ? THEN 'self' "
        "WHEN l.entry_id IN (SELECT entry_id FROM up) THEN 'upstream' ELSE 'downstream' END"
    )
    + """
FROM connected c
JOIN lineage l ON l.entry_id = c.entry_id
JOIN steps s ON s.run_id = l.run_id AND s.position = l.position
ORDER BY l.position, l.entry_id
"""
)


def trace_rows(con: sqlite3.Connection, run_id: str, key: str) -> list[tuple]:
    """The key's entries and everything up- and downstream of them in one run.

    Columns :data:`TRACE_COLUMNS`, ordered by step position then entry id;
    ``relation`` is ``self`` (the key's own entries), ``upstream`` or ``downstream``;
    ``parent_ids`` is a comma list (None for a first-step entry).
    """
    return con.execute(TRACE, (key, run_id, key)).fetchall()


_WALK = """
WITH RECURSIVE walk(entry_id, depth) AS (
    SELECT ?2, 0
    UNION
    SELECT p.{next}, w.depth + 1 FROM walk w JOIN parents p ON p.{this} = w.entry_id
    WHERE ?1 IS NULL OR w.depth < ?1
)
SELECT l.entry_id, min(w.depth), """
_WALK_TAIL = """
FROM walk w
JOIN lineage l ON l.entry_id = w.entry_id
JOIN steps s ON s.run_id = l.run_id AND s.position = l.position
GROUP BY l.entry_id
ORDER BY min(w.depth), l.entry_id
"""
UPSTREAM = (
    _WALK.replace("{next}", "parent_id").replace("{this}", "child_id")
    + _ENTRY_DETAIL.format(relation="'upstream'")
    + _WALK_TAIL
)
DOWNSTREAM = (
    _WALK.replace("{next}", "child_id").replace("{this}", "parent_id")
    + _ENTRY_DETAIL.format(relation="'downstream'")
    + _WALK_TAIL
)


def walk_rows(
    con: sqlite3.Connection, entry_id: int, depth: int | None, direction: str
) -> list[tuple]:
    """Everything ``entry_id`` came from (``"up"``) or led to (``"down"``).

    Rows are ``(entry_id, depth, *TRACE_COLUMNS[1:])``; the entry itself is depth 0,
    an entry reached along several paths appears once at its smallest depth.
    ``depth=None`` walks to the end.
    """
    sql = {"up": UPSTREAM, "down": DOWNSTREAM}[direction]
    return con.execute(sql, (depth, entry_id)).fetchall()  # ?1 depth limit, ?2 the entry


def entry_exists(con: sqlite3.Connection, entry_id: int) -> bool:
    """Whether a lineage entry with this id exists."""
    return (
        con.execute("SELECT 1 FROM lineage WHERE entry_id = ?", (entry_id,)).fetchone() is not None
    )


SOURCES = """
WITH RECURSIVE walk(entry_id) AS (
    SELECT value FROM json_each(?)
    UNION
    SELECT p.parent_id FROM walk w JOIN parents p ON p.child_id = w.entry_id
)
SELECT l.entry_id, l.run_id, l.record_key, l.status, l.reason, l.created_at, l.value_hash,
       r.value
FROM walk w
JOIN lineage l ON l.entry_id = w.entry_id
JOIN records r ON r.entry_id = w.entry_id
WHERE NOT EXISTS (SELECT 1 FROM parents p WHERE p.child_id = w.entry_id)
ORDER BY l.entry_id
"""


def source_rows(con: sqlite3.Connection, entry_ids: list[int]) -> list[tuple]:
    """The first-step ancestors (no parents) of the given entries, with their values."""
    return con.execute(SOURCES, (json.dumps(entry_ids),)).fetchall()


def last_entries_of_key(con: sqlite3.Connection, run_id: str, key: str) -> list[int]:
    """The key's entries at its furthest step in the run (usually one)."""
    return [
        r[0]
        for r in con.execute(
            """
            SELECT entry_id FROM lineage
            WHERE record_key = ?1 AND run_id = ?2 AND position = (
                SELECT max(position) FROM lineage WHERE record_key = ?1 AND run_id = ?2)
            ORDER BY entry_id
            """,
            (key, run_id),
        )
    ]


def value_rows(con: sqlite3.Connection, entry_ids: list[int]) -> list[tuple[int, str]]:
    """``(entry_id, value JSON)`` of the given entries."""
    return con.execute(VALUES_OF, (json.dumps(entry_ids),)).fetchall()


#: ``CROSS JOIN``: the ids drive the loop, one rowid seek each (linear in the ids).
VALUES_OF = (
    "SELECT r.entry_id, r.value FROM json_each(?) j CROSS JOIN records r ON r.entry_id = j.value"
)


_VALUES_SELECT = (
    "SELECT group_concat(l.entry_id), '[' || group_concat(r.value) || ']' "
    "FROM lineage l JOIN records r ON r.entry_id = l.entry_id WHERE "
)


def value_columns(
    con: sqlite3.Connection,
    run_id: str,
    *,
    key: str | None = None,
    position: int | None = None,
) -> tuple[str | None, str | None]:
    """The selected entries' ids (comma list) and values (one JSON array text)."""
    selection = _selection(con, run_id, key, position)
    if selection is None:
        return None, None
    where, params = selection
    return con.execute(_VALUES_SELECT + where, params).fetchone()


# -------------------------------------------------------------------- timeline


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


#: Counts of unfinished runs from their entries: one grouped pass over the covering
#: ``lineage_run (run_id, position, status)`` index, then one row per run.
LIVE_COUNTS = """
WITH c AS (
    SELECT run_id, position, status, count(*) AS n
    FROM lineage
    WHERE run_id IN (SELECT value FROM json_each(?1))
    GROUP BY run_id, position, status
),
last AS (
    SELECT run_id, max(position) AS position
    FROM steps
    WHERE run_id IN (SELECT value FROM json_each(?1))
    GROUP BY run_id
)
SELECT c.run_id,
       coalesce(sum(CASE WHEN c.position = 0 THEN c.n END), 0),
       coalesce(sum(CASE WHEN c.status = 'ok' AND c.position = last.position THEN c.n END), 0),
       coalesce(sum(CASE WHEN c.status = 'rejected' THEN c.n END), 0),
       coalesce(sum(CASE WHEN c.status = 'failed' THEN c.n END), 0)
FROM c LEFT JOIN last ON last.run_id = c.run_id
GROUP BY c.run_id
"""


def live_counts(con: sqlite3.Connection, run_ids: list[str]) -> dict[str, tuple[int, ...]]:
    """``(n_input, n_published, n_rejected, n_failed)`` of runs, counted from their entries.

    For runs that never finished (their stored counts are written at the end):
    ``n_input`` is the entries at position 0, ``n_rejected``/``n_failed`` the entries
    with that status, ``n_published`` the ``ok`` entries at the run's last step.
    A run without entries is absent from the result.
    """
    return {row[0]: tuple(row[1:]) for row in con.execute(LIVE_COUNTS, (json.dumps(run_ids),))}


# ------------------------------------------------------------------- exports


def outcome_reason_counts(con: sqlite3.Connection, run_id: str) -> list[tuple[int, str, str, int]]:
    """``(position, status, reason, count)`` of a run's rejected and failed entries.

    ``reason`` is None for failed entries (their error is in ``error``). One grouped
    pass over the run's non-``ok`` entries (seeks on the ``lineage_run`` index).
    """
    return con.execute(
        """
        SELECT position, status, reason, count(*)
        FROM lineage
        WHERE run_id = ? AND status IN ('rejected', 'failed')
        GROUP BY position, status, reason
        ORDER BY position, status, reason
        """,
        (run_id,),
    ).fetchall()


def step_value_sample(
    con: sqlite3.Connection, run_id: str, position: int, limit: int
) -> list[tuple[int, str, str | None]]:
    """Up to ``limit`` ``ok`` entries of one step with their parents' values.

    Rows are ``(entry_id, value JSON, parent value JSON or None)``, one per parent
    link (a merged entry has several rows, a first-step entry one row with None),
    the entries in id order. Index seeks only: the ``lineage_run`` index for the
    step, primary keys for parents and values.
    """
    return con.execute(
        """
        WITH picked AS (
            SELECT entry_id FROM lineage
            WHERE run_id = ? AND position = ? AND status = 'ok'
            ORDER BY entry_id LIMIT ?
        )
        SELECT c.entry_id, cv.value, pv.value
        FROM picked c
        JOIN records cv ON cv.entry_id = c.entry_id
        LEFT JOIN parents p ON p.child_id = c.entry_id
        LEFT JOIN records pv ON pv.entry_id = p.parent_id
        ORDER BY c.entry_id, p.parent_id
        """,
        (run_id, position, limit),
    ).fetchall()
