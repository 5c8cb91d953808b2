"""What the capture side and the analysis side both need, below both of them.

The record-key rule (the sources make keys with it; the explore functions turn a
user's key into stored key text with it), a small escaped HTML table for notebook
display, the naming of the stages between steps (the step graph and the OpenLineage
events), and the package version. It imports nothing from lineage_kit but
:mod:`lineage_kit.errors`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

__version__ = "0.1.0"


# --------------------------------------------------------------------------- keys

#: Separator between the parts of a composite key (``--key region,order_id``); see
#: :func:`composite_key` for parts that contain it.
KEY_SEPARATOR = "|"


_EXACT = 2**53  # every integer up to this is exactly a float


def key_part(value: Any, name: str) -> tuple[str | None, str | None, str | None]:
    # The usual key, once per input record: ASCII text (valid UTF-8, its own text),
    # not blank, without a NUL.
    usual = type(value) is str and value.isascii() and value and not value.isspace()
    if usual and "\x00" not in value:
        return value, None, None
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, "missing_key", f"key field {name!r} is missing, null or empty"
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        kind = type(value).__name__
        return None, "invalid_key", f"key field {name!r} is a {kind}; keys are strings or numbers"
    if isinstance(value, float):
        if not math.isfinite(value):
            return None, "invalid_key", f"key field {name!r} is {value}"
        # One rule wherever a key is given or read: a whole number held exactly by a
        # float is its integer text (7.0 -> "7", as 7 is), whatever else its column holds.
        text = str(int(value)) if value.is_integer() and abs(value) <= _EXACT else repr(value)
    else:
        try:
            text = str(value)
        except ValueError:  # an int longer than sys.get_int_max_str_digits()
            return None, "invalid_key", f"key field {name!r} is an integer too long to use"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return None, "invalid_key", f"key field {name!r} is not valid Unicode text"
    if "\x00" in text:
        # SQLite's JSON functions (used to find duplicate keys) stop at a NUL, and a
        # NUL cannot be passed on a command line: refuse it rather than mis-handle it.
        return None, "invalid_key", f"key field {name!r} contains a NUL character"
    return text, None, None


def composite_key(parts: Sequence[str]) -> str:
    """The key of a record keyed by several fields: the parts' texts joined by ``|``.

    When no part contains ``|``, the key is the parts joined with ``|``
    (``"EU|1017"``). When some part does, every ``\\`` and ``|`` inside every part
    is escaped with a backslash first (``("EU|1", "2")`` -> ``"EU\\|1|2"``,
    ``("EU", "1|2")`` -> ``"EU|1\\|2"``), so such a key holds more ``|`` than it
    has separators and can equal neither a plain key nor another escaped one.

    Parameters
    ----------
    parts : sequence of str
        The key parts' texts, in key-field order (at least two).

    Returns
    -------
    str

    Examples
    --------
    >>> composite_key(["EU", "1017"])
    'EU|1017'
    >>> print(composite_key(["EU|1", "2"]), composite_key(["EU", "1|2"]))
    EU\\|1|2 EU|1\\|2
    """
    if not any(KEY_SEPARATOR in part for part in parts):
        return KEY_SEPARATOR.join(parts)
    return KEY_SEPARATOR.join(
        part.replace("\\", "\\\\").replace(KEY_SEPARATOR, "\\" + KEY_SEPARATOR) for part in parts
    )


def key_text(value: str | int | float | Sequence[str | int | float]) -> str:
    """The record key a source makes of ``value``: text as is, a number as text.

    Record keys are stored as text. A number is turned into text by the rule the
    sources apply to a key field (``110`` -> ``"110"``, ``2.5`` -> ``"2.5"``,
    ``1e20`` -> ``"1e+20"``), so ``store.trace(110)`` finds the record read from
    ``{"id": 110}``. numpy numbers count as numbers. A list or tuple of two or more
    parts is a composite key (``key=["region", "id"]``), joined by
    :func:`composite_key`.

    Parameters
    ----------
    value : str, int, float, or a list or tuple of them
        A record key, or the parts of a composite key.

    Returns
    -------
    str
        The key as stored.

    Raises
    ------
    TypeError
        ``value`` is not text or a number (a bool, None, a dict, a list of fewer than
        two parts, a part that is a list, ...).
    ValueError
        ``value`` is a number no source accepts as a key (NaN, infinite) or text
        holding a NUL character.

    Examples
    --------
    >>> key_text(110), key_text("order-101"), key_text(["EU", 1017])
    ('110', 'order-101', 'EU|1017')
    """
    if isinstance(value, list | tuple):
        if len(value) < 2 or any(isinstance(part, list | tuple) for part in value):
            raise TypeError(
                f"a composite key is a list or tuple of two or more texts or numbers, not {value!r}"
            )
        return composite_key([key_text(part) for part in value])
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("a record key cannot contain a NUL character")
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"a record key is text or a number, not {type(value).__name__}")
    text, _, message = key_or_reason(value, "key")
    if text is None:
        raise ValueError(message)
    return text


def key_or_reason(value: Any, name: str) -> tuple[str | None, str | None, str | None]:
    """Apply the sources' key rule to a key a step made (a split child's, a merge group's).

    The rule of :func:`key_text`, reported rather than raised, so that a record with an
    unusable key is rejected with the same reason code a source would give it.

    Parameters
    ----------
    value : Any
        The key as the step returned it.
    name : str
        What to call it in the message (``"group key"``, ...).

    Returns
    -------
    tuple
        ``(key, None, None)`` for a usable key, else ``(None, reason, message)`` with
        reason ``missing_key`` (None, blank text) or ``invalid_key`` (a bool, a
        container, NaN, ...).

    Examples
    --------
    >>> key_or_reason(7, "group key")
    ('7', None, None)
    >>> key_or_reason(True, "group key")[1]
    'invalid_key'
    """
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = int(value)  # numpy integers too
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        value = float(value)  # numpy floats (a float subclass whose repr differs)
    return key_part(value, name)


# --------------------------------------------------------------------- display


def html_table(headers: list[str], rows: list[list[Any]], caption: str = "") -> str:
    """A small escaped HTML table."""
    from html import escape  # notebooks only: `lineage-kit run` never draws one

    head = "".join(f"<th>{escape(str(h))}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape('' if c is None else str(c))}</td>" for c in row) + "</tr>"
        for row in rows
    )
    cap = f"<caption>{escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# ------------------------------------------------------------------------ stages


def stage_of(steps: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """The (source stage, destination stage) of each step, in order.

    A step without a source reads the previous step's destination (the first step:
    ``"input"``); a step without a destination writes a stage named after itself.
    A step that would repeat an earlier step's stage pair, or loop onto its own
    source, writes a stage named after itself instead, so every step is one edge
    and the graph stays a DAG.

    Returns
    -------
    list of (str, str)

    Examples
    --------
    >>> stage_of([{"name": "a", "source": "file", "destination": "x"}, {"name": "b"}])
    [('file', 'x'), ('x', 'b')]
    """
    pairs: list[tuple[str, str]] = []
    previous = "input"
    for st in steps:
        source = st.get("source") or previous
        destination = st.get("destination") or st["name"]
        if destination == source or (source, destination) in pairs:
            destination = st["name"]
        pairs.append((source, destination))
        previous = destination
    return pairs
