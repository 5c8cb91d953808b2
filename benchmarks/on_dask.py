"""Dask benchmarks (issue 14): a CPU-heavy step on a 2-worker LocalCluster against one
process, and the driver's peak memory as the input grows.

- **speed-up**: ingest -> ``burn`` (about 200 us of Python per record) -> publish
  over synthetic orders into SQLite, on a LocalCluster of 2 worker processes (one
  thread each) and in one process, taking turns (A, B, A, B...); the median wall
  times' ratio. The cluster is started once, outside the timings (its start-up is
  reported apart). The machine has 2 cores, so 2 workers plus the driver share them:
  0.5 is the floor, and another process on the machine raises it.
- **driver memory**: the default pipeline on a LocalCluster, in a fresh driver process
  per size (records streamed from a generator); the driver's peak RSS (the workers
  are other processes) at the larger size over the smaller one.

Named ``on_dask`` so that it never shadows the ``dask`` package on ``sys.path``.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

from common import (
    Figure,
    compared,
    fresh_db,
    interleaved,
    orders,
    ratio_figure,
    run_child,
    timed,
)
from common import peak_rss_mib as common_peak_rss_mib

import lineage_kit as lk

CHUNK = 2_000
#: Iterations of the busy loop: about 200 us of Python per record on this machine
#: (the figure's detail reports the cost measured in the run).
BURN_LOOPS = 2_600


def _burn(record: dict) -> dict:
    x = 7
    for i in range(BURN_LOOPS):
        x = (x * 31 + i) % 1_000_003
    return {**record, "burn": x}


burn = lk.step("burn", description="about 200 us of Python per record")(_burn)
HEAVY = lk.Pipeline([lk.steps.ingest, burn, lk.steps.publish], name="heavy")


def _cluster(workers: int = 2) -> tuple[Any, Any]:
    import cloudpickle
    from distributed import Client, LocalCluster

    # the workers need not find this file: its steps travel by value
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cluster = LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
    )
    return Client(cluster), cluster


def burn_cost_us(n: int = 2_000) -> float:
    """Measured microseconds of ``burn`` per record (median of three)."""
    samples = []
    for _ in range(3):
        started = time.perf_counter()
        for record in orders(n):
            _burn(record)
        samples.append(1e6 * (time.perf_counter() - started) / n)
    return statistics.median(samples)


def speedup(client: Any, n: int, reps: int) -> list[Figure]:
    """Wall time of the CPU-heavy pipeline on a 2-worker LocalCluster / in one process."""
    cost = burn_cost_us(500)
    db = {"cluster": "dask_cluster.db", "local": "dask_local.db"}
    worker_cpu: list[float] = []

    def on_cluster() -> None:
        before = sum(client.run(time.process_time).values())
        HEAVY.run(orders(n), db["cluster"], progress=False, chunk_size=CHUNK, executor=client)
        worker_cpu.append(sum(client.run(time.process_time).values()) - before)

    HEAVY.run(
        orders(min(n, 4_000)),
        fresh_db(db["cluster"]),
        progress=False,
        chunk_size=CHUNK,
        executor=client,
    )  # warm up: workers import lineage_kit
    t = interleaved(
        {
            "cluster": on_cluster,
            "local": lambda: HEAVY.run(orders(n), db["local"], progress=False, chunk_size=CHUNK),
        },
        reps,
        setup=lambda name: fresh_db(db[name]),
    )
    # CPU seconds of the whole cluster run (driver + workers) over the local run's:
    # what the cluster costs in work, whatever else the machine is doing
    cpu = statistics.median(d + w for d, w in zip(t["cluster"].cpu, worker_cpu, strict=True))
    cpu_ratio = cpu / t["local"].median_cpu
    label = (
        f"CPU-heavy step ({cost:.0f} us/record), {n:,} records: 2-worker LocalCluster / "
        "one process, wall time (SQLite)"
    )
    detail = {
        "burn_us_per_record": cost,
        "cpu_seconds_cluster_over_local": cpu_ratio,
        "driver_cpu_seconds": t["cluster"].cpu,
        "worker_cpu_seconds": worker_cpu,
        "local_cpu_seconds": t["local"].cpu,
    }
    return [compared("dask_cpu_speedup", label, t, "cluster", "local", "<= 0.6", detail)]


def child_dask_memory(n: int, db: str, address: str) -> dict[str, Any]:
    """In a fresh process: the default pipeline over ``n`` records on the cluster at
    ``address`` (its scheduler lives in the parent); this driver's time and peak RSS."""
    from distributed import Client

    with Client(address) as client:
        before = peak_rss_mib()
        path = fresh_db(db)
        wall, _, result = timed(
            lambda: lk.run_pipeline(
                orders(n), db=path, progress=False, chunk_size=CHUNK, executor=client
            )
        )
    return {
        "n": n,
        "wall": wall,
        "entries": result.n_entries,
        "rss_before_mib": before,
        "peak_rss_mib": peak_rss_mib(),
    }


def peak_rss_mib() -> float:
    """This process's own peak RSS (``VmHWM``): ``ru_maxrss`` starts from the parent's
    peak on Linux (kept across fork and exec), and the parent here ran clusters."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return common_peak_rss_mib()


def driver_memory(address: str, pair: tuple[int, int]) -> list[Figure]:
    small, large = (run_child("dask_memory", str(n), f"dask_memory_{n}.db", address) for n in pair)
    label = (
        f"driver peak RSS on a LocalCluster, {pair[1]:,} / {pair[0]:,} records "
        "(default pipeline, SQLite)"
    )
    ratio = large["peak_rss_mib"] / small["peak_rss_mib"]
    detail = {"small": small, "large": large, "large_records_per_s": large["n"] / large["wall"]}
    print(f"  dask_driver_memory_ratio: {ratio:.3f}x", flush=True)
    return [ratio_figure("dask_driver_memory_ratio", label, ratio, "<= 1.5", detail)]


def dask_figures(n: int, reps: int, pair: tuple[int, int]) -> list[Figure]:
    """Both figures on one LocalCluster (started once: the memory runs' drivers are
    fresh processes connecting to it)."""
    wall, _, (client, cluster) = timed(_cluster)
    print(f"  LocalCluster of 2 workers started in {wall:.1f} s", flush=True)
    try:
        return [*speedup(client, n, reps), *driver_memory(cluster.scheduler_address, pair)]
    finally:
        client.close()
        cluster.close()
