""":class:`PostgresBackend`: a lineage store in a PostgreSQL schema.

Opening is in :mod:`.connection`, the statements in :mod:`.writer`,
:mod:`.queries` and :mod:`.integrity`; this class binds them to one connection,
maps run ids to the layout's run numbers, and turns driver errors into
lineage_kit's (one line, host and database named, no password).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from typing import Any

from ...errors import RunNotFound, StoreClosed
from ...model import RunEnd, RunStart, RunStatus, StepRow, StepTiming
from ..backend import Backend, Chunk, ChunkCounts, Hasher, Ids, Writer
from . import integrity, queries, writer
from .connection import lock_space, open_store, translated
from .url import parse


class PostgresBackend(Backend):
    """A lineage store in one schema of a PostgreSQL database.

    Parameters
    ----------
    url : str
        ``postgresql://[user[:password]@][host][:port][/database][?schema=...&...]``;
        libpq fills in what is left out (``PG*`` variables, ``~/.pgpass``), and its
        parameters (``sslmode``, ``options``, ...) are passed on. ``schema``
        (default ``lineage_kit``) is the store's schema.
    create : bool, default False
        Create the store (schema and tables) if the schema is missing or empty.
    read_only : bool, default False
        Open a session in which every transaction is read-only.

    Raises
    ------
    MissingExtra
        psycopg is not installed (``pip install "lineage_kit[postgres]"``).
    StoreUnavailable
        The server cannot be reached or refused the login (one line naming host
        and database).
    StoreNotFound, NotALineageStore, SchemaVersionError
        No store there (and ``create`` is false), a schema that is not ours, or a
        store from a newer lineage_kit; nothing was changed.

    Examples
    --------
    >>> try:
    ...     PostgresBackend("postgresql://ann:s3cret@127.0.0.1:1/team")
    ... except lk.StoreUnavailable as exc:
    ...     print(exc.host, exc.database, "s3cret" in str(exc))
    127.0.0.1:1 team False
    """

    def __init__(self, url: str, *, create: bool = False, read_only: bool = False) -> None:
        self.url = parse(url)
        self.location = self.url.shown
        self.read_only = read_only
        self.space = lock_space(self.url.schema)
        self._runs: dict[str, int] = {}
        self._con: Any = open_store(self.url, create=create, read_only=read_only)

    @property
    def con(self) -> Any:
        """The psycopg connection (autocommit; transactions are explicit).

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
            try:
                self._con.close()
            finally:
                self._con = None

    @property
    def closed(self) -> bool:
        return self._con is None

    def __repr__(self) -> str:
        return f"<PostgresBackend {self.location!r} ({'closed' if self.closed else 'open'})>"

    def _call(self, function: Callable[..., Any], *args: Any) -> Any:
        with translated(self.url, "lost the connection to"):
            return function(self.con, *args)

    def _run_no(self, run_id: str) -> int:
        """The run's number (-1 for a run that does not exist: every query then
        finds nothing)."""
        found = self._runs.get(run_id)
        if found is None:
            found = self._call(queries.run_numbers, [run_id]).get(run_id, -1)
            if found != -1:
                self._runs[run_id] = found
        return found

    def schema_version(self) -> int:
        return int(
            self._call(
                lambda con: con.execute(
                    "SELECT value FROM lineage_kit_meta WHERE name = 'schema_version'"
                ).fetchone()[0]
            )
        )

    def snapshot(self) -> AbstractContextManager[Any]:
        return self._snapshot()

    @contextmanager
    def _snapshot(self) -> Iterator[Any]:
        con = self.con
        if con.info.transaction_status != 0:  # already inside one (IDLE is 0)
            yield con
            return
        with translated(self.url, "lost the connection to"):
            con.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            yield con
        finally:
            with translated(self.url, "lost the connection to"):
                if not con.closed:
                    con.execute("ROLLBACK")

    # ----------------------------------------------------------------- writing

    def begin_run(self, run: RunStart, steps: Sequence[StepRow]) -> None:
        self._runs[run.run_id] = self._call(writer.begin_run, self.space, run, steps)

    def existing_keys(self, run_id: str, keys: Sequence[str]) -> dict[str, int]:
        return self._call(writer.existing_keys, self._run_no(run_id), keys)

    def reserve_ids(self, n: int) -> int:
        return self._call(writer.reserve_ids, n)

    def write_chunk(self, first_id: int, chunk: Chunk) -> bool:
        if not chunk.entries:
            return False
        run_id = chunk.entries[0].run_id
        if self._run_no(run_id) == -1:
            raise RunNotFound(f"no run {run_id} in {self.location} to write a chunk of")
        stamp = datetime.now(UTC).isoformat(timespec="microseconds")
        return self._call(
            writer.write_chunk, self._run_no(run_id), chunk.chunk_no, first_id, chunk, stamp
        )

    def chunk_counts(self, run_id: str) -> ChunkCounts:
        run_no = self._run_no(run_id)
        sums, n = self._call(queries.chunk_sums, [run_no]).get(run_no, ({}, 0))
        return ChunkCounts({p: tuple(c) for p, c in sorted(sums.items())}, n)

    def finish_run(self, run_id: str, end: RunEnd, timings: Sequence[StepTiming]) -> None:
        self._call(writer.finish_run, self.space, self._run_no(run_id), end, timings)

    def discard_run(self, run_id: str) -> None:
        self._call(writer.discard_run, self.space, self._run_no(run_id))
        self._runs.pop(run_id, None)

    def running_runs(self) -> list[Writer]:
        return [Writer(*row) for row in self._call(writer.running_runs)]

    def mark_interrupted(self, run_ids: Sequence[str], finished_at: str) -> None:
        self._call(writer.mark_interrupted, self.space, run_ids, finished_at)

    def dead_runs(self) -> list[str]:
        """Runs stored as ``running`` whose writer's session is gone, on any host."""
        return self._call(writer.dead_runs, self.space)

    def mark_dead_runs(self, finished_at: str) -> list[str]:
        """Persist ``interrupted`` for runs whose writer's session ended (any host).

        Returns
        -------
        list of str
            The runs marked.
        """
        dead = self.dead_runs()
        self.mark_interrupted(dead, finished_at)
        return dead

    def run_rows(self) -> list[dict[str, Any]]:
        """As :meth:`Backend.run_rows`, a writer's liveness decided by its lock."""
        rows = super().run_rows()
        if any(r["status"] == RunStatus.RUNNING for r in rows):
            dead = set(self.dead_runs())
            for row in rows:
                if row["status"] == RunStatus.RUNNING and row["run_id"] in dead:
                    row["status"] = RunStatus.INTERRUPTED.value
        return rows

    # ------------------------------------------------------------------- runs

    def stored_run_rows(self) -> list[tuple]:
        return self._call(queries.stored_run_rows)

    def latest_run_id(self) -> str | None:
        return self._call(queries.latest_run_id)

    def run_ids_with_prefix(self, prefix: str, limit: int) -> list[str]:
        return self._call(queries.run_ids_with_prefix, prefix, limit)

    def all_run_ids(self) -> list[str]:
        return self._call(queries.all_run_ids)

    def live_counts(self, run_ids: Sequence[str]) -> dict[str, tuple[int, int, int, int]]:
        return self._call(queries.live_counts, list(run_ids))

    # ------------------------------------------------------------------ steps

    def step_meta_rows(self, run_id: str) -> list[tuple]:
        return self._call(queries.step_meta_rows, self._run_no(run_id))

    def step_name_rows(self, run_id: str) -> list[tuple[str, int, str]]:
        return self._call(queries.step_name_rows, self._run_no(run_id))

    def step_status_counts(self, run_id: str) -> list[tuple[int, str, int]]:
        return self._call(queries.step_status_counts, self._run_no(run_id))

    # ---------------------------------------------------------------- entries

    def count_entries(self, run_id: str) -> int:
        return self._call(queries.count_entries, self._run_no(run_id))

    def entry_columns(
        self, run_id: str, *, key: str | None = None, position: int | None = None
    ) -> tuple:
        return self._call(queries.entry_columns, self._run_no(run_id), key, position)

    def created_at_json(
        self, run_id: str, *, key: str | None = None, position: int | None = None
    ) -> str:
        return self._call(queries.created_at_json, self._run_no(run_id), key, position)

    def hash_table(
        self, run_id: str, *, key: str | None = None, position: int | None = None
    ) -> tuple[str | None, bytes | list[str | None]]:
        return self._call(queries.hash_table, self._run_no(run_id), key, position)

    def edge_columns(
        self,
        run_id: str,
        *,
        key: str | None = None,
        position: int | None = None,
        extra_only: bool = False,
    ) -> tuple[str | None, str | None]:
        return self._call(queries.edge_columns, self._run_no(run_id), key, position, extra_only)

    def value_columns(
        self, run_id: str, *, key: str | None = None, position: int | None = None
    ) -> tuple[str | None, str | None]:
        return self._call(queries.value_columns, self._run_no(run_id), key, position)

    def connected_entry_rows(self, run_id: str, key: str) -> list[tuple]:
        return self._call(queries.connected_entry_rows, self._run_no(run_id), key)

    def links_among(self, entry_ids: Sequence[int]) -> list[tuple[int, int]]:
        return self._call(queries.links_among, entry_ids)

    def trace_rows(self, run_id: str, key: str) -> list[tuple]:
        return self._call(queries.trace_rows, self._run_no(run_id), key)

    def walk_rows(self, entry_id: int, depth: int | None, direction: str) -> list[tuple]:
        return self._call(queries.walk_rows, entry_id, depth, direction)

    def entry_exists(self, entry_id: int) -> bool:
        return self._call(queries.entry_exists, entry_id)

    def source_rows(self, entry_ids: Sequence[int]) -> list[tuple]:
        return self._call(queries.source_rows, entry_ids)

    def last_entries_of_key(self, run_id: str, key: str) -> list[int]:
        return self._call(queries.last_entries_of_key, self._run_no(run_id), key)

    def value_rows(self, entry_ids: Sequence[int]) -> list[tuple[int, str]]:
        return self._call(queries.value_rows, entry_ids)

    def report_rows(self, run_id: str) -> Iterator[tuple]:
        return iter(
            self._call(lambda con, n: list(queries.report_rows(con, n)), self._run_no(run_id))
        )

    def chunk_moments(self, run_id: str) -> list[tuple[int, str, int]]:
        return self._call(queries.chunk_moments, self._run_no(run_id))

    def outcome_reason_counts(self, run_id: str) -> list[tuple[int, str, str | None, int]]:
        return self._call(queries.outcome_reason_counts, self._run_no(run_id))

    def step_value_sample(
        self, run_id: str, position: int, limit: int
    ) -> list[tuple[int, str, str | None]]:
        return self._call(queries.step_value_sample, self._run_no(run_id), position, limit)

    # ----------------------------------------------------------------- checks

    def check_step_kinds(self, run_ids: Sequence[str]) -> list[tuple[str, int, str, str]]:
        return self._call(integrity.step_kinds, run_ids)

    def check_chunk_counts(self, run_ids: Sequence[str]) -> list[tuple]:
        return self._call(integrity.chunk_counts, run_ids)

    def check_value_counts(self, run_ids: Sequence[str]) -> tuple[int, int]:
        return self._call(integrity.value_counts, run_ids)

    def check_unclaimed_entries(
        self, run_ids: Sequence[str], chunks: Sequence[tuple[str, int]]
    ) -> list[tuple]:
        return self._call(integrity.unclaimed_entries, run_ids, chunks)

    def check_chain_rows(self, run_ids: Ids, finished: Ids) -> list[tuple]:
        return self._call(integrity.chain_rows, run_ids, finished)

    def check_links_from_missing_children(self, run_ids: Sequence[str]) -> list[tuple]:
        return self._call(integrity.links_from_missing_children, run_ids)

    def check_cycle_links(self, run_ids: Sequence[str]) -> list[tuple]:
        return self._call(integrity.cycle_links, run_ids)

    def check_repeated_keys(self, run_ids: Sequence[str]) -> list[tuple]:
        return self._call(integrity.repeated_keys, run_ids)

    def check_value_problems(self, run_ids: Ids, hasher: Hasher) -> list[tuple]:
        return self._call(integrity.value_problems, run_ids, hasher)

    def check_values_without_entry(self) -> list[tuple[int]]:
        return self._call(integrity.values_without_entry)
