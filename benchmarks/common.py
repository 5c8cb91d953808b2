"""Shared pieces of the benchmarks: synthetic data, timing, child processes, figures."""

from __future__ import annotations

import json
import operator
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: Scratch directory for benchmark databases (git-ignored); the tests point it elsewhere.
WORK = Path(os.environ.get("LINEAGE_KIT_BENCH_WORK") or ROOT / "benchmarks" / "_work")

_BOUNDS = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt}
_CURRENCIES = ("EUR", "USD", "JPY", "GBP")
_REGIONS = ("EMEA", "AMER", "APAC")
_STATUSES = ("paid", "shipped", "pending", "refunded")


def orders(n: int, start: int = 0) -> Iterator[dict[str, Any]]:
    """``n`` synthetic order records shaped like ``data/sample_input.json`` (messy names).

    A generator, so a million records stream without being held in memory.
    """
    for i in range(start, start + n):
        yield {
            "key": f"order-{i:08d}",
            "Customer Name": f"Customer {i % 997}",
            " Amount ": round(10 + (i % 10_000) * 0.37, 2),
            "Currency": _CURRENCIES[i % 4],
            "REGION": _REGIONS[i % 3],
            "Order Date": f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}",
            "Items": 1 + i % 9,
            "Status": _STATUSES[i % 4],
        }


def fresh_db(name: str) -> Path:
    """A path in the work directory with no database (nor WAL/SHM files) behind it."""
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / name
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return path


@dataclass
class Timing:
    """Medians (and all samples) of wall-clock and CPU seconds."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.wall)

    @property
    def median_cpu(self) -> float:
        return statistics.median(self.cpu)

    def add(self, wall: float, cpu: float) -> None:
        self.wall.append(wall)
        self.cpu.append(cpu)


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """Run ``fn`` once; return (wall seconds, CPU seconds, its result)."""
    w, c = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - w, time.process_time() - c, result


def interleaved(
    contenders: dict[str, Callable[[], Any]],
    reps: int,
    setup: Callable[[str], Any] | None = None,
) -> dict[str, Timing]:
    """Time several contenders in turns (A B A B ...), so load drifts hit them alike.

    ``setup(name)`` runs untimed before each timed call.
    """
    out = {name: Timing() for name in contenders}
    for _ in range(reps):
        for name, fn in contenders.items():
            if setup is not None:
                setup(name)
            wall, cpu, _ = timed(fn)
            out[name].add(wall, cpu)
    return out


def peak_rss_mib() -> float:
    """This process's own peak resident set size in MiB.

    ``VmHWM`` of ``/proc/self/status`` (Linux): the high-water mark of this
    process's memory since it was started. ``ru_maxrss`` is not: Linux carries the
    peak of the process that forked it across ``exec``, so a child of a large
    benchmark runner reported the runner's peak. ``ru_maxrss`` (KiB on Linux,
    bytes on macOS) only where there is no ``/proc``.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 / (1024 if sys.platform == "darwin" else 1)


def run_child(*args: str, timeout: float = 1800) -> dict[str, Any]:
    """Run ``benchmarks/run.py --child ARGS`` in a fresh interpreter; return its JSON.

    A fresh process per measurement keeps peak-RSS figures from contaminating
    each other.
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--child", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"child {args} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


@dataclass
class Figure:
    """One reported figure: a ratio against a same-run baseline, or a per-record cost."""

    id: str
    label: str
    value: float | None
    unit: str
    goal: str | None = None
    met: bool | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def ratio_figure(
    fid: str, label: str, value: float, goal: str | None = None, detail: dict | None = None
) -> Figure:
    """A ratio (unit ``x``); a ``goal`` such as ``"<= 1.5"`` or ``">= 1 (2 is the target)"``
    (an operator and a bound first) says whether it is met."""
    met = None
    if goal:
        op, bound = goal.split()[:2]
        met = _BOUNDS[op](value, float(bound))
    return Figure(fid, label, value, "x", goal=goal, met=met, detail=detail or {})


def compared(
    fid: str,
    label: str,
    t: dict[str, Timing],
    over: str,
    under: str,
    goal: str | None = None,
    detail: dict | None = None,
) -> Figure:
    """``t[over]`` / ``t[under]`` (median wall seconds) as a :func:`ratio_figure`, printed;
    both medians and samples go into its detail, beside ``detail``."""
    value = t[over].median / t[under].median
    print(f"  {fid}: {value:.3f}x ({over} / {under})", flush=True)
    timings = {f"{name}_seconds": t[name].median for name in (over, under)}
    samples = {name: t[name].wall for name in (over, under)}
    return ratio_figure(fid, label, value, goal, {**timings, "samples": samples, **(detail or {})})
