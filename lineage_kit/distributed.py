"""Running a pipeline's chunks on a Dask cluster (``Pipeline.run(..., executor=client)``).

The **driver** (the process that called ``run``) reads the source, admits records,
creates and finishes the run, reserves each chunk's entry ids and keeps a bounded
number of chunks in flight. **Workers** run the steps on a chunk and write it to the
store themselves, through one store connection per worker thread, kept open between
tasks (:func:`run_chunk` is the task; it lives here, in an importable module, so it
is never pickled by value).

What the driver keeps exact, so a cluster run stores what a local run stores:

- **Duplicate input keys ("the first one wins").** The driver refuses a record whose
  key is already used in the run: by a chunk already written (one query per chunk,
  as the local engine makes) or by a chunk still in flight (the keys of at most
  ``window`` chunks, held in memory). A refused record reaches its worker already
  marked ``duplicate_key``.
- **Split children's keys ("first use in input order wins").** Which keys a split
  step's children take is known only once the step ran, and decides which later
  records are duplicates. So a segment of the pipeline that holds a split step runs
  its chunks one after another (each admitted after the one before it is written):
  exact, but not spread over the workers. Segments without a split step run their
  chunks in parallel.
- **Merge steps are barriers.** The driver gathers the records that reach a merge
  step (in input order), groups them and checks the group keys against the store,
  writes the entries of records that could not be grouped, then submits the groups
  in chunks.
- **Counts.** Each task returns its chunk's outcome counts; the driver sums them once
  per chunk number and checks them against what the chunks table says was written
  (:meth:`Backend.chunk_counts`); ``n_entries`` is what was written.

Exactly once: a chunk's ids and number are fixed by the driver before it is
submitted, and :meth:`Backend.write_chunk` claims ``(run, chunk_no)`` first. A task
that Dask runs again (its worker died before, during or after the write; a task
submitted twice) computes the same chunk and writes nothing the second time. Steps
must therefore be deterministic: a retried chunk whose steps gave other results is
caught by the check of the counts, and the run ends ``failed``.

``distributed`` is imported only here, and only when an executor is given.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .engine import Abort, Run, _Chunk, _Recut, cut_at
from .errors import InvalidArgument, MissingExtra
from .model import StepKind
from .sources import SourceItem
from .store import Backend, is_url, open_backend

_STATUS_INDEX = {"ok": 0, "rejected": 1, "failed": 2}
_Part = tuple[list[SourceItem], int, int]  # source items to admit, first ordinal, end


# ----------------------------------------------------------------- what a task carries


@dataclass
class RunContext:
    """What every task of a run needs: the steps, the run and the store's location."""

    steps: tuple
    run_id: str
    db: str
    fail_fast: bool
    fresh_input: bool


@dataclass
class ChunkTask:
    """One chunk to run: source items (``position`` 0) or merge groups (``position`` >= 1).

    ``first_id`` onwards, ``capacity`` entry ids are reserved for it; ``start`` is the
    input ordinal of its first source item (or the order of its merge block).
    """

    chunk_no: int
    position: int
    end: int
    items: list
    start: int
    first_id: int
    capacity: int
    attempt: int = 0


@dataclass
class ChunkResult:
    """What a task returns: its chunk's outcomes, or why it must be sent again."""

    chunk_no: int
    written: bool = False
    recut: int | None = None  # cut before this input ordinal and run both parts
    need_ids: int | None = None  # the chunk has more entries than ids reserved
    abort: str | None = None  # fail_fast: a step failed on a record
    counts: list[int] = field(default_factory=lambda: [0, 0, 0])
    pending: dict[int, int] = field(default_factory=dict)
    entries: dict[int, list[int]] = field(default_factory=dict)
    barrier: list = field(default_factory=list)
    busy: list[float] = field(default_factory=list)
    first_seen: list = field(default_factory=list)
    last_seen: list = field(default_factory=list)


class _NeedIds(Exception):
    def __init__(self, n: int) -> None:
        super().__init__(n)
        self.n = n


class _WorkerSeam:
    """The backend as a worker's :class:`Run` sees it: the ids the driver reserved,
    writes through the worker's own connection."""

    def __init__(self, backend: Backend, first_id: int, capacity: int) -> None:
        self.backend = backend
        self.first_id = first_id
        self.capacity = capacity
        self.written = False
        self.entries: dict[int, list[int]] = {}

    def existing_keys(self, run_id: str, keys: list[str]) -> dict[str, int]:
        return self.backend.existing_keys(run_id, keys)

    def reserve_ids(self, n: int) -> int:
        if n > self.capacity:
            raise _NeedIds(n)
        return self.first_id

    def write_chunk(self, first_id: int, chunk: Any) -> bool:
        self.entries = status_counts(chunk.entries)
        self.written = bool(self.backend.write_chunk(first_id, chunk))
        return self.written


def status_counts(entries: list) -> dict[int, list[int]]:
    """Per step position, ``[ok, rejected, failed]`` counts of entry rows.

    Examples
    --------
    >>> from lineage_kit.model import EntryRow
    >>> rows = [EntryRow("r", p, "k", s, None, None, "t", None)
    ...         for p, s in ((0, "ok"), (0, "rejected"), (1, "ok"))]
    >>> status_counts(rows)
    {0: [1, 1, 0], 1: [1, 0, 0]}
    """
    out: dict[int, list[int]] = {}
    for (position, status), n in Counter((e[1], e[3]) for e in entries).items():
        out.setdefault(position, [0, 0, 0])[_STATUS_INDEX[status]] += n
    return dict(sorted(out.items()))


# ------------------------------------------------------------------------ worker side

_BACKENDS: dict[tuple[str, int, int], Backend] = {}  # oldest first
_LOCK = threading.Lock()
#: Stores a worker keeps open at once; the least recently used beyond it is closed.
KEEP_OPEN = 4


def worker_backend(db: str) -> Backend:
    """The store connection of this worker thread, opened on first use and reused.

    Examples
    --------
    >>> import lineage_kit as lk
    >>> _ = lk.run_pipeline("data/sample_input.json", db="lineage.db", progress=False)
    >>> path = os.path.abspath("lineage.db")
    >>> worker_backend(path) is worker_backend(path)
    True
    >>> close_worker_backends() >= 1
    True
    """
    key = (db, os.getpid(), threading.get_ident())
    with _LOCK:
        backend = _BACKENDS.pop(key, None)
        if backend is None or backend.closed:
            backend = open_backend(db)
        _BACKENDS[key] = backend  # now the most recently used
        while len(_BACKENDS) > KEEP_OPEN:
            _BACKENDS.pop(next(iter(_BACKENDS))).close()
    return backend


def close_worker_backends() -> int:
    """Close the store connections this process keeps (``client.run`` it on the
    workers to release them); return how many were open."""
    with _LOCK:
        backends = list(_BACKENDS.values())
        _BACKENDS.clear()
    for backend in backends:
        backend.close()
    return len(backends)


def run_chunk(ctx: RunContext, task: ChunkTask) -> ChunkResult:
    """Run the steps on one chunk and write it (the Dask task).

    Parameters
    ----------
    ctx : RunContext
    task : ChunkTask

    Returns
    -------
    ChunkResult
        ``written`` is False when the chunk had been written before (a retried or
        duplicated task): its outcomes are the same, nothing was written twice.
        ``recut`` or ``need_ids`` set: nothing was written, the driver sends the
        chunk again (cut in two, or with more ids).

    Raises
    ------
    LineageKitError
        The store cannot be opened or written (the driver sees it as the task's error).

    Examples
    --------
    >>> import lineage_kit as lk
    >>> from lineage_kit.store import open_backend
    >>> result = lk.run_pipeline("data/sample_input.json", db="lineage.db", progress=False)
    >>> with open_backend("lineage.db") as backend:
    ...     first = backend.reserve_ids(3)
    >>> ctx = RunContext(tuple(lk.steps.DEFAULT_STEPS), result.run_id,
    ...                  os.path.abspath("lineage.db"), False, True)
    >>> task = ChunkTask(10**6, 0, 3, [SourceItem("new-1", {"amount": 1})], 10**6, first, 3)
    >>> out = run_chunk(ctx, task)
    >>> out.written, out.counts, run_chunk(ctx, task).written
    (True, [1, 0, 0], False)
    """
    seam = _WorkerSeam(worker_backend(ctx.db), task.first_id, task.capacity)
    run = Run(ctx.steps, seam, ctx.run_id, ctx.fail_fast, fresh_input=ctx.fresh_input)  # type: ignore[arg-type]
    run.admitted = True
    run.n_chunks = task.chunk_no  # the number flush() gives the chunk
    result = ChunkResult(task.chunk_no)
    try:
        if task.position == 0:
            run._run_chunk(task.items, task.start, task.end, result.barrier)
        else:
            result.barrier = run.merge_chunk(task.position, task.end, task.items, _Chunk())
    except _Recut as cut:
        return ChunkResult(task.chunk_no, recut=cut.ordinal)
    except _NeedIds as need:
        return ChunkResult(task.chunk_no, need_ids=need.n)
    except Abort as exc:
        result.abort = exc.error
    result.written, result.entries = seam.written, seam.entries
    result.counts, result.pending = run.counts, run.pending
    result.busy, result.first_seen, result.last_seen = run.busy, run.first_seen, run.last_seen
    return result


# ------------------------------------------------------------------------ driver side


class DaskRun(Run):
    """The driver of a run on a Dask cluster (see the module docstring).

    Parameters
    ----------
    steps, backend, run_id, fail_fast, fresh_input, listener
        As for :class:`lineage_kit.engine.Run`; ``backend`` is the driver's own.
    client : distributed.Client
    db : str
        The store's location as workers open it (an absolute path, or a URL).
    window : int, optional
        Chunks in flight at most; by default twice the cluster's threads.
    """

    def __init__(
        self,
        steps: Any,
        backend: Backend,
        run_id: str,
        fail_fast: bool,
        *,
        client: Any,
        db: str,
        fresh_input: bool = False,
        listener: Any = None,
        window: int | None = None,
    ) -> None:
        super().__init__(
            steps, backend, run_id, fail_fast, fresh_input=fresh_input, listener=listener
        )
        self.client = client
        self.ctx = RunContext(self.steps, run_id, db, fail_fast, fresh_input)
        threads = sum(client.nthreads().values()) or 1
        self.window = window or max(2, 2 * threads)
        self.flying: dict[str, int] = {}  # key -> chunk_no, for chunks in flight
        self.inflight: dict[Any, ChunkTask] = {}
        self.done: set[int] = set()
        self.expected: dict[int, list[int]] = {}  # per position, from tasks and own chunks
        self.bar: Any = None

    # -- the whole run

    def execute(self, blocks: Iterator[list[SourceItem]], chunk_size: int, progress: Any) -> None:
        merges = [i for i, s in enumerate(self.steps) if s.kind == StepKind.MERGE]
        end = merges[0] if merges else len(self.steps)
        self.bar = chunk_bar(progress)
        trim_message_logs(self.client)
        try:
            pieces = self._pump(self._input_tasks(blocks, end), self._serial(0, end))
            barrier = [item for n in sorted(pieces) for item in pieces[n]]
            for n, position in enumerate(merges):
                stop = merges[n + 1] if n + 1 < len(merges) else len(self.steps)
                groups, chunk = self.group(position, barrier)
                self.flush(chunk)
                tasks = self._merge_tasks(position, stop, list(groups.values()), chunk_size)
                pieces = self._pump(tasks, self._serial(position + 1, stop))
                barrier = [item for n in sorted(pieces) for item in pieces[n]]
            self._check_written()
        except (Abort, KeyboardInterrupt):
            self.client.cancel(list(self.inflight))  # fail_fast or Ctrl-C: stop at once
            raise
        except BaseException:
            self._drain()  # e.g. unreadable input: the run is discarded once they are done
            raise
        finally:
            self.inflight.clear()
            if self.bar is not None:
                self.bar.close()

    def _serial(self, start: int, end: int) -> bool:
        return any(s.kind == StepKind.SPLIT for s in self.steps[start:end])

    def _drain(self) -> None:
        """Wait for the chunks in flight, so none is written after the caller moves on."""
        from distributed import wait

        if self.inflight:
            wait(list(self.inflight))

    # -- producing tasks

    def _input_tasks(self, blocks: Iterator[list[SourceItem]], end: int) -> Iterator[_Part]:
        ordinal = 0
        for block in blocks:
            self.n_input += len(block)
            yield (block, ordinal, end)
            ordinal += len(block)

    def _merge_tasks(
        self, position: int, end: int, groups: list[list[Any]], chunk_size: int
    ) -> Iterator[ChunkTask]:
        for i in range(0, len(groups), chunk_size):
            block = groups[i : i + chunk_size]
            first = self.backend.reserve_ids(len(block) * (end - position))
            yield self._task(position, end, block, i, first, len(block) * (end - position))

    def _task(self, position, end, items, start, first, capacity) -> ChunkTask:
        chunk_no, self.n_chunks = self.n_chunks, self.n_chunks + 1
        return ChunkTask(chunk_no, position, end, items, start, first, capacity)

    def _admit_part(self, part: list[SourceItem], start: int, end: int) -> ChunkTask:
        """The chunk task for source items ``start``...: duplicates refused, ids reserved."""
        keys = [it.key for it in part if it.reason is None]
        seen = self.backend.existing_keys(self.run_id, keys) if keys else {}
        items = []
        for it in part:
            if it.reason is None:
                by = seen.get(it.key, 0 if it.key in self.flying else None)
                if by is not None:
                    by_text = " (as a split step's child)" if by else ""
                    message = f"key {it.key!r} already seen in this run{by_text}"
                    it = SourceItem(it.key, it.value, "duplicate_key", message)
                else:
                    seen[it.key] = 0
            items.append(it)
        capacity = len(part) * end
        task = self._task(0, end, items, start, self.backend.reserve_ids(capacity), capacity)
        for it in items:
            if it.reason is None:
                self.flying[it.key] = task.chunk_no
        return task

    # -- the loop

    def _pump(self, work: Iterator[ChunkTask | _Part], serial: bool) -> dict[int, list[Any]]:
        """Submit the chunks of ``work`` (tasks, or source items still to admit), at most
        ``window`` in flight (one if ``serial``); return the records each chunk left
        at the next merge step, by chunk order."""
        from distributed import wait

        pieces: dict[int, list[Any]] = {}
        again: deque[_Part] = deque()  # the parts of a recut chunk, admitted again
        limit = 1 if serial else self.window
        while True:
            while len(self.inflight) < limit:
                nxt = again.popleft() if again else next(work, None)
                if nxt is None:
                    break
                self._submit(nxt if isinstance(nxt, ChunkTask) else self._admit_part(*nxt))
            if not self.inflight:
                return pieces
            for future in wait(list(self.inflight), return_when="FIRST_COMPLETED").done:
                self._collect(self.inflight.pop(future), future.result(), again, pieces)

    def _submit(self, task: ChunkTask) -> None:
        if task.chunk_no % 50 == 49:
            trim_message_logs(self.client)
        future = self.client.submit(
            run_chunk,
            self.ctx,
            task,
            key=f"lineage-kit-{self.run_id[:8]}-chunk-{task.chunk_no}-{task.attempt}",
            pure=False,
        )
        self.inflight[future] = task

    def _collect(self, task: ChunkTask, result: ChunkResult, again: deque, pieces: dict) -> None:
        if result.need_ids is not None:
            if task.attempt >= 3:
                raise RuntimeError(f"chunk {task.chunk_no} keeps changing its number of entries")
            task.first_id = self.backend.reserve_ids(result.need_ids)
            task.capacity, task.attempt = result.need_ids, task.attempt + 1
            self._submit(task)
            return
        self._release(task)
        if result.recut is not None:  # nothing written: both parts are admitted again
            cut = cut_at(task.items, task.start, result.recut)
            again.extendleft((part, start, task.end) for part, start in reversed(cut))
            return
        if task.chunk_no in self.done:
            return
        self.done.add(task.chunk_no)
        self._absorb(result)
        pieces[task.start] = result.barrier
        if self.bar is not None:
            self.bar.update(1)
        if result.abort is not None:
            raise Abort(result.abort)

    def _release(self, task: ChunkTask) -> None:
        if task.position == 0:
            for it in task.items:
                if it.reason is None and self.flying.get(it.key) == task.chunk_no:
                    del self.flying[it.key]

    def _absorb(self, result: ChunkResult) -> None:
        for i in range(3):
            self.counts[i] += result.counts[i]
        for root, outcome in result.pending.items():
            if self.pending.get(root, -1) < outcome:
                self.pending[root] = outcome
        for position, counts in result.entries.items():
            total = self.expected.setdefault(position, [0, 0, 0])
            for i in range(3):
                total[i] += counts[i]
        for i, busy in enumerate(result.busy):
            self.busy[i] += busy
            first, last = result.first_seen[i], result.last_seen[i]
            if first is not None and (self.first_seen[i] is None or first < self.first_seen[i]):
                if self.first_seen[i] is None and self.listener is not None:
                    self.listener.step_started(i, first)
                self.first_seen[i] = first
            if last is not None and (self.last_seen[i] is None or last > self.last_seen[i]):
                self.last_seen[i] = last

    # -- the driver's own chunks and the final count

    def flush(self, chunk: _Chunk) -> int:
        if chunk.entries:
            for position, counts in status_counts(chunk.entries).items():
                total = self.expected.setdefault(position, [0, 0, 0])
                for i in range(3):
                    total[i] += counts[i]
        return super().flush(chunk)

    def finish(self, src: Any, status: Any, error: str | None) -> None:
        with contextlib.suppress(Exception):  # a broken store: finish_run says so
            written = self.backend.chunk_counts(self.run_id)
            self.n_entries = sum(sum(c) for c in written.counts.values())
        super().finish(src, status, error)

    def _check_written(self) -> None:
        """``n_entries`` from the chunks table; it must hold what the tasks reported.

        Raises
        ------
        Abort
            It does not: a retried chunk's steps gave other results than the first time.
        """
        written = self.backend.chunk_counts(self.run_id)
        self.n_entries = sum(sum(c) for c in written.counts.values())
        stored = {p: list(c) for p, c in written.counts.items()}
        if stored != {p: c for p, c in self.expected.items() if any(c)}:
            raise Abort(
                "the entries written differ from the chunks' reported outcomes: a chunk run "
                "again by Dask gave other results (steps must be deterministic)"
            )


#: Messages a Dask stream keeps for debugging while a run goes (its default,
#: ``distributed.admin.low-level-log-length``, is 1,000).
KEEP_MESSAGES = 3


def trim_message_logs(client: Any) -> None:
    """Shorten the debugging logs of the client's and the scheduler's streams.

    Dask keeps each stream's last 1,000 messages under 1 MB
    (``distributed.admin.low-level-log-length``); a chunk task's message holds its
    records, so the client (the driver) and the scheduler (the driver too, for a
    LocalCluster started there) would hold up to 1,000 chunks. Called when a run
    starts and every few chunks (a worker that restarts opens a new stream).
    """
    _trim(getattr(client, "scheduler_comm", None))
    client.run_on_scheduler(_trim_scheduler_logs)


def _trim(comm: Any) -> None:
    log = getattr(comm, "recent_message_log", None)
    if log is not None and (log.maxlen is None or log.maxlen > KEEP_MESSAGES):
        comm.recent_message_log = deque(log, maxlen=KEEP_MESSAGES)


def _trim_scheduler_logs(dask_scheduler: Any = None) -> None:
    for comm in [*dask_scheduler.stream_comms.values(), *dask_scheduler.client_comms.values()]:
        _trim(comm)


def chunk_bar(progress: bool | None) -> Any:
    """A tqdm bar counting chunks written (None when quiet)."""
    import sys

    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(unit=" chunks", desc="lineage-kit (dask)", leave=False)


# ------------------------------------------------------------- the store and the cluster


def _local_hosts() -> set[str]:
    hosts = {"localhost", "127.0.0.1", "::1", "", socket.gethostname(), socket.getfqdn()}
    with contextlib.suppress(OSError):  # a host name that does not resolve
        hosts.update(info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None))
    return hosts


def remote_hosts(addresses: list[str]) -> list[str]:
    """The hosts among Dask addresses (``tcp://host:port``, ``inproc://...``) that are
    not this machine.

    Examples
    --------
    >>> remote_hosts(["tcp://127.0.0.1:8786", "inproc://10.0.0.1/1/2", "tcp://203.0.113.9:8786"])
    ['203.0.113.9']
    """
    local, out = _local_hosts(), []
    for address in addresses:
        scheme, _, rest = address.partition("://")
        if scheme == "inproc" or not rest:
            continue
        host = urlsplit(f"//{rest}").hostname or ""
        if host not in local and host not in out:
            out.append(host)
    return out


def refuse_unreachable_sqlite(db: Any, addresses: list[str]) -> None:
    """Refuse a SQLite file for a cluster with a scheduler or workers on another host.

    Raises
    ------
    InvalidArgument
        ``db`` is a SQLite path and an address is not on this machine.

    Examples
    --------
    >>> refuse_unreachable_sqlite("lineage.db", ["tcp://203.0.113.9:8786"])
    Traceback (most recent call last):
    ...
    lineage_kit.errors.InvalidArgument: the store lineage.db is a SQLite file on this machine; ...
    """
    if is_url(db):
        return
    far = remote_hosts(addresses)
    if far:
        raise InvalidArgument(
            f"the store {db} is a SQLite file on this machine; Dask workers on {', '.join(far)} "
            "could not reach it: use a PostgreSQL store (--db postgresql://...) with a "
            "remote scheduler, or --dask local[:N]",
            argument="db",
        )


def cluster_addresses(client: Any) -> list[str]:
    """The scheduler's and every worker's address."""
    info = client.scheduler_info()
    return [info.get("address") or client.scheduler.address, *info.get("workers", {})]


def executor_parameters(client: Any) -> dict[str, Any]:
    """What a run records about its cluster (no credentials).

    Examples
    --------
    >>> class Client:  # the two methods used, as a distributed.Client answers them
    ...     def scheduler_info(self):
    ...         return {"address": "tcp://me:secret@10.0.0.5:8786", "workers": {"a": 1, "b": 2}}
    ...     def nthreads(self):
    ...         return {"a": 1, "b": 1}
    >>> executor_parameters(Client())
    {'executor': 'dask', 'scheduler': 'tcp://10.0.0.5:8786', 'workers': 2, 'threads': 2}
    """
    info = client.scheduler_info()
    address = info.get("address", "")
    scheme, _, rest = address.partition("://")
    rest = rest.rpartition("@")[2]  # never a user or password
    return {
        "executor": "dask",
        "scheduler": f"{scheme}://{rest}" if rest else scheme,
        "workers": len(info.get("workers", {})),
        "threads": sum(client.nthreads().values()),
    }


def worker_location(db: Any) -> str:
    """The store's location as a worker opens it: a URL as given, a path made absolute."""
    return db if is_url(db) else os.path.abspath(os.fspath(db))


def start_client(spec: str) -> tuple[Any, Any]:
    """A client for ``--dask``: ``local`` or ``local:N`` starts a LocalCluster of N worker
    processes (default 2, one thread each); anything else is a scheduler address.

    Returns
    -------
    (client, cluster)
        ``cluster`` is None for a scheduler address. Close both when done.

    Raises
    ------
    InvalidArgument
        ``local:N`` with N not a positive integer.
    MissingExtra
        ``distributed`` is not installed (install ``lineage_kit[dask]``).
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise MissingExtra("running on Dask", "dask", "distributed") from None
    if spec == "local" or spec.startswith("local:"):
        n_text = spec.partition(":")[2] or "2"
        if not n_text.isdigit() or int(n_text) < 1:
            raise InvalidArgument(f"--dask local:N needs N >= 1 worker processes, not {n_text!r}")
        cluster = LocalCluster(
            n_workers=int(n_text),
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
        )
        return Client(cluster), cluster
    return Client(spec), None


__all__ = [
    "ChunkResult",
    "ChunkTask",
    "DaskRun",
    "RunContext",
    "close_worker_backends",
    "run_chunk",
    "start_client",
]
