"""The storage layer: connecting, schema, migrations, writes, reads and the checks' SQL.

Everything above this package reaches the store through one
:class:`~lineage_kit.store.backend.Backend` object per open store (from
:func:`open_backend`); every SQL statement of the package lives here, and nothing
here imports the layers above it (the pipeline, the engine, the explore, plot and
check modules). :class:`~lineage_kit.store.sqlite.SQLiteBackend` is the embedded
default; a PostgreSQL backend implements the same interface.
"""

from __future__ import annotations

import os

from .backend import Backend, Chunk, ChunkCounts, Writer
from .connection import identify
from .liveness import writer_alive
from .queries import RUN_COLUMNS
from .schema import APPLICATION_ID, SCHEMA_VERSION
from .sqlite import DATABASE_ERRORS, SQLiteBackend


def open_backend(
    location: str | os.PathLike[str], *, create: bool = False, read_only: bool = False
) -> Backend:
    """Open the store at ``location`` (today a SQLite file path) as a :class:`Backend`.

    The arguments, result and errors are those of :class:`SQLiteBackend`; a URL
    (``postgresql://...``) will choose the PostgreSQL backend.

    Examples
    --------
    >>> backend = open_backend("lineage.db", read_only=True)
    >>> backend.read_only, backend.closed
    (True, False)
    >>> backend.close()
    """
    return SQLiteBackend(location, create=create, read_only=read_only)


__all__ = [
    "APPLICATION_ID",
    "DATABASE_ERRORS",
    "RUN_COLUMNS",
    "SCHEMA_VERSION",
    "Backend",
    "Chunk",
    "ChunkCounts",
    "SQLiteBackend",
    "Writer",
    "identify",
    "open_backend",
    "writer_alive",
]
