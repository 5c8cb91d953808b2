"""The elements of a JSON array, decoded one at a time from a stream of text.

A JSON array file is read in blocks and each element is decoded by the standard
library's own scanner (the one ``json.loads`` runs), so memory stays flat however
long the array is, every value is exactly what ``json.loads`` of the whole file
would give, and malformed input gets ``json.loads``'s message at the same line and
column. Why not ``ijson``: measured on 1M records it was no faster here, it adds a
compiled dependency, and its numbers, its errors and its handling of ``NaN`` differ
from ``json``'s (see README, "Reading inputs").
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

# json's own whitespace (json.decoder.WHITESPACE): what it skips between tokens
_WS = re.compile(r"[ \t\n\r]*")
# A value is trusted only with this much text read past its end (or at the end of
# the input): "1" may be the start of "1.5e3", a truncated "tru" of "true" fails
# within a few characters of where the text stops.
_LOOKAHEAD = 64
_SCAN = json.JSONDecoder().scan_once  # what json.loads uses


class NotAnArray(Exception):
    """The text does not start with ``[`` (after whitespace); nothing was decoded."""


class MalformedJSON(Exception):
    """Malformed JSON: ``json.loads``'s message and where (1-based line and column)."""

    def __init__(self, msg: str, line: int, column: int) -> None:
        super().__init__(f"{msg}: line {line} column {column}")
        self.msg = msg
        self.line = line
        self.column = column


class _Text:
    """A growing window onto the text: what has been read and not yet consumed."""

    def __init__(self, blocks: Iterator[str]) -> None:
        self._blocks = blocks
        self.buf = ""
        self.pos = 0
        self.eof = False
        self.keep: int | None = None  # do not drop text from here on (an error may need it)
        self._lines = 0  # newlines in the text dropped so far
        self._column = 0  # characters after the last dropped newline

    def more(self) -> bool:
        """Read one more block (dropping consumed text); False at the end of the input."""
        if self.eof:
            return False
        block = next(self._blocks, None)
        if block is None:
            self.eof = True
            return False
        cut = self.pos if self.keep is None else min(self.pos, self.keep)
        if cut:
            self._lines += self.buf.count("\n", 0, cut)
            last = self.buf.rfind("\n", 0, cut)
            self._column = cut - last - 1 if last >= 0 else self._column + cut
            self.buf = self.buf[cut:]
            self.pos -= cut
            if self.keep is not None:
                self.keep -= cut
        self.buf += block
        return True

    def fill(self, wanted: int) -> None:
        """Read until ``wanted`` characters are waiting past ``pos``, or the end."""
        while len(self.buf) - self.pos < wanted and self.more():
            pass

    def peek(self) -> str | None:
        """Skip whitespace; the next character, or None at the end of the input."""
        while True:
            self.pos = _WS.match(self.buf, self.pos).end()
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self.more():
                return None

    def where(self, index: int) -> tuple[int, int]:
        """The line and column of ``buf[index]`` in the whole text, as json counts."""
        line = self._lines + self.buf.count("\n", 0, index) + 1
        last = self.buf.rfind("\n", 0, index)
        return line, (index - last if last >= 0 else self._column + index + 1)


def _value(text: _Text) -> Any:
    """Decode the value at ``text.pos`` (reading more text as it needs) and step past it."""
    while True:
        # Only the message and offset of an error are kept: the exception itself holds
        # the buffer and, through its traceback, this frame (a cycle only the garbage
        # collector would free, holding old buffers meanwhile).
        error: tuple[str, int] | None = None
        try:
            value, end = _SCAN(text.buf, text.pos)
        except StopIteration as stop:
            error = ("Expecting value", stop.value)
        except json.JSONDecodeError as exc:
            error = (exc.msg, exc.pos)
        else:
            if text.eof or len(text.buf) - end > _LOOKAHEAD:
                text.pos = end
                return value
        if error is not None:
            msg, pos = error
            cut_short = msg.startswith("Unterminated string") or len(text.buf) - pos <= _LOOKAHEAD
            if text.eof or not cut_short:
                raise MalformedJSON(msg, *text.where(pos))
        # Read as much again as is waiting, so a huge value is rescanned O(log n) times.
        text.fill(2 * (len(text.buf) - text.pos) + _LOOKAHEAD + 1)


def _fail(text: _Text, prefix: str, start: int) -> None:
    """Raise json's own error for the structure at ``buf[start:pos + 1]``.

    Between elements there is no value to scan: ``json.loads`` of a tiny document
    with the same structure (``prefix`` standing for what came before) gives the
    message this Python's json uses (it changes between versions) and its offset.
    """
    snippet = text.buf[start : text.pos + 1]
    try:
        json.loads(prefix + snippet)
    except json.JSONDecodeError as exc:
        raise MalformedJSON(exc.msg, *text.where(start + exc.pos - len(prefix))) from None
    raise MalformedJSON("Expecting ',' delimiter", *text.where(start))  # pragma: no cover


def iter_array(blocks: Iterator[str]) -> Iterator[Any]:
    """Yield the elements of the JSON array whose text arrives in ``blocks``.

    Parameters
    ----------
    blocks : iterator of str
        The text, in pieces of any size (a leading BOM already removed).

    Yields
    ------
    object
        Each element, as ``json.loads`` would decode it.

    Raises
    ------
    NotAnArray
        The text is empty or does not start with ``[``; nothing was yielded.
    MalformedJSON
        The text is not valid JSON (possibly after some elements were yielded).
    RecursionError, ValueError
        As ``json.loads`` raises them (nesting too deep, an int too long).

    Examples
    --------
    >>> list(iter_array(iter(['[{"a": 1}, 2', '.5, "x"]'])))
    [{'a': 1}, 2.5, 'x']
    >>> list(iter_array(iter(["[1,\\n 2 3]"])))
    Traceback (most recent call last):
    ...
    lineage_kit.jsonstream.MalformedJSON: Expecting ',' delimiter: line 2 column 4
    """
    text = _Text(blocks)
    if text.peek() != "[":
        raise NotAnArray
    text.pos += 1
    if text.peek() == "]":
        text.pos += 1
    else:
        while True:
            if text.peek() is None:
                _fail(text, "[", text.pos)
            yield _value(text)
            following = text.peek()
            if following == "]":
                text.pos += 1
                break
            if following != ",":
                _fail(text, "[0", text.pos)
            text.keep = text.pos
            text.pos += 1
            if text.peek() in ("]", None):  # a trailing comma, or the end
                _fail(text, "[0", text.keep)
            text.keep = None
    if text.peek() is not None:
        _fail(text, "[]", text.pos)
