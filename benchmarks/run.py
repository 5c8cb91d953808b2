"""lineage_kit benchmarks: capture, inputs, trace, load, graph, check and start-up.

Usage::

    python benchmarks/run.py                 # full sizes (well under 30 minutes)
    python benchmarks/run.py --quick         # small sizes, seconds (run by the tests)
    python benchmarks/run.py --out results.json --only capture,naive

Every figure is a ratio against a baseline measured in the same run, or a
per-record cost, because the machine is shared and noisy; each is the median of
several repetitions. Peak memory is measured in a fresh process per size.
Scratch databases go to ``benchmarks/_work/`` (git-ignored).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # this checkout's lineage_kit, then ours

from common import Figure  # noqa: E402

#: Each setting in a full run and in a --quick one (small sizes, run by the tests).
SETTINGS: dict[str, tuple[Any, Any]] = {
    "capture_sizes": ([10_000, 100_000, 1_000_000], [2_000, 20_000]),
    "capture_reps": ({10_000: 5, 100_000: 3, 1_000_000: 3}, {2_000: 1, 20_000: 1}),
    "memory_pair": ((100_000, 1_000_000), (2_000, 20_000)),
    "input_pair": ((100_000, 1_000_000), (2_000, 20_000)),
    "overhead_n": (100_000, 3_000),
    "overhead_reps": (5, 2),
    "limit_n": (200_000, 3_000),
    "limit_reps": (3, 2),
    "naive_sizes": ([2_000, 8_000], [100, 400]),
    "naive_reps": (3, 1),
    "naive_headline": (8_000, 400),
    "startup_reps": (10, 3),
    "trace_entries": (10_000_000, 60_000),
    "trace_queries": (500, 50),
    "chain_hops": (1_000, 50),
    "load_records": (100_000, 3_000),
    "graph_records": (100_000, 3_000),
    "check_records": (1_000_000, 3_000),
    "merge_records": (100_000, 4_000),
    "plot_parents": (2_000, 200),
    "frame_records": (1_000_000, 3_000),
    "frame_reps": (3, 1),
    "query_reps": (5, 2),
    "export_records": (100_000, 3_000),
    "live_records": (100_000, 3_000),
    "export_reps": (3, 1),
    "dask_records": (200_000, 1_000),
    "dask_reps": (3, 1),
    "dask_memory_pair": ((100_000, 1_000_000), (2_000, 20_000)),
}
#: Sizes and repetitions per mode, as the sections read them.
CONFIG = {mode: {k: v[i] for k, v in SETTINGS.items()} for i, mode in enumerate(("full", "quick"))}

SECTIONS = (
    "capture",
    "inputs",
    "overhead",
    "limit",
    "naive",
    "startup",
    "trace",
    "walk",
    "load",
    "graph",
    "merge",
    "plot",
    "check",
    "frames",
    "export",
    "dask",
)


def run_sections(cfg: dict, only: set[str]) -> list[Figure]:
    import capture
    import exports
    import frames
    import inputs
    import on_dask
    import plots
    import queries
    import startup

    plan = {
        "capture": lambda: capture.throughput_and_memory(
            cfg["capture_sizes"], cfg["capture_reps"], cfg["memory_pair"]
        ),
        "inputs": lambda: inputs.memory_by_format(cfg["input_pair"]),
        "overhead": lambda: capture.overhead_and_raw_limit(cfg["overhead_n"], cfg["overhead_reps"]),
        "limit": lambda: capture.write_limit(cfg["limit_n"], cfg["limit_reps"]),
        "naive": lambda: capture.against_naive(
            cfg["naive_sizes"], cfg["naive_reps"], cfg["naive_headline"]
        ),
        "startup": lambda: startup.startup(cfg["startup_reps"]),
        "trace": lambda: queries.trace_latency(
            cfg["trace_entries"], cfg["trace_queries"], cfg["query_reps"]
        ),
        "walk": lambda: queries.walks(cfg["chain_hops"], cfg["query_reps"]),
        "load": lambda: queries.load(cfg["load_records"], cfg["query_reps"]),
        "graph": lambda: queries.graph(cfg["graph_records"], cfg["query_reps"]),
        "merge": lambda: queries.merge_graph(cfg["merge_records"], cfg["query_reps"]),
        "plot": lambda: plots.chain_plot(cfg["plot_parents"], cfg["query_reps"]),
        "check": lambda: queries.check(cfg["check_records"], cfg["query_reps"]),
        "frames": lambda: frames.frame_steps(cfg["frame_records"], cfg["frame_reps"]),
        "export": lambda: [
            *exports.openlineage_events(cfg["export_records"], cfg["export_reps"]),
            *exports.live_overhead(cfg["live_records"], cfg["export_reps"]),
            *exports.graphml(cfg["export_records"], cfg["export_reps"]),
        ],
        "dask": lambda: on_dask.dask_figures(
            cfg["dask_records"], cfg["dask_reps"], cfg["dask_memory_pair"]
        ),
    }
    figures: list[Figure] = []
    for name in SECTIONS:
        if name not in only:
            continue
        started = time.perf_counter()
        print(f"[{name}]", flush=True)
        figures.extend(plan[name]())
        print(f"  ({time.perf_counter() - started:.1f} s)", flush=True)
    return figures


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "bool":
        return "yes" if value else "no"
    if unit in ("records/s", "rows/s"):
        return f"{value:,.0f} {unit}"
    if unit == "ms":
        return f"{value:.3f} ms"
    if unit == "s":
        return f"{value:.3f} s"
    if value >= 100:
        return f"{value:,.0f}{unit}"
    return f"{value:.2f}{unit}"


def table(figures: list[Figure]) -> str:
    """The figures as a Markdown table (also what is printed)."""
    lines = ["| figure | value | goal | met |", "| --- | --- | --- | --- |"]
    for f in figures:
        met = {True: "met", False: "MISSED", None: ""}[f.met]
        value = _fmt(f.value, f.unit) if f.value is not None else (f.note or "n/a")
        lines.append(f"| {f.label} | {value} | {f.goal or ''} | {met} |")
    return "\n".join(lines)


def child(args: list[str]) -> None:
    """Entry point of the fresh processes the benchmarks start (``--child KIND ...``)."""
    kind, *rest = args
    if kind == "capture":
        import capture

        out = capture.child_capture(int(rest[0]), rest[1])
    elif kind == "input":
        import inputs

        out = inputs.child_input(rest[0], rest[1])
    elif kind == "dask_memory":
        import on_dask

        out = on_dask.child_dask_memory(int(rest[0]), rest[1], rest[2])
    elif kind == "imports":
        import startup

        out = startup.child_imports(rest[0])
    else:
        raise SystemExit(f"unknown child {kind!r}")
    print(json.dumps(out))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    parser.add_argument("--out", metavar="FILE.json", help="write the figures as JSON here")
    parser.add_argument(
        "--only", help=f"comma-separated sections to run (default all): {','.join(SECTIONS)}"
    )
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child)
        return 0
    only = set(args.only.split(",")) if args.only else set(SECTIONS)
    unknown = only - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    mode = "quick" if args.quick else "full"
    started = time.perf_counter()
    figures = run_sections(CONFIG[mode], only)
    elapsed = time.perf_counter() - started
    print()
    print(table(figures))
    print(f"\n{mode} run, {elapsed:.0f} s in total")
    if args.out:
        meta = {
            "mode": mode,
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "sqlite": __import__("sqlite3").sqlite_version,
            "elapsed_seconds": elapsed,
            "config": {
                k: (v if not isinstance(v, dict) else {str(a): b for a, b in v.items()})
                for k, v in CONFIG[mode].items()
            },
        }
        Path(args.out).write_text(
            json.dumps({"meta": meta, "figures": [f.as_dict() for f in figures]}, indent=2) + "\n"
        )
        print(f"figures written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
