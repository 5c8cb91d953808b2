"""Turning files, DataFrames and iterables into keyed source items.

A source never writes anything. It yields :class:`SourceItem` objects: a record with
its key, or a record that must be rejected, with a reason code saying why. A file
that cannot be read at all raises :class:`~lineage_kit.errors.InputError` naming
the file, line and column where known.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import io
import json
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

from .base import composite_key, key_part
from .errors import InputError, InvalidArgument
from .jsonstream import MalformedJSON, NotAnArray, iter_array

#: Input formats understood by :func:`open_source`.
FORMATS = ("json", "jsonl", "csv")

KeySpec = str | Sequence[str] | Callable[[Any], Any]


@dataclass(slots=True)
class SourceItem:
    """One input record: ``key`` and ``value``, or a ``reason`` it must be rejected."""

    key: str | None
    value: Any
    reason: str | None = None
    message: str | None = None


class Source:
    """An input, opened lazily: iterate :meth:`items` once.

    Attributes
    ----------
    path : str or None
        The file read, or None for in-memory data.
    sha256 : str or None
        Hash of the file's bytes; set once :meth:`items` is exhausted.
    delimiter : str or None
        A CSV file's field delimiter (given or sniffed), once its header was read.
    fresh : bool
        Every value is a new object no one else holds (read from a file or built from
        a DataFrame), so a step may change it in place without a copy being made.
    """

    def __init__(
        self,
        records: Callable[[], Iterator[Any]],
        key: KeySpec,
        path: str | None,
        *,
        fresh: bool = False,
    ):
        self._records = records
        self.key = key
        self._key = _key_function(key)
        self.path = path
        self.sha256: str | None = None
        self.delimiter: str | None = None
        self.fresh = fresh
        self.frame: Any = None  # the DataFrame read, for frame steps to start from

    def items(self) -> Iterator[SourceItem]:
        """Yield one :class:`SourceItem` per input record, in input order.

        Raises
        ------
        InputError
            The input cannot be read (possibly after some items were yielded).
        """
        key_of = self._key
        for record in self._records():
            if isinstance(record, _Malformed):
                yield SourceItem(None, record.value, "malformed_row", record.message)
            elif not isinstance(record, dict):
                kind = type(record).__name__
                yield SourceItem(
                    None, record, "not_an_object", f"record is a {kind}, not an object"
                )
            else:
                key, reason, message = key_of(record)
                yield SourceItem(key, record, reason, message)


@dataclass(slots=True)
class _Malformed:
    value: Any
    message: str


# --------------------------------------------------------------------------- keys


def _normal(name: str) -> str:
    return name.strip().lower()


def _lookup(record: dict, name: str) -> Any:
    if name in record:
        return record[name]
    # The key may be spelled messily on either side (" Order No " for "order no"):
    # match both normalised, as the normalize step would.
    wanted = _normal(name)
    for field, value in record.items():
        if isinstance(field, str) and _normal(field) == wanted:
            return value
    return None


def absent_key_fields(
    items: Sequence[SourceItem], key: KeySpec, delimiter: str | None = None
) -> str | None:
    """Explain a key that no record has at all (a wrong ``key``, ``format`` or delimiter).

    Parameters
    ----------
    items : sequence of SourceItem
        The first items read (a pipeline looks at its first chunk).
    key : str, sequence of str or callable
        The key spec the items were read with.
    delimiter : str, optional
        The delimiter a CSV input was read with (:attr:`Source.delimiter`): the
        message then names another delimiter the header looks delimited by.

    Returns
    -------
    str or None
        A message naming the key and the fields that were seen, when every item was
        rejected and no object among them has the key field(s); otherwise None.

    Examples
    --------
    >>> items = list(open_source([{"key;amount": "a;1"}], key="key").items())
    >>> "the header looks ';'-delimited" in absent_key_fields(items, "key", delimiter=",")
    True
    """
    if callable(key) or not items or any(it.reason is None for it in items):
        return None
    names = [key] if isinstance(key, str) else list(key)
    wanted = {_normal(n) for n in names}
    objects = [it.value for it in items if isinstance(it.value, dict)]
    if not any(objects):  # no fields at all to suggest: the data is just bad
        return None
    for record in objects:
        if wanted <= {_normal(str(f)) for f in record}:
            return None
    seen = sorted({str(f) for record in objects[:100] for f in record})
    shown = ", ".join(repr(f) for f in seen[:15]) + (", ..." if len(seen) > 15 else "")
    spelled = ", ".join(repr(n) for n in names)
    hint = ""
    if delimiter is not None:
        names_text = "".join(seen)
        count, other = max(
            (names_text.count(d), d) for d in (",", *OTHER_DELIMITERS) if d != delimiter
        )
        if count:
            hint = (
                f" -- the header looks {other!r}-delimited, try --delimiter {other!r} "
                f"(delimiter={other!r})"
            )
    return (
        f"no record among the first {len(items)} has the key field {spelled}; fields seen: "
        f"{shown}{hint}. Choose the key with key=... (CLI: --key FIELD or --key A,B), "
        "or check the format"
    )


def _key_function(key: KeySpec) -> Callable[[dict], tuple[str | None, str | None, str | None]]:
    if callable(key):

        def from_callable(record: dict) -> tuple[str | None, str | None, str | None]:
            try:
                value = key(record)
            except Exception as exc:  # the user's function: any error rejects the record
                return None, "missing_key", f"key function raised {type(exc).__name__}: {exc}"
            return key_part(value, getattr(key, "__name__", "key"))

        return from_callable

    names = [key] if isinstance(key, str) else list(key) if isinstance(key, list | tuple) else []
    if not names or not all(isinstance(n, str) and n for n in names):
        raise InvalidArgument(
            "key= takes a field name, a list of field names or a callable, "
            f"not {type(key).__name__} {key!r}",
            argument="key",
        )
    if len(names) == 1:
        (name,) = names
        return lambda record: key_part(_lookup(record, name), name)

    def composite(record: dict) -> tuple[str | None, str | None, str | None]:
        parts = []
        for name in names:
            text, reason, message = key_part(_lookup(record, name), name)
            if reason:
                return None, reason, message
            parts.append(text)
        return composite_key(parts), None, None

    return composite


def parse_key_option(text: str) -> str | list[str]:
    """Turn a CLI ``--key`` value (``"id"`` or ``"region,order_id"``) into a key spec."""
    names = [part.strip() for part in text.split(",")]
    if not all(names):
        raise InvalidArgument(f"--key {text!r}: field names must not be empty")
    return names[0] if len(names) == 1 else names


# ------------------------------------------------------------------------- files


class _HashingReader(io.RawIOBase):
    """A binary file wrapper that hashes every byte read through it."""

    def __init__(self, raw: io.BufferedReader) -> None:
        self._raw = raw
        self.hash = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self._raw.readinto(buffer)
        if n:
            self.hash.update(memoryview(buffer)[:n])
        return n or 0

    def close(self) -> None:
        self._raw.close()
        super().close()


def guess_format(path: str | os.PathLike[str]) -> str:
    """Guess ``json``, ``jsonl`` or ``csv`` from a file name (``.gz`` is looked through).

    Raises
    ------
    InputError
        The suffix is not one of ours.
    """
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    suffix = suffixes[-1] if suffixes else ""
    fmt = {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}.get(suffix)
    if fmt is None:
        raise InputError(
            f"cannot tell the format from the suffix {suffix or '(none)'!r}; "
            "pass format='json', 'jsonl' or 'csv'",
            path=str(path),
        )
    return fmt


def _open_binary(path: Path) -> tuple[io.BufferedIOBase, _HashingReader]:
    try:
        raw = path.open("rb")
    except FileNotFoundError:
        raise InputError("file not found", path=str(path)) from None
    except IsADirectoryError:
        raise InputError("is a directory, not a file", path=str(path)) from None
    except OSError as exc:
        raise InputError(f"cannot be read: {exc.strerror or exc}", path=str(path)) from None
    hashing = _HashingReader(raw)
    buffered = io.BufferedReader(hashing, buffer_size=1 << 16)
    if path.suffix.lower() == ".gz":
        return gzip.GzipFile(fileobj=buffered, mode="rb"), hashing  # type: ignore[return-value]
    return buffered, hashing


def _decode_error(path: Path, data: bytes, exc: UnicodeDecodeError) -> InputError:
    line = data.count(b"\n", 0, exc.start) + 1
    column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
    return InputError(f"invalid UTF-8 ({exc.reason})", path=str(path), line=line, column=column)


def _locate_invalid_utf8(path: Path) -> InputError:
    data = _read_whole(path)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _decode_error(path, data, exc)
    return InputError("invalid UTF-8", path=str(path))  # pragma: no cover - decoded above


#: Bytes read at a time from a JSON array file (64 KiB read faster than 1 MiB here).
JSON_BLOCK = 1 << 16


#: What decoding JSON raises for bad input: malformed text, nesting deeper than the
#: stack, an integer longer than ``sys.get_int_max_str_digits()`` (a ValueError).
_JSON_ERRORS = (MalformedJSON, RecursionError, ValueError)


def _json_error(path: Path, exc: BaseException) -> InputError:
    """The InputError for one of :data:`_JSON_ERRORS` raised while decoding ``path``."""
    if isinstance(exc, MalformedJSON):
        where = {"line": exc.line, "column": exc.column}
    elif isinstance(exc, json.JSONDecodeError):
        where = {"line": exc.lineno, "column": exc.colno}
    elif isinstance(exc, RecursionError):
        return InputError("JSON nested too deeply to read", path=str(path))
    else:
        return InputError(f"unreadable JSON value: {exc}", path=str(path))
    return InputError(f"malformed JSON: {exc.msg}", path=str(path), **where)


def _read_json_array(path: Path, source: Source) -> Iterator[Any]:
    """A JSON array file's elements, streamed: memory stays flat for any length."""
    fh, hashing = _open_binary(path)
    decoder = codecs.getincrementaldecoder("utf-8-sig")()

    def blocks() -> Iterator[str]:
        while True:
            try:
                data = fh.read(JSON_BLOCK)
            except (OSError, EOFError, gzip.BadGzipFile) as exc:
                raise InputError(f"cannot be read: {exc}", path=str(path)) from None
            try:
                yield decoder.decode(data, final=not data)
            except UnicodeDecodeError:
                raise _locate_invalid_utf8(path) from None
            if not data:
                return

    try:
        yield from iter_array(blocks())
    except NotAnArray:
        fh.close()
        raise _json_document_error(path) from None
    except _JSON_ERRORS as exc:
        raise _json_error(path, exc) from None
    finally:
        fh.close()
    source.sha256 = hashing.hash.hexdigest()


def _json_document_error(path: Path) -> InputError:
    """Why a JSON file that does not start with ``[`` is refused (read whole: it is
    not an array of records, so it is short or an error anyway)."""
    data = _read_whole(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _decode_error(path, data, exc) from None
    if not text.strip():
        raise InputError("file is empty", path=str(path))
    try:
        records = json.loads(text)
    except _JSON_ERRORS as exc:
        raise _json_error(path, exc) from None
    return InputError(
        f"expected a JSON array of records, found a {type(records).__name__}; "
        "for one record per line use format='jsonl'",
        path=str(path),
    )


def _read_whole(path: Path) -> bytes:
    """All of a file (decompressed), for the error messages that need all of it."""
    fh, _ = _open_binary(path)
    try:
        return fh.read()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InputError(f"cannot be read: {exc}", path=str(path)) from None
    finally:
        fh.close()


def _read_json_lines(path: Path, source: Source) -> Iterator[Any]:
    fh, hashing = _open_binary(path)
    try:
        for number, line in enumerate(_lines(fh, path), start=1):
            if number == 1 and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
            if not line.strip():
                continue
            try:
                text = line.rstrip(b"\r\n").decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(
                    f"invalid UTF-8 ({exc.reason})",
                    path=str(path),
                    line=number,
                    column=exc.start + 1,
                ) from None
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InputError(
                    f"malformed JSON: {exc.msg}", path=str(path), line=number, column=exc.colno
                ) from None
            except RecursionError:
                raise InputError(
                    "JSON nested too deeply to read", path=str(path), line=number
                ) from None
            except ValueError as exc:  # an integer longer than the int-to-str limit
                raise InputError(
                    f"unreadable JSON value: {exc}", path=str(path), line=number
                ) from None
            yield record
    finally:
        fh.close()
    source.sha256 = hashing.hash.hexdigest()


def _lines(fh: io.BufferedIOBase, path: Path) -> Iterator[bytes]:
    try:
        yield from fh
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InputError(f"cannot be read: {exc}", path=str(path)) from None


#: Delimiters :func:`sniff_delimiter` considers besides the comma.
OTHER_DELIMITERS = (";", "\t", "|")


def sniff_delimiter(header: str) -> str:
    """The delimiter of a CSV file, judged from its header line.

    A comma, unless the header holds no comma outside double quotes but holds a
    ``;``, a tab or a ``|``: then the most frequent of those (the first listed on a
    tie). A header with none of them is one column, read with a comma.

    Examples
    --------
    >>> sniff_delimiter("key,amount"), sniff_delimiter("key;amount"), sniff_delimiter("key")
    (',', ';', ',')
    """
    unquoted = "".join(header.split('"')[::2])
    if "," in unquoted:
        return ","
    counts = [(unquoted.count(d), -i, d) for i, d in enumerate(OTHER_DELIMITERS)]
    count, _, best = max(counts)
    return best if count else ","


def check_delimiter(delimiter: str) -> str:
    """``delimiter`` if it can delimit CSV fields: one character, not a quote or newline.

    Raises
    ------
    ValueError
        It cannot.
    """
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in '"\r\n':
        raise ValueError(
            f"a CSV delimiter is one character other than a quote or a newline, not {delimiter!r}"
        )
    return delimiter


def _lift_csv_field_limit() -> None:
    # Python's csv refuses fields over 131,072 characters by default; a real export
    # can hold more in one cell. Allow what the platform's C long allows.
    import csv

    limit = sys.maxsize
    while True:
        try:
            csv.field_size_limit(limit)
            return
        except OverflowError:
            limit //= 2


def _read_csv(path: Path, source: Source, delimiter: str | None) -> Iterator[Any]:
    import csv  # here: a JSON input never needs the module

    _lift_csv_field_limit()
    fh, hashing = _open_binary(path)
    text = io.TextIOWrapper(fh, encoding="utf-8-sig", newline="")
    try:
        try:
            first = text.readline()
            if delimiter is None:
                delimiter = sniff_delimiter(first.rstrip("\r\n"))
            source.delimiter = delimiter
            reader = csv.reader(chain([first], text) if first else text, delimiter=delimiter)
            header = next(reader, None)
            if header is None:
                raise InputError("file is empty (no header row)", path=str(path))
            width = len(header)
            repeated = sorted({name for name in header if header.count(name) > 1})
            if repeated:
                # dict(zip(header, row)) would silently keep only the last of them
                raise InputError(
                    f"duplicate column names in the header: {', '.join(map(repr, repeated))}",
                    path=str(path),
                    line=1,
                )
            for row in reader:
                if not row:
                    continue
                if len(row) != width:
                    yield _Malformed(
                        row,
                        f"line {reader.line_num}: {len(row)} fields where the header has {width}",
                    )
                    continue
                yield dict(zip(header, row, strict=True))
        except UnicodeDecodeError:
            # The text layer decodes ahead in blocks, so the csv line number can be far
            # too early: find the bad byte in the file itself.
            raise _locate_invalid_utf8(path) from None
        except csv.Error as exc:
            raise InputError(
                f"malformed CSV: {exc}", path=str(path), line=reader.line_num
            ) from None
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise InputError(f"cannot be read: {exc}", path=str(path)) from None
    finally:
        text.close()
    # A header without rows is an empty input (an empty daily extract): no records.
    source.sha256 = hashing.hash.hexdigest()


_READERS = {"json": _read_json_array, "jsonl": _read_json_lines}


# ---------------------------------------------------------------- in-memory data


def _clean_scalar(value: Any) -> Any:
    # pandas hands back NaN/NaT for missing cells and Timestamps for dates.
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if type(value).__name__ in ("NaTType", "NAType"):
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item") and not isinstance(value, list | dict | str):
        return value.item()  # numpy scalar
    return value


def _upcast_key_columns(frame: Any, columns: list[str], key: KeySpec) -> set[str]:
    """The key columns pandas turned from integers into floats to hold a missing value.

    ``pd.DataFrame({"id": [7, None]})`` has a float64 ``id`` column; its keys are
    meant to be ``7``, not ``7.0``. A float key column counts as upcast when it has a
    missing value and every other value is a whole number a float holds exactly.
    """
    if callable(key):
        return set()
    wanted = {_normal(n) for n in ([key] if isinstance(key, str) else key)}
    found = set()
    for name, column in zip(columns, frame.columns, strict=True):
        series = frame[column]
        if _normal(name) not in wanted or series.dtype.kind != "f" or not series.isna().any():
            continue
        present = series.dropna()
        if ((present % 1 == 0) & (present.abs() <= 2**53)).all():
            found.add(name)
    return found


def _dataframe_records(frame: Any, key: KeySpec, chunk: int = 10_000) -> Iterator[dict]:
    columns = [str(c) for c in frame.columns]
    if len(set(columns)) != len(columns):
        raise InputError("the DataFrame has duplicate column names")
    upcast = _upcast_key_columns(frame, columns, key)
    for start in range(0, len(frame), chunk):
        block = frame.iloc[start : start + chunk]
        for row in block.itertuples(index=False, name=None):
            record = {c: _clean_scalar(v) for c, v in zip(columns, row, strict=True)}
            for name in upcast:
                if record[name] is not None:
                    record[name] = int(record[name])
            yield record


def _is_dataframe(obj: Any) -> bool:
    return type(obj).__name__ == "DataFrame" and hasattr(obj, "itertuples")


def open_source(
    source: str | os.PathLike[str] | Iterable[Any] | Any,
    *,
    key: KeySpec = "key",
    format: str | None = None,
    delimiter: str | None = None,
) -> Source:
    """Open an input for a pipeline run.

    Parameters
    ----------
    source : path, pandas.DataFrame or iterable of dicts
        A JSON array, JSON Lines or CSV file (optionally ``.gz``), a DataFrame, or
        any iterable of records.
    key : str, sequence of str, or callable
        The field holding each record's key, several fields forming a composite key
        (joined with ``"|"``, see :func:`lineage_kit.base.composite_key`), or a function
        ``record -> key``.
    format : {"json", "jsonl", "csv"}, optional
        The file format; guessed from the suffix when omitted.
    delimiter : str, optional
        CSV only: the field delimiter; by default judged from the header line by
        :func:`sniff_delimiter` (a comma unless the header has none but has ``;``,
        a tab or ``|``).

    Returns
    -------
    Source

    Raises
    ------
    InputError
        The format is unknown. Unreadable files raise while items are read.
    ValueError
        ``key`` is not a field name, a list of them or a callable; ``delimiter`` is
        not one character, or is given for an input that is not CSV.

    Examples
    --------
    >>> src = open_source([{"key": "a", "x": 1}, {"x": 2}])
    >>> [(i.key, i.reason) for i in src.items()]
    [('a', None), (None, 'missing_key')]
    """
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        fmt = format or guess_format(path)
        if fmt not in FORMATS:
            raise InputError(
                f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}", path=str(path)
            )
        if delimiter is not None and fmt != "csv":
            raise InvalidArgument(f"delimiter applies to CSV files only, not to {fmt} input")
        if fmt == "csv":
            delimiter = None if delimiter is None else check_delimiter(delimiter)
            src = Source(lambda: _read_csv(path, src, delimiter), key, str(path), fresh=True)
        else:
            src = Source(lambda: _READERS[fmt](path, src), key, str(path), fresh=True)
        return src
    if format is not None:
        raise InvalidArgument("format applies to files only")
    if delimiter is not None:
        raise InvalidArgument("delimiter applies to CSV files only")
    if _is_dataframe(source):
        src = Source(lambda: _dataframe_records(source, key), key, None, fresh=True)
        src.frame = source
        return src
    if isinstance(source, dict | str | bytes):
        raise InputError(
            f"expected a path, a DataFrame or an iterable of records, got a {type(source).__name__}"
        )
    try:
        iter(source)
    except TypeError:
        raise InputError(
            f"expected a path, a DataFrame or an iterable of records, got a {type(source).__name__}"
        ) from None
    return Source(lambda: iter(source), key, None)
