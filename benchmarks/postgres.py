"""PostgreSQL store benchmarks (issue 13): capture against SQLite, four writers
against one, ``store.lineage()`` against ``pandas.read_sql``, ``trace`` at scale.

The server is ``LINEAGE_KIT_TEST_PG_DSN`` or a throwaway cluster started here
(tests/pg_server.py: Debian's binaries, 127.0.0.1, ``fsync=off`` and
``synchronous_commit=off``; the SQLite store it is compared with runs WAL with
``synchronous=NORMAL``, which does not sync each commit either). Every ratio is
measured in the same run, interleaved.
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from common import ROOT, Figure, compared, fresh_db, interleaved, orders, ratio_figure

import lineage_kit as lk


@contextmanager
def server() -> Iterator[str]:
    """A server URL for the benchmarks (started and stopped here unless given)."""
    given = os.environ.get("LINEAGE_KIT_TEST_PG_DSN")
    if given:
        yield given
        return
    sys.path.insert(0, str(ROOT))
    from tests.pg_server import start_cluster

    cluster = start_cluster()
    try:
        yield cluster.dsn
    finally:
        cluster.stop()


def _store(base: str) -> str:
    """A fresh schema on the server."""
    return f"{base}?schema=bench_{uuid.uuid4().hex[:12]}"


def _drop(url: str) -> None:
    import psycopg
    from psycopg import sql

    base, schema = url.rsplit("?schema=", 1)
    with psycopg.connect(base, autocommit=True) as con:
        con.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def capture(base: str, n: int, reps: int) -> Figure:
    """The default pipeline over ``n`` records into PostgreSQL and into SQLite."""
    made: list[str] = []

    def into_pg() -> None:
        made.append(_store(base))
        lk.run_pipeline(orders(n), db=made[-1], progress=False)

    def into_sqlite() -> None:
        lk.run_pipeline(orders(n), db=fresh_db("pg_vs_sqlite.db"), progress=False)

    t = interleaved({"postgres": into_pg, "sqlite": into_sqlite}, reps)
    for url in made:
        _drop(url)
    label = f"capture into PostgreSQL / into SQLite (speed), {n:,} records, default pipeline"
    return compared("pg_capture_vs_sqlite", label, t, "sqlite", "postgres", goal=">= 0.8")


_WRITER = """
import sys, time
sys.path[:0] = [sys.argv[4], sys.argv[4] + "/benchmarks"]
import lineage_kit as lk
from common import orders
start = int(sys.argv[2])
lk.run_pipeline(orders(int(sys.argv[3]), start), db=sys.argv[1], progress=False)
"""


def _server_pid(base: str) -> int | None:
    """The postmaster's pid when the server runs on this host (the parent of our
    session's server process, read from /proc), else None."""
    import psycopg

    with psycopg.connect(base, autocommit=True) as con:
        (backend,) = con.execute("SELECT pg_backend_pid()").fetchone()
    try:
        with open(f"/proc/{backend}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _server_cpu(postmaster: int | None) -> float:
    """CPU seconds of the server so far: the postmaster, the children it reaped
    (sessions that ended) and the ones alive, from /proc (0 when not on this host)."""
    if postmaster is None:
        return 0.0

    def fields(pid: int | str) -> list[str]:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()

    ticks = sum(int(x) for x in fields(postmaster)[11:15])  # utime stime cutime cstime
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                f = fields(pid)
            except OSError:
                continue
            if int(f[1]) == postmaster:
                ticks += int(f[11]) + int(f[12])
    return ticks / os.sysconf("SC_CLK_TCK")


class _Waits:
    """Samples of what the writers' server sessions are doing (``pg_stat_activity``
    every 20 ms, in a thread): state and wait event, as shares of the samples."""

    def __init__(self, base: str) -> None:
        import collections
        import threading

        self.base, self.seen = base, collections.Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        import psycopg

        with psycopg.connect(self.base, autocommit=True) as con:
            while not self._stop.is_set():
                for state, kind, event in con.execute(
                    "SELECT state, wait_event_type, wait_event FROM pg_stat_activity "
                    "WHERE application_name = 'lineage_kit' AND pid <> pg_backend_pid()"
                ):
                    on = "on CPU" if kind is None else f"{kind}:{event}"
                    self.seen[f"{state} / {on}"] += 1
                time.sleep(0.02)

    def __enter__(self) -> _Waits:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def shares(self) -> dict[str, float]:
        total = sum(self.seen.values()) or 1
        return {k: round(v / total, 3) for k, v in self.seen.most_common(8)}


def _writers(url: str, k: int, n: int, postmaster: int | None = None) -> dict[str, float]:
    """``k`` writer processes of ``n`` records each, started together: wall seconds,
    the writers' CPU seconds, the server's (when it runs here) and the cores used."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_before = _server_cpu(postmaster)
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, url, str(i * n), str(n), str(ROOT)], cwd=ROOT
        )
        for i in range(k)
    ]
    codes = [p.wait() for p in procs]
    if codes != [0] * k:
        raise RuntimeError(f"writer processes failed: {codes}")
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    writers_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    server = _server_cpu(postmaster) - server_before
    return {
        "wall": wall,
        "writers_cpu": writers_cpu,
        "server_cpu": server,
        "cores_used": (writers_cpu + server) / wall,
    }


def writers(base: str, n: int, reps: int) -> Figure:
    """Record-steps per second of 4 concurrent writer processes against 1.

    Beside the ratio, its detail says what limited it: CPU seconds of the writers
    and of the server per 1,000 records, the cores they used together, and what
    the 4 writers' server sessions were doing (sampled wait events: lock waits
    would show there).
    """
    postmaster = _server_pid(base)
    runs: dict[int, list[dict[str, float]]] = {1: [], 4: []}
    waits: _Waits | None = None
    for _ in range(reps):
        for k in (1, 4):
            url = _store(base)
            lk.run_pipeline(orders(1), db=url, progress=False)  # the schema exists
            if k == 4:
                with _Waits(base) as waits:
                    runs[k].append(_writers(url, k, n, postmaster))
            else:
                runs[k].append(_writers(url, k, n, postmaster))
            _drop(url)
    one = [r["wall"] for r in runs[1]]
    four = [r["wall"] for r in runs[4]]
    value = (4 * n / statistics.median(four)) / (n / statistics.median(one))

    def per_k(k: int) -> dict[str, float]:
        records = k * n / 1000
        med = {key: statistics.median(r[key] for r in runs[k]) for key in runs[k][0]}
        return {
            "writers_cpu_s_per_1k": round(med["writers_cpu"] / records, 4),
            "server_cpu_s_per_1k": round(med["server_cpu"] / records, 4),
            "cores_used": round(med["cores_used"], 2),
        }

    cpu = {"one": per_k(1), "four": per_k(4)}
    print(f"  4 writers / 1: {value:.2f}x; {cpu}; load {os.getloadavg()[0]:.1f}", flush=True)
    label = f"4 concurrent writer processes / 1 writer, record-steps/s ({n:,} records each)"
    detail = {
        "one_seconds": one,
        "four_seconds": four,
        "cores": os.cpu_count(),
        "cpu": cpu,
        "four_writers_sessions": waits.shares() if waits else {},
        "load_average": os.getloadavg()[0],
    }
    return ratio_figure("pg_four_writers", label, value, ">= 1.4", detail)


def load(base: str, n: int, reps: int) -> Figure:
    """``store.lineage()`` of one run against ``pandas.read_sql`` of its rows (the
    ``lineage`` view: the same columns, on the same connection)."""
    import warnings

    import pandas as pd

    url = _store(base)
    lk.run_pipeline(orders(n), db=url, progress=False)
    with lk.connect(url) as store:
        sql, params = "SELECT * FROM lineage WHERE run_id = %s", (store.resolve_run(),)
        rows = len(store.lineage())

        def read_sql() -> Any:
            with warnings.catch_warnings():  # pandas prefers SQLAlchemy connectables
                warnings.simplefilter("ignore", UserWarning)
                return pd.read_sql(sql, store.backend.con, params=params)

        t = interleaved({"ours": store.lineage, "read_sql": read_sql}, reps)
    _drop(url)
    label = f"store.lineage() from PostgreSQL speed / pandas.read_sql of the same rows ({rows:,})"
    return compared("pg_load_vs_read_sql", label, t, "read_sql", "ours", goal=">= 2")


def _filler(con: Any, n_records: int) -> None:
    """One completed run of ``n_records`` three-step records, made by the server
    (generate_series), in the layout the writer produces."""
    run_id = str(uuid.uuid4())
    (run_no,) = con.execute("SELECT nextval('run_nos')").fetchone()
    (first,) = con.execute(
        "UPDATE entry_ids SET next_id = next_id + %s RETURNING next_id - %s",
        (3 * n_records, 3 * n_records),
    ).fetchone()
    with con.transaction():
        con.execute(
            "INSERT INTO runs (run_no, run_id, pipeline, started_at, finished_at, status, "
            "n_input, n_published, package_version) VALUES (%s, %s, 'filler', "
            "'2026-01-01T00:00:00+00:00', '2026-01-01T00:00:01+00:00', 'completed', %s, %s, %s)",
            (run_no, run_id, n_records, n_records, lk.__version__),
        )
        for i, s in enumerate(lk.steps.DEFAULT_STEPS):
            con.execute(
                "INSERT INTO steps (run_no, position, name, source, destination, description) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                (run_no, i, s.name, s.source, s.destination, s.description),
            )
        con.execute(
            "INSERT INTO chunks SELECT %(run)s, 0, %(first)s, %(first)s + 3 * %(n)s - 1, "
            "3 * %(n)s, '[]', now()",
            {"run": run_no, "first": first, "n": n_records},
        )
        con.execute(
            "INSERT INTO entries (entry_id, run_no, position, status, parent_id, value_id, "
            "created_at, record_key) "
            "SELECT %(first)s + 3 * x + p, %(run)s, p, 0, "
            "CASE WHEN p > 0 THEN %(first)s + 3 * x + p - 1 END, %(first)s + 3 * x, now(), "
            "'order-' || lpad(x::text, 8, '0') "
            "FROM generate_series(0, %(n)s - 1) x, generate_series(0, 2) p",
            {"run": run_no, "first": first, "n": n_records},
        )
        con.execute(
            "INSERT INTO vals SELECT %(first)s + 3 * x, NULL, '{\"filler\":true}' "
            "FROM generate_series(0, %(n)s - 1) x",
            {"first": first, "n": n_records},
        )


def trace(base: str, total_entries: int, n_queries: int, reps: int) -> Figure:
    """``store.trace(key)`` median over random keys of the latest run, in a store of
    about ``total_entries`` entries (older runs made by the server)."""
    real = min(100_000, max(1_000, total_entries // 100))
    url = _store(base)
    started = time.perf_counter()
    lk.run_pipeline(orders(1), db=url, progress=False)
    with lk.LineageStore(url, create=True) as store:
        con = store.backend.con
        left = total_entries - 3 * real
        while left > 0:
            n = min(1_000_000, -(-left // 3))
            _filler(con, n)
            left -= 3 * n
        con.execute("ANALYZE")
    lk.run_pipeline(orders(real), db=url, progress=False)
    rng = random.Random(7)
    keys = [f"order-{rng.randrange(real):08d}" for _ in range(n_queries)]
    samples: list[float] = []
    with lk.connect(url) as store:
        (entries,) = store.backend.con.execute("SELECT count(*) FROM entries").fetchone()
        print(
            f"  built a {entries:,}-entry store in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
        for key in keys[:20]:
            store.trace(key)
        for _ in range(reps):
            for key in keys:
                t = time.perf_counter()
                store.trace(key)
                samples.append(time.perf_counter() - t)
    _drop(url)
    median = 1000 * statistics.median(samples)
    print(f"  trace at {entries:,} entries: median {median:.3f} ms", flush=True)
    return Figure(
        "pg_trace_median_ms",
        f"store.trace(key) median on PostgreSQL at {entries / 1e6:.1f}M entries",
        median,
        "ms",
        goal="< 5 ms median",
        met=median < 5,
        detail={"entries": entries, "queries": len(samples)},
    )


def postgres(cfg: dict) -> list[Figure]:
    """The section's figures (sizes from ``cfg``)."""
    with server() as base:
        return [
            capture(base, cfg["pg_capture_records"], cfg["pg_reps"]),
            writers(base, cfg["pg_writer_records"], cfg["pg_reps"]),
            load(base, cfg["pg_load_records"], cfg["query_reps"]),
            trace(base, cfg["pg_trace_entries"], cfg["trace_queries"], cfg["query_reps"]),
        ]
