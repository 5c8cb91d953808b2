"""The storage layer's one transaction helper (after sqlite-utils ``Database.atomic``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import StoreFull, StoreWriteError

_SQLITE_IOERR = 10  # primary result code of "disk I/O error" (EIO, EFBIG, ...)
_SQLITE_FULL = 13  # primary result code of "database or disk is full"


@contextmanager
def transaction(con: sqlite3.Connection, *, write: bool = True) -> Iterator[sqlite3.Connection]:
    """Run a block in one transaction; roll back and re-raise the original error.

    Parameters
    ----------
    con : sqlite3.Connection
        In autocommit mode (``isolation_level=None``), as the store opens it.
    write : bool, default True
        ``True``: take the write lock at once (``BEGIN IMMEDIATE``), so a writer
        waits for the lock up front instead of failing half-way, and commit at the
        end. ``False``: a read snapshot (deferred ``BEGIN``; WAL readers never
        block the writer) that is rolled back at the end, and inside an open
        transaction does nothing.

    Yields
    ------
    sqlite3.Connection
        ``con``.

    Raises
    ------
    StoreFull
        SQLite reported the disk (or ``max_page_count``) full; rolled back first.
    StoreWriteError
        Any other I/O error while writing; rolled back first.

    Examples
    --------
    >>> con = sqlite3.connect(":memory:", isolation_level=None)
    >>> with transaction(con):
    ...     _ = con.execute("CREATE TABLE t (x)")
    >>> try:
    ...     with transaction(con):
    ...         _ = con.execute("INSERT INTO t VALUES (1)")
    ...         raise KeyError("undo")
    ... except KeyError:
    ...     pass
    >>> con.execute("SELECT count(*) FROM t").fetchone()
    (0,)
    """
    if not write:
        if con.in_transaction:
            yield con
            return
        con.execute("BEGIN")
        try:
            yield con
        finally:
            if con.in_transaction:
                con.execute("ROLLBACK")
        return
    con.execute("BEGIN IMMEDIATE")
    try:
        yield con
        con.execute("COMMIT")
    except BaseException as exc:
        if con.in_transaction:
            con.execute("ROLLBACK")
        code = _primary_code(exc)
        if code == _SQLITE_FULL:
            raise StoreFull(
                f"the lineage store {_store_path(con)} is full (the disk has no space left "
                "or the store reached its size limit); the transaction was rolled back. "
                "Free some space and run again."
            ) from exc
        if code == _SQLITE_IOERR:
            raise StoreWriteError(
                f"could not write to the lineage store {_store_path(con)} ({exc}: the disk "
                "may be full, the file over a size limit or quota, or the device failing); "
                "the transaction was rolled back."
            ) from exc
        raise


def _primary_code(exc: BaseException) -> int | None:
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorcode", 0) & 0xFF
    return None


def _store_path(con: sqlite3.Connection) -> str:
    try:
        return con.execute("PRAGMA database_list").fetchone()[2] or "(in memory)"
    except sqlite3.Error:
        return "(unknown path)"
