"""How record values are stored: strict JSON text and its hash.

Every lineage entry stores the record's value as JSON (NaN and Infinity are refused,
so the text is valid JSON any tool can read) and a BLAKE2b-128 hash of that text.
"""

from __future__ import annotations

import hashlib
import json
from json.encoder import c_make_encoder as _c_make_encoder
from json.encoder import encode_basestring as _encode_str
from typing import Any


def _not_serializable(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def to_json(value: Any) -> str:
    """The JSON text stored for ``value``.

    Raises
    ------
    TypeError, ValueError, RecursionError
        The value cannot be stored as strict JSON (see :data:`UNSTORABLE`).
    """
    if _c_make_encoder is None:  # an interpreter without json's C accelerator
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    else:
        # Exactly what that json.dumps call runs inside (same text, same errors, a fresh
        # circular-reference memo per call), minus building a JSONEncoder and checking
        # its keywords on every call: a third of the cost for a small record.
        text = "".join(
            _c_make_encoder(
                {}, _not_serializable, _encode_str, None, ":", ",", False, False, False
            )(value, 0)
        )
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            # Lone surrogates (say from a "\ud800" escape) are not UTF-8, so SQLite
            # cannot take them raw; as JSON escapes they load back to the same string.
            text = json.dumps(value, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text


#: What :func:`to_json` raises for a value that cannot be stored as strict JSON: not
#: JSON types, NaN/Infinity, an int too long to print, or nesting deeper than the stack.
UNSTORABLE = (TypeError, ValueError, RecursionError)


# A prepared empty BLAKE2b-128 state: copying it is cheaper than building a new one.
_EMPTY_HASH = hashlib.blake2b(digest_size=16)


def value_hash_bytes(data: bytes) -> str:
    """The hash of a stored value given as its UTF-8 bytes (as SQLite stores text).

    The integrity checks hash the stored bytes directly, without decoding every
    value into a Python string first; :func:`value_hash` is the same on text.

    Examples
    --------
    >>> value_hash_bytes('{"a":1}'.encode()) == value_hash('{"a":1}')
    True
    """
    h = _EMPTY_HASH.copy()
    h.update(data)
    return h.hexdigest()


def value_digest_bytes(data: bytes) -> bytes:
    """The 16 bytes of :func:`value_hash_bytes` (as the store keeps a hash), which the
    integrity checks compare with the stored bytes, making no text.

    Examples
    --------
    >>> value_digest_bytes(b'{"a":1}').hex() == value_hash_bytes(b'{"a":1}')
    True
    """
    h = _EMPTY_HASH.copy()
    h.update(data)
    return h.digest()


def value_hash(text: str) -> str:
    """The hash stored in ``lineage.value_hash`` for a stored JSON value.

    Examples
    --------
    >>> value_hash('{"key":"a"}') == value_hash('{"key":"a"}')
    True
    >>> len(value_hash("{}"))
    32
    """
    h = _EMPTY_HASH.copy()  # value_hash_bytes inlined: once per stored value
    h.update(text.encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def stored_form(value: Any) -> tuple[str, str]:
    """The JSON stored for a value; an unstorable value is kept as its repr string."""
    try:
        text = to_json(value)
    except UNSTORABLE:
        try:
            text = json.dumps(repr(value))
        except UNSTORABLE:  # too deep or an int too long even for repr()
            text = json.dumps(f"<unprintable {type(value).__name__}>")
    return text, value_hash(text)
