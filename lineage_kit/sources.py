"""Turning files, DataFrames and iterables into keyed source items.

A source never writes anything. It yields :class:`SourceItem` objects: a record with
its key, or a record that must be rejected, with a reason code saying why. A file
that cannot be read at all raises :class:`~lineage_kit.errors.InputError` naming
the file, line and column where known.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import math
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .base import key_part
from .errors import InputError

#: Input formats understood by :func:`open_source`.
FORMATS = ("json", "jsonl", "csv")

#: Separator between the parts of a composite key (``--key region,order_id``).
KEY_SEPARATOR = "|"

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


def absent_key_fields(items: Sequence[SourceItem], key: KeySpec) -> str | None:
    """Explain a key that no record has at all (a wrong ``key`` or ``format``).

    Parameters
    ----------
    items : sequence of SourceItem
        The first items read (a pipeline looks at its first chunk).
    key : str, sequence of str or callable
        The key spec the items were read with.

    Returns
    -------
    str or None
        A message naming the key and the fields that were seen, when every item was
        rejected and no object among them has the key field(s); otherwise None.
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
    return (
        f"no record among the first {len(items)} has the key field {spelled}; fields seen: "
        f"{shown}. Choose the key with key=... (CLI: --key FIELD or --key A,B), "
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

    names = [key] if isinstance(key, str) else list(key)
    if not names or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"key must be a field name, a list of field names or a callable: {key!r}")
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
        return KEY_SEPARATOR.join(parts), None, None

    return composite


def parse_key_option(text: str) -> str | list[str]:
    """Turn a CLI ``--key`` value (``"id"`` or ``"region,order_id"``) into a key spec."""
    names = [part.strip() for part in text.split(",")]
    if not all(names):
        raise ValueError(f"--key {text!r}: field names must not be empty")
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
    fh, _ = _open_binary(path)
    try:
        data = _read_all(fh, path)
    finally:
        fh.close()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _decode_error(path, data, exc)
    return InputError("invalid UTF-8", path=str(path))  # pragma: no cover - decoded above


def _read_json_array(path: Path, source: Source) -> Iterator[Any]:
    fh, hashing = _open_binary(path)
    try:
        data = _read_all(fh, path)
    finally:
        fh.close()
    source.sha256 = hashing.hash.hexdigest()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _decode_error(path, data, exc) from None
    if not text.strip():
        raise InputError("file is empty", path=str(path))
    try:
        records = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"malformed JSON: {exc.msg}", path=str(path), line=exc.lineno, column=exc.colno
        ) from None
    except RecursionError:
        raise InputError("JSON nested too deeply to read", path=str(path)) from None
    except ValueError as exc:  # e.g. an integer longer than sys.get_int_max_str_digits()
        raise InputError(f"unreadable JSON value: {exc}", path=str(path)) from None
    if not isinstance(records, list):
        raise InputError(
            f"expected a JSON array of records, found a {type(records).__name__}; "
            "for one record per line use format='jsonl'",
            path=str(path),
        )
    if not records:
        raise InputError("the JSON array holds no records", path=str(path))
    yield from records


def _read_all(fh: io.BufferedIOBase, path: Path) -> bytes:
    try:
        return fh.read()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InputError(f"cannot be read: {exc}", path=str(path)) from None


def _read_json_lines(path: Path, source: Source) -> Iterator[Any]:
    fh, hashing = _open_binary(path)
    seen_any = False
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
            seen_any = True
            yield record
    finally:
        fh.close()
    if not seen_any:
        raise InputError("file is empty (no JSON lines)", path=str(path))
    source.sha256 = hashing.hash.hexdigest()


def _lines(fh: io.BufferedIOBase, path: Path) -> Iterator[bytes]:
    try:
        yield from fh
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InputError(f"cannot be read: {exc}", path=str(path)) from None


def _read_csv(path: Path, source: Source) -> Iterator[Any]:
    fh, hashing = _open_binary(path)
    text = io.TextIOWrapper(fh, encoding="utf-8-sig", newline="")
    reader = csv.reader(text)
    try:
        try:
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
            seen_any = False
            for row in reader:
                if not row:
                    continue
                seen_any = True
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
    if not seen_any:
        raise InputError("file has a header but no records", path=str(path))
    source.sha256 = hashing.hash.hexdigest()


_READERS = {"json": _read_json_array, "jsonl": _read_json_lines, "csv": _read_csv}


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


def _dataframe_records(frame: Any, chunk: int = 10_000) -> Iterator[dict]:
    columns = [str(c) for c in frame.columns]
    if len(set(columns)) != len(columns):
        raise InputError("the DataFrame has duplicate column names")
    for start in range(0, len(frame), chunk):
        block = frame.iloc[start : start + chunk]
        for row in block.itertuples(index=False, name=None):
            yield {c: _clean_scalar(v) for c, v in zip(columns, row, strict=True)}


def _is_dataframe(obj: Any) -> bool:
    return type(obj).__name__ == "DataFrame" and hasattr(obj, "itertuples")


def open_source(
    source: str | os.PathLike[str] | Iterable[Any] | Any,
    *,
    key: KeySpec = "key",
    format: str | None = None,
) -> Source:
    """Open an input for a pipeline run.

    Parameters
    ----------
    source : path, pandas.DataFrame or iterable of dicts
        A JSON array, JSON Lines or CSV file (optionally ``.gz``), a DataFrame, or
        any iterable of records.
    key : str, sequence of str, or callable
        The field holding each record's key, several fields forming a composite key
        (joined with ``"|"``), or a function ``record -> key``.
    format : {"json", "jsonl", "csv"}, optional
        The file format; guessed from the suffix when omitted.

    Returns
    -------
    Source

    Raises
    ------
    InputError
        The format is unknown. Unreadable files raise while items are read.
    ValueError
        ``key`` is not a field name, a list of them or a callable.

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
        src = Source(lambda: _READERS[fmt](path, src), key, str(path), fresh=True)
        return src
    if format is not None:
        raise ValueError("format applies to files only")
    if _is_dataframe(source):
        src = Source(lambda: _dataframe_records(source), key, None, fresh=True)
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
