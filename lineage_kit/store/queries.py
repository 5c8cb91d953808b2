"""Read queries over a lineage store (schema v4). Every statement is parameterised.

A run's entries are the id ranges of its ``chunks`` rows: a whole-run read loops over
the run's chunks (primary key ``(run_no, chunk_no)``) and reads each range of
``entries`` by rowid, which also gives each entry its chunk's time without a lookup.
A key's entries come from ``entries_key``; upward walks follow ``entries.parent_id``
(the primary key) and ``extra_parents``' primary key, downward walks
``entries_parent`` and ``extra_parents_parent``. Run ids are given as text and
turned into run numbers by one subquery (:data:`RUN_NO`) per statement.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from typing import Any

from .schema import CHUNK_TIME, STATUS_TEXT

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


#: The run number of the run id bound to ``{0}`` (a scalar subquery, run once).
RUN_NO = "(SELECT run_no FROM runs WHERE run_id = {0})"

#: A run's entries ``e`` (and their chunk ``ch``) as rowid ranges of its chunks.
RUN_ENTRIES = (
    "chunks ch CROSS JOIN entries e ON e.entry_id BETWEEN ch.first_entry AND ch.last_entry"
)

#: An entry ``{0}``'s value hash as lowercase hex (``v``: its ``vals`` row).
HASH_TEXT = "CASE WHEN {0}.hash IS NOT NULL THEN lower(hex({0}.hash)) END"

#: Entry ``{0}``'s parent ids as a comma list (None: no parents), smallest first.
PARENT_LIST = (
    "CASE WHEN {0}.parent_id IS NULL THEN "
    "(SELECT group_concat(x.parent_id) FROM extra_parents x WHERE x.child_id = {0}.entry_id) "
    "ELSE {0}.parent_id || coalesce(',' || (SELECT group_concat(x.parent_id) "
    "FROM extra_parents x WHERE x.child_id = {0}.entry_id), '') END"
)


def count_entries(con: sqlite3.Connection, run_id: str) -> int:
    """How many lineage entries a run has (a count of its chunks' id ranges)."""
    return con.execute(
        f"SELECT count(*) FROM {RUN_ENTRIES} WHERE ch.run_no = {RUN_NO.format('?')}", (run_id,)
    ).fetchone()[0]


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
        f"""
        SELECT e.entry_id, e.record_key, e.position, {STATUS_TEXT.format("e.status")}, e.reason,
               e.error, ch.written_at, {PARENT_LIST.format("e")}
        FROM {RUN_ENTRIES}
        WHERE ch.run_no = {RUN_NO.format("?")}
        ORDER BY e.record_key, e.position, e.entry_id
        """,
        (run_id,),
    )


# --------------------------------------------------------------------- explore
# Queries behind LineageStore.steps(), .lineage(), .graph() and friends. Optional
# filters are chosen from fixed SQL fragments; values are always bound parameters.

ALL_RUN_IDS = "SELECT run_id FROM runs ORDER BY started_at, run_no"
_SELECT_RUNS = f"SELECT {', '.join(RUN_COLUMNS)} FROM runs ORDER BY started_at DESC, run_no DESC"

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

#: How each of :data:`ENTRY_COLUMNS` is read from ``e`` (entries), ``r`` (runs) and
#: ``v`` (vals).
ENTRY_EXPRESSIONS = {
    "entry_id": "e.entry_id",
    "run_id": "r.run_id",
    "position": "e.position",
    "record_key": "e.record_key",
    "status": STATUS_TEXT.format("e.status"),
    "reason": "e.reason",
    "error": "e.error",
    "created_at": CHUNK_TIME.format("e.entry_id"),
    "value_hash": HASH_TEXT.format("v"),
}


def stored_run_rows(con: sqlite3.Connection) -> list[tuple]:
    """Every run as stored (columns ``RUN_COLUMNS``), newest first."""
    return con.execute(_SELECT_RUNS).fetchall()


def latest_run_id(con: sqlite3.Connection) -> str | None:
    """The newest run's id, or None."""
    row = con.execute(
        "SELECT run_id FROM runs ORDER BY started_at DESC, run_no DESC LIMIT 1"
    ).fetchone()
    return None if row is None else row[0]


def run_ids_with_prefix(con: sqlite3.Connection, prefix: str, limit: int) -> list[str]:
    """Up to ``limit`` run ids starting with ``prefix`` (a range on the run id index)."""
    return [
        r[0]
        for r in con.execute(
            "SELECT run_id FROM runs WHERE run_id >= ? AND run_id < ? ORDER BY run_id LIMIT ?",
            (prefix, prefix + "\U0010ffff", limit),
        )
    ]


def all_run_ids(con: sqlite3.Connection) -> list[str]:
    """Every run id, oldest first."""
    return [r[0] for r in con.execute(ALL_RUN_IDS)]


def step_meta_rows(con: sqlite3.Connection, run_id: str) -> list[tuple]:
    """A run's steps in pipeline order (columns :data:`STEP_META_COLUMNS`)."""
    return con.execute(
        f"SELECT {', '.join(STEP_META_COLUMNS)} FROM steps "
        f"WHERE run_no = {RUN_NO.format('?')} ORDER BY position",
        (run_id,),
    ).fetchall()


def step_name_rows(con: sqlite3.Connection, run_id: str) -> list[tuple[str, int, str]]:
    """``(run_id, position, name)`` of a run's steps in pipeline order (the shape
    :func:`lineage_kit.frames.step_names` reads; lighter than :func:`step_meta_rows`)."""
    return con.execute(
        f"SELECT run_id, position, name FROM steps WHERE run_no = {RUN_NO.format('?')} "
        "ORDER BY position",
        (run_id,),
    ).fetchall()


def chunk_count_rows(con: sqlite3.Connection, run_id: str) -> list[tuple[str, list[list[int]]]]:
    """``(written_at, [[position, ok, rejected, failed], ...])`` of each of a run's chunks.

    The counts are summed here, in Python, rather than in SQL: a run has a chunk per
    2,000 records, and ``json_each`` over each row's counts would be a table-valued
    loop inside the chunks loop.
    """
    return [
        (written_at, json.loads(counts))
        for written_at, counts in con.execute(
            f"SELECT written_at, counts FROM chunks WHERE run_no = {RUN_NO.format('?')}",
            (run_id,),
        )
    ]


def sum_counts(rows: list[tuple[str, list[list[int]]]]) -> dict[int, list[int]]:
    """Per position, ``[ok, rejected, failed]`` summed over :func:`chunk_count_rows`.

    Examples
    --------
    >>> sum_counts([("t0", [[0, 2, 1, 0]]), ("t1", [[0, 1, 0, 0], [1, 3, 0, 0]])])
    {0: [3, 1, 0], 1: [3, 0, 0]}
    """
    sums: dict[int, list[int]] = {}
    for _, counts in rows:
        for position, *c in counts:
            total = sums.setdefault(position, [0, 0, 0])
            for i in range(3):
                total[i] += c[i]
    return dict(sorted(sums.items()))


def step_status_counts(con: sqlite3.Connection, run_id: str) -> list[tuple[int, str, int]]:
    """``(position, status, count)`` for a run, summed from its chunks' counts (no scan
    of the entries)."""
    sums = sum_counts(chunk_count_rows(con, run_id))
    return [
        (position, status, n)
        for position, counts in sums.items()
        for status, n in zip(("ok", "rejected", "failed"), counts, strict=True)
        if n
    ]


def _scope(key: str | None, position: int | None) -> tuple[str, str, str]:
    """``(FROM ..., WHERE ..., time)`` of a selection of one run's entries ``e``.

    Named parameters ``:run``, ``:key``, ``:position``. A whole run (or one step of
    it) is read through its chunks, so the time is the chunk's; a key's entries
    through ``entries_key``, each time looked up in ``chunks_first``.
    """
    if key is None:
        where = f"ch.run_no = {RUN_NO.format(':run')}"
        if position is not None:
            where += " AND e.position = :position"
        return RUN_ENTRIES, where, "ch.written_at"
    where = f"e.record_key = :key AND e.run_no = {RUN_NO.format(':run')}"
    if position is not None:
        where += " AND e.position = :position"
    return "entries e", where, CHUNK_TIME.format("e.entry_id")


def _params(run_id: str, key: str | None, position: int | None) -> dict[str, Any]:
    return {"run": run_id, "key": key, "position": position}


# Entry columns for DataFrames and graphs. Each column comes back as ONE string (a
# comma list of integers, digits without a separator, or a JSON array of texts) from one
# aggregate pass, so no Python tuple is built per row; all aggregates of a statement
# step through the same rows in the same order, so the columns line up.

#: ``[entry_id, text]`` pairs of the entries whose column ``{0}`` is not NULL (few:
#: reasons and errors belong to rejected and failed entries).
_PAIRS = "json_group_array(json_array(e.entry_id, e.{0})) FILTER (WHERE e.{0} IS NOT NULL)"


def columns_select(
    key: str | None, position: int | None, time: str | None = None, *, dense: bool = False
) -> str:
    """The statement of :func:`entry_columns` for a selection (see :func:`_scope`).

    Positions and status codes are concatenated without a separator (single digits)
    when the run has at most ten steps (``:sep`` is ``''``, else ``','``). ``dense``: a whole run
    whose chunks' ranges hold every id, so neither entry ids nor stamps are read
    (they follow from the chunks rows).
    """
    source, where, stamp = _scope(key, position)
    ids, stamps = "group_concat(e.entry_id)", f"group_concat({time or stamp})"
    if dense:
        ids, stamps = "NULL", "NULL"
    return (
        f"SELECT count(*), {ids}, group_concat(e.position, :sep), "
        "json_group_array(e.record_key), group_concat(e.status, ''), "
        f"{_PAIRS.format('reason')}, {_PAIRS.format('error')}, {stamps}, "
        "group_concat(e.value_id), group_concat(ifnull(e.parent_id, 0)) "
        f"FROM {source} WHERE {where}"
    )


#: :func:`entry_columns` of an empty selection.
EMPTY_COLUMNS = (0, None, None, "[]", None, None, None, None, None, None)


def run_chunks(con: sqlite3.Connection, run_id: str) -> list[tuple[int, int, str]]:
    """``(first_entry, last_entry, written_at)`` of a run's chunks, in the order
    :data:`RUN_ENTRIES` reads them (the primary key's)."""
    return con.execute(
        "SELECT first_entry, last_entry, written_at FROM chunks "
        f"WHERE run_no = {RUN_NO.format('?')} ORDER BY chunk_no",
        (run_id,),
    ).fetchall()


def entry_columns(
    con: sqlite3.Connection,
    run_id: str,
    *,
    key: str | None = None,
    position: int | None = None,
) -> tuple:
    """A run's entries as aggregated columns.

    Returns ``(count, entry_ids, positions, keys, status_codes, reasons, errors,
    created_ats, value_ids, first_parents)``: integers as comma-separated text, or (positions of a
    run of at most ten steps, status codes) one digit each without a separator;
    ``None`` when empty. Keys as a JSON array; reasons and errors as JSON arrays of
    ``[entry_id, text]`` pairs of the entries that have one (None: no entry has).
    Stamps as a comma list (the writer's are fixed width and hold no comma, so
    splitting them needs no parser: :func:`created_at_json` reads them as JSON for
    a store where that does not hold). Status codes index ``ENTRY_STATUSES``. A
    whole run comes in chunk order (entry-id order for a run written by one
    process); a filtered selection in index order. The values' hashes are not
    joined in: :func:`hash_table` reads them once per value. ``first_parents`` is
    each entry's ``parent_id`` (0: none); :func:`edge_columns` with ``extra_only``
    has the further parents of merges.

    A whole run whose chunks' id ranges are full (the writer's) has its entry ids
    as an int64 array (the ranges) and its stamps as ``(codes, texts)``: one text
    per chunk, not one a row.
    """
    import numpy as np  # here, not at the top: `lineage-kit run` never reads a run

    params = _params(run_id, key, position)
    (steps,) = con.execute(
        f"SELECT count(*) FROM steps WHERE run_no = {RUN_NO.format('?')}", (run_id,)
    ).fetchone()
    params["sep"] = "" if steps <= 10 else ","
    chunks = run_chunks(con, run_id) if key is None and position is None else []
    spans = np.array([(first, last) for first, last, _ in chunks], dtype="int64").reshape(-1, 2)
    sizes = spans[:, 1] - spans[:, 0] + 1
    row = con.execute(columns_select(key, position, dense=bool(chunks)), params).fetchone()
    if not row[0]:
        return EMPTY_COLUMNS
    if chunks and row[0] != int(sizes.sum()):  # a chunk range with holes: read ids
        row = con.execute(columns_select(key, position), params).fetchone()
    elif chunks:
        ids = np.concatenate([np.arange(a, b + 1, dtype="int64") for a, b in spans.tolist()])
        codes = np.repeat(np.arange(len(chunks), dtype=np.intp), sizes)
        stamps = [written for _, _, written in chunks]
        row = (row[0], ids, *row[2:7], (codes, stamps), *row[8:])
    return row


#: A run's values ``v`` as rowid ranges of its chunks: the writer gives a value the id
#: of the first entry that holds it (in the same chunk), so the values a run's entries
#: point at are the ``vals`` rows inside its chunks' ranges, in ascending id per chunk.
RUN_VALUES = "chunks ch CROSS JOIN vals v ON v.value_id BETWEEN ch.first_entry AND ch.last_entry"

#: The aggregate of :func:`hash_table` over the ``vals`` rows ``v`` of a FROM clause.
_HASH_AGGREGATE = (
    "SELECT count(*), group_concat(v.value_id), count(v.hash), max(length(v.hash)), "
    "CAST(group_concat(v.hash, '') AS BLOB)"
)


def hashes_select(key: str | None, position: int | None) -> str:
    """The statement of :func:`hash_table` for a selection (see :func:`_scope`).

    A whole run, or one step of it, reads the run's values as ranges (a superset of a
    step's, still one primary-key range scan per chunk); a key's the values its
    entries point at, by primary key.
    """
    if key is None:
        return f"{_HASH_AGGREGATE} FROM {RUN_VALUES} WHERE ch.run_no = {RUN_NO.format(':run')}"
    source, where, _ = _scope(key, position)
    return (
        f"{_HASH_AGGREGATE} FROM vals v "
        f"WHERE v.value_id IN (SELECT e.value_id FROM {source} WHERE {where})"
    )


#: Bytes of a value hash as the writer stores it (``hashing.value_hash``'s digest).
HASH_BYTES = 16


def hash_table(
    con: sqlite3.Connection,
    run_id: str,
    *,
    key: str | None = None,
    position: int | None = None,
) -> tuple[str | None, bytes | list[str | None]]:
    """``(value_ids, hashes)`` of the values the selected entries point at (maybe more).

    ``value_ids`` is a comma list (None: no values); ``hashes`` the digests of those
    values in the same order, as one ``bytes`` of 16-byte digests when every value
    has one of 16 bytes (the writer's), else a list of lowercase hex texts (None
    where a value has no hash). Mapping an entry's ``value_id`` to its hash is the
    reader's (:func:`lineage_kit.frames.decode_entries`): no join per entry row.
    """
    params = _params(run_id, key, position)
    count, ids, hashed, longest, digests = con.execute(
        hashes_select(key, position), params
    ).fetchone()
    if not count:
        return None, b""
    if hashed == count and longest == HASH_BYTES and len(digests) == HASH_BYTES * count:
        return ids, digests
    source = hashes_select(key, position).split(" FROM ", 1)[1]
    (texts,) = con.execute(
        f"SELECT json_group_array({HASH_TEXT.format('v')}) FROM {source}", params
    ).fetchone()
    return ids, json.loads(texts)


def created_at_json(
    con: sqlite3.Connection,
    run_id: str,
    *,
    key: str | None = None,
    position: int | None = None,
) -> str:
    """The ``created_at`` of the selection of :func:`entry_columns` as a JSON array."""
    source, where, stamp = _scope(key, position)
    return con.execute(
        f"SELECT json_group_array({stamp}) FROM {source} WHERE {where}",
        _params(run_id, key, position),
    ).fetchone()[0]


def edge_columns(
    con: sqlite3.Connection,
    run_id: str,
    *,
    key: str | None = None,
    position: int | None = None,
    extra_only: bool = False,
) -> tuple[str | None, str | None]:
    """Parent links of the selected entries as ``(parent_ids, child_ids)`` comma lists
    (first parents from the entries, further ones from ``extra_parents``; only those
    with ``extra_only``: :func:`entry_columns` has the first ones)."""
    source, where, _ = _scope(key, position)
    if key is None and position is None and extra_only:  # no entry row needed
        extra_source = (
            "chunks ch CROSS JOIN extra_parents x "
            "ON x.child_id BETWEEN ch.first_entry AND ch.last_entry"
        )
    elif key is None:  # the run's extra links: a range of extra_parents per chunk
        extra_source = (
            "chunks ch CROSS JOIN extra_parents x "
            "ON x.child_id BETWEEN ch.first_entry AND ch.last_entry "
            "CROSS JOIN entries e ON e.entry_id = x.child_id"
        )
    else:
        extra_source = "entries e JOIN extra_parents x ON x.child_id = e.entry_id"
    params = _params(run_id, key, position)
    if extra_only:
        return con.execute(
            "SELECT group_concat(x.parent_id), group_concat(x.child_id) "
            f"FROM {extra_source} WHERE {where}",
            params,
        ).fetchone()
    return con.execute(
        f"""
        SELECT group_concat(parent_id), group_concat(child_id) FROM (
            SELECT e.parent_id AS parent_id, e.entry_id AS child_id FROM {source}
            WHERE {where} AND e.parent_id IS NOT NULL
            UNION ALL
            SELECT x.parent_id, x.child_id FROM {extra_source} WHERE {where}
        )
        """,
        params,
    ).fetchone()


# Everything connected to one key's entries in one run, as the CTE ``connected``: the
# entries themselves, all their ancestors (``up``) and all their descendants
# (``down``). Parent links never cross runs. Parameters: key, run id.
_CONNECTED_CTE = f"""
WITH RECURSIVE
    seed(entry_id) AS (
        SELECT entry_id FROM entries WHERE record_key = ? AND run_no = {RUN_NO.format("?")}
    ),
    up(entry_id) AS (
        SELECT entry_id FROM seed
        UNION
        SELECT p.parent_id FROM up JOIN entries p ON p.entry_id = up.entry_id
        WHERE p.parent_id IS NOT NULL
        UNION
        SELECT x.parent_id FROM up JOIN extra_parents x ON x.child_id = up.entry_id
    ),
    down(entry_id) AS (
        SELECT entry_id FROM seed
        UNION
        SELECT d.entry_id FROM down JOIN entries d ON d.parent_id = down.entry_id
        UNION
        SELECT x.child_id FROM down JOIN extra_parents x ON x.parent_id = down.entry_id
    ),
    connected(entry_id) AS (SELECT entry_id FROM up UNION SELECT entry_id FROM down)
"""

CONNECTED_ENTRIES = (
    _CONNECTED_CTE
    + """SELECT {columns}, v.json
FROM connected n
JOIN entries e ON e.entry_id = n.entry_id
JOIN runs r ON r.run_no = e.run_no
LEFT JOIN vals v ON v.value_id = e.value_id
ORDER BY e.entry_id
"""
)


def connected_entry_rows(con: sqlite3.Connection, run_id: str, key: str) -> list[tuple]:
    """Entries connected to ``key`` in the run (:data:`ENTRY_COLUMNS` + the value JSON)."""
    sql = CONNECTED_ENTRIES.format(columns=", ".join(ENTRY_EXPRESSIONS[c] for c in ENTRY_COLUMNS))
    return con.execute(sql, (key, run_id)).fetchall()


def links_among(con: sqlite3.Connection, entry_ids: list[int]) -> list[tuple[int, int]]:
    """``(parent_id, child_id)`` links whose both ends are in ``entry_ids``.

    Linear in the number of ids: the ids drive the loop (``CROSS JOIN`` fixes the
    order), each child's links come from its row and the ``extra_parents`` primary
    key, and the parent test is a lookup in the list subquery, built once (the ``+``
    keeps SQLite from using it as an index constraint, which would seek every id for
    every child: quadratic in a merge group).
    """
    return con.execute(LINKS_AMONG, (json.dumps(entry_ids),)).fetchall()


LINKS_AMONG = """
SELECT e.parent_id, e.entry_id
FROM json_each(?1) c CROSS JOIN entries e ON e.entry_id = c.value
WHERE +e.parent_id IN (SELECT value FROM json_each(?1))
UNION ALL
SELECT x.parent_id, x.child_id
FROM json_each(?1) c CROSS JOIN extra_parents x ON x.child_id = c.value
WHERE +x.parent_id IN (SELECT value FROM json_each(?1))
"""


# ------------------------------------------------------------------ walks
# Recursive CTEs over the parent links; tests assert the plans with EXPLAIN QUERY PLAN.

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
_ENTRY_DETAIL = (
    """
    r.run_id, e.position, s.name, s.kind, s.source, s.destination, s.description,
    e.record_key, {relation}, """
    + STATUS_TEXT.format("e.status")
    + ", e.reason, e.error, "
    + HASH_TEXT.format("v")
    + ", "
    + CHUNK_TIME.format("e.entry_id")
    + ", "
    + PARENT_LIST.format("e")
)
_DETAIL_JOINS = """
JOIN entries e ON e.entry_id = {alias}.entry_id
JOIN runs r ON r.run_no = e.run_no
JOIN steps s ON s.run_no = e.run_no AND s.position = e.position
LEFT JOIN vals v ON v.value_id = e.value_id
"""

TRACE = (
    _CONNECTED_CTE
    + """
SELECT e.entry_id, """
    + _ENTRY_DETAIL.format(
        relation="CASE WHEN e.record_key IS ? THEN 'self' "
        "WHEN e.entry_id IN (SELECT entry_id FROM up) THEN 'upstream' ELSE 'downstream' END"
    )
    + """
FROM connected c"""
    + _DETAIL_JOINS.format(alias="c")
    + """ORDER BY e.position, e.entry_id
"""
)


def trace_rows(con: sqlite3.Connection, run_id: str, key: str) -> list[tuple]:
    """The key's entries and everything up- and downstream of them in one run.

    Columns :data:`TRACE_COLUMNS`, ordered by step position then entry id;
    ``relation`` is ``self`` (the key's own entries), ``upstream`` or ``downstream``;
    ``parent_ids`` is a comma list (None for a first-step entry).
    """
    return con.execute(TRACE, (key, run_id, key)).fetchall()


# A walk with a depth limit: a row per (entry, depth), each entry's smallest depth
# kept by the tail's GROUP BY. It ends whatever the links (a cycle of a tampered store
# is gone round at most ``depth`` times).
_WALK_UP = """
WITH RECURSIVE walk(entry_id, depth) AS (
    SELECT ?2, 0
    UNION
    SELECT p.parent_id, w.depth + 1 FROM walk w JOIN entries p ON p.entry_id = w.entry_id
    WHERE p.parent_id IS NOT NULL AND w.depth < ?1
    UNION
    SELECT x.parent_id, w.depth + 1 FROM walk w JOIN extra_parents x ON x.child_id = w.entry_id
    WHERE w.depth < ?1
)
"""
_WALK_DOWN = """
WITH RECURSIVE walk(entry_id, depth) AS (
    SELECT ?2, 0
    UNION
    SELECT d.entry_id, w.depth + 1 FROM walk w JOIN entries d ON d.parent_id = w.entry_id
    WHERE w.depth < ?1
    UNION
    SELECT x.child_id, w.depth + 1 FROM walk w JOIN extra_parents x ON x.parent_id = w.entry_id
    WHERE w.depth < ?1
)
"""
# A walk to the end: rows per (entry, depth) would go round a stored cycle forever
# (or, bounded, once per depth: quadratic beside a wide merge), so the links among
# the entries reachable (``reach``, a row per entry: it always ends) are read and
# the depths found breadth-first in Python (:func:`nearest_depths`), then the
# entries read by those depths (``walk`` from a JSON list of [id, depth] pairs).
REACH_LINKS = {
    "up": """
WITH RECURSIVE reach(entry_id) AS (
    SELECT ?
    UNION
    SELECT p.parent_id FROM reach JOIN entries p ON p.entry_id = reach.entry_id
    WHERE p.parent_id IS NOT NULL
    UNION
    SELECT x.parent_id FROM reach JOIN extra_parents x ON x.child_id = reach.entry_id
)
SELECT reach.entry_id, p.parent_id FROM reach JOIN entries p ON p.entry_id = reach.entry_id
WHERE p.parent_id IS NOT NULL
UNION ALL
SELECT x.child_id, x.parent_id FROM reach JOIN extra_parents x ON x.child_id = reach.entry_id
""",
    "down": """
WITH RECURSIVE reach(entry_id) AS (
    SELECT ?
    UNION
    SELECT d.entry_id FROM reach JOIN entries d ON d.parent_id = reach.entry_id
    UNION
    SELECT x.child_id FROM reach JOIN extra_parents x ON x.parent_id = reach.entry_id
)
SELECT d.parent_id, d.entry_id FROM reach JOIN entries d ON d.parent_id = reach.entry_id
UNION ALL
SELECT x.parent_id, x.child_id FROM reach JOIN extra_parents x ON x.parent_id = reach.entry_id
""",
}
_WALKED = """
WITH walk(entry_id, depth) AS (
    SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?)
)
"""


def nearest_depths(start: int, links: Iterable[tuple[int, int]]) -> dict[int, int]:
    """Each entry's smallest number of ``(from, to)`` links from ``start``
    (breadth-first; ends on cycles).

    Examples
    --------
    >>> nearest_depths(3, [(3, 2), (2, 1), (1, 3), (3, 1)])
    {3: 0, 2: 1, 1: 1}
    """
    following: dict[int, list[int]] = {}
    for source, target in links:
        following.setdefault(source, []).append(target)
    depths = {start: 0}
    frontier = [start]
    depth = 0
    while frontier:
        depth += 1
        reached = []
        for entry in frontier:
            for target in following.get(entry, ()):
                if target not in depths:
                    depths[target] = depth
                    reached.append(target)
        frontier = reached
    return depths


_WALK_TAIL = (
    """
FROM walk w"""
    + _DETAIL_JOINS.format(alias="w")
    + """GROUP BY e.entry_id
ORDER BY min(w.depth), e.entry_id
"""
)
_UP_DETAIL = "SELECT e.entry_id, min(w.depth), " + _ENTRY_DETAIL.format(relation="'upstream'")
_DOWN_DETAIL = "SELECT e.entry_id, min(w.depth), " + _ENTRY_DETAIL.format(relation="'downstream'")
UPSTREAM = _WALK_UP + _UP_DETAIL + _WALK_TAIL
DOWNSTREAM = _WALK_DOWN + _DOWN_DETAIL + _WALK_TAIL
WALKED = {"up": _WALKED + _UP_DETAIL + _WALK_TAIL, "down": _WALKED + _DOWN_DETAIL + _WALK_TAIL}


def walk_rows(
    con: sqlite3.Connection, entry_id: int, depth: int | None, direction: str
) -> list[tuple]:
    """Everything ``entry_id`` came from (``"up"``) or led to (``"down"``).

    Rows are ``(entry_id, depth, *TRACE_COLUMNS[1:])``; the entry itself is depth 0,
    an entry reached along several paths appears once at its smallest depth.
    ``depth=None`` walks to the end (also round a cycle of a tampered store: each
    of its entries once).
    """
    if depth is not None:
        sql = {"up": UPSTREAM, "down": DOWNSTREAM}[direction]
        return con.execute(sql, (depth, entry_id)).fetchall()  # ?1 depth limit, ?2 the entry
    links = con.execute(REACH_LINKS[direction], (entry_id,)).fetchall()
    depths = nearest_depths(entry_id, links)
    return con.execute(WALKED[direction], (json.dumps(list(depths.items())),)).fetchall()


def entry_exists(con: sqlite3.Connection, entry_id: int) -> bool:
    """Whether a lineage entry with this id exists."""
    return (
        con.execute("SELECT 1 FROM entries WHERE entry_id = ?", (entry_id,)).fetchone() is not None
    )


SOURCES = f"""
WITH RECURSIVE walk(entry_id) AS (
    SELECT value FROM json_each(?)
    UNION
    SELECT p.parent_id FROM walk w JOIN entries p ON p.entry_id = w.entry_id
    WHERE p.parent_id IS NOT NULL
    UNION
    SELECT x.parent_id FROM walk w JOIN extra_parents x ON x.child_id = w.entry_id
)
SELECT e.entry_id, r.run_id, e.record_key, {STATUS_TEXT.format("e.status")}, e.reason,
       {CHUNK_TIME.format("e.entry_id")}, {HASH_TEXT.format("v")}, v.json
FROM walk w
JOIN entries e ON e.entry_id = w.entry_id
JOIN runs r ON r.run_no = e.run_no
JOIN vals v ON v.value_id = e.value_id
WHERE e.parent_id IS NULL
  AND NOT EXISTS (SELECT 1 FROM extra_parents x WHERE x.child_id = w.entry_id)
ORDER BY e.entry_id
"""


def source_rows(con: sqlite3.Connection, entry_ids: list[int]) -> list[tuple]:
    """The first-step ancestors (no parents) of the given entries, with their values."""
    return con.execute(SOURCES, (json.dumps(entry_ids),)).fetchall()


def last_entries_of_key(con: sqlite3.Connection, run_id: str, key: str) -> list[int]:
    """The key's entries at its furthest step in the run (usually one)."""
    return [
        r[0]
        for r in con.execute(
            f"""
            SELECT entry_id FROM entries
            WHERE record_key = ?1 AND run_no = {RUN_NO.format("?2")} AND position = (
                SELECT max(position) FROM entries
                WHERE record_key = ?1 AND run_no = {RUN_NO.format("?2")})
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
    "SELECT e.entry_id, v.json FROM json_each(?) j CROSS JOIN entries e ON e.entry_id = j.value "
    "JOIN vals v ON v.value_id = e.value_id"
)


def value_columns(
    con: sqlite3.Connection,
    run_id: str,
    *,
    key: str | None = None,
    position: int | None = None,
) -> tuple[str | None, str | None]:
    """The selected entries' ids (comma list) and values (one JSON array text)."""
    source, where, _ = _scope(key, position)
    return con.execute(
        "SELECT group_concat(e.entry_id), '[' || group_concat(v.json) || ']' "
        f"FROM {source} JOIN vals v ON v.value_id = e.value_id WHERE {where}",
        _params(run_id, key, position),
    ).fetchone()


# -------------------------------------------------------------------- timeline


def chunk_moments(con: sqlite3.Connection, run_id: str) -> list[tuple]:
    """When each chunk was written, per step: ``(position, created_at, entries)`` rows.

    From the run's chunks rows alone (their time and per-step counts), no entry read.
    """
    moments: dict[tuple[int, str], int] = {}
    for written_at, counts in chunk_count_rows(con, run_id):
        for position, ok, rejected, failed in counts:
            at = (position, written_at)
            moments[at] = moments.get(at, 0) + ok + rejected + failed
    return [(p, t, n) for (p, t), n in sorted(moments.items())]


#: The counts of the chunks of some runs, and each run's last step position.
LIVE_COUNTS = """
SELECT r.run_id, ch.counts, (SELECT max(s.position) FROM steps s WHERE s.run_no = r.run_no)
FROM json_each(?1) j
JOIN runs r ON r.run_id = j.value
JOIN chunks ch ON ch.run_no = r.run_no
"""


def live_counts(con: sqlite3.Connection, run_ids: list[str]) -> dict[str, tuple[int, ...]]:
    """``(n_input, n_published, n_rejected, n_failed)`` of runs, summed from their chunks.

    For runs that never finished (their stored counts are written at the end):
    ``n_input`` is the entries at position 0, ``n_rejected``/``n_failed`` the entries
    with that status, ``n_published`` the ``ok`` entries at the run's last step.
    A run without chunks is absent from the result.
    """
    out: dict[str, list[int]] = {}
    for run_id, counts, last in con.execute(LIVE_COUNTS, (json.dumps(run_ids),)):
        total = out.setdefault(run_id, [0, 0, 0, 0])
        for position, ok, rejected, failed in json.loads(counts):
            if position == 0:
                total[0] += ok + rejected + failed
            if position == last:
                total[1] += ok
            total[2] += rejected
            total[3] += failed
    return {run_id: tuple(total) for run_id, total in out.items()}


# ------------------------------------------------------------------- exports


def outcome_reason_counts(con: sqlite3.Connection, run_id: str) -> list[tuple[int, str, str, int]]:
    """``(position, status, reason, count)`` of a run's rejected and failed entries.

    ``reason`` is None for failed entries (their error is in ``error``). One grouped
    pass over the partial ``entries_outcome`` index (non-``ok`` entries only).
    """
    return con.execute(
        f"""
        SELECT position, {STATUS_TEXT.format("status")} AS status_text, reason, count(*)
        FROM entries
        WHERE run_no = {RUN_NO.format("?")} AND status <> 0
        GROUP BY position, status, reason
        ORDER BY position, status_text, reason
        """,
        (run_id,),
    ).fetchall()


def step_value_sample(
    con: sqlite3.Connection, run_id: str, position: int, limit: int
) -> list[tuple[int, str, str | None]]:
    """Up to ``limit`` ``ok`` entries of one step with their parents' values.

    Rows are ``(entry_id, value JSON, parent value JSON or None)``, one per parent
    link (a merged entry has several rows, a first-step entry one row with None),
    the entries in id order: the first ones met in the run's chunks, which stops
    reading after ``limit``; primary keys for parents and values.
    """
    return con.execute(
        f"""
        WITH picked AS MATERIALIZED (
            SELECT e.entry_id, e.parent_id, e.value_id FROM {RUN_ENTRIES}
            WHERE ch.run_no = {RUN_NO.format("?1")} AND e.position = ?2 AND e.status = 0
            LIMIT ?3
        ),
        links(child_id, parent_id) AS (
            SELECT entry_id, parent_id FROM picked
            UNION ALL
            SELECT x.child_id, x.parent_id FROM picked p
            JOIN extra_parents x ON x.child_id = p.entry_id
        )
        SELECT c.entry_id, cv.json, pv.json
        FROM links l
        JOIN picked c ON c.entry_id = l.child_id
        JOIN vals cv ON cv.value_id = c.value_id
        LEFT JOIN entries pe ON pe.entry_id = l.parent_id
        LEFT JOIN vals pv ON pv.value_id = pe.value_id
        ORDER BY c.entry_id, l.parent_id
        """,
        (run_id, position, limit),
    ).fetchall()
