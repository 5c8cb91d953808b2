"""Helpers for tests that run on both backends (the ``store_db`` fixture)."""

from __future__ import annotations

from typing import Any


def is_postgres(store: Any) -> bool:
    """Whether a LineageStore (or Backend) is a PostgreSQL store."""
    backend = getattr(store, "backend", store)
    return type(backend).__name__ == "PostgresBackend"


def rows(store: Any, sql: str, params: Any = ()) -> list[tuple]:
    """Raw SQL on a store's connection, written with SQLite's ``?`` placeholders
    (PostgreSQL stores have the views ``lineage``, ``parents`` and ``records``)."""
    backend = getattr(store, "backend", store)
    if is_postgres(backend):
        sql = sql.replace("?", "%s")
    return [tuple(r) for r in backend.con.execute(sql, params).fetchall()]


def fingerprint(location: Any) -> str:
    """What a store holds, to show it did not change: a SQLite file's sha256; for a
    PostgreSQL URL, every row of its runs, steps, chunks and entry counter."""
    import hashlib
    from pathlib import Path

    if not (isinstance(location, str) and location.startswith("postgresql://")):
        return hashlib.sha256(Path(location).read_bytes()).hexdigest()
    from lineage_kit.store import open_backend

    with open_backend(location, read_only=True) as backend:
        text = repr(
            [
                backend.con.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
                for table in ("runs", "steps", "chunks")
            ]
            + [backend.con.execute("SELECT next_id FROM entry_ids").fetchall()]
        )
    return hashlib.sha256(text.encode()).hexdigest()


def whole_chunks(
    con: Any, schema: str | None = None, *, same_steps: bool = True
) -> tuple[int, int]:
    """On a PostgreSQL store, in one snapshot: every chunk's id range holds exactly
    its entries, every entry lies in a chunk, and (``same_steps``: for inputs
    without rejections) every step of a run has as many entries as its first.
    ``con`` is a store's connection (its schema on the search path) or a server
    connection with the store's ``schema`` named. Returns ``(chunks, entries)``."""
    prefix = f"{schema}." if schema else ""
    con.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    try:
        chunks = con.execute(
            f"SELECT c.n_entries, (SELECT count(*) FROM {prefix}entries l "
            "WHERE l.entry_id BETWEEN c.first_entry AND c.last_entry) "
            f"FROM {prefix}chunks c"
        ).fetchall()
        (entries,) = con.execute(f"SELECT count(*) FROM {prefix}entries").fetchone()
        per_step = con.execute(
            f"SELECT run_no, position, count(*) FROM {prefix}entries GROUP BY 1, 2"
        ).fetchall()
    finally:
        con.execute("ROLLBACK")
    assert all(want == got for want, got in chunks), chunks
    assert entries == sum(want for want, _ in chunks)
    counts: dict[int, set[int]] = {}
    for run_no, _position, n in per_step:
        counts.setdefault(run_no, set()).add(n)
    assert not same_steps or all(len(c) == 1 for c in counts.values()), per_step
    return len(chunks), entries
