"""Integrity checks of lineage chains, returned as a :class:`CheckReport`.

The checks ask whether the lineage itself is whole: did every record that should
continue reach the next step, does every parent link point to an entry of the same
run at the step before, was a key processed twice, does every value match its
hash, did a run die half-way, do the stored counts agree with the entries.
Rejected and failed records are outcomes, not violations.

Every violation has a stable ``code`` (see :data:`CODES`), a ``severity``
(``"error"`` or ``"warning"``), the run, record key and entry involved, and a
message. The SQL lives in :mod:`lineage_kit.store.integrity`; this module turns
its rows into violations. Nothing here writes to the store or repairs anything.

Custom checks
-------------
A check is a function ``(store, run_ids) -> violations``: ``store`` is the
:class:`~lineage_kit.store.LineageStore`, ``run_ids`` the list of run ids being
checked, and the result a DataFrame or an iterable of dicts with the columns of
:data:`VIOLATION_COLUMNS` (``code`` defaults to the check's name, ``severity`` to
the one it was registered with; ``run_id``, ``record_key``, ``entry_id`` may be
left out). Register it for every later check with :func:`register_check`, or pass
it once with ``store.check(extra=[func])``.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from html import escape
from typing import TYPE_CHECKING, Any, NamedTuple

import pandas as pd

from .errors import IntegrityError, InvalidArgument
from .model import FINISHED_STATUSES, EntryStatus, RunStatus, StepKind
from .values import value_digest_bytes

if TYPE_CHECKING:
    from .store import Backend

#: Columns of :attr:`CheckReport.violations`, in order.
VIOLATION_COLUMNS = ("code", "severity", "run_id", "record_key", "entry_id", "message")


class Severity(StrEnum):
    """How bad a violation is: ``error`` fails the check, ``warning`` does not."""

    ERROR = "error"
    WARNING = "warning"


SEVERITIES = tuple(s.value for s in Severity)


class CheckCode(StrEnum):
    """The stable code of every built-in violation (a member equals its text).

    Examples
    --------
    >>> CheckCode.CYCLE == "cycle", CODES[CheckCode.CYCLE][0] == Severity.ERROR == "error"
    (True, True)
    """

    INCOMPLETE_CHAIN = "incomplete_chain"
    CHAIN_GAP = "chain_gap"
    MISSING_PARENT = "missing_parent"
    ORPHAN_PARENT = "orphan_parent"
    CROSS_RUN_PARENT = "cross_run_parent"
    CYCLE = "cycle"
    STEP_ORDER = "step_order"
    DUPLICATE_PROCESSING = "duplicate_processing"
    KEY_CHANGED = "key_changed"
    MISSING_VALUE = "missing_value"
    ORPHAN_VALUE = "orphan_value"
    HASH_MISMATCH = "hash_mismatch"
    RUN_INTERRUPTED = "run_interrupted"
    RUN_FAILED = "run_failed"
    COUNTS_MISMATCH = "counts_mismatch"
    UNCLAIMED_ENTRY = "unclaimed_entry"
    UNEXPECTED_STEPS = "unexpected_steps"


CODES: dict[CheckCode, tuple[Severity, str]] = {
    CheckCode.INCOMPLETE_CHAIN: (
        Severity.ERROR,
        "an ok entry before the run's last step has no child: the record stopped half-way",
    ),
    CheckCode.CHAIN_GAP: (
        Severity.ERROR,
        "a parent link skips a step: the child is more than one step later",
    ),
    CheckCode.MISSING_PARENT: (
        Severity.ERROR,
        "an entry after the first step has no parent link: its chain starts in the middle",
    ),
    CheckCode.ORPHAN_PARENT: (
        Severity.ERROR,
        "a parent link points to (or from) an entry that does not exist",
    ),
    CheckCode.CROSS_RUN_PARENT: (
        Severity.ERROR,
        "a parent link points to an entry of a different run",
    ),
    CheckCode.CYCLE: (Severity.ERROR, "parent links form a cycle: an entry is its own ancestor"),
    CheckCode.STEP_ORDER: (
        Severity.ERROR,
        "a parent is at the same or a later step than its child, or was created after it",
    ),
    CheckCode.DUPLICATE_PROCESSING: (
        Severity.ERROR,
        "the same key was processed more than once at the same step of one run",
    ),
    CheckCode.KEY_CHANGED: (
        Severity.ERROR,
        "a child's key differs from its parent's although its step is not merge or split",
    ),
    CheckCode.MISSING_VALUE: (Severity.ERROR, "a lineage entry has no stored value"),
    CheckCode.ORPHAN_VALUE: (Severity.ERROR, "a stored value belongs to no lineage entry"),
    CheckCode.HASH_MISMATCH: (
        Severity.ERROR,
        "a stored value does not match the hash recorded for it",
    ),
    CheckCode.RUN_INTERRUPTED: (
        Severity.ERROR,
        "the run never finished: it is marked interrupted, or running with its writer gone",
    ),
    CheckCode.RUN_FAILED: (
        Severity.WARNING,
        "the run stopped with status failed (fail_fast or a crash); its chains are unfinished",
    ),
    CheckCode.COUNTS_MISMATCH: (
        Severity.ERROR,
        "the run's or a chunk's stored counts disagree with each other or with the entries",
    ),
    CheckCode.UNCLAIMED_ENTRY: (
        Severity.ERROR,
        "an entry lies outside every chunk its run claimed (written past the store's chunks)",
    ),
    CheckCode.UNEXPECTED_STEPS: (Severity.ERROR, "the run's steps are not the expected_steps"),
}

#: A custom check: ``(store, run_ids) -> DataFrame or iterable of dicts``, where
#: ``store`` is the :class:`~lineage_kit.LineageStore` being checked.
CheckFunction = Callable[[Any, list[str]], Any]


@dataclass(frozen=True)
class _Check:
    name: str
    func: Callable[..., Any]
    severity: str
    description: str
    builtin: bool = False


_REGISTRY: dict[str, _Check] = {}
_BUILTIN: set[str] = set()


def register_check(
    name: str, *, severity: str = "error", description: str = "", replace: bool = False
) -> Callable[[CheckFunction], CheckFunction]:
    """Register a custom check, run by every later :meth:`LineageStore.check`.

    Parameters
    ----------
    name : str
        The check's name, and the ``code`` of its violations unless they give one.
    severity : {"error", "warning"}, default "error"
        The severity of violations that do not give one.
    description : str, optional
        A one-line explanation, shown by :meth:`CheckReport.summary`.
    replace : bool, default False
        Replace a custom check already registered under ``name`` (otherwise that
        is an error, so two checks cannot silently shadow each other).

    Returns
    -------
    callable
        A decorator that registers the function and returns it unchanged.

    Raises
    ------
    InvalidArgument
        ``name`` is empty or is a built-in check or code, ``severity`` is unknown, or
        ``name`` is registered already and ``replace`` is false (a ``ValueError``
        too).

    Examples
    --------
    >>> import lineage_kit as lk
    >>> @lk.register_check("big_orders", severity="warning",
    ...                    description="a published amount over 400")
    ... def big_orders(store, run_ids):
    ...     published = store.records(run_ids, step="publish")
    ...     return [{"run_id": r.run_id, "record_key": r.key, "entry_id": r.entry_id,
    ...              "message": f"amount {r.value['amount']}"}
    ...             for r in published.itertuples() if r.value["amount"] > 400]
    >>> store.check().summary()[["code", "severity", "count"]]
             code severity  count
    0  big_orders  warning      5
    >>> lk.register_check("big_orders")(big_orders)
    Traceback (most recent call last):
    ...
    lineage_kit.errors.InvalidArgument: a check named 'big_orders' is registered already...
    >>> lk.unregister_check("big_orders")
    """
    if not isinstance(name, str) or not name:
        raise InvalidArgument("a check needs a non-empty name")
    if name in _BUILTIN or name in CODES:
        raise InvalidArgument(f"{name!r} is a built-in check or code; choose another name")
    _check_severity(severity)

    def decorate(func: CheckFunction) -> CheckFunction:
        if not callable(func):
            raise InvalidArgument(f"a check must be callable, not {func!r}")
        if name in _REGISTRY and not replace:
            raise InvalidArgument(
                f"a check named {name!r} is registered already; pass replace=True to "
                "replace it, or unregister_check() it first"
            )
        _REGISTRY[name] = _Check(name, func, severity, description)
        return func

    return decorate


def unregister_check(name: str) -> None:
    """Remove a check registered with :func:`register_check`.

    Raises
    ------
    KeyError
        No custom check of that name is registered.
    ValueError
        ``name`` is a built-in check (those cannot be removed).
    """
    if name in _BUILTIN:
        raise InvalidArgument(f"{name!r} is a built-in check and cannot be removed")
    if name not in _REGISTRY:
        raise KeyError(f"no custom check named {name!r} is registered")
    del _REGISTRY[name]


def registered_checks() -> list[str]:
    """The names of every check that runs, built-in ones first."""
    return list(_REGISTRY)


def _check_severity(severity: str) -> None:
    if severity not in SEVERITIES:
        raise InvalidArgument(f"severity must be one of {SEVERITIES}, not {severity!r}")


def _builtin(name: str) -> Callable[[Callable[[_Context], Any]], Callable[[_Context], Any]]:
    def decorate(func: Callable[[_Context], Any]) -> Callable[[_Context], Any]:
        _REGISTRY[name] = _Check(name, func, "error", "", builtin=True)
        _BUILTIN.add(name)
        return func

    return decorate


# ------------------------------------------------------------------ the report


@dataclass
class CheckReport:
    """The result of :meth:`LineageStore.check`.

    Attributes
    ----------
    violations : pandas.DataFrame
        One row per violation, columns :data:`VIOLATION_COLUMNS`; ``entry_id`` is a
        nullable integer (empty for run-level violations).
    run_ids : list of str
        The runs that were checked.
    checks : list of str
        The checks that ran.
    elapsed_seconds : float
    descriptions : dict of str to str
        The one-line explanation of every code (built-in and of the checks that ran).
    """

    violations: pd.DataFrame
    run_ids: list[str]
    checks: list[str] = field(default_factory=list)
    elapsed_seconds: float = 0.0
    descriptions: dict[str, str] = field(
        default_factory=lambda: {code: text for code, (_, text) in CODES.items()}
    )

    @property
    def ok(self) -> bool:
        """True when no violation has severity ``error`` (warnings are allowed)."""
        return not bool((self.violations["severity"] == "error").any())

    @property
    def n_errors(self) -> int:
        """How many violations have severity ``error``."""
        return int((self.violations["severity"] == "error").sum())

    @property
    def n_warnings(self) -> int:
        """How many violations have severity ``warning``."""
        return int((self.violations["severity"] == "warning").sum())

    def summary(self) -> pd.DataFrame:
        """Counts per code.

        Returns
        -------
        pandas.DataFrame
            One row per code found: ``code``, ``severity``, ``count`` and
            ``description``; errors first, then by count (descending). Empty when
            the report is clean.
        """
        v = self.violations
        frame = (
            v.groupby(["code", "severity"], sort=False).size().rename("count").reset_index()
            if len(v)
            else pd.DataFrame({"code": [], "severity": [], "count": []})
        )
        frame["count"] = frame["count"].astype("int64")
        frame["description"] = [self.descriptions.get(code, "") for code in frame["code"]]
        frame["_rank"] = frame["severity"].map({"error": 0, "warning": 1})
        frame = frame.sort_values(["_rank", "count", "code"], ascending=[True, False, True])
        return frame.drop(columns="_rank").reset_index(drop=True)

    def raise_if_failed(self) -> CheckReport:
        """Raise if any violation has severity ``error``; otherwise return the report.

        Raises
        ------
        IntegrityError
            With the counts per code in the message and the report as ``.report``.

        Examples
        --------
        >>> store.check().raise_if_failed().ok
        True
        """
        if not self.ok:
            counts = self.summary()
            counts = counts[counts["severity"] == "error"]
            parts = ", ".join(
                f"{c} ({n})" for c, n in zip(counts["code"], counts["count"], strict=True)
            )
            raise IntegrityError(
                f"{self.n_errors} integrity violation(s) in {len(self.run_ids)} run(s): {parts}",
                report=self,
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (what ``lineage-kit check --json`` prints).

        Returns
        -------
        dict
            ``ok``, ``runs``, ``errors``, ``warnings``, ``summary`` (code ->
            ``{"severity", "count"}``) and ``violations`` (one dict per violation,
            missing values as None).

        Examples
        --------
        >>> report = store.check()
        >>> report.to_dict()["ok"], report.to_dict()["violations"]
        (True, [])
        """
        v = self.violations.astype(object).where(self.violations.notna(), None)
        violations = v.to_dict(orient="records")
        for row in violations:
            if row["entry_id"] is not None:
                row["entry_id"] = int(row["entry_id"])
        return {
            "ok": self.ok,
            "runs": list(self.run_ids),
            "errors": self.n_errors,
            "warnings": self.n_warnings,
            "summary": {
                row.code: {"severity": row.severity, "count": int(row.count)}
                for row in self.summary().itertuples(index=False)
            },
            "violations": violations,
        }

    def to_text(self, limit: int = 20) -> str:
        """A plain-text summary: the header, the counts table and the first violations."""
        lines = [self._headline()]
        summary = self.summary()
        if len(summary):
            lines.append("")
            lines.extend(
                _table(
                    ("code", "severity", "count", "description"),
                    [[str(x) for x in row] for row in summary.itertuples(index=False)],
                )
            )
            shown = self.violations.head(limit)
            lines.append("")
            lines.extend(
                _table(
                    ("code", "run", "key", "entry", "message"),
                    [
                        [
                            r.code,
                            (r.run_id or "")[:8],
                            "" if r.record_key is None else str(r.record_key),
                            "" if pd.isna(r.entry_id) else str(r.entry_id),
                            r.message,
                        ]
                        for r in shown.itertuples(index=False)
                    ],
                )
            )
            if len(self.violations) > limit:
                lines.append(f"... and {len(self.violations) - limit} more")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        return f"<CheckReport {self._headline()}>"

    def _headline(self) -> str:
        runs = ", ".join(r[:8] for r in self.run_ids[:3]) + (
            ", ..." if len(self.run_ids) > 3 else ""
        )
        state = "ok" if self.ok else "FAILED"
        return (
            f"{state}: {self.n_errors} error(s), {self.n_warnings} warning(s) in "
            f"{len(self.run_ids)} run(s) [{runs}]"
        )

    def _repr_html_(self, limit: int = 50) -> str:
        colour = "#1a7f37" if self.ok else "#cf222e"
        parts = [f"<p><b style='color:{colour}'>{escape(self._headline())}</b></p>"]
        if len(self.violations):
            parts.append(self.summary().to_html(index=False, escape=True))
            parts.append(self.violations.head(limit).to_html(index=False, escape=True))
            if len(self.violations) > limit:
                parts.append(f"<p>... and {len(self.violations) - limit} more</p>")
        return "<div class='lineage-kit-check'>" + "".join(parts) + "</div>"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    fmt = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in (headers, *rows)
    ]
    return fmt


# --------------------------------------------------------------- running checks


def check(
    backend: Backend,
    run: str | Sequence[str] | None = "latest",
    *,
    expected_steps: Sequence[str] | None = None,
    extra: Iterable[CheckFunction] = (),
    store: Any = None,
) -> CheckReport:
    """The report behind :meth:`LineageStore.check <lineage_kit.LineageStore.check>`
    (documented there); ``store`` is what custom checks are given."""
    started = time.perf_counter()
    checks = list(_REGISTRY.values())
    if expected_steps is not None:
        expected = _step_names(expected_steps)
        checks.append(
            _Check(
                "expected_steps",
                functools.partial(_expected_steps, expected=expected),
                "error",
                CODES["unexpected_steps"][1],
                builtin=True,
            )
        )
    for func in extra:
        if not callable(func):
            raise InvalidArgument(f"extra checks must be callables, not {func!r}")
        name = getattr(func, "__name__", "custom_check")
        checks.append(_Check(name, func, "error", ""))

    frames = []
    with backend.check_readers(len(_LANES)) as readers, ThreadPoolExecutor(2) as pool:
        run_ids = backend.resolve_runs(run)
        context = _Context(backend, list(run_ids))
        if readers:
            context.start(readers, pool)
        for c in checks:
            result = c.func(context) if c.builtin else c.func(store, list(run_ids))
            frames.append(_normalise(result, c))
    frames = [f for f in frames if len(f)]
    violations = (
        pd.concat(frames, ignore_index=True)
        if frames
        else _normalise([], checks[0] if checks else None)
    )
    return CheckReport(
        violations=violations,
        run_ids=list(run_ids),
        checks=[c.name for c in checks],
        elapsed_seconds=time.perf_counter() - started,
        descriptions={
            **{c.name: c.description for c in checks if c.description},
            **{code: text for code, (_, text) in CODES.items()},
        },
    )


def _normalise(result: Any, c: _Check | None) -> pd.DataFrame:
    """Turn what a check returned into a violations frame with the standard columns."""
    if result is None:
        result = []
    if isinstance(result, pd.DataFrame):
        frame = result.copy()
    else:
        rows = list(result)
        for row in rows:
            if not isinstance(row, Mapping):
                raise ValueError(
                    f"check {c.name if c else '?'!r} must return a DataFrame or dicts, "
                    f"got {type(row).__name__}"
                )
        frame = pd.DataFrame.from_records(rows)
    unknown = set(frame.columns) - set(VIOLATION_COLUMNS)
    if unknown:
        raise ValueError(
            f"check {c.name if c else '?'!r} returned unknown columns {sorted(unknown)}; "
            f"violations have {list(VIOLATION_COLUMNS)}"
        )
    n = len(frame)
    if "message" not in frame.columns and n:
        raise ValueError(f"check {c.name if c else '?'!r} returned violations without a message")
    defaults = {
        "code": c.name if c else "",
        "severity": c.severity if c else "error",
        "run_id": None,
        "record_key": None,
        "entry_id": pd.NA,
        "message": "",
    }
    for column, default in defaults.items():
        if column not in frame.columns:
            frame[column] = [default] * n
    frame = frame[list(VIOLATION_COLUMNS)].astype({"code": object, "severity": object})
    bad = set(frame["severity"]) - set(SEVERITIES)
    if bad:
        raise ValueError(f"check {c.name if c else '?'!r} returned unknown severities {bad}")
    frame["entry_id"] = pd.array(frame["entry_id"], dtype="Int64")
    for column in ("run_id", "record_key", "message"):
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame.reset_index(drop=True)


def _at(r: _ChainRow, code: str, message: str) -> dict[str, Any]:
    """A violation at the child entry of a chain row."""
    return _v(code, r.run_id, r.record_key, r.child_id, message)


def _v(code: str, run_id: Any, key: Any, entry_id: Any, message: str) -> dict[str, Any]:
    code = CheckCode(code)  # a typo in a built-in check fails here, not in a report
    return {
        "code": code.value,
        "severity": CODES[code][0].value,
        "run_id": run_id,
        "record_key": key,
        "entry_id": entry_id,
        "message": message,
    }


class _Steps:
    """Step names and kinds of the checked runs."""

    def __init__(self, rows: Iterable[tuple[str, int, str, str]]) -> None:
        self.by_run: dict[str, list[tuple[int, str, str]]] = {}
        for run_id, position, name, kind in rows:
            self.by_run.setdefault(run_id, []).append((position, name, kind))

    def kind(self, run_id: str | None, position: int | None) -> str:
        for p, _, kind in self.by_run.get(run_id or "", []):
            if p == position:
                return kind
        return StepKind.MAP

    def name(self, run_id: str | None, position: int | None) -> str:
        for p, name, _ in self.by_run.get(run_id or "", []):
            if p == position:
                return repr(name)
        return f"#{position}"


class _ChunkRow(NamedTuple):
    """A chunk of a checked run: its recorded counts and the entries it holds."""

    run_id: str
    chunk_no: int
    first_entry: int
    last_entry: int
    recorded: dict[int, tuple[int, int, int]]  # position -> (ok, rejected, failed)
    held: dict[int, tuple[int, int, int]]  # the same, counted from its own entries
    foreign: int  # entries in its range that name another run
    owners: int  # its own entries that stored their value under their own id


def _chunk_row(row: tuple) -> _ChunkRow:
    """A row of :meth:`Backend.check_chunk_counts` with its JSON read."""
    run_id, chunk_no, first, last, counts, held = row
    recorded = {int(p): (int(ok), int(rej), int(fail)) for p, ok, rej, fail in json.loads(counts)}
    tally: dict[int, list[int]] = {}
    foreign = owners = 0
    for own, position, status, n, owning in json.loads(held or "[]"):
        if own:
            tally.setdefault(int(position), [0, 0, 0])[int(status)] += int(n)
            owners += int(owning)
        else:
            foreign += int(n)
    counted = {p: (c[0], c[1], c[2]) for p, c in tally.items()}
    return _ChunkRow(run_id, chunk_no, first, last, recorded, counted, foreign, owners)


#: The set-based passes that need no Python per row, as lanes: with readers at the
#: same snapshot (:meth:`Backend.check_readers`), each lane runs in a thread of its
#: own on a reader while this thread hashes the values (a Python call per value,
#: which holds the GIL; the lanes' SQL runs without it). A lane's passes run in
#: order (``unclaimed`` needs ``chunks``).
_LANES = (
    ("chains", "cycles", "missing_children"),
    ("chunks", "unclaimed", "value_counts", "repeated"),
)


class _Context:
    """What the built-in checks read, each read once per :func:`check` call."""

    def __init__(self, backend: Backend, run_ids: list[str]) -> None:
        self.backend = backend
        self.run_ids = run_ids
        self._results: dict[str, Any] = {}
        self._lanes: dict[str, Future[dict[str, Any]]] = {}

    def start(self, readers: Sequence[Backend], pool: ThreadPoolExecutor) -> None:
        """Run the lanes on ``readers`` in ``pool`` and hash the values meanwhile."""
        finished = self.finished  # read here: the lanes only call their backend
        lanes = list(_LANES)
        if len(readers) < len(lanes):  # one reader: every lane on it, in turn
            lanes = [tuple(name for lane in lanes for name in lane)]
        for names, reader in zip(lanes, readers, strict=False):
            future = pool.submit(self._lane, names, reader, finished)
            self._lanes.update(dict.fromkeys(names, future))
        self.result("values")

    def _lane(self, names: Sequence[str], backend: Backend, finished: list[str]) -> dict:
        done: dict[str, Any] = {}
        for name in names:
            done[name] = self._pass(name, backend, finished, done)
        return done

    def _pass(self, name: str, backend: Backend, finished: list[str], done: Mapping) -> Any:
        ids = self.run_ids
        if name == "unclaimed":
            chunks = done["chunks"] if "chunks" in done else self.result("chunks")
            foreign = [(c.run_id, c.chunk_no) for c in chunks if c.foreign]
            return backend.check_unclaimed_entries(ids, foreign)
        calls: dict[str, Callable[[], Any]] = {
            "chunks": lambda: [_chunk_row(r) for r in backend.check_chunk_counts(ids)],
            "chains": lambda: backend.check_chain_rows(ids, finished),
            "cycles": lambda: backend.check_cycle_links(ids),
            "missing_children": lambda: backend.check_links_from_missing_children(ids),
            "repeated": lambda: backend.check_repeated_keys(ids),
            "value_counts": lambda: backend.check_value_counts(ids),
            "orphans": backend.check_values_without_entry,
            "values": lambda: backend.check_value_problems(ids, value_digest_bytes),
        }
        return calls[name]()

    def result(self, name: str) -> Any:
        """The rows of the pass ``name``: a lane's, or read here."""
        if name not in self._results:
            lane = self._lanes.get(name)
            self._results[name] = (
                lane.result()[name]
                if lane is not None
                else self._pass(name, self.backend, self.finished, self._results)
            )
        return self._results[name]

    @functools.cached_property
    def run_rows(self) -> list[dict[str, Any]]:
        wanted = set(self.run_ids)
        return [r for r in self.backend.run_rows() if r["run_id"] in wanted]

    @functools.cached_property
    def finished(self) -> list[str]:
        return [r["run_id"] for r in self.run_rows if r["status"] in FINISHED_STATUSES]

    @functools.cached_property
    def finished_rows(self) -> list[dict[str, Any]]:
        return [r for r in self.run_rows if r["status"] in FINISHED_STATUSES]

    @functools.cached_property
    def steps(self) -> _Steps:
        return _Steps(self.backend.check_step_kinds(self.run_ids))

    @functools.cached_property
    def chain_rows(self) -> list[_ChainRow]:
        # by child, then parent: links are reported in (child, parent) order
        return sorted(
            (_ChainRow(*row) for row in self.result("chains")),
            key=lambda r: (r.child_id, -1 if r.parent_id is None else r.parent_id),
        )


# -------------------------------------------------------------- built-in checks


@_builtin("run_status")
def _run_status(ctx: _Context) -> list[dict[str, Any]]:
    out = []
    for row in ctx.run_rows:
        if row["status"] == RunStatus.INTERRUPTED:
            out.append(
                _v(
                    "run_interrupted",
                    row["run_id"],
                    None,
                    None,
                    f"run never finished ({row['error'] or 'its writer process is gone'}; "
                    f"writer pid {row['writer_pid']} on {row['writer_host']}); its chains "
                    "may be partial",
                )
            )
        elif row["status"] == RunStatus.FAILED:
            out.append(
                _v(
                    "run_failed",
                    row["run_id"],
                    None,
                    None,
                    f"run failed: {row['error'] or 'no error recorded'}",
                )
            )
    return out


class _ChainRow(NamedTuple):
    """A row of :func:`lineage_kit.store.integrity.chain_rows`."""

    child_id: int
    run_id: str
    record_key: str | None
    position: int
    status: str
    created_at: str
    last_position: int | None
    parent_id: int | None
    parent_exists: int
    parent_run_id: str | None
    parent_key: str | None
    parent_position: int | None
    parent_created_at: str | None
    has_child: int


def _once_per_child(
    ctx: _Context, rows: Iterable[_ChainRow], code: str, message: str
) -> list[dict[str, Any]]:
    """A violation ``code`` for each child among ``rows`` (a child has a row per parent),
    its ``message`` formatted with the child's step name."""
    seen: set[int] = set()
    out = []
    for r in rows:
        if r.child_id not in seen:
            seen.add(r.child_id)
            out.append(_at(r, code, message.format(ctx.steps.name(r.run_id, r.position))))
    return out


@_builtin("chains")
def _chains(ctx: _Context) -> list[dict[str, Any]]:
    if not ctx.finished:
        return []
    ok = EntryStatus.OK  # looked up once: an enum member's look-up costs more than the test
    stopped = (
        r
        for r in ctx.chain_rows
        if not r.has_child
        and r.status == ok
        and r.last_position is not None
        and r.position < r.last_position
    )
    stop = "ok at step {} but never reached the next step"
    return _once_per_child(ctx, stopped, "incomplete_chain", stop)


@_builtin("missing_parents")
def _missing_parents(ctx: _Context) -> list[dict[str, Any]]:
    orphans = (r for r in ctx.chain_rows if r.parent_id is None and r.position > 0)
    return _once_per_child(ctx, orphans, "missing_parent", "entry at step {} has no parent link")


@_builtin("links")
def _links(ctx: _Context) -> list[dict[str, Any]]:
    steps = ctx.steps
    out = []
    seen: set[tuple[int, int]] = set()
    for r in ctx.chain_rows:
        child, parent, run_id, key = r.child_id, r.parent_id, r.run_id, r.record_key
        if parent is None or parent == child or (child, parent) in seen:
            continue  # no link, a self-link (a cycle), or a link already looked at
        seen.add((child, parent))
        if not r.parent_exists:
            missing = f"entry {child} links to parent {parent}, which does not exist"
            out.append(_at(r, "orphan_parent", missing))
            continue
        if r.parent_run_id != run_id:
            other = f"entry {child} links to parent {parent} of run {r.parent_run_id}"
            out.append(_at(r, "cross_run_parent", other))
            continue  # positions, times and keys of another run mean nothing here
        here = steps.name(run_id, r.position)
        there = steps.name(run_id, r.parent_position)
        order = []
        if r.parent_position >= r.position:
            order.append(f"parent {parent} is at step {there}, not before its child's step {here}")
        if r.parent_created_at > r.created_at:
            order.append(
                f"parent {parent} was created at {r.parent_created_at}, after its child "
                f"({r.created_at})"
            )
        if order:
            out.append(_at(r, "step_order", "; ".join(order)))
        elif r.position > r.parent_position + 1:
            gap = f"entry {child} at step {here} links to parent {parent} at step {there}"
            out.append(_at(r, "chain_gap", f"{gap}: a step in between was skipped"))
        if key != r.parent_key and steps.kind(run_id, r.position) == StepKind.MAP:
            became = f"key {r.parent_key!r} of parent {parent} became {key!r} at map step {here}"
            out.append(_at(r, "key_changed", became))
    for child, parent, run, key in ctx.result("missing_children"):
        missing = f"a link from entry {child}, which does not exist, to parent {parent}"
        out.append(_v("orphan_parent", run, key, parent, missing))
    return out


@_builtin("cycles")
def _cycles(ctx: _Context) -> list[dict[str, Any]]:
    return [
        _v(
            "cycle",
            run_id,
            key,
            child,
            f"entry {child} is its own parent"
            if child == parent
            else f"link {child} -> parent {parent} closes a cycle (the entry is its own ancestor)",
        )
        for child, parent, run_id, key in ctx.result("cycles")
    ]


@_builtin("duplicates")
def _duplicates(ctx: _Context) -> list[dict[str, Any]]:
    steps = ctx.steps
    out = []
    groups: dict[tuple, list[int]] = {}
    for run_id, key, position, entry_id, _status, reason in ctx.result("repeated"):
        if reason == "duplicate_key":
            continue  # the pipeline correctly refused a duplicate input record
        groups.setdefault((run_id, key, position), []).append(entry_id)
    for (run_id, key, position), entries in groups.items():
        for entry_id in entries[1:]:
            out.append(
                _v(
                    "duplicate_processing",
                    run_id,
                    key,
                    entry_id,
                    f"key {key!r} processed again at step {steps.name(run_id, position)} "
                    f"(first as entry {entries[0]})",
                )
            )
    return out


@_builtin("values")
def _values(ctx: _Context) -> list[dict[str, Any]]:
    out = []
    for (
        run_id,
        key,
        entry_id,
        _position,
        has_value,
        stored,
        actual,
    ) in ctx.result("values"):
        if not has_value:
            out.append(_v("missing_value", run_id, key, entry_id, "entry has no stored value"))
        else:
            out.append(
                _v(
                    "hash_mismatch",
                    run_id,
                    key,
                    entry_id,
                    f"stored value hashes to {actual}, the entry records {stored}",
                )
            )
    inside, outside = ctx.result("value_counts")
    owned = sum(c.owners for c in ctx.result("chunks"))
    # Every value in the runs' ranges is some entry's when as many are stored there
    # as entries there stored one under their own id (each id once) and none of
    # those lacks it; only then is the search of the whole store left out.
    whole = outside == 0 and inside == owned and all(row[4] for row in ctx.result("values"))
    strays = [] if whole else ctx.result("orphans")
    out.extend(
        _v("orphan_value", None, None, i, f"a value is stored for entry {i}, which does not exist")
        for (i,) in strays
    )
    return out


@_builtin("counts")
def _counts(ctx: _Context) -> list[dict[str, Any]]:
    finished = ctx.finished_rows
    if not finished:
        return []
    ids = [r["run_id"] for r in finished]
    chunks = [c for c in ctx.result("chunks") if c.run_id in ids]  # a run that did not
    # finish: its counts are not final (its unfinished chains are not reported either)
    out = [_chunk_mismatch(ctx, c) for c in chunks if _nonzero(c.recorded) != _nonzero(c.held)]
    steps = ctx.steps
    tallies: dict[str, dict[str, int]] = {
        rid: {"first": 0, "rejected": 0, "failed": 0, "published": 0} for rid in ids
    }
    last = {rid: max((p for p, _, _ in steps.by_run.get(rid, [])), default=-1) for rid in ids}
    for chunk in chunks:
        t = tallies[chunk.run_id]
        for position, (ok, rejected, failed) in chunk.held.items():
            if position == 0:
                t["first"] += ok + rejected + failed
            t["rejected"] += rejected
            t["failed"] += failed
            if position == last[chunk.run_id]:
                t["published"] += ok
    for row in finished:
        rid, t = row["run_id"], tallies[row["run_id"]]
        kinds = [k for _, _, k in steps.by_run.get(rid, [])]
        problems = []
        total = row["n_published"] + row["n_rejected"] + row["n_failed"]
        if row["n_input"] != total:
            problems.append(
                f"n_input {row['n_input']} != published {row['n_published']} + rejected "
                f"{row['n_rejected']} + failed {row['n_failed']} ({total})"
            )
        if kinds and kinds[0] == StepKind.MAP and t["first"] != row["n_input"]:
            problems.append(f"n_input {row['n_input']} but {t['first']} entries at the first step")
        if kinds and all(k == StepKind.MAP for k in kinds):
            for column, tally, what in (
                ("n_published", "published", "ok entries at the last step"),
                ("n_rejected", "rejected", "rejected entries"),
                ("n_failed", "failed", "failed entries"),
            ):
                if row[column] != t[tally]:
                    problems.append(f"{column} {row[column]} but {t[tally]} {what}")
        if problems:
            out.append(_v("counts_mismatch", rid, None, None, "; ".join(problems)))
    return out


def _nonzero(counts: dict[int, tuple[int, int, int]]) -> dict[int, tuple[int, int, int]]:
    return {p: c for p, c in counts.items() if any(c)}


def _chunk_mismatch(ctx: _Context, chunk: _ChunkRow) -> dict[str, Any]:
    """The ``counts_mismatch`` of a chunk whose recorded counts are not its entries'."""
    recorded, held = _nonzero(chunk.recorded), _nonzero(chunk.held)
    parts = []
    for position in sorted(set(recorded) | set(held)):
        was, now = recorded.get(position, (0, 0, 0)), held.get(position, (0, 0, 0))
        if was != now:
            parts.append(
                f"step {ctx.steps.name(chunk.run_id, position)}: records ok/rejected/failed "
                f"{'/'.join(map(str, was))}, holds {'/'.join(map(str, now))}"
            )
    return _v(
        "counts_mismatch",
        chunk.run_id,
        None,
        None,
        f"chunk {chunk.chunk_no} (entries {chunk.first_entry}..{chunk.last_entry}): "
        + "; ".join(parts),
    )


@_builtin("unclaimed")
def _unclaimed(ctx: _Context) -> list[dict[str, Any]]:
    out = []
    for entry_id, run_id, key, position, chunk_run in ctx.result("unclaimed"):
        step = ctx.steps.name(run_id, position)
        if chunk_run is not None:
            where = f"lies in a chunk of run {chunk_run}, not of its own run"
        elif run_id is None:
            where = "names no run of the store and lies in no chunk"
        else:
            where = "lies in no chunk its run claimed"
        out.append(
            _v("unclaimed_entry", run_id, key, entry_id, f"entry {entry_id} at step {step} {where}")
        )
    return out


def _step_names(expected_steps: str | Sequence[str]) -> list[str]:
    """``expected_steps`` as a list of names: a text is comma-separated, as the CLI's
    ``--expected-steps`` (``"ingest,publish"``), never a sequence of letters.

    Raises
    ------
    InvalidArgument
        No name at all.

    Examples
    --------
    >>> _step_names("ingest, normalize,publish")
    ['ingest', 'normalize', 'publish']
    """
    if isinstance(expected_steps, str):
        names = [s.strip() for s in expected_steps.split(",") if s.strip()]
    elif isinstance(expected_steps, Iterable):
        names = [str(s) for s in expected_steps]
    else:
        names = []
    if not names:
        raise InvalidArgument(
            "expected_steps= takes step names (a list, or one text separated by commas), "
            f"not {expected_steps!r}",
            argument="expected_steps",
        )
    return names


def _expected_steps(ctx: _Context, expected: list[str]) -> list[dict[str, Any]]:
    steps = ctx.steps
    out = []
    for rid in ctx.run_ids:
        names = [name for _, name, _ in steps.by_run.get(rid, [])]
        if names != expected:
            missing = [n for n in expected if n not in names]
            extra = [n for n in names if n not in expected]
            detail = []
            if missing:
                detail.append(f"missing {', '.join(missing)}")
            if extra:
                detail.append(f"unexpected {', '.join(extra)}")
            if not detail:
                detail.append("in another order")
            out.append(
                _v(
                    "unexpected_steps",
                    rid,
                    None,
                    None,
                    f"steps are {' -> '.join(names) or '(none)'}, expected "
                    f"{' -> '.join(expected)} ({'; '.join(detail)})",
                )
            )
    return out


__all__ = [
    "CODES",
    "SEVERITIES",
    "VIOLATION_COLUMNS",
    "CheckCode",
    "CheckReport",
    "Severity",
    "check",
    "register_check",
    "registered_checks",
    "unregister_check",
]
