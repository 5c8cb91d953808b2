"""Texts PostgreSQL cannot hold, stored losslessly.

PostgreSQL refuses NUL in ``text`` columns, and psycopg cannot send a lone
surrogate (it is not UTF-8). Such a key, reason or error is stored the way values
are: as JSON string escapes (``\\u0000``, ``\\ud800``), behind a marker character
(U+FFFF, a noncharacter no input text is expected to hold; a text that does start
with it is escaped too, so decoding is exact). Every other text is stored as it is.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

MARK = "\uffff"


def _needs(text: str) -> bool:
    if "\x00" in text or text.startswith(MARK):
        return True
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def encode(text: str | None) -> str | None:
    """The stored form of a text.

    Examples
    --------
    >>> encode("order-1"), encode("a\\x00b")
    ('order-1', '\\uffffa\\\\u0000b')
    """
    if text is None or not _needs(text):
        return text
    return MARK + json.dumps(text, ensure_ascii=True)[1:-1]


def decode(text: str | None) -> str | None:
    """The text a stored form stands for (:func:`encode` reversed).

    Examples
    --------
    >>> decode(encode("a\\x00b\\ud800")) == "a\\x00b\\ud800"
    True
    """
    if text is None or not text.startswith(MARK):
        return text
    return json.loads('"' + text[1:] + '"')


def encode_all(texts: Sequence[str | None]) -> Sequence[str | None]:
    """:func:`encode` of each text; the same list when none needs it (one scan).

    Examples
    --------
    >>> encode_all(["a", None])
    ['a', None]
    """
    joined = "".join(t for t in texts if t is not None)
    if "\x00" not in joined and MARK not in joined:
        if joined.isascii():
            return texts
        try:
            joined.encode("utf-8")
            return texts
        except UnicodeEncodeError:
            pass
    return [encode(t) for t in texts]


def decode_json_list(raw: str) -> list:
    """A JSON array of stored texts, loaded and decoded.

    Examples
    --------
    >>> decode_json_list('["a", null]')
    ['a', None]
    """
    items = json.loads(raw)
    if MARK in raw:
        items = [decode(t) if isinstance(t, str) else t for t in items]
    return items


def decode_json_text(raw: str | None) -> str | None:
    """A JSON array of stored texts as JSON text with the texts decoded (what the
    SQLite backend returns: callers ``json.loads`` it)."""
    if raw is None or MARK not in raw:
        return raw
    return json.dumps(decode_json_list(raw))
