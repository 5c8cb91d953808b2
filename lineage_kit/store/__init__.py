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

from .backend import Backend, Chunk, Writer
from .connection import identify
from .liveness import writer_alive
from .queries import RUN_COLUMNS
from .schema import APPLICATION_ID, SCHEMA_VERSION
from .sqlite import DATABASE_ERRORS, SQLiteBackend


def open_backend(
    location: str | os.PathLike[str], *, create: bool = False, read_only: bool = False
) -> Backend:
    """Open the store at a path (a SQLite file) as a :class:`Backend`.

    Parameters
    ----------
    location : str or PathLike
        The store's path.
    create : bool, default False
        Create the store when missing (pipelines do, readers do not).
    read_only : bool, default False
        Open it so nothing can be written.

    Returns
    -------
    Backend

    Raises
    ------
    StoreNotFound, NotALineageStore, SchemaVersionError, LineageKitError
        See :func:`lineage_kit.store.connection.open_connection`.

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
    "SQLiteBackend",
    "Writer",
    "identify",
    "open_backend",
    "writer_alive",
]
