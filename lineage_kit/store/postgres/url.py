"""Store URLs: which locations are PostgreSQL, and how to show one without its password.

Nothing here imports psycopg, so the CLI can tell a URL from a path and print it
safely at start-up.
"""

from __future__ import annotations

import os
import re
from typing import NamedTuple

_SCHEMES = ("postgresql://", "postgres://")
#: The store's schema when the URL names none (``?schema=...``).
DEFAULT_SCHEMA = "lineage_kit"
_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}")


def is_url(location: object) -> bool:
    """Whether ``location`` names a PostgreSQL store (``postgresql://...``).

    Examples
    --------
    >>> is_url("postgresql://me@db.example/lineage"), is_url("lineage.db")
    (True, False)
    """
    return isinstance(location, str) and location.lower().startswith(_SCHEMES)


class StoreURL(NamedTuple):
    """A parsed store URL.

    Attributes
    ----------
    conninfo : str
        What libpq is given: the URL without lineage_kit's own ``schema`` parameter
        (``PG*`` variables and ``~/.pgpass`` fill in what it leaves out).
    schema : str
        The store's schema.
    password : str or None
        The password in the URL, only so that messages can blank it out.
    shown : str
        The URL without its password, for messages and ``RunResult.db``.
    """

    conninfo: str
    schema: str
    password: str | None
    shown: str


def parse(url: str) -> StoreURL:
    """Split a store URL into what libpq gets, the schema and a printable form.

    Raises
    ------
    ValueError
        The schema name is not a plain SQL identifier.

    Examples
    --------
    >>> u = parse("postgresql://ann:s3cret@db.example:5433/team?schema=lk&sslmode=require")
    >>> u.schema, u.shown
    ('lk', 'postgresql://ann@db.example:5433/team?schema=lk&sslmode=require')
    >>> "s3cret" in u.conninfo, "schema" in u.conninfo
    (True, False)
    """
    from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = DEFAULT_SCHEMA
    rest = []
    for name, value in query:
        if name == "schema":
            schema = value
        else:
            rest.append((name, value))
    if not _SCHEMA_NAME.fullmatch(schema):
        raise ValueError(
            f"schema={schema!r} in the store URL is not a plain identifier "
            "(letters, digits, _ and $, not starting with a digit)"
        )
    password = parts.password
    netloc = parts.netloc.rpartition("@")[2]
    if parts.username is not None:
        netloc = f"{quote(parts.username, safe='')}@{netloc}"
    conninfo = urlunsplit(parts._replace(query=urlencode(rest)))
    shown_query = [(n, "***" if n == "password" else v) for n, v in query]
    shown = urlunsplit(parts._replace(netloc=netloc, query=urlencode(shown_query, safe="$")))
    query_password = next((v for n, v in rest if n == "password"), None)
    return StoreURL(conninfo, schema, password or query_password, shown)


def redact(location: object) -> str:
    """A location as it may be shown: a URL without its password, a path as it is.

    Examples
    --------
    >>> redact("postgresql://ann:s3cret@db/team")
    'postgresql://ann@db/team'
    >>> redact("lineage.db")
    'lineage.db'
    """
    text = os.fspath(location) if isinstance(location, os.PathLike) else str(location)
    if not is_url(text):
        return text
    try:
        return parse(text).shown
    except ValueError:
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(text)
        return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2], query=""))
