"""Stored JSON of a chunk's rows built a column at a time, for frame steps.

A record's stored JSON (:func:`lineage_kit.values.to_json`) is ``{``, its fields'
``"name":value`` texts joined by ``,``, and ``}``. Here each column's values are
encoded once, by type, through C-level ``map`` calls (``str`` by json's own
``encode_basestring``, ``int`` and ``float`` by their ``repr`` as json does), and the
rows are joined the same way, so the text and its hash are byte for byte those of
the record path, without a Python call per row. Whatever these encoders do not
reproduce exactly (NaN or infinity, a type without an encoder here, a lone
surrogate, a field name that is not text, records of different fields) gives None,
and the caller takes the per-row way.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from functools import partial
from itertools import filterfalse, repeat
from json.encoder import encode_basestring
from operator import methodcaller
from typing import Any

import numpy as np

from .values import UNSTORABLE, to_json

_NONE = type(None)
_BOOLS = {True: "true", False: "false"}.__getitem__
_NESTED = (dict, list, tuple)  # encoded cell by cell (a Python call each): rare in frames
_blake = partial(hashlib.blake2b, digest_size=16)
_hexdigest = methodcaller("hexdigest")


def regular_columns(values: Sequence[Any]) -> tuple[tuple[str, ...], list[tuple]] | None:
    """The records' field names and their columns, if every record has the same fields
    in the same order (all text); None otherwise.

    Examples
    --------
    >>> regular_columns([{"k": "a", "n": 1}, {"k": "b", "n": 2}])
    (('k', 'n'), [('a', 'b'), (1, 2)])
    >>> regular_columns([{"k": "a"}, {"n": 2, "k": "b"}]) is None
    True
    """
    if not values or not all(map(isinstance, values, repeat(dict))):
        return None
    shapes = set(map(tuple, values))
    if len(shapes) != 1:
        return None
    (names,) = shapes
    if not all(map(isinstance, names, repeat(str))):
        return None
    columns = list(zip(*map(dict.values, values), strict=True)) if names else []
    return names, columns


def fragments(values: Sequence[Any]) -> np.ndarray | None:
    """The JSON text of each value (an object array), as json encodes it; None where a
    value is not encoded here exactly (see the module docstring).

    Examples
    --------
    >>> fragments(["a", None, 1, 2.5, True, [1]]).tolist()
    ['"a"', 'null', '1', '2.5', 'true', '[1]']
    >>> fragments([float("nan")]) is None
    True
    """
    n = len(values)
    types = set(map(type, values))
    if len(types) == 1:
        return _encoded(types.pop(), values)
    cells = np.fromiter(values, dtype=object, count=n)
    kinds = np.fromiter(map(type, values), dtype=object, count=n)
    out = np.empty(n, dtype=object)
    for t in types:
        where = np.flatnonzero(kinds == t)
        part = _encoded(t, cells[where].tolist())
        if part is None:
            return None
        out[where] = part
    return out


def _encoded(t: type, values: Sequence[Any]) -> np.ndarray | None:
    n = len(values)
    if t is str:
        texts = map(encode_basestring, values)
    elif t is int:
        try:
            texts = list(map(int.__repr__, values))  # ValueError past 4,300 digits, as json
        except ValueError:
            return None
    elif t is float:
        if not all(map(math.isfinite, values)):  # NaN and infinity are not stored
            return None
        texts = map(float.__repr__, values)
    elif t is bool:
        texts = map(_BOOLS, values)
    elif t is _NONE:
        texts = repeat("null", n)
    elif t in _NESTED:
        try:
            texts = list(map(to_json, values))
        except UNSTORABLE:
            return None
    else:
        return None
    return np.fromiter(texts, dtype=object, count=n)


def rows(names: Sequence[str], columns: Sequence[np.ndarray], n: int) -> list[str] | None:
    """Each row's JSON, fields ``names`` with the texts in ``columns``; None if a row
    holds a lone surrogate (:func:`to_json` escapes the whole record then).

    Examples
    --------
    >>> rows(["a", "b"], [np.array(['"x"', '"y"'], dtype=object),
    ...                   np.array(["1", "2"], dtype=object)], 2)
    ['{"a":"x","b":1}', '{"a":"y","b":2}']
    >>> rows([], [], 2)
    ['{}', '{}']
    """
    if not names:
        return ["{}"] * n
    template = "{" + ",".join(encode_basestring(f).replace("%", "%%") + ":%s" for f in names) + "}"
    texts = list(map(template.__mod__, zip(*(c.tolist() for c in columns), strict=True)))
    if not all(map(str.isascii, texts)):
        try:
            for text in filterfalse(str.isascii, texts):
                text.encode("utf-8")
        except UnicodeEncodeError:
            return None
    return texts


def appended(
    texts: Sequence[str], names: Sequence[str], columns: Sequence[np.ndarray]
) -> list[str] | None:
    """Each row's JSON: the record whose JSON is in ``texts`` with fields ``names``
    added after its own, their texts in ``columns`` (as :func:`rows` would join them,
    without joining the record's fields again); None if that may differ.

    A record that holds no field, new texts that are not all ASCII, or a record whose
    JSON may be escaped as a whole for a lone surrogate (it holds ``\\ud``) give None.

    Examples
    --------
    >>> appended(['{"a":1}', '{"a":2}'], ["b"], [np.array(['"x"', '"y"'], dtype=object)])
    ['{"a":1,"b":"x"}', '{"a":2,"b":"y"}']
    >>> appended(["{}"], ["b"], [np.array(["1"], dtype=object)]) is None
    True
    """
    texts = list(texts)
    new = [c.tolist() for c in columns]
    if "{}" in texts or "\\ud" in "".join(texts):
        return None
    if not all(all(map(str.isascii, c)) for c in new):
        return None
    tail = "".join("," + encode_basestring(f).replace("%", "%%") + ":%s" for f in names)
    template = "%s" + tail + "}"
    heads = map(str.__getitem__, texts, repeat(slice(None, -1)))
    return list(map(template.__mod__, zip(heads, *new, strict=True)))


def hashes(texts: Sequence[str]) -> list[str]:
    """:func:`lineage_kit.values.value_hash` of each text (texts without lone
    surrogates, as :func:`rows` gives them).

    Examples
    --------
    >>> from lineage_kit.values import value_hash
    >>> hashes(['{"a":1}']) == [value_hash('{"a":1}')]
    True
    """
    return list(map(_hexdigest, map(_blake, map(str.encode, texts))))
