"""Exceptions raised by lineage_kit.

Every error the package raises on purpose derives from :class:`LineageKitError`,
so ``except lk.LineageKitError`` catches all of them and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .model import RunResult


class LineageKitError(Exception):
    """Base class for every error lineage_kit raises on purpose."""


class InputError(LineageKitError):
    """An input file or object cannot be read at all.

    Parameters
    ----------
    message : str
        What is wrong.
    path : str, optional
        The file that could not be read.
    line, column : int, optional
        Where in the file the problem is (1-based), when known.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.path = path
        self.line = line
        self.column = column
        where = ""
        if path is not None:
            where = str(path)
            if line is not None:
                where += f":{line}"
                if column is not None:
                    where += f":{column}"
            where += ": "
        super().__init__(f"{where}{message}")


class OutputError(LineageKitError):
    """An output file (a plot, a report, an export) cannot be written where asked.

    Attributes
    ----------
    path : str
        The output path as given.
    """

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class NotALineageStore(LineageKitError):
    """The file exists but is not a lineage_kit store; it was left unchanged."""


class StoreNotFound(LineageKitError, FileNotFoundError):
    """No store exists at the given path (and none was created)."""


class SchemaVersionError(NotALineageStore):
    """The store's schema version cannot be used as it is; the file was left unchanged.

    Either a newer lineage_kit wrote it (this one does not know its schema), or it
    is older and cannot be written here to migrate it forward.
    """


class StoreClosed(LineageKitError, ValueError):
    """The store was closed; open it again (``lk.connect``) to use it.

    Attributes
    ----------
    location : str
        The store's path or URL.
    """

    def __init__(self, location: str) -> None:
        super().__init__(f"the store {location} is closed")
        self.location = location


class StoreWriteError(LineageKitError):
    """Writing to the store failed at the operating-system level (I/O error, file too large).

    The transaction was rolled back: the store keeps only whole chunks, and the run
    that was writing is marked ``failed`` when that last small update still fits.
    """


class StoreFull(StoreWriteError):
    """A write failed because the disk (or the store's size limit) is full."""


class StoreUnavailable(LineageKitError, ConnectionError):
    """A PostgreSQL store cannot be reached, refused the login, or went away mid-work.

    The message is one line naming the host and the database, never the password.
    A chunk being written when the connection broke was rolled back by the server:
    the store keeps only whole chunks.

    Attributes
    ----------
    host, database : str
        Where the store was looked for.
    """

    def __init__(self, message: str, *, host: str, database: str) -> None:
        super().__init__(message)
        self.host = host
        self.database = database


class RunNotFound(LineageKitError, LookupError):
    """A run id, prefix or alias matches no run (or more than one)."""


class KeyNotFound(LineageKitError, LookupError):
    """A record key has no lineage in the chosen run(s), or in a graph.

    Every explore function raises it this way, so their messages read alike.

    Parameters
    ----------
    key : str
        The record key.
    run_ids : sequence of str or None
        The runs searched; None when a graph was searched.
    all_runs : bool, default False
        The runs searched were every run of the store (``run="all"``).

    Attributes
    ----------
    key : str
    run : str, list of str or None
        The run id searched (one run), the ids (several), ``"all"`` (every run of
        the store), or None (a graph).
    run_ids : list of str or None
        The runs searched.

    Examples
    --------
    >>> err = KeyNotFound("order-999", ["3f2a"])
    >>> str(err), err.key, err.run
    ("key 'order-999' has no lineage entries in run 3f2a", 'order-999', '3f2a')
    """

    def __init__(
        self, key: str, run_ids: Sequence[str] | None = None, *, all_runs: bool = False
    ) -> None:
        self.key = key
        self.run_ids = None if run_ids is None else list(run_ids)
        if run_ids is None:
            where, self.run = "the graph", None
        elif all_runs or not run_ids:
            where, self.run = "any run", "all"
        elif len(run_ids) == 1:
            where, self.run = f"run {run_ids[0]}", run_ids[0]
        else:
            where, self.run = "runs " + ", ".join(run_ids), list(run_ids)
        hint = ""
        if "|" in key:
            hint = (
                " (in a composite key, a part that holds '|' has its '|' and '\\' escaped "
                "as '\\|' and '\\\\'; or give the parts as a list)"
            )
        super().__init__(f"key {key!r} has no lineage entries in {where}{hint}")


class EntryNotFound(LineageKitError, LookupError):
    """A lineage entry id does not exist in the store."""


class InvalidArgument(LineageKitError, TypeError, ValueError):
    """An argument of a lineage_kit function is of the wrong type or value.

    It is a ``TypeError`` and a ``ValueError`` too, so code that caught either
    before it existed keeps working. The message says what was expected.

    Attributes
    ----------
    argument : str or None
        The argument's name (``"run"``, ``"key"``, ...), where there is one.

    Examples
    --------
    >>> raise InvalidArgument("depth= takes None or an int >= 0, not -1", argument="depth")
    Traceback (most recent call last):
    ...
    lineage_kit.errors.InvalidArgument: depth= takes None or an int >= 0, not -1
    """

    def __init__(self, message: str, *, argument: str | None = None) -> None:
        super().__init__(message)
        self.argument = argument


class InvalidEntryId(LineageKitError, TypeError, ValueError):
    """A lineage entry id is not an integer (a bool, a float, text that is no integer).

    It is a ``TypeError`` and a ``ValueError`` too, so code that caught either
    before it existed keeps working.

    Attributes
    ----------
    value : object
        What was given.
    """

    def __init__(self, value: object) -> None:
        super().__init__(
            f"an entry id is an integer (int, numpy integer or its decimal text), "
            f"not {type(value).__name__} {value!r}"
        )
        self.value = value


class StepError(LineageKitError):
    """A step failed while the pipeline ran with ``fail_fast=True``.

    Attributes
    ----------
    result : RunResult or None
        What the stopped run did (status ``failed``, the counts so far).
    """

    def __init__(self, message: str, result: RunResult | None = None) -> None:
        super().__init__(message)
        self.result = result


class IntegrityError(LineageKitError):
    """Raised by :meth:`CheckReport.raise_if_failed` when error-severity violations exist.

    Attributes
    ----------
    report : CheckReport
        The whole report (``.violations``, ``.summary()``, ``.to_dict()``).
    """

    def __init__(self, message: str, report: Any = None) -> None:
        super().__init__(message)
        self.report = report


class Reject(Exception):
    """Raise inside a step to reject the current record with a reason code.

    Parameters
    ----------
    reason : str
        A short, stable code such as ``"negative_amount"``.
    message : str, optional
        A human explanation.

    Examples
    --------
    >>> import lineage_kit as lk
    >>> @lk.step("validate")
    ... def validate(record):
    ...     if record["amount"] < 0:
    ...         raise lk.Reject("negative_amount", f"amount is {record['amount']}")
    ...     return record
    """

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(message or reason)
        self.reason = reason
        self.message = message or reason


class MissingExtra(LineageKitError, ImportError):
    """An optional extra needed for this feature is not installed.

    Attributes
    ----------
    extra : str
        The extra to install (``pip install "lineage_kit[<extra>]"``).
    """

    def __init__(self, feature: str, extra: str, package: str) -> None:
        self.extra = extra
        self.package = package
        super().__init__(
            f'{feature} needs the {package!r} package: pip install "lineage_kit[{extra}]"'
        )


class ExportTooLarge(LineageKitError, ValueError):
    """An export would hold more entries than is useful (or fits in memory).

    Attributes
    ----------
    n_entries : int
        Entries the export would hold.
    limit : int
        The most it accepts.
    """

    def __init__(self, n_entries: int, limit: int, hint: str) -> None:
        self.n_entries = n_entries
        self.limit = limit
        super().__init__(f"the export would hold {n_entries:,} entries (limit {limit:,}); {hint}")
