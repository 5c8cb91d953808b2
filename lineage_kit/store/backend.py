"""The storage seam: everything the engine, the pipeline, the readers and the checks
need from a lineage store, as one :class:`Backend` object per open store.

:class:`~lineage_kit.store.sqlite.SQLiteBackend` is the embedded implementation; a
PostgreSQL backend implements the same methods. The contract every implementation
keeps:

- **Parameters are values.** Run ids, keys, entry ids and filters arrive as Python
  values and are bound as parameters; no caller's text is ever formatted into SQL.
- **Entry ids are reserved per chunk** (:meth:`Backend.reserve_ids`) before the
  chunk is written: the range comes from the backend, so parent links are built in
  memory by the engine (or a worker on another host), never looked up and never
  derived from insertion order.
- **One transaction per chunk** (:meth:`Backend.write_chunk`): a reader sees a
  chunk whole or not at all, and a chunk is claimed by its ``(run, chunk_no)``
  first, so a retried chunk is written once.
- **Rows are plain tuples or named tuples**, in the column orders named beside each
  method (``lineage_kit.store.queries`` holds the column tuples); nothing here
  knows pandas.

The concrete methods at the end (run selection, live counts, dead runs) are built
on the abstract ones and shared by every backend.
"""

from __future__ import annotations

import abc
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from operator import itemgetter
from typing import Any, NamedTuple

from ..base import key_text
from ..errors import InvalidArgument, KeyNotFound, RunNotFound
from ..model import EntryRow, RunEnd, RunStart, RunStatus, StepRow, StepTiming
from .liveness import writer_alive
from .queries import RUN_COLUMNS, TRACE_COLUMNS, parse_id_list

#: Run ids given to a query; a function giving the 16-byte hash of a stored value's
#: bytes.
Ids = Sequence[str]
Hasher = Callable[[bytes], bytes]

_POSITION_STATUS = itemgetter(1, 3)  # of an EntryRow
_COUNT_COLUMNS = ("n_input", "n_published", "n_rejected", "n_failed")


class Writer(NamedTuple):
    """A ``running`` run and the process writing it."""

    run_id: str
    host: str | None
    pid: int | None
    started: str | None


class Chunk(NamedTuple):
    """One chunk's rows, in the order their entry ids are given.

    Attributes
    ----------
    entries : list of EntryRow
    values : list of str or None
        The JSON value of each entry, in the same order. None: the entry's value is
        its first parent's, and that parent is in this chunk (an identity step such
        as ingest -> publish); the backend stores no new value for it. The entry's
        ``value_hash`` is given all the same.
    local_parents : list of (int, int)
        ``(child, parent)`` links as indexes into ``entries``.
    absolute_parents : list of (int, int)
        ``(child index, parent entry_id)`` links to entries of earlier chunks.
    chunk_no : int
        The chunk's number in its run: 0, 1, 2, ... in the order the engine cuts
        them (a merge barrier's chunks continue the numbering). The backend claims
        ``(run, chunk_no)`` when writing, so a chunk is written at most once.
    """

    entries: list[EntryRow]
    values: list[str | None]
    local_parents: list[tuple[int, int]]
    absolute_parents: list[tuple[int, int]]
    chunk_no: int

    def links(self, first_id: int) -> list[tuple[int, int]]:
        """Every ``(child_id, parent_id)`` link once the chunk's ids start at ``first_id``.

        Examples
        --------
        >>> Chunk([], [], [(1, 0)], [(0, 7)], 0).links(100)
        [(101, 100), (100, 7)]
        """
        return [(first_id + c, first_id + p) for c, p in self.local_parents] + [
            (first_id + c, p) for c, p in self.absolute_parents
        ]

    def resolved_values(self) -> list[str]:
        """:attr:`values` with each None replaced by its first local parent's value
        (for a backend that stores one value per entry).

        Raises
        ------
        ValueError
            A None value whose entry has no parent in the chunk.

        Examples
        --------
        >>> Chunk([], ['{"a":1}', None, None], [(1, 0), (2, 1)], [], 0).resolved_values()
        ['{"a":1}', '{"a":1}', '{"a":1}']
        """
        values = self.values
        if None not in values:
            return values  # type: ignore[return-value]
        first: dict[int, int] = {}
        for child, parent in self.local_parents:
            first.setdefault(child, parent)
        out = list(values)
        for i, value in enumerate(out):
            if value is None:
                if i not in first:
                    raise ValueError(f"entry {i} of chunk {self.chunk_no} has no value")
                out[i] = out[first[i]]  # parents come before their children
        return out  # type: ignore[return-value]

    def status_counts(self) -> dict[int, list[int]]:
        """Per position, ``[ok, rejected, failed]`` counts of the chunk's entries.

        Examples
        --------
        >>> from lineage_kit.model import EntryRow
        >>> rows = [EntryRow("r", p, "k", s, None, None, "t", None)
        ...         for p, s in ((0, "ok"), (0, "rejected"), (1, "ok"))]
        >>> Chunk(rows, [], [], [], 0).status_counts()
        {0: [1, 1, 0], 1: [1, 0, 0]}
        """
        counts: dict[int, list[int]] = {}
        # one pass, no Python-level call per row
        for (position, status), n in Counter(map(_POSITION_STATUS, self.entries)).items():
            counts.setdefault(position, [0, 0, 0])[_STATUS_INDEX[status]] += n
        return dict(sorted(counts.items()))


class ChunkCounts(NamedTuple):
    """A run's entry counts summed from its written chunks (:meth:`Backend.chunk_counts`).

    Attributes
    ----------
    counts : dict of int to (int, int, int)
        Per step position: ``(ok, rejected, failed)`` entries.
    chunks : int
        How many chunks of the run were written.
    """

    counts: dict[int, tuple[int, int, int]]
    chunks: int


_STATUS_INDEX = {"ok": 0, "rejected": 1, "failed": 2}


class Backend(abc.ABC):
    """One open lineage store (see the module docstring for the contract).

    Attributes
    ----------
    location : str
        The path or URL, for messages (never a password).
    read_only : bool
        Opened for reading only: every write method raises.
    """

    location: str
    read_only: bool

    # ------------------------------------------------------------------ basics

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connection; further calls raise :class:`StoreClosed`."""

    @property
    @abc.abstractmethod
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abc.abstractmethod
    def schema_version(self) -> int:
        """The store's schema version."""

    @abc.abstractmethod
    def snapshot(self) -> AbstractContextManager[Any]:
        """A context in which every read sees one consistent state of the store."""

    # ----------------------------------------------------------------- writing

    @abc.abstractmethod
    def begin_run(self, run: RunStart, steps: Sequence[StepRow]) -> None:
        """Insert a ``running`` run and its steps (one transaction)."""

    @abc.abstractmethod
    def existing_keys(self, run_id: str, keys: Sequence[str]) -> dict[str, int]:
        """Which of ``keys`` the run already uses: key -> the first step (position)
        it has an entry at."""

    @abc.abstractmethod
    def reserve_ids(self, n: int) -> int:
        """Reserve ``n`` consecutive entry ids for one chunk; return the first.

        No other writer (process or host) is given an id in the range. A range
        that is never written leaves a gap, which is harmless.
        """

    @abc.abstractmethod
    def write_chunk(self, first_id: int, chunk: Chunk) -> bool:
        """Write a chunk's entries (ids ``first_id`` onwards), values and parent links
        in one transaction, unless the chunk was written already.

        The transaction first claims ``(run, chunk.chunk_no)`` in the chunks table
        (with the chunk's id range, its :meth:`Chunk.status_counts` and the time).
        If that claim exists, nothing is written and False is returned (a retried or
        duplicated task); otherwise the chunk is written and True returned.
        Idempotent: writing the same chunk twice stores it once.
        """

    @abc.abstractmethod
    def chunk_counts(self, run_id: str) -> ChunkCounts:
        """The run's per-position ``(ok, rejected, failed)`` entry counts, summed over
        its written chunks, and the number of chunks written."""

    @abc.abstractmethod
    def finish_run(self, run_id: str, end: RunEnd, timings: Sequence[StepTiming]) -> None:
        """Record a run's outcome, counts and per-step timing (one transaction)."""

    @abc.abstractmethod
    def discard_run(self, run_id: str) -> None:
        """Delete every row of a run (its input turned out to be unreadable)."""

    @abc.abstractmethod
    def running_runs(self) -> list[Writer]:
        """Every run stored as ``running``, with its writer."""

    @abc.abstractmethod
    def mark_interrupted(self, run_ids: Sequence[str], finished_at: str) -> None:
        """Mark runs whose writer is gone as ``interrupted``."""

    # ------------------------------------------------------------------- runs

    @abc.abstractmethod
    def stored_run_rows(self) -> list[tuple]:
        """Every run as stored (columns :data:`RUN_COLUMNS`), newest first."""

    @abc.abstractmethod
    def latest_run_id(self) -> str | None:
        """The newest run's id, or None for a store without runs."""

    @abc.abstractmethod
    def run_ids_with_prefix(self, prefix: str, limit: int) -> list[str]:
        """Up to ``limit`` run ids starting with ``prefix`` (lowercase)."""

    @abc.abstractmethod
    def all_run_ids(self) -> list[str]:
        """Every run id, oldest first."""

    @abc.abstractmethod
    def live_counts(self, run_ids: Sequence[str]) -> dict[str, tuple[int, int, int, int]]:
        """``(n_input, n_published, n_rejected, n_failed)`` counted from the entries of
        unfinished runs (a run without entries is absent)."""

    # ------------------------------------------------------------------ steps

    @abc.abstractmethod
    def step_meta_rows(self, run_id: str) -> list[tuple]:
        """A run's steps in order (columns ``queries.STEP_META_COLUMNS``)."""

    @abc.abstractmethod
    def step_name_rows(self, run_id: str) -> list[tuple[str, int, str]]:
        """``(run_id, position, name)`` of a run's steps in order."""

    @abc.abstractmethod
    def step_status_counts(self, run_id: str) -> list[tuple[int, str, int]]:
        """``(position, status, count)`` of a run's entries."""

    # ---------------------------------------------------------------- entries

    @abc.abstractmethod
    def count_entries(self, run_id: str) -> int:
        """How many lineage entries a run has."""

    @abc.abstractmethod
    def entry_columns(
        self, run_id: str, *, key: str | None = None, position: int | None = None
    ) -> tuple:
        """The selected entries as aggregated columns (see ``queries.entry_columns``)."""

    @abc.abstractmethod
    def created_at_json(
        self, run_id: str, *, key: str | None = None, position: int | None = None
    ) -> str:
        """The ``created_at`` of the :meth:`entry_columns` selection as a JSON array."""

    @abc.abstractmethod
    def hash_table(
        self, run_id: str, *, key: str | None = None, position: int | None = None
    ) -> tuple[str | None, bytes | list[str | None]]:
        """The ids and hashes of the values the selection's entries point at (see
        ``queries.hash_table``)."""

    @abc.abstractmethod
    def edge_columns(
        self,
        run_id: str,
        *,
        key: str | None = None,
        position: int | None = None,
        extra_only: bool = False,
    ) -> tuple[str | None, str | None]:
        """Parent links of the selection as ``(parent_ids, child_ids)`` comma lists
        (``extra_only``: a merge's further parents only, those not in ``parent_id``)."""

    @abc.abstractmethod
    def value_columns(
        self, run_id: str, *, key: str | None = None, position: int | None = None
    ) -> tuple[str | None, str | None]:
        """The selection's entry ids (comma list) and values (one JSON array text)."""

    @abc.abstractmethod
    def connected_entry_rows(self, run_id: str, key: str) -> list[tuple]:
        """Entries connected to ``key`` in a run (``queries.ENTRY_COLUMNS`` + value)."""

    @abc.abstractmethod
    def links_among(self, entry_ids: Sequence[int]) -> list[tuple[int, int]]:
        """``(parent_id, child_id)`` links whose both ends are in ``entry_ids``."""

    @abc.abstractmethod
    def trace_rows(self, run_id: str, key: str) -> list[tuple]:
        """A key's entries and everything up- and downstream (``queries.TRACE_COLUMNS``)."""

    @abc.abstractmethod
    def walk_rows(self, entry_id: int, depth: int | None, direction: str) -> list[tuple]:
        """Everything an entry came from (``"up"``) or led to (``"down"``)."""

    @abc.abstractmethod
    def entry_exists(self, entry_id: int) -> bool:
        """Whether a lineage entry with this id exists."""

    @abc.abstractmethod
    def source_rows(self, entry_ids: Sequence[int]) -> list[tuple]:
        """The first-step ancestors of the entries, with their values."""

    @abc.abstractmethod
    def last_entries_of_key(self, run_id: str, key: str) -> list[int]:
        """The key's entries at its furthest step in the run."""

    @abc.abstractmethod
    def value_rows(self, entry_ids: Sequence[int]) -> list[tuple[int, str]]:
        """``(entry_id, value JSON)`` of the entries."""

    @abc.abstractmethod
    def report_rows(self, run_id: str) -> Iterator[tuple]:
        """Every entry of a run with its parent ids (``queries.REPORT_COLUMNS``)."""

    @abc.abstractmethod
    def chunk_moments(self, run_id: str) -> list[tuple[int, str, int]]:
        """``(position, created_at, entries)``: when each chunk entered each step."""

    @abc.abstractmethod
    def outcome_reason_counts(self, run_id: str) -> list[tuple[int, str, str | None, int]]:
        """``(position, status, reason, count)`` of a run's rejected and failed entries."""

    @abc.abstractmethod
    def step_value_sample(
        self, run_id: str, position: int, limit: int
    ) -> list[tuple[int, str, str | None]]:
        """Up to ``limit`` ``ok`` entries of one step with their parents' values
        (``queries.step_value_sample``)."""

    # ----------------------------------------------------------------- checks

    @abc.abstractmethod
    def check_step_kinds(self, run_ids: Sequence[str]) -> list[tuple[str, int, str, str]]:
        """``(run_id, position, name, kind)`` of every step of the runs."""

    def check_readers(self, n: int) -> AbstractContextManager[list[Backend]]:
        """A :meth:`snapshot` of this backend, and up to ``n`` other backends that read
        the very same state (the checks run their passes on them at once, each in a
        thread of its own); closed when the context ends.

        This implementation gives none: the checks then run one after the other.
        """
        return _no_readers(self)

    @abc.abstractmethod
    def check_chunk_counts(self, run_ids: Sequence[str]) -> list[tuple]:
        """Every chunk of the runs with its recorded counts and the entries it holds
        (``integrity.chunk_counts``)."""

    @abc.abstractmethod
    def check_value_counts(self, run_ids: Sequence[str]) -> tuple[int, int]:
        """``(inside, outside)``: stored values inside the runs' chunks' id ranges and
        outside every one (``integrity.value_counts``)."""

    @abc.abstractmethod
    def check_unclaimed_entries(
        self, run_ids: Sequence[str], chunks: Sequence[tuple[str, int]]
    ) -> list[tuple]:
        """Entries no chunk of their run claims (``integrity.unclaimed_entries``)."""

    @abc.abstractmethod
    def check_chain_rows(self, run_ids: Ids, finished: Ids) -> list[tuple]:
        """Entries with their links and parents (``integrity.chain_rows``)."""

    @abc.abstractmethod
    def check_links_from_missing_children(self, run_ids: Sequence[str]) -> list[tuple]:
        """``(child, parent, parent_run, parent_key)`` links whose child is missing."""

    @abc.abstractmethod
    def check_cycle_links(self, run_ids: Sequence[str]) -> list[tuple]:
        """``(child, parent, run_id, key)`` links that close a cycle."""

    @abc.abstractmethod
    def check_repeated_keys(self, run_ids: Sequence[str]) -> list[tuple]:
        """Entries of keys seen more than once at one step of a run."""

    @abc.abstractmethod
    def check_value_problems(self, run_ids: Ids, hasher: Hasher) -> list[tuple]:
        """Entries without a value or whose value does not match its hash."""

    @abc.abstractmethod
    def check_values_without_entry(self) -> list[tuple[int]]:
        """``(entry_id,)`` of stored values whose entry does not exist (the whole
        store is searched)."""

    # ------------------------------------------- shared (built on the above)

    def run_rows(self) -> list[dict[str, Any]]:
        """Every run as a dict (keys :data:`RUN_COLUMNS`), newest first.

        ``parameters`` is the stored JSON text (see
        :func:`lineage_kit.store.queries.parse_parameters`).

        A run still marked ``running`` whose writing process is gone is reported
        ``interrupted``; the counts of a ``running`` or ``interrupted`` run (stored
        only when a run finishes) are counted from its entries so far.
        """
        rows = [dict(zip(RUN_COLUMNS, r, strict=True)) for r in self.stored_run_rows()]
        for row in rows:
            if row["status"] == RunStatus.RUNNING and not writer_alive(
                row["writer_host"], row["writer_pid"], row["writer_started"]
            ):
                row["status"] = RunStatus.INTERRUPTED.value
        unfinished = [r["run_id"] for r in rows if _unfinished(r["status"])]
        if unfinished:
            counts = self.live_counts(unfinished)
            for row in rows:
                if _unfinished(row["status"]):
                    found = counts.get(row["run_id"], (0, 0, 0, 0))
                    row.update(zip(_COUNT_COLUMNS, found, strict=True))
        return rows

    def resolve_run(self, run: str | None = "latest") -> str:
        """``"latest"``, a full run id or a unique prefix (any case) -> one run id.

        Raises
        ------
        RunNotFound
            No runs, nothing or several match, or ``run`` is ``"all"``.
        """
        if run is None or run == "latest":
            latest = self.latest_run_id()
            if latest is None:
                raise RunNotFound(f"the store {self.location} has no runs yet")
            return latest
        if run == "all":
            raise RunNotFound(
                "'all' selects every run; this needs one run: an id, a unique prefix or 'latest'"
            )
        if not isinstance(run, str) or not run:
            raise RunNotFound(f"a run is a run id, a unique prefix or 'latest', not {run!r}")
        prefix = run.lower()
        matches = self.run_ids_with_prefix(prefix, 2)
        if not matches:
            raise RunNotFound(f"no run matches {run!r} in {self.location}")
        if len(matches) > 1 and prefix not in matches:
            raise RunNotFound(f"{run!r} matches more than one run; give more characters")
        return prefix if prefix in matches else matches[0]

    def resolve_runs(self, run: str | Sequence[str] | None = "latest") -> list[str]:
        """Like :meth:`resolve_run`; ``"all"`` gives every run id (oldest first), a
        list gives each resolved once, in order.

        Raises
        ------
        RunNotFound
            A run id, prefix or ``"latest"`` matches nothing.
        InvalidArgument
            ``run`` is neither text nor a list of texts.
        """
        if run == "all":
            return self.all_run_ids()
        if run is None or isinstance(run, str):
            return [self.resolve_run(run)]
        if not isinstance(run, Sequence) or not all(isinstance(r, str) for r in run):
            raise InvalidArgument(
                "run= takes a run id, a unique prefix, 'latest', 'all' or a list of run ids, "
                f"not {type(run).__name__} {run!r}",
                argument="run",
            )
        return list(dict.fromkeys(self.resolve_run(r) for r in run))

    def trace_records(self, key: str | int | float, run: str | Sequence[str] | None = "latest"):
        """:meth:`lineage_kit.LineageStore.trace` as a list of dicts, without pandas
        (what ``lineage-kit trace`` prints): keys ``queries.TRACE_COLUMNS``, with
        ``parent_ids`` a list. Raises as ``trace`` does."""
        key = key_text(key)
        run_ids = self.resolve_runs(run)
        rows = [
            dict(zip(TRACE_COLUMNS, row, strict=True))
            for run_id in run_ids
            for row in self.trace_rows(run_id, key)
        ]
        if not rows:
            raise KeyNotFound(key, run_ids, all_runs=run == "all")
        for row in rows:
            row["parent_ids"] = parse_id_list(row["parent_ids"])
        return rows

    def step_position(
        self, run_id: str, step: str | int, steps: list[tuple] | None = None
    ) -> int | None:
        """The position of a step (given by name or position) in a run, or None."""
        steps = steps if steps is not None else self.step_meta_rows(run_id)
        for row in steps:
            if step == row[2] or (isinstance(step, int) and step == row[1]):
                return row[1]
        return None

    def mark_dead_runs(self, finished_at: str) -> list[str]:
        """Persist ``interrupted`` for runs whose writer on this host is gone.

        Returns
        -------
        list of str
            The runs marked.
        """
        dead = [w.run_id for w in self.running_runs() if not writer_alive(*w[1:])]
        self.mark_interrupted(dead, finished_at)
        return dead


def _unfinished(status: str) -> bool:
    return status in (RunStatus.RUNNING, RunStatus.INTERRUPTED)


@contextmanager
def _no_readers(backend: Backend) -> Iterator[list[Backend]]:
    with backend.snapshot():
        yield []
