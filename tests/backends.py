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
