"""Opening a lineage store safely.

A file is identified from its 100-byte SQLite header *before* SQLite opens it for
writing, so a file that is not ours is refused without a single byte changing
(opening a foreign database read-write could, for example, checkpoint its WAL).
"""

from __future__ import annotations

import os
import sqlite3
import struct
import time
from pathlib import Path

from ..errors import LineageKitError, NotALineageStore, SchemaVersionError, StoreNotFound
from .schema import (
    APPLICATION_ID,
    MIGRATIONS,
    READABLE_VERSION,
    SCHEMA_V1,
    SCHEMA_VERSION,
    V3_READER_VIEWS,
    unhex,
)
from .transaction import transaction

_SQLITE_MAGIC = b"SQLite format 3\x00"
BUSY_TIMEOUT_MS = 30_000
# primary result codes
_SQLITE_PERM, _SQLITE_BUSY, _SQLITE_READONLY, _SQLITE_CANTOPEN = 3, 5, 8, 14


def _read_header(path: Path) -> bytes:
    with path.open("rb") as fh:
        return fh.read(100)


def _foreign_tables(path: Path) -> list[str]:
    """Names of the tables in a SQLite file, opened read-only."""
    uri = f"{path.resolve().as_uri()}?mode=ro"
    con = sqlite3.connect(uri, uri=True)
    try:
        rows = con.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') ORDER BY name"
        ).fetchall()
    finally:
        con.close()
    return [r[0] for r in rows]


def identify(path: Path) -> str:
    """Tell what is at ``path`` without changing it.

    Returns
    -------
    str
        ``"missing"``, ``"empty"`` (a 0-byte file, or a SQLite file with no tables,
        no application id and user_version 0: safe to initialise) or ``"ours"``.

    Raises
    ------
    NotALineageStore
        The file is not SQLite, or is a SQLite database of some other application.
    """
    if not path.exists():
        return "missing"
    if path.is_dir():
        raise NotALineageStore(f"{path} is a directory, not a lineage store")
    header = _read_header(path)
    if not header:
        return "empty"
    if len(header) < 100 or not header.startswith(_SQLITE_MAGIC):
        raise NotALineageStore(f"{path} is not a SQLite database, so not a lineage store")
    (app_id,) = struct.unpack(">I", header[68:72])
    if app_id == APPLICATION_ID:
        return "ours"
    if app_id == 0:
        try:
            tables = _foreign_tables(path)
        except sqlite3.DatabaseError as exc:
            raise NotALineageStore(f"{path} cannot be read as SQLite: {exc}") from exc
        (user_version,) = struct.unpack(">I", header[60:64])
        if not tables and user_version == 0:
            return "empty"
        if not tables:
            raise NotALineageStore(
                f"{path} is a SQLite database of another application (no tables, "
                f"user_version {user_version}); it was left unchanged. Choose another --db path."
            )
        shown = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")
        raise NotALineageStore(
            f"{path} is a SQLite database of another application (tables: {shown}); "
            "it was left unchanged. Choose another --db path."
        )
    raise NotALineageStore(
        f"{path} is a SQLite database with application_id {app_id:#x}, not a lineage store; "
        "it was left unchanged."
    )


def _read_only_version(path: Path) -> int:
    """The schema version, read without any chance of writing.

    Closing the last read-write connection checkpoints the WAL into the file, so a
    store from a newer lineage_kit (whose version may sit in an unfinished WAL) is
    inspected read-only, and refused before it is opened for writing.
    """
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            con.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            return con.execute("PRAGMA user_version").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        # Read-only WAL access can be impossible (no -shm, read-only directory):
        # fall back on the header's copy of the version.
        return struct.unpack(">I", _read_header(path)[60:64])[0]


def _configure(con: sqlite3.Connection) -> None:
    con.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    con.execute("PRAGMA foreign_keys = ON")
    con.execute("PRAGMA synchronous = NORMAL")


def _enable_wal(con: sqlite3.Connection) -> None:
    """Switch to WAL, waiting out other openers of a store being created.

    Leaving rollback-journal mode needs an exclusive lock, and SQLite does not call
    the busy handler for it while another process is creating or opening the same
    new store, so ``database is locked`` would reach the user: retry until the busy
    timeout instead.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    delay = 0.001
    while True:
        try:
            con.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            busy = (getattr(exc, "sqlite_errorcode", 0) & 0xFF) == _SQLITE_BUSY
            if not busy or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def statements(script: str) -> list[str]:
    """Split a SQL script into complete statements (a ``;`` inside a literal or a
    trigger body does not end one); the last may omit its ``;``.

    Examples
    --------
    >>> statements("CREATE TABLE t (x DEFAULT ';'); INSERT INTO t VALUES (1)")
    ["CREATE TABLE t (x DEFAULT ';');", 'INSERT INTO t VALUES (1);']
    """
    out, pending = [], ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \t\r\n;"):
                out.append(pending.strip())
            pending = ""
    if pending.strip(" \t\r\n;"):
        raise ValueError(f"incomplete SQL statement: {pending.strip()[:60]!r}")
    return out


def _run_script(con: sqlite3.Connection, script: str) -> None:
    # executescript() would COMMIT the surrounding transaction; run statement by statement.
    for statement in statements(script):
        con.execute(statement)


def _initialise(con: sqlite3.Connection) -> None:
    """Create the schema in an empty database (idempotent under concurrent creators).

    Raises
    ------
    NotALineageStore
        The database has a user_version but is not ours (nothing is written).
    """
    con.create_function("lk_unhex", 1, unhex, deterministic=True)
    with transaction(con):
        version = con.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            # PRAGMA takes no bound parameters; both values are our own integer constants.
            con.execute(f"PRAGMA application_id = {APPLICATION_ID:d}")
            _run_script(con, SCHEMA_V1)
            for version in range(2, SCHEMA_VERSION + 1):
                _run_script(con, MIGRATIONS[version])
            con.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")
        elif con.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
            # (a concurrent creator may have initialised it since identify(): then it is ours)
            raise NotALineageStore(
                f"the database has user_version {version} but is not a lineage store; "
                "it was left unchanged"
            )


def _migrate(con: sqlite3.Connection) -> None:
    con.create_function("lk_unhex", 1, unhex, deterministic=True)
    with transaction(con):
        version = con.execute("PRAGMA user_version").fetchone()[0]
        while version < SCHEMA_VERSION:
            _run_script(con, MIGRATIONS[version + 1])
            version += 1
        con.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")


def _cannot_write(exc: sqlite3.Error) -> bool:
    """Whether SQLite failed because the file (or its directory) cannot be written."""
    return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in (
        _SQLITE_PERM,
        _SQLITE_READONLY,
        _SQLITE_CANTOPEN,
    )


def _migrate_file(path: Path, version: int) -> None:
    """Bring an older store to the current schema through a short read-write connection.

    Raises
    ------
    SchemaVersionError
        The store cannot be written here (read-only file, directory or media).
    """
    try:
        con = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            _configure(con)
            _enable_wal(con)
            _migrate(con)
        finally:
            con.close()
    except sqlite3.OperationalError as exc:
        if not _cannot_write(exc):
            raise
        raise SchemaVersionError(
            f"{path} has schema version {version}, older than this lineage_kit's "
            f"({SCHEMA_VERSION}), and cannot be migrated here ({exc}); open it once with "
            "write access (lk.connect or a pipeline run) to migrate it. The file was left "
            "unchanged."
        ) from exc


def _nobody_can_write(path: Path) -> bool:
    """Whether no lineage_kit writer can change ``path``, short of changing permissions.

    True on a read-only file system, for a path without any write permission bit
    (no one but root may write it), and, when we are root (whom permission bits do
    not stop), for a path root cannot write either (an immutable file).
    """
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY or not path.stat().st_mode & 0o222:
            return True
    except OSError:
        return False
    return os.geteuid() == 0 and not os.access(path, os.W_OK)


def _frozen(path: Path) -> bool:
    """Whether the store can be read as an immutable file (SQLite ``immutable=1``).

    SQLite reads a WAL store only through its ``-shm`` file, which a reader must
    create when it is missing: impossible in a directory it cannot write. Reading
    the file as immutable skips that, and is safe only while nothing writes the
    store: there is no ``-wal`` (a writer keeps one while it has the store open, and
    committed data may sit in it), and no writer could start, because the store file
    or its directory cannot be written by anyone (a writer needs both, for the
    ``-wal``). A store that someone else may still write is never read this way.
    """
    if Path(f"{path}-wal").exists():
        return False
    return _nobody_can_write(path) or _nobody_can_write(path.resolve().parent)


def _read_only_uri(path: Path, *, immutable: bool) -> str:
    return f"{path.resolve().as_uri()}?mode=ro" + ("&immutable=1" if immutable else "")


def _open_read_only(path: Path) -> sqlite3.Connection:
    """A connection that cannot write (SQLite ``mode=ro``), checked by a first read.

    A WAL store is readable read-only when its ``-wal`` and ``-shm`` files exist or
    can be created next to it; SQLite leaves them (empty) behind, never the database
    changed. Otherwise, on read-only media (:func:`_frozen`), the file is read as
    immutable, with no ``-shm``.

    Raises
    ------
    LineageKitError
        The store cannot be opened read-only: its WAL files are missing and cannot
        be created, and someone may still write it (or its ``-wal`` is there).
    """
    try:
        return _connect_read_only(path, immutable=False)
    except sqlite3.OperationalError as exc:
        if not _cannot_write(exc):
            raise
        if _frozen(path):
            return _connect_read_only(path, immutable=True)
        raise LineageKitError(
            f"{path} cannot be opened read-only ({exc}): the store is in WAL mode, and "
            f"SQLite needs {path.name}-wal and {path.name}-shm next to it, which do not "
            "exist and cannot be created in its directory, while the store may still be "
            "written by someone who can (so it cannot be read as an immutable file). "
            "Copy the store (with its -wal and -shm files, if any) to a writable "
            "directory and open the copy."
        ) from exc


def _connect_read_only(path: Path, *, immutable: bool) -> sqlite3.Connection:
    con = sqlite3.connect(
        _read_only_uri(path, immutable=immutable),
        uri=True,
        isolation_level=None,
        check_same_thread=False,
    )
    try:
        con.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        con.execute("PRAGMA foreign_keys = ON")
        con.execute("PRAGMA user_version").fetchone()  # opens the WAL index now
    except BaseException:
        con.close()
        raise
    return con


def _read_old(con: sqlite3.Connection) -> sqlite3.Connection:
    """Give a read-only connection to a v2 or v3 store TEMP views named like the v4
    tables (a read-only connection may create temporary objects), so readers keep one
    set of queries. Nothing is written to the store."""
    try:
        con.create_function("lk_unhex", 1, unhex, deterministic=True)
        for statement in statements(V3_READER_VIEWS):
            con.execute(statement)
    except BaseException:
        con.close()
        raise
    return con


def open_connection(
    path: str | os.PathLike[str], *, create: bool, read_only: bool = False
) -> sqlite3.Connection:
    """Open (and if asked, create) a lineage store; return a configured connection.

    Parameters
    ----------
    path : str or PathLike
        The SQLite file.
    create : bool
        Create the store when the file is missing or empty.
    read_only : bool, default False
        Open with SQLite ``mode=ro``, so nothing can be written. A store at an older
        schema version is first migrated (which needs write access).

    Returns
    -------
    sqlite3.Connection
        In autocommit mode (transactions are explicit), foreign keys on; a
        read-write connection has switched the store to WAL.

    Raises
    ------
    StoreNotFound
        ``path`` does not exist and ``create`` is false.
    NotALineageStore
        The file is something else; it is left unchanged.
    SchemaVersionError
        The store was written by a newer schema version, or (``read_only``) is at an
        older one and cannot be written to migrate it; it is left unchanged.
    LineageKitError
        ``read_only`` and the store cannot be opened read-only.

    Examples
    --------
    >>> con = open_connection("lineage.db", create=False, read_only=True)
    >>> con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    True
    >>> con.close()
    """
    if create and read_only:
        raise ValueError("a store opened read-only cannot be created")
    path = Path(path)
    kind = identify(path)
    if kind == "missing" and not create:
        raise StoreNotFound(f"no lineage store at {path}; run a pipeline into it first")
    if kind == "empty" and not create:
        raise NotALineageStore(f"{path} is empty, not a lineage store")
    if kind == "missing" and not path.parent.exists():
        raise StoreNotFound(f"cannot create {path}: directory {path.parent} does not exist")

    if kind == "ours":
        version = _read_only_version(path)
        if version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"{path} has schema version {version}, newer than this lineage_kit "
                f"understands ({SCHEMA_VERSION}); upgrade lineage_kit. The file was left "
                "unchanged."
            )
        if read_only:
            if version < SCHEMA_VERSION:
                try:
                    _migrate_file(path, version)
                except SchemaVersionError:
                    if version < READABLE_VERSION:
                        raise
                    # unwritable, but readable through TEMP views shaped like v4's tables
                    return _read_old(_open_read_only(path))
            return _open_read_only(path)
    con = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        con.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if kind == "ours":
            _configure(con)
            _enable_wal(con)
            if version < SCHEMA_VERSION:
                _migrate(con)
        else:
            _configure(con)
            _initialise(con)
            _enable_wal(con)
    except BaseException:
        con.close()
        raise
    return con
