"""Read queries over a PostgreSQL store, returning the SQLite backend's tuples.

Every statement is parameterised. A run's entries are read through its chunks'
id ranges (``chunks`` primary key, then ``entries`` primary-key range scans), a
key's through ``entries_key``; the walks follow ``entries`` primary key and
``extra_parents`` upwards, ``entries_parent`` and ``extra_parents_parent``
downwards (``EXPLAIN (FORMAT JSON)`` tests assert it). Texts escaped by
:mod:`.text` are decoded here, run numbers turned back into run ids, status codes
into texts, ``timestamptz`` into the ISO text SQLite holds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ...model import EntryStatus
from ..queries import ENTRY_COLUMNS, RUN_COLUMNS, STEP_META_COLUMNS, nearest_depths
from .schema import ISO, STATUS_TEXT
from .text import decode, decode_json_text, encode

if TYPE_CHECKING:  # numpy is imported where a run is read: a writer never loads it
    import numpy as np

_STATUS = STATUS_TEXT.format("{}")

#: The entries of one run (``%(run)s``: its run_no), through its chunks' id ranges.
RUN_ENTRIES = (
    "chunks ck JOIN entries l ON l.entry_id BETWEEN ck.first_entry AND ck.last_entry "
    "AND l.run_no = ck.run_no"
)


#: The parents / children of the entry ``{x}`` as a LATERAL subquery (a join with the
#: ``parents`` view would let the planner hash the whole view; each branch here is an
#: index scan per entry: the entry's own row or ``entries_parent``, and
#: ``extra_parents``' primary key or ``extra_parents_parent``).
PARENTS_OF = (
    "LATERAL (SELECT e.parent_id FROM entries e WHERE e.entry_id = {x} "
    "AND e.parent_id IS NOT NULL UNION ALL "
    "SELECT x.parent_id FROM extra_parents x WHERE x.child_id = {x})"
)
CHILDREN_OF = (
    "LATERAL (SELECT e.entry_id FROM entries e WHERE e.parent_id = {x} UNION ALL "
    "SELECT x.child_id FROM extra_parents x WHERE x.parent_id = {x})"
)
#: An entry ``l``'s parent ids as a comma list in id order (its row holds the smallest).
PARENT_IDS = (
    "CASE WHEN l.parent_id IS NOT NULL THEN concat_ws(',', l.parent_id, "
    "(SELECT string_agg(x.parent_id::text, ',' ORDER BY x.parent_id) FROM extra_parents x "
    "WHERE x.child_id = l.entry_id)) END"
)


#: The entry ``{x}`` with its value's hash and text, as ``l``: a LATERAL subquery
#: behind ``OFFSET 0`` (not flattened), so the few entries a walk found are fetched
#: by primary key whatever the planner guessed of the walk's size.
ENTRY_AT = (
    "LATERAL (SELECT l0.*, v0.hash, v0.json FROM entries l0 "
    "LEFT JOIN vals v0 ON v0.value_id = l0.value_id WHERE l0.entry_id = {x} OFFSET 0) l"
)


#: A run's entries in entry-id order (``%(run)s``: its run_no): its chunks by first
#: id, each chunk's range by primary key (a nested loop whatever the estimates), so
#: aggregates see the rows in id order and nothing is sorted afterwards.
RUN_IN_ORDER = (
    "(SELECT first_entry, last_entry, run_no, written_at FROM chunks WHERE run_no = %(run)s "
    "ORDER BY first_entry OFFSET 0) ck CROSS JOIN LATERAL (SELECT * FROM entries e "
    "WHERE e.entry_id BETWEEN ck.first_entry AND ck.last_entry AND e.run_no = ck.run_no "
    "ORDER BY e.entry_id OFFSET 0) l"
)


def _selection(key: str | None, position: int | None) -> tuple[str, str]:
    """``(FROM clause, WHERE clause)`` of an entry selection of one run."""
    if key is not None:
        where = "l.record_key = %(key)s AND l.run_no = %(run)s"
        if position is not None:
            where += " AND l.position = %(position)s"
        return "entries l", where
    where = "true" if position is None else "l.position = %(position)s"
    return RUN_IN_ORDER, where


def _params(run_no: int, key: str | None, position: int | None) -> dict[str, Any]:
    return {"run": run_no, "key": encode(key), "position": position}


def _decode_row(row: Sequence[Any], columns: Sequence[int]) -> tuple:
    out = list(row)
    for i in columns:
        out[i] = decode(out[i])
    return tuple(out)


# ------------------------------------------------------------------------ runs

_RUN_SELECT = ", ".join(
    ISO.format(c) if c in ("started_at", "finished_at") else c for c in RUN_COLUMNS
)
_RUN_TEXTS = [RUN_COLUMNS.index(c) for c in ("pipeline", "input_path", "parameters", "error")]


def stored_run_rows(con: Any) -> list[tuple]:
    rows = con.execute(
        f"SELECT {_RUN_SELECT} FROM runs ORDER BY started_at DESC, run_no DESC"
    ).fetchall()
    return [_decode_row(r, _RUN_TEXTS) for r in rows]


def latest_run_id(con: Any) -> str | None:
    row = con.execute(
        "SELECT run_id FROM runs ORDER BY started_at DESC, run_no DESC LIMIT 1"
    ).fetchone()
    return None if row is None else row[0]


def run_ids_with_prefix(con: Any, prefix: str, limit: int) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "SELECT run_id FROM runs WHERE starts_with(run_id, %s) ORDER BY run_id LIMIT %s",
            (prefix, limit),
        )
    ]


def all_run_ids(con: Any) -> list[str]:
    return [r[0] for r in con.execute("SELECT run_id FROM runs ORDER BY started_at, run_no")]


def run_numbers(con: Any, run_ids: Sequence[str]) -> dict[str, int]:
    """run id -> run_no of the runs that exist."""
    return dict(
        con.execute(
            "SELECT run_id, run_no FROM runs WHERE run_id = ANY(%s)", (list(run_ids),)
        ).fetchall()
    )


def chunk_sums(con: Any, run_nos: Sequence[int]) -> dict[int, tuple[dict[int, list[int]], int]]:
    """Per run_no: per position ``[ok, rejected, failed]`` summed over its chunks, and
    the number of chunks."""
    out: dict[int, tuple[dict[int, list[int]], int]] = {}
    rows = con.execute("SELECT run_no, counts FROM chunks WHERE run_no = ANY(%s)", (list(run_nos),))
    for run_no, text in rows:
        sums, n = out.get(run_no, ({}, 0))
        for position, *c in json.loads(text):
            total = sums.setdefault(position, [0, 0, 0])
            for i in range(3):
                total[i] += c[i]
        out[run_no] = (sums, n + 1)
    return out


def live_counts(con: Any, run_ids: Sequence[str]) -> dict[str, tuple[int, int, int, int]]:
    """Counts of unfinished runs from their chunks' claim rows (written with the
    entries, in the same transaction)."""
    numbers = run_numbers(con, run_ids)
    sums = chunk_sums(con, list(numbers.values()))
    last = dict(
        con.execute(
            "SELECT run_no, max(position) FROM steps WHERE run_no = ANY(%s) GROUP BY run_no",
            (list(numbers.values()),),
        ).fetchall()
    )
    out = {}
    for run_id, run_no in numbers.items():
        if run_no not in sums:
            continue
        counts = sums[run_no][0]
        published = counts.get(last.get(run_no, -1), [0, 0, 0])[0]
        out[run_id] = (
            sum(counts.get(0, [0, 0, 0])),
            published,
            sum(c[1] for c in counts.values()),
            sum(c[2] for c in counts.values()),
        )
    return out


# ----------------------------------------------------------------------- steps

_STEP_SELECT = ", ".join(
    "r.run_id"
    if c == "run_id"
    else ISO.format(f"s.{c}")
    if c in ("started_at", "finished_at")
    else f"s.{c}"
    for c in STEP_META_COLUMNS
)
_STEP_TEXTS = [STEP_META_COLUMNS.index(c) for c in ("name", "source", "destination", "description")]


def step_meta_rows(con: Any, run_no: int) -> list[tuple]:
    rows = con.execute(
        f"SELECT {_STEP_SELECT} FROM steps s JOIN runs r ON r.run_no = s.run_no "
        "WHERE s.run_no = %s ORDER BY s.position",
        (run_no,),
    ).fetchall()
    return [_decode_row(r, _STEP_TEXTS) for r in rows]


def step_name_rows(con: Any, run_no: int) -> list[tuple[str, int, str]]:
    rows = con.execute(
        "SELECT r.run_id, s.position, s.name FROM steps s JOIN runs r ON r.run_no = s.run_no "
        "WHERE s.run_no = %s ORDER BY s.position",
        (run_no,),
    ).fetchall()
    return [_decode_row(r, [2]) for r in rows]


_STATUS_TEXTS = [s.value for s in EntryStatus]


def step_status_counts(con: Any, run_no: int) -> list[tuple[int, str, int]]:
    """``(position, status, count)`` from the chunks' claim rows."""
    sums = chunk_sums(con, [run_no]).get(run_no, ({}, 0))[0]
    rows = [
        (position, _STATUS_TEXTS[i], n)
        for position, counts in sums.items()
        for i, n in enumerate(counts)
        if n
    ]
    return sorted(rows)


# --------------------------------------------------------------------- entries


def count_entries(con: Any, run_no: int) -> int:
    return con.execute(
        "SELECT coalesce(sum(n_entries), 0) FROM chunks WHERE run_no = %s", (run_no,)
    ).fetchone()[0]


#: ``[entry_id, text]`` pairs of the entries whose column ``{0}`` is not NULL.
_PAIRS = "json_agg(json_build_array(l.entry_id, l.{0})) FILTER (WHERE l.{0} IS NOT NULL)"

#: ``timestamptz_send``'s integer: microseconds since 2000-01-01 UTC.
_PG_EPOCH_MICROS = 946_684_800_000_000


def _columns_select(source: str, where: str, dense: bool) -> str:
    """The aggregate of :func:`entry_columns`. ``dense``: a whole run, without entry
    ids (the chunks' ranges give them when the count matches)."""
    ids = "NULL" if dense else "string_agg(int8send(l.entry_id), ''::bytea)"
    stamps = "string_agg(timestamptz_send(l.created_at), ''::bytea)"
    return (
        f"SELECT count(*), {ids}, string_agg(l.position::text, %(sep)s), "
        "coalesce(json_agg(l.record_key)::text, '[]'), string_agg(l.status::text, ''), "
        f"{_PAIRS.format('reason')}, {_PAIRS.format('error')}, {stamps}, "
        "string_agg(int8send(l.value_id), ''::bytea), "
        "string_agg(int8send(coalesce(l.parent_id, 0)), ''::bytea) "
        f"FROM {source} WHERE {where}"
    )


def entry_columns(con: Any, run_no: int, key: str | None, position: int | None) -> tuple:
    """The aggregated columns of ``queries.entry_columns`` (SQLite), in one pass.

    Entry ids come as 8-byte integers (``int8send``) and stamps as
    ``timestamptz_send``'s microseconds, both decoded with numpy (text formatting
    per row is most of such a statement); stamps are returned as ``(codes,
    texts)``, each distinct one formatted once. A whole run whose chunks' ranges
    are full reads no entry id: the ranges are the ids. Reasons and errors, mostly NULL, come as
    ``[entry_id, text]`` pairs of the rows that have one; value ids and first
    parents (0: none) as 8-byte integers too (:func:`hash_table` has the values'
    hashes).
    """
    source, where = _selection(key, position)
    params = _params(run_no, key, position)
    (steps,) = con.execute("SELECT count(*) FROM steps WHERE run_no = %s", (run_no,)).fetchone()
    params["sep"] = "" if steps <= 10 else ","
    chunks = []
    if key is None and position is None:
        chunks = con.execute(
            "SELECT first_entry, last_entry FROM chunks WHERE run_no = %s ORDER BY first_entry",
            (run_no,),
        ).fetchall()
    row = con.execute(_columns_select(source, where, bool(chunks)), params).fetchone()
    if not row[0]:
        return (0, None, None, "[]", None, None, None, None, None, None)
    count = row[0]
    spans = [(first, last) for first, last in chunks]
    if chunks and count != sum(b - a + 1 for a, b in spans):
        chunks = []  # a range with holes: read the ids
        row = con.execute(_columns_select(source, where, False), params).fetchone()
    if chunks:
        import numpy as np

        ids = np.concatenate([np.arange(a, b + 1, dtype="int64") for a, b in spans])
    else:
        ids = _int8s(row[1])
    created = stamp_codes(bytes(row[7]))
    _, _, positions, keys, codes_, reasons, errors, _, value_ids, parents = row
    return (
        count,
        ids,
        positions,
        decode_json_text(keys),
        codes_,
        _decoded_pairs(reasons),
        _decoded_pairs(errors),
        created,
        _int8s(value_ids),
        _int8s(parents),
    )


def _int8s(sent: bytes | None) -> np.ndarray:
    """``int8send`` values concatenated (``string_agg(int8send(x), ''::bytea)``)."""
    import numpy as np

    return np.frombuffer(bytes(sent or b""), dtype=">i8").astype("int64")


def _decoded_pairs(pairs: Any) -> list | None:
    """``[entry_id, text]`` pairs (json_agg's, parsed or not) with the texts decoded."""
    if pairs is None:
        return None
    if isinstance(pairs, str):
        pairs = json.loads(pairs)
    return [[entry_id, decode(text)] for entry_id, text in pairs]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def stamp_codes(sent: bytes | None) -> tuple[np.ndarray, list[str]]:
    """``(codes, texts)`` of ``timestamptz_send`` values concatenated (8 bytes each,
    microseconds since 2000-01-01): row ``i``'s ISO text (what the SQLite store
    holds) is ``texts[codes[i]]``, each distinct stamp formatted once.

    Examples
    --------
    >>> one = (1_000_000).to_bytes(8, "big")
    >>> codes, texts = stamp_codes(bytes(8) + bytes(8) + one)
    >>> codes.tolist(), texts[1]
    ([0, 0, 1], '2000-01-01T00:00:01.000000+00:00')
    """
    import numpy as np

    if not sent:
        return np.zeros(0, dtype=np.intp), []
    values = np.frombuffer(sent, dtype=">i8").astype("int64") + _PG_EPOCH_MICROS
    uniques, inverse = np.unique(values, return_inverse=True)
    texts = [
        (_EPOCH + timedelta(microseconds=int(u))).isoformat(timespec="microseconds")
        for u in uniques.tolist()
    ]
    return inverse.astype(np.intp), texts


#: Bytes of a value hash as the writer stores it.
HASH_BYTES = 16


def hashes_select(key: str | None, position: int | None) -> str:
    """The statement of :func:`hash_table`: a whole run's (or step's) values as a
    range of ``vals`` per chunk; a key's, the values its entries point at."""
    if key is None:
        source = (
            "chunks ck JOIN vals v ON v.value_id BETWEEN ck.first_entry AND ck.last_entry "
            "WHERE ck.run_no = %(run)s"
        )
    else:
        sel, where = _selection(key, position)
        source = f"vals v WHERE v.value_id IN (SELECT l.value_id FROM {sel} WHERE {where})"
    return (
        "SELECT count(*), string_agg(int8send(v.value_id), ''::bytea), count(v.hash), "
        f"max(length(v.hash)), string_agg(v.hash, ''::bytea) FROM {source}"
    )


def hash_table(
    con: Any, run_no: int, key: str | None, position: int | None
) -> tuple[np.ndarray | None, bytes | list[str | None]]:
    """``queries.hash_table`` (SQLite): the ids and hashes of the values the selected
    entries point at (:func:`hashes_select`); the ids as an array (sent as 8-byte
    integers)."""
    params = _params(run_no, key, position)
    sql = hashes_select(key, position)
    count, ids, hashed, longest, digests = con.execute(sql, params).fetchone()
    if not count:
        return None, b""
    ids = _int8s(ids)
    digests = bytes(digests or b"")
    if hashed == count and longest == HASH_BYTES and len(digests) == HASH_BYTES * count:
        return ids, digests
    source = sql.split(" FROM ", 1)[1]
    (texts,) = con.execute(
        f"SELECT coalesce(json_agg(encode(v.hash, 'hex'))::text, '[]') FROM {source}", params
    ).fetchone()
    return ids, json.loads(texts)


def created_at_json(con: Any, run_no: int, key: str | None, position: int | None) -> str:
    source, where = _selection(key, position)
    return con.execute(
        f"SELECT coalesce(json_agg({ISO.format('l.created_at')})::text, '[]') "
        f"FROM {source} WHERE {where}",
        _params(run_no, key, position),
    ).fetchone()[0]


def edge_columns(
    con: Any, run_no: int, key: str | None, position: int | None, extra_only: bool = False
) -> tuple[str | None, str | None]:
    source, where = _selection(key, position)
    first = (
        ""
        if extra_only
        else f"SELECT l.parent_id, l.entry_id AS child_id FROM {source} "
        f"WHERE {where} AND l.parent_id IS NOT NULL UNION ALL "
    )
    return con.execute(
        "SELECT string_agg(parent_id::text, ','), string_agg(child_id::text, ',') FROM ("
        f"{first}SELECT p.parent_id, p.child_id FROM {source} "
        f"JOIN extra_parents p ON p.child_id = l.entry_id WHERE {where}) x",
        _params(run_no, key, position),
    ).fetchone()


def value_columns(
    con: Any, run_no: int, key: str | None, position: int | None
) -> tuple[str | None, str | None]:
    source, where = _selection(key, position)
    return con.execute(
        "SELECT string_agg(l.entry_id::text, ','), '[' || string_agg(v.json::text, ',') || ']' "
        f"FROM {source} JOIN vals v ON v.value_id = l.value_id WHERE {where}",
        _params(run_no, key, position),
    ).fetchone()


# ----------------------------------------------------------------------- walks

# Everything connected to one key's entries in one run: the entries, their
# ancestors (up) and descendants (down). Parameters: key, run.
CONNECTED_CTE = """
WITH RECURSIVE
    seed(entry_id) AS (
        SELECT entry_id FROM entries WHERE record_key = %(key)s AND run_no = %(run)s
    ),
    up(entry_id) AS (
        SELECT entry_id FROM seed
        UNION
        SELECT p.id FROM up CROSS JOIN {parents} p(id)
    ),
    down(entry_id) AS (
        SELECT entry_id FROM seed
        UNION
        SELECT c.id FROM down CROSS JOIN {children} c(id)
    ),
    connected(entry_id) AS (SELECT entry_id FROM up UNION SELECT entry_id FROM down)
""".format(
    parents=PARENTS_OF.format(x="up.entry_id"), children=CHILDREN_OF.format(x="down.entry_id")
)

_ENTRY_SELECT = {
    "entry_id": "l.entry_id",
    "run_id": "r.run_id",
    "position": "l.position",
    "record_key": "l.record_key",
    "status": _STATUS.format("l.status"),
    "reason": "l.reason",
    "error": "l.error",
    "created_at": ISO.format("l.created_at"),
    "value_hash": "encode(l.hash, 'hex')",
}
_ENTRY_TEXTS = [ENTRY_COLUMNS.index(c) for c in ("record_key", "reason", "error")]


def connected_entry_rows(con: Any, run_no: int, key: str) -> list[tuple]:
    columns = ", ".join(_ENTRY_SELECT[c] for c in ENTRY_COLUMNS)
    rows = con.execute(
        CONNECTED_CTE
        + f"""SELECT {columns}, l.json::text
FROM connected n CROSS JOIN {ENTRY_AT.format(x="n.entry_id")}
JOIN runs r ON r.run_no = l.run_no
ORDER BY l.entry_id""",
        {"key": encode(key), "run": run_no},
    ).fetchall()
    return [_decode_row(r, _ENTRY_TEXTS) for r in rows]


def links_among(con: Any, entry_ids: Sequence[int]) -> list[tuple[int, int]]:
    ids = list(entry_ids)
    return con.execute(
        "SELECT p.id, c.id FROM unnest(%(ids)s::bigint[]) c(id) "
        f"CROSS JOIN {PARENTS_OF.format(x='c.id')} p(id) "
        "WHERE p.id IN (SELECT unnest(%(ids)s::bigint[]))",
        {"ids": ids},
    ).fetchall()


# (entry_id, [depth,] run_id, position, step, kind, source, destination, description,
#  record_key, relation, status, reason, error, value_hash, created_at, parent_ids)
_DETAIL = f"""
    r.run_id, l.position, s.name, s.kind, s.source, s.destination, s.description,
    l.record_key, {{relation}}, {_STATUS.format("l.status")}, l.reason, l.error,
    encode(l.hash, 'hex'), {ISO.format("l.created_at")},
    {PARENT_IDS}
"""
_DETAIL_JOINS = """
JOIN runs r ON r.run_no = l.run_no
JOIN steps s ON s.run_no = l.run_no AND s.position = l.position
"""
# positions of step and entry texts in a trace row (after entry_id)
_TRACE_TEXTS = [3, 5, 6, 7, 8, 11, 12]

TRACE = (
    CONNECTED_CTE
    + "SELECT l.entry_id, "
    + _DETAIL.format(
        relation="CASE WHEN l.record_key IS NOT DISTINCT FROM %(key)s THEN 'self' "
        "WHEN l.entry_id IN (SELECT entry_id FROM up) THEN 'upstream' ELSE 'downstream' END"
    )
    + f"FROM connected c CROSS JOIN {ENTRY_AT.format(x='c.entry_id')}"
    + _DETAIL_JOINS
    + "ORDER BY l.position, l.entry_id"
)


def trace_rows(con: Any, run_no: int, key: str) -> list[tuple]:
    rows = con.execute(TRACE, {"key": encode(key), "run": run_no}).fetchall()
    return [_decode_row(r, _TRACE_TEXTS) for r in rows]


# A walk with a depth limit: a row per (entry, depth), each entry's smallest depth
# kept (``nearest``). With none, the links among the entries reachable are read and
# the depths found breadth-first, as on SQLite (lineage_kit/store/queries.py: rows
# per (entry, depth) would go round a stored cycle forever).
_WALK = """
WITH RECURSIVE walk(entry_id, depth) AS (
    SELECT %(entry)s::bigint, 0
    UNION
    SELECT n.id, w.depth + 1 FROM walk w CROSS JOIN {step} n(id)
    WHERE w.depth < %(depth)s::integer
),
nearest AS (SELECT entry_id, min(depth) AS depth FROM walk GROUP BY entry_id)
SELECT l.entry_id, w.depth, """
_REACH = """
WITH RECURSIVE reach(entry_id) AS (
    SELECT %(entry)s::bigint
    UNION
    SELECT n.id FROM reach w CROSS JOIN {step} n(id)
)
"""


def _reach_links(step: str) -> str:
    """The ``(from, to)`` links of every entry reachable along ``step``."""
    return (
        _REACH.replace("{step}", step)
        + f"SELECT w.entry_id, n.id FROM reach w CROSS JOIN {step} n(id)"
    )


REACH_LINKS = {
    "up": _reach_links(PARENTS_OF.format(x="w.entry_id")),
    "down": _reach_links(CHILDREN_OF.format(x="w.entry_id")),
}
_WALKED = """
WITH nearest(entry_id, depth) AS (
    SELECT * FROM unnest(%(ids)s::bigint[], %(depths)s::integer[])
)
SELECT l.entry_id, w.depth, """

_WALK_TAIL = (
    f"FROM nearest w CROSS JOIN {ENTRY_AT.format(x='w.entry_id')}"
    + _DETAIL_JOINS
    + ("ORDER BY w.depth, l.entry_id")
)
_UP_DETAIL = _DETAIL.format(relation="'upstream'") + _WALK_TAIL
_DOWN_DETAIL = _DETAIL.format(relation="'downstream'") + _WALK_TAIL
UPSTREAM = _WALK.replace("{step}", PARENTS_OF.format(x="w.entry_id")) + _UP_DETAIL
DOWNSTREAM = _WALK.replace("{step}", CHILDREN_OF.format(x="w.entry_id")) + _DOWN_DETAIL
WALKED = {"up": _WALKED + _UP_DETAIL, "down": _WALKED + _DOWN_DETAIL}


def walk_rows(con: Any, entry_id: int, depth: int | None, direction: str) -> list[tuple]:
    if depth is not None:
        sql = {"up": UPSTREAM, "down": DOWNSTREAM}[direction]
        rows = con.execute(sql, {"entry": entry_id, "depth": depth}).fetchall()
    else:
        links = con.execute(REACH_LINKS[direction], {"entry": entry_id}).fetchall()
        depths = nearest_depths(entry_id, links)
        params = {"ids": list(depths), "depths": list(depths.values())}
        rows = con.execute(WALKED[direction], params).fetchall()
    return [_decode_row(r, [i + 1 for i in _TRACE_TEXTS]) for r in rows]


def entry_exists(con: Any, entry_id: int) -> bool:
    return (
        con.execute("SELECT 1 FROM entries WHERE entry_id = %s", (entry_id,)).fetchone() is not None
    )


SOURCES = f"""
WITH RECURSIVE walk(entry_id) AS (
    SELECT unnest(%(ids)s::bigint[])
    UNION
    SELECT p.id FROM walk w CROSS JOIN {PARENTS_OF.format(x="w.entry_id")} p(id)
)
SELECT l.entry_id, r.run_id, l.record_key, {_STATUS.format("l.status")}, l.reason,
       {ISO.format("l.created_at")}, encode(l.hash, 'hex'), l.json::text
FROM walk w CROSS JOIN {ENTRY_AT.format(x="w.entry_id")}
JOIN runs r ON r.run_no = l.run_no
WHERE l.parent_id IS NULL AND l.json IS NOT NULL
ORDER BY l.entry_id
"""


def source_rows(con: Any, entry_ids: Sequence[int]) -> list[tuple]:
    rows = con.execute(SOURCES, {"ids": list(entry_ids)}).fetchall()
    return [_decode_row(r, [2, 4]) for r in rows]


def last_entries_of_key(con: Any, run_no: int, key: str) -> list[int]:
    return [
        r[0]
        for r in con.execute(
            "SELECT entry_id FROM entries WHERE record_key = %(key)s AND run_no = %(run)s "
            "AND position = (SELECT max(position) FROM entries "
            "WHERE record_key = %(key)s AND run_no = %(run)s) ORDER BY entry_id",
            {"key": encode(key), "run": run_no},
        )
    ]


def value_rows(con: Any, entry_ids: Sequence[int]) -> list[tuple[int, str]]:
    return con.execute(
        "SELECT l.entry_id, v.json::text FROM unnest(%s::bigint[]) j(id) "
        "JOIN entries l ON l.entry_id = j.id JOIN vals v ON v.value_id = l.value_id",
        (list(entry_ids),),
    ).fetchall()


def report_rows(con: Any, run_no: int) -> Iterator[tuple]:
    rows = con.execute(
        f"""SELECT l.entry_id, l.record_key, l.position, {_STATUS.format("l.status")},
               l.reason, l.error, {ISO.format("l.created_at")},
               {PARENT_IDS}
        FROM {RUN_ENTRIES}
        WHERE ck.run_no = %s
        ORDER BY l.record_key COLLATE "C", l.position, l.entry_id""",
        (run_no,),
    )
    return (_decode_row(r, [1, 4, 5]) for r in rows)


def chunk_moments(con: Any, run_no: int) -> list[tuple[int, str, int]]:
    return con.execute(
        f"""SELECT l.position, {ISO.format("l.created_at")}, count(*)
        FROM {RUN_ENTRIES} WHERE ck.run_no = %s
        GROUP BY l.position, l.created_at ORDER BY l.position, l.created_at""",
        (run_no,),
    ).fetchall()


def outcome_reason_counts(con: Any, run_no: int) -> list[tuple[int, str, str | None, int]]:
    rows = con.execute(
        f"""SELECT l.position, l.status, l.reason, count(*)
        FROM {RUN_ENTRIES} WHERE ck.run_no = %s AND l.status > 0
        GROUP BY l.position, l.status, l.reason""",
        (run_no,),
    ).fetchall()
    out = [(p, _STATUS_TEXTS[s], decode(r), n) for p, s, r, n in rows]
    return sorted(out, key=lambda r: (r[0], r[1], r[2] is not None, r[2] or ""))


def step_value_sample(
    con: Any, run_no: int, position: int, limit: int
) -> list[tuple[int, str, str | None]]:
    return con.execute(
        f"""WITH picked AS (
            SELECT l.entry_id, l.value_id FROM {RUN_ENTRIES}
            WHERE ck.run_no = %(run)s AND l.position = %(position)s AND l.status = 0
            ORDER BY l.entry_id LIMIT %(limit)s
        )
        SELECT c.entry_id, cv.json::text, pv.json::text
        FROM picked c
        JOIN vals cv ON cv.value_id = c.value_id
        LEFT JOIN {PARENTS_OF.format(x="c.entry_id")} p(id) ON true
        LEFT JOIN entries pe ON pe.entry_id = p.id
        LEFT JOIN vals pv ON pv.value_id = pe.value_id
        ORDER BY c.entry_id, p.id""",
        {"run": run_no, "position": position, "limit": limit},
    ).fetchall()
