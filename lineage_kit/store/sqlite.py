"""The embedded SQLite implementation of :class:`~lineage_kit.store.backend.Backend`.

Opening (identification, migrations, read-only mode) is in :mod:`.connection`,
the statements in :mod:`.writer` (writes), :mod:`.queries` (reads) and
:mod:`.integrity` (the checks); this class binds them to one connection.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import LineageKitError, RunNotFound, StoreClosed
from ..model import RunEnd, RunStart, StepRow, StepTiming
from . import integrity, queries, writer
from .backend import Backend, Chunk, ChunkCounts, Hasher, Ids, Writer
from .connection import open_connection
from .transaction import transaction

#: The driver's errors a damaged or unreadable store can raise (the CLI turns them
#: into a one-line message).
DATABASE_ERRORS: tuple[type[Exception], ...] = (sqlite3.DatabaseError,)


def _data_version(con: sqlite3.Connection) -> int:
    """``PRAGMA data_version``: changes when another connection commits."""
    return con.execute("PRAGMA data_version").fetchone()[0]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class SQLiteBackend(Backend):
    """A lineage store in one SQLite file.

    Parameters
    ----------
    path : str or PathLike
        The SQLite file.
    create : bool, default False
        Create the store if the file is missing.
    read_only : bool, default False
        Open with SQLite ``mode=ro`` (a store at an older version is migrated first).

    Raises
    ------
    StoreNotFound, NotALineageStore, SchemaVersionError, LineageKitError
        See :func:`lineage_kit.store.connection.open_connection`.

    Examples
    --------
    >>> from lineage_kit.store import SCHEMA_VERSION
    >>> backend = SQLiteBackend("lineage.db", read_only=True)
    >>> backend.schema_version() == SCHEMA_VERSION, backend.resolve_run() in backend.all_run_ids()
    (True, True)
    >>> backend.close()
    """

    def __init__(
        self, path: str | os.PathLike[str], *, create: bool = False, read_only: bool = False
    ) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        self.read_only = read_only
        self._con: sqlite3.Connection | None = open_connection(
            self.path, create=create, read_only=read_only
        )
        self._run_nos: dict[str, int] = {}

    @property
    def con(self) -> sqlite3.Connection:
        """The ``sqlite3.Connection`` (autocommit; transactions are explicit).

        Raises
        ------
        StoreClosed
            The backend was closed.
        """
        if self._con is None:
            raise StoreClosed(self.location)
        return self._con

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    @property
    def closed(self) -> bool:
        return self._con is None

    def schema_version(self) -> int:
        return self.con.execute("PRAGMA user_version").fetchone()[0]

    def snapshot(self) -> AbstractContextManager[Any]:
        return transaction(self.con, write=False)

    def __repr__(self) -> str:
        return f"<SQLiteBackend {self.location!r} ({'closed' if self.closed else 'open'})>"

    # ----------------------------------------------------------------- writing

    def begin_run(self, run: RunStart, steps: Sequence[StepRow]) -> None:
        self._run_nos[run.run_id] = writer.begin_run(self.con, run, steps)

    def _run_no(self, run_id: str) -> int:
        """The run number of a run written through this store (cached: never changes).

        Raises
        ------
        RunNotFound
            No such run.
        """
        found = self._run_nos.get(run_id)
        if found is None:
            found = writer.run_no(self.con, run_id)
            if found is None:
                raise RunNotFound(f"no run {run_id!r} in {self.location}")
            self._run_nos[run_id] = found
        return found

    def existing_keys(self, run_id: str, keys: Sequence[str]) -> dict[str, int]:
        return writer.existing_keys(self.con, self._run_no(run_id), keys)

    def reserve_ids(self, n: int) -> int:
        return writer.reserve_ids(self.con, n)

    def write_chunk(self, first_id: int, chunk: Chunk) -> bool:
        if not chunk.entries:
            return False
        run = self._run_no(chunk.entries[0].run_id)
        return writer.write_chunk(self.con, first_id, chunk, run, _now())

    def chunk_counts(self, run_id: str) -> ChunkCounts:
        return writer.chunk_counts(self.con, run_id)

    def finish_run(self, run_id: str, end: RunEnd, timings: Sequence[StepTiming]) -> None:
        writer.finish_run(self.con, run_id, end, timings)

    def discard_run(self, run_id: str) -> None:
        writer.discard_run(self.con, run_id)

    def running_runs(self) -> list[Writer]:
        return [Writer(*row) for row in writer.running_runs(self.con)]

    def mark_interrupted(self, run_ids: Sequence[str], finished_at: str) -> None:
        writer.mark_interrupted(self.con, run_ids, finished_at)

    # ------------------------------------------------------------------- runs

    def stored_run_rows(self) -> list[tuple]:
        return queries.stored_run_rows(self.con)

    def latest_run_id(self) -> str | None:
        return queries.latest_run_id(self.con)

    def run_ids_with_prefix(self, prefix: str, limit: int) -> list[str]:
        return queries.run_ids_with_prefix(self.con, prefix, limit)

    def all_run_ids(self) -> list[str]:
        return queries.all_run_ids(self.con)

    def live_counts(self, run_ids: Sequence[str]) -> dict[str, tuple[int, int, int, int]]:
        return queries.live_counts(self.con, list(run_ids))

    # ------------------------------------------------------------------ steps

    def step_meta_rows(self, run_id: str) -> list[tuple]:
        return queries.step_meta_rows(self.con, run_id)

    def step_name_rows(self, run_id: str) -> list[tuple[str, int, str]]:
        return queries.step_name_rows(self.con, run_id)

    def step_status_counts(self, run_id: str) -> list[tuple[int, str, int]]:
        return queries.step_status_counts(self.con, run_id)

    # ---------------------------------------------------------------- entries

    def count_entries(self, run_id: str) -> int:
        return queries.count_entries(self.con, run_id)

    def entry_columns(
        self, run_id: str, *, key: str | None = None, position: int | None = None
    ) -> tuple:
        return queries.entry_columns(self.con, run_id, key=key, position=position)

    def created_at_json(
        self, run_id: str, *, key: str | None = None, position: int | None = None
    ) -> str:
        return queries.created_at_json(self.con, run_id, key=key, position=position)

    def hash_table(
        self, run_id: str, *, key: str | None = None, position: int | None = None
    ) -> tuple[str | None, bytes | list[str | None]]:
        return queries.hash_table(self.con, run_id, key=key, position=position)

    def edge_columns(
        self,
        run_id: str,
        *,
        key: str | None = None,
        position: int | None = None,
        extra_only: bool = False,
    ) -> tuple[str | None, str | None]:
        return queries.edge_columns(
            self.con, run_id, key=key, position=position, extra_only=extra_only
        )

    def value_columns(
        self, run_id: str, *, key: str | None = None, position: int | None = None
    ) -> tuple[str | None, str | None]:
        return queries.value_columns(self.con, run_id, key=key, position=position)

    def connected_entry_rows(self, run_id: str, key: str) -> list[tuple]:
        return queries.connected_entry_rows(self.con, run_id, key)

    def links_among(self, entry_ids: Sequence[int]) -> list[tuple[int, int]]:
        return queries.links_among(self.con, list(entry_ids))

    def trace_rows(self, run_id: str, key: str) -> list[tuple]:
        return queries.trace_rows(self.con, run_id, key)

    def walk_rows(self, entry_id: int, depth: int | None, direction: str) -> list[tuple]:
        return queries.walk_rows(self.con, entry_id, depth, direction)

    def entry_exists(self, entry_id: int) -> bool:
        return queries.entry_exists(self.con, entry_id)

    def source_rows(self, entry_ids: Sequence[int]) -> list[tuple]:
        return queries.source_rows(self.con, list(entry_ids))

    def last_entries_of_key(self, run_id: str, key: str) -> list[int]:
        return queries.last_entries_of_key(self.con, run_id, key)

    def value_rows(self, entry_ids: Sequence[int]) -> list[tuple[int, str]]:
        return queries.value_rows(self.con, list(entry_ids))

    def report_rows(self, run_id: str) -> Iterator[tuple]:
        return queries.report_rows(self.con, run_id)

    def chunk_moments(self, run_id: str) -> list[tuple[int, str, int]]:
        return queries.chunk_moments(self.con, run_id)

    def outcome_reason_counts(self, run_id: str) -> list[tuple[int, str, str | None, int]]:
        return queries.outcome_reason_counts(self.con, run_id)

    def step_value_sample(
        self, run_id: str, position: int, limit: int
    ) -> list[tuple[int, str, str | None]]:
        return queries.step_value_sample(self.con, run_id, position, limit)

    # ----------------------------------------------------------------- checks

    def check_step_kinds(self, run_ids: Sequence[str]) -> list[tuple[str, int, str, str]]:
        return integrity.step_kinds(self.con, integrity.runs_param(run_ids))

    def check_readers(self, n: int) -> AbstractContextManager[list[Backend]]:
        return self._check_readers(n)

    @contextmanager
    def _check_readers(self, n: int) -> Iterator[list[Backend]]:
        """Up to ``n`` read-only connections whose snapshot is this one's.

        Each reader notes the store's ``PRAGMA data_version`` before this backend's
        snapshot starts and again once its own has: an equal value means no other
        connection committed in between, so both read one state; a reader that saw
        a commit is dropped (the checks then do its work here). None are opened
        inside a transaction already open on this connection (it may hold writes
        of its own that another connection cannot see).
        """
        readers: list[SQLiteBackend] = []
        try:
            if not self.con.in_transaction:
                for _ in range(n):
                    try:
                        readers.append(SQLiteBackend(self.path, read_only=True))
                    except (sqlite3.Error, LineageKitError):
                        break
            before = [_data_version(r.con) for r in readers]
            with self.snapshot():
                self.con.execute("SELECT 1 FROM runs LIMIT 1").fetchall()  # starts it
                same = []
                for reader, version in zip(readers, before, strict=True):
                    reader.con.execute("BEGIN")
                    if _data_version(reader.con) == version:
                        same.append(reader)
                yield same
        finally:
            for reader in readers:
                reader.close()  # closing a connection ends its read transaction

    def check_chunk_counts(self, run_ids: Sequence[str]) -> list[tuple]:
        return integrity.chunk_counts(self.con, integrity.runs_param(run_ids))

    def check_value_counts(self, run_ids: Sequence[str]) -> tuple[int, int]:
        return integrity.value_counts(self.con, integrity.runs_param(run_ids))

    def check_unclaimed_entries(
        self, run_ids: Sequence[str], chunks: Sequence[tuple[str, int]]
    ) -> list[tuple]:
        chunks_json = json.dumps([list(c) for c in chunks])
        return integrity.unclaimed_entries(self.con, integrity.runs_param(run_ids), chunks_json)

    def check_chain_rows(self, run_ids: Ids, finished: Ids) -> list[tuple]:
        runs, done = integrity.runs_param(run_ids), integrity.runs_param(finished)
        return integrity.chain_rows(self.con, runs, done)

    def check_links_from_missing_children(self, run_ids: Sequence[str]) -> list[tuple]:
        return integrity.links_from_missing_children(self.con, integrity.runs_param(run_ids))

    def check_cycle_links(self, run_ids: Sequence[str]) -> list[tuple]:
        return integrity.cycle_links(self.con, integrity.runs_param(run_ids))

    def check_repeated_keys(self, run_ids: Sequence[str]) -> list[tuple]:
        return integrity.repeated_keys(self.con, integrity.runs_param(run_ids))

    def check_value_problems(self, run_ids: Ids, hasher: Hasher) -> list[tuple]:
        return integrity.value_problems(self.con, integrity.runs_param(run_ids), hasher)

    def check_values_without_entry(self) -> list[tuple[int]]:
        return integrity.values_without_entry(self.con)
