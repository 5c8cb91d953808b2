"""Connecting to a PostgreSQL store: errors in one line, identity, creation.

A schema is ours when its ``lineage_kit_meta`` table says so; an empty schema (or
none) may be initialised; anything else is refused without a statement that could
change it. Creation and migrations run in one transaction under a
transaction-level advisory lock, so concurrent first writers create the store once.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ...errors import (
    LineageKitError,
    MissingExtra,
    NotALineageStore,
    SchemaVersionError,
    StoreNotFound,
    StoreUnavailable,
)
from .schema import APPLICATION, DDL, META_TABLE, MIGRATIONS, SCHEMA_VERSION
from .url import StoreURL

try:
    import psycopg
    from psycopg import sql
except ImportError:  # pragma: no cover - the extra is missing
    psycopg = None  # type: ignore[assignment]

#: Seconds libpq waits for a server when neither the URL nor PGCONNECT_TIMEOUT say.
CONNECT_TIMEOUT = 10


def require_psycopg() -> None:
    """Raises MissingExtra when psycopg 3 is not installed."""
    if psycopg is None:
        raise MissingExtra("a PostgreSQL store", "postgres", "psycopg")


def lock_space(schema: str) -> int:
    """The first key of the store's advisory locks (per schema, one database may
    hold several stores); the second is 0 for creation, a run number for a writer.

    Examples
    --------
    >>> 0 <= lock_space("lineage_kit") < 2**31
    True
    """
    return zlib.crc32(f"lineage_kit:{schema}".encode()) & 0x7FFFFFFF


def where(url: StoreURL) -> tuple[str, str]:
    """``(host, database)`` the URL (and libpq's environment) point at, for messages."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url.conninfo)
    except Exception:
        info = {}
    host = str(info.get("host") or os.environ.get("PGHOST") or "localhost")
    port = info.get("port") or os.environ.get("PGPORT")
    if port:
        host = f"{host}:{port}"
    user = info.get("user") or os.environ.get("PGUSER")
    database = str(info.get("dbname") or os.environ.get("PGDATABASE") or user or "")
    return host, database


def one_line(exc: BaseException, password: str | None) -> str:
    """A driver error as one line, the password blanked out."""
    text = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    if password:
        text = text.replace(password, "***")
    return text or type(exc).__name__


@contextmanager
def translated(url: StoreURL, doing: str) -> Iterator[None]:
    """Turn psycopg errors into lineage_kit's, in one line naming host and database.

    Raises
    ------
    StoreUnavailable
        The connection failed or broke (server gone, killed, restarted).
    LineageKitError
        Any other database error (permissions, a read-only session, ...).
    """
    try:
        yield
    except psycopg.Error as exc:
        host, database = where(url)
        message = one_line(exc, url.password)
        if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError) and not isinstance(
            exc, psycopg.errors.QueryCanceled
        ):
            raise StoreUnavailable(
                f"{doing} the lineage store (PostgreSQL database {database!r} on host "
                f"{host}, schema {url.schema}): {message}",
                host=host,
                database=database,
            ) from None
        raise LineageKitError(
            f"the lineage store (PostgreSQL database {database!r} on host {host}, schema "
            f"{url.schema}) refused: {message}"
        ) from None


def connect(url: StoreURL, *, read_only: bool) -> Any:
    """An autocommit connection with the store's schema on its search path.

    Raises
    ------
    MissingExtra
        psycopg is not installed.
    StoreUnavailable
        Wrong password, unreachable host, missing database, ...
    """
    require_psycopg()
    extra: dict[str, Any] = {"application_name": "lineage_kit"}
    if "connect_timeout" not in url.conninfo and "PGCONNECT_TIMEOUT" not in os.environ:
        extra["connect_timeout"] = CONNECT_TIMEOUT
    with translated(url, "cannot connect to"):
        con = psycopg.connect(url.conninfo, autocommit=True, **extra)
    with translated(url, "lost the connection to"):
        try:
            con.execute(
                sql.SQL("SELECT set_config('search_path', {}, false)").format(
                    sql.Literal(sql.Identifier(url.schema).as_string(con) + ", pg_catalog")
                )
            )
            if read_only:
                con.execute("SET default_transaction_read_only = on")
        except BaseException:
            con.close()
            raise
    return con


def _state(con: Any, schema: str) -> tuple[str, int | None]:
    """``("missing" | "empty" | "ours" | "foreign", version)`` of the schema."""
    found = con.execute(
        "SELECT count(*) FROM pg_namespace WHERE nspname = %s", (schema,)
    ).fetchone()[0]
    if not found:
        return "missing", None
    tables = [
        r[0]
        for r in con.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind IN ('r', 'v', 'm', 'S', 'p', 'f') "
            "ORDER BY c.relname",
            (schema,),
        )
    ]
    if not tables:
        return "empty", None
    if META_TABLE not in tables:
        return "foreign", ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")  # type: ignore[return-value]
    rows = dict(
        con.execute(
            sql.SQL("SELECT name, value FROM {}.{}").format(
                sql.Identifier(schema), sql.Identifier(META_TABLE)
            )
        ).fetchall()
    )
    if rows.get("application") != APPLICATION:
        return "foreign", META_TABLE  # type: ignore[return-value]
    try:
        return "ours", int(rows.get("schema_version", "0"))
    except ValueError:
        return "foreign", META_TABLE  # type: ignore[return-value]


def _where_text(url: StoreURL) -> str:
    host, database = where(url)
    return f"schema {url.schema} of PostgreSQL database {database!r} on host {host}"


def _check_version(url: StoreURL, version: int) -> None:
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"the lineage store in {_where_text(url)} has schema version {version}, newer "
            f"than this lineage_kit understands ({SCHEMA_VERSION}); upgrade lineage_kit. "
            "It was left unchanged."
        )


def _refuse_foreign(url: StoreURL, detail: Any) -> None:
    raise NotALineageStore(
        f"{_where_text(url)} is not a lineage store (it holds {detail}); it was left "
        "unchanged. Choose another schema (?schema=... in the URL)."
    )


def open_store(url: StoreURL, *, create: bool, read_only: bool) -> Any:
    """Connect, identify the schema, and create or migrate it when allowed.

    Raises
    ------
    StoreNotFound
        No store in the schema and ``create`` is false.
    NotALineageStore
        The schema holds something else; nothing was changed.
    SchemaVersionError
        The store is newer than this lineage_kit; nothing was changed.
    StoreUnavailable
        The server cannot be reached.
    """
    con = connect(url, read_only=read_only)
    try:
        with translated(url, "lost the connection to"):
            kind, version = _state(con, url.schema)
            if kind == "foreign":
                _refuse_foreign(url, version)
            if kind == "ours":
                _check_version(url, version)
                if version < SCHEMA_VERSION and not read_only:
                    _create_or_migrate(con, url)
                return con
            if not create:
                raise StoreNotFound(
                    f"no lineage store in {_where_text(url)}; run a pipeline into it first"
                )
            _create_or_migrate(con, url)
    except BaseException:
        con.close()
        raise
    return con


def _create_or_migrate(con: Any, url: StoreURL) -> None:
    """Create the layout (or migrate it forward) in one transaction, under the
    store's creation lock; what another creator did meanwhile is seen again."""
    schema = sql.Identifier(url.schema)
    with con.transaction():
        con.execute("SELECT pg_advisory_xact_lock(%s, 0)", (lock_space(url.schema),))
        kind, version = _state(con, url.schema)
        if kind == "foreign":
            _refuse_foreign(url, version)
        if kind == "ours":
            _check_version(url, version)
            while version < SCHEMA_VERSION:
                for statement in MIGRATIONS[version + 1]:
                    con.execute(statement)
                version += 1
        else:
            if kind == "missing":
                con.execute(sql.SQL("CREATE SCHEMA {}").format(schema))
            for statement in DDL:
                con.execute(statement)
            con.execute(
                f"INSERT INTO {META_TABLE} (name, value) VALUES ('application', %s)",
                (APPLICATION,),
            )
            con.execute(f"INSERT INTO {META_TABLE} (name, value) VALUES ('schema_version', '0')")
        con.execute(
            f"UPDATE {META_TABLE} SET value = %s WHERE name = 'schema_version'",
            (str(SCHEMA_VERSION),),
        )
