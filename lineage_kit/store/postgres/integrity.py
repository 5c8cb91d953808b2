"""The integrity checks' SQL on a PostgreSQL store (rows as the SQLite backend's
:mod:`lineage_kit.store.integrity` returns them).

The runs' entries are read through their chunks' id ranges; values are hashed in
Python, streamed from a server-side cursor (PostgreSQL has no BLAKE2b), once per
stored value rather than per entry.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ...model import EntryStatus
from .queries import RUN_ENTRIES
from .schema import ISO, STATUS_TEXT
from .text import decode

_STATUS_TEXTS = [s.value for s in EntryStatus]
_RUNS_ENTRIES = (
    f"runs ru JOIN {RUN_ENTRIES} ON ck.run_no = ru.run_no WHERE ru.run_id = ANY(%(runs)s)"
)


def _dec(rows: list[tuple], columns: Sequence[int]) -> list[tuple]:
    out = []
    for row in rows:
        row = list(row)
        for i in columns:
            row[i] = decode(row[i])
        out.append(tuple(row))
    return out


def step_kinds(con: Any, run_ids: Sequence[str]) -> list[tuple[str, int, str, str]]:
    rows = con.execute(
        "SELECT r.run_id, s.position, s.name, s.kind FROM steps s JOIN runs r "
        "ON r.run_no = s.run_no WHERE r.run_id = ANY(%s) ORDER BY r.run_id, s.position",
        (list(run_ids),),
    ).fetchall()
    return _dec(rows, [2])


def chunk_counts(con: Any, run_ids: Sequence[str]) -> list[tuple]:
    """``(run_id, chunk_no, first_entry, last_entry, counts, held)`` of every chunk of
    the runs, as the SQLite backend's; ``held`` counts every entry in the chunk's
    range, ``own`` 0 for those of another run."""
    return con.execute(
        """
        SELECT ru.run_id, ck.chunk_no, ck.first_entry, ck.last_entry, ck.counts,
               (SELECT coalesce(json_agg(json_build_array(g.own, g.position, g.status, g.n,
                                                          g.owners)), '[]')::text
                FROM (SELECT (l.run_no = ck.run_no)::int AS own, l.position, l.status,
                             count(*) AS n, count(*) FILTER (WHERE l.value_id = l.entry_id)
                             AS owners
                      FROM entries l
                      WHERE l.entry_id BETWEEN ck.first_entry AND ck.last_entry
                      GROUP BY 1, 2, 3) g)
        FROM runs ru JOIN chunks ck ON ck.run_no = ru.run_no
        WHERE ru.run_id = ANY(%(runs)s)
        ORDER BY 1, 2
        """,
        {"runs": list(run_ids)},
    ).fetchall()


def _gaps(claimed: str) -> str:
    """``gaps(lo, hi)``: the id ranges none of the ``claimed`` rows' ranges covers."""
    return f"""
        bounds AS (
            SELECT first_entry, max(last_entry) OVER (
                ORDER BY first_entry ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
            ) AS covered
            FROM {claimed}
        ),
        gaps(lo, hi) AS (
            SELECT coalesce(covered + 1, -9223372036854775807 - 1), first_entry - 1
            FROM bounds WHERE covered IS NULL OR first_entry > covered + 1
            UNION ALL
            SELECT coalesce(max(last_entry) + 1, -9223372036854775807 - 1),
                   9223372036854775807
            FROM {claimed}
        )
    """


def value_counts(con: Any, run_ids: Sequence[str]) -> tuple[int, int]:
    """``(inside, outside)``: stored values with an id inside the runs' chunks' ranges,
    and outside all of them (as the SQLite backend's)."""
    row = con.execute(
        """
        WITH checked AS MATERIALIZED (
            SELECT ck.first_entry, ck.last_entry
            FROM runs ru JOIN chunks ck ON ck.run_no = ru.run_no
            WHERE ru.run_id = ANY(%(runs)s)
        ), """
        + _gaps("checked")
        + """
        SELECT (SELECT count(*) FROM checked c
                JOIN vals v ON v.value_id BETWEEN c.first_entry AND c.last_entry),
               (SELECT count(*) FROM gaps g
                JOIN vals v ON v.value_id BETWEEN g.lo AND g.hi)
        """,
        {"runs": list(run_ids)},
    ).fetchone()
    return int(row[0]), int(row[1])


def unclaimed_entries(
    con: Any, run_ids: Sequence[str], chunks: Sequence[tuple[str, int]]
) -> list[tuple]:
    """``(entry_id, run_id, record_key, position, chunk_run_id)`` of entries no chunk of
    their run claims: in no chunk's range (of the runs, or of no run), or named
    another run's in one of ``chunks`` (``(run_id, chunk_no)``)."""
    rows = con.execute(
        "WITH "
        + _gaps("chunks")
        + """
        SELECT l.entry_id, r.run_id, l.record_key, l.position, NULL::text
        FROM gaps g JOIN entries l ON l.entry_id BETWEEN g.lo AND g.hi
        LEFT JOIN runs r ON r.run_no = l.run_no
        WHERE r.run_no IS NULL OR r.run_id = ANY(%(runs)s)
        UNION ALL
        SELECT l.entry_id, r.run_id, l.record_key, l.position, cr.run_id
        FROM unnest(%(chunk_runs)s::text[], %(chunk_nos)s::int[]) AS c(run_id, chunk_no)
        JOIN runs cr ON cr.run_id = c.run_id
        JOIN chunks ck ON ck.run_no = cr.run_no AND ck.chunk_no = c.chunk_no
        JOIN entries l ON l.entry_id BETWEEN ck.first_entry AND ck.last_entry
        LEFT JOIN runs r ON r.run_no = l.run_no
        WHERE l.run_no <> ck.run_no
        ORDER BY 1
        """,
        {
            "runs": list(run_ids),
            "chunk_runs": [c[0] for c in chunks],
            "chunk_nos": [c[1] for c in chunks],
        },
    ).fetchall()
    return _dec(rows, [2])


def chain_rows(con: Any, run_ids: Sequence[str], finished: Sequence[str]) -> list[tuple]:
    rows = con.execute(
        f"""
        WITH checked AS MATERIALIZED (
            SELECT ru.run_no, ru.run_id,
                   CASE WHEN ru.run_id = ANY(%(finished)s)
                        THEN (SELECT max(s.position) FROM steps s WHERE s.run_no = ru.run_no)
                   END AS last_position
            FROM runs ru WHERE ru.run_id = ANY(%(runs)s)
        )
        SELECT c.entry_id, k.run_id, c.record_key, c.position,
               {STATUS_TEXT.format("c.status")}, {ISO.format("c.created_at")},
               k.last_position, p.parent_id, pa.entry_id IS NOT NULL, pr.run_id,
               pa.record_key, pa.position, {ISO.format("pa.created_at")},
               EXISTS (SELECT 1 FROM parents ch WHERE ch.parent_id = c.entry_id)
        FROM checked k
        JOIN chunks ck ON ck.run_no = k.run_no
        JOIN entries c ON c.entry_id BETWEEN ck.first_entry AND ck.last_entry
                      AND c.run_no = ck.run_no
        LEFT JOIN parents p ON p.child_id = c.entry_id
        LEFT JOIN entries pa ON pa.entry_id = p.parent_id
        LEFT JOIN runs pr ON pr.run_no = pa.run_no
        WHERE (p.child_id IS NULL AND c.position > 0)
           OR (c.status = 0 AND c.position < k.last_position
               AND NOT EXISTS (SELECT 1 FROM parents ch WHERE ch.parent_id = c.entry_id))
           OR (p.parent_id <> p.child_id
               AND (pa.entry_id IS NULL
                    OR pa.run_no <> c.run_no
                    OR pa.position >= c.position
                    OR c.position > pa.position + 1
                    OR pa.created_at > c.created_at
                    OR (c.record_key IS DISTINCT FROM pa.record_key
                        AND NOT EXISTS (SELECT 1 FROM steps s
                                        WHERE s.run_no = c.run_no
                                          AND s.position = c.position
                                          AND s.kind IN ('merge', 'split')))))
        ORDER BY c.entry_id
        """,
        {"runs": list(run_ids), "finished": list(finished)},
    ).fetchall()
    return _dec(rows, [2, 10])


def links_from_missing_children(con: Any, run_ids: Sequence[str]) -> list[tuple]:
    """Only ``extra_parents`` can name a missing child: an entry's first link is in
    its own row."""
    rows = con.execute(
        """
        SELECT p.child_id, p.parent_id, pr.run_id, pa.record_key
        FROM extra_parents p
        LEFT JOIN entries c ON c.entry_id = p.child_id
        LEFT JOIN entries pa ON pa.entry_id = p.parent_id
        LEFT JOIN runs pr ON pr.run_no = pa.run_no
        WHERE c.entry_id IS NULL AND (pa.entry_id IS NULL OR pr.run_id = ANY(%s))
        ORDER BY p.child_id, p.parent_id
        """,
        (list(run_ids),),
    ).fetchall()
    return _dec(rows, [3])


def cycle_links(con: Any, run_ids: Sequence[str]) -> list[tuple]:
    rows = con.execute(
        """
        WITH RECURSIVE
        candidate(child_id, parent_id) AS (
            SELECT p.child_id, p.parent_id FROM parents p WHERE p.parent_id >= p.child_id
        ),
        up(child_id, parent_id, node) AS (
            SELECT child_id, parent_id, parent_id FROM candidate
            UNION
            SELECT u.child_id, u.parent_id, p.parent_id
            FROM up u JOIN parents p ON p.child_id = u.node
            WHERE u.node <> u.child_id
        )
        SELECT u.child_id, u.parent_id, r.run_id, c.record_key
        FROM up u LEFT JOIN entries c ON c.entry_id = u.child_id
        LEFT JOIN runs r ON r.run_no = c.run_no
        WHERE u.node = u.child_id AND (c.entry_id IS NULL OR r.run_id = ANY(%s))
        ORDER BY u.child_id, u.parent_id
        """,
        (list(run_ids),),
    ).fetchall()
    return _dec(rows, [3])


def repeated_keys(con: Any, run_ids: Sequence[str]) -> list[tuple]:
    rows = con.execute(
        f"""
        WITH repeated AS (
            SELECT ru.run_no, l.record_key, l.position FROM {_RUNS_ENTRIES}
              AND l.record_key IS NOT NULL
            GROUP BY ru.run_no, l.record_key, l.position HAVING count(*) > 1
        )
        SELECT r.run_id, l.record_key, l.position, l.entry_id, l.status, l.reason
        FROM repeated g
        JOIN entries l ON l.record_key = g.record_key AND l.run_no = g.run_no
                      AND l.position = g.position
        JOIN runs r ON r.run_no = l.run_no
        """,
        {"runs": list(run_ids)},
    ).fetchall()
    out = [(r, decode(k), p, e, _STATUS_TEXTS[s], decode(why)) for r, k, p, e, s, why in rows]
    return sorted(out, key=lambda row: (row[0], row[1], row[2], row[3]))


def value_problems(
    con: Any, run_ids: Sequence[str], digest: Callable[[bytes], bytes]
) -> list[tuple]:
    """Entries whose value is missing or does not hash to the stored hash.

    Each stored value of the runs is hashed once (an identity step's entries share
    their parent's value); an entry is reported for its value's problem.
    """
    bad: dict[int, str] = {}
    with con.cursor(name="lineage_kit_values", withhold=True) as cur:
        cur.itersize = 5000
        cur.execute(
            "SELECT v.value_id, v.hash, v.json::text "
            "FROM runs ru JOIN chunks ck ON ck.run_no = ru.run_no "
            "JOIN vals v ON v.value_id BETWEEN ck.first_entry AND ck.last_entry "
            "WHERE ru.run_id = ANY(%s)",
            (list(run_ids),),
        )
        for value_id, stored, text in cur:
            actual = digest(text.encode("utf-8", "surrogatepass"))
            if stored is None or actual != bytes(stored):
                bad[value_id] = actual.hex()
    rows = con.execute(
        f"""SELECT ru.run_id, l.record_key, l.entry_id, l.position,
                   (v.value_id IS NOT NULL)::int, encode(v.hash, 'hex'), l.value_id
            FROM {_RUNS_ENTRIES} AND (v.value_id IS NULL OR l.value_id = ANY(%(bad)s))
            ORDER BY l.entry_id""".replace(
            "WHERE ru.run_id", "LEFT JOIN vals v ON v.value_id = l.value_id WHERE ru.run_id"
        ),
        {"runs": list(run_ids), "bad": list(bad)},
    ).fetchall()
    return [
        (r, decode(k), e, p, has, stored, bad.get(vid) if has else None)
        for r, k, e, p, has, stored, vid in rows
    ]


def values_without_entry(con: Any) -> list[tuple[int]]:
    """Values whose entry (the one that stored them first: ``value_id``) is gone."""
    return con.execute(
        "SELECT v.value_id FROM vals v LEFT JOIN entries l ON l.entry_id = v.value_id "
        "WHERE l.entry_id IS NULL ORDER BY v.value_id"
    ).fetchall()
