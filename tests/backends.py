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
