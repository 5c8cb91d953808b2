"""The same figures measured on two or more checkouts, interleaved, in CPU time.

Usage::

    python benchmarks/before_after.py before=/tmp/old after=. --rounds 7
    python benchmarks/before_after.py before=/tmp/old after=. --only startup,trace

Each round runs every figure once per checkout, in a fresh process whose
``PYTHONPATH`` is that checkout, the checkouts' order turning from round to round
(A B, B A, ...), so load that drifts over the run hits them alike. A child times
its call many times and reports the median CPU seconds of one call
(``time.process_time``, start-up: the child's CPU time); the figure is the
median over the rounds. Each checkout builds its own stores once, with its own
code, under ``--work``. Only the public API is used, so any checkout that has it
can be measured.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

#: Records of the run that trace, lineage(), graph(), the exports and check() read.
RUN_RECORDS = 50_000
#: Records of the run the exports read (PROV refuses more than 100,000 entries).
EXPORT_RECORDS = 20_000
CHAIN_HOPS = 1_000
PLOT_PARENTS = 2_000

#: figure -> (what it measures, calls per child)
FIGURES: dict[str, tuple[str, int]] = {
    "startup": ("`python -m lineage_kit --help`, CPU of the process", 0),
    "import": ("`python -c 'import lineage_kit'`, CPU of the process", 0),
    "cli_run": ("`python -m lineage_kit run` of the 30 sample orders, CPU of the process", 0),
    "trace": (f"store.trace(key), {RUN_RECORDS:,}-record run", 400),
    "upstream": (f"store.upstream(entry) over a {CHAIN_HOPS:,}-hop chain", 40),
    "downstream": (f"store.downstream(entry) over a {CHAIN_HOPS:,}-hop chain", 40),
    "lineage": (f"store.lineage(), {RUN_RECORDS:,}-record run", 12),
    "graph": (f"store.graph(), {RUN_RECORDS:,}-record run", 6),
    "plot": (f"lk.plot_chain of a {PLOT_PARENTS:,}-parent merge, PNG written", 4),
    "openlineage": (f"store.openlineage_events(), {EXPORT_RECORDS:,}-record run", 10),
    "prov": (f"store.to_prov(), {EXPORT_RECORDS:,}-record run", 4),
    "graphml": (f"lk.write_graphml(store.graph()), {EXPORT_RECORDS:,}-record run", 4),
    "check": (f"store.check(), {RUN_RECORDS:,}-record run", 6),
}


#: Children compile each module again when this is set (as PYTHONDONTWRITEBYTECODE=1
#: does); unset, they import cached bytecode, as an installed package does.
ENV_WITHOUT: set[str] = {"PYTHONDONTWRITEBYTECODE"}


def _env(tree: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_WITHOUT}
    return {**env, "PYTHONPATH": str(tree)}


def _orders(n: int) -> Any:
    sys.path.insert(0, str(HERE))
    from common import orders

    return orders(n)


def _stores(lk: Any, work: Path) -> dict[str, Path]:
    """This checkout's stores under ``work`` (built with its own code the first time)."""
    work.mkdir(parents=True, exist_ok=True)
    paths = {name: work / f"{name}.db" for name in ("run", "export", "chain", "plot")}
    for name, n in (("run", RUN_RECORDS), ("export", EXPORT_RECORDS)):
        if not paths[name].exists():
            lk.run_pipeline(_orders(n), db=paths[name], progress=False)
    if not paths["chain"].exists():
        chain = [
            lk.step(f"hop{i:04d}")(lambda record, i=i: {**record, "hop": i})
            for i in range(CHAIN_HOPS)
        ]
        lk.Pipeline(chain, name="chain").run(_orders(5), db=paths["chain"], progress=False)
    if not paths["plot"].exists():
        merge = lk.step("everything", kind="merge", group_by=lambda key, record: "ALL")(
            lambda records: {"orders": len(records)}
        )
        lk.Pipeline([lk.steps.ingest, lk.steps.normalize, merge, lk.steps.publish]).run(
            _orders(PLOT_PARENTS), db=paths["plot"], progress=False
        )
    return paths


def _call(lk: Any, figure: str, paths: dict[str, Path], work: Path) -> Callable[[], Any]:
    """The call that ``figure`` times, with its store opened (and kept open)."""
    if figure == "plot":
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        store = lk.connect(paths["plot"])

        def draw() -> None:
            ax = lk.plot_chain(store, "ALL")
            ax.figure.savefig(work / "plot.png")
            plt.close(ax.figure)

        return draw
    if figure in ("upstream", "downstream"):
        store = lk.connect(paths["chain"])
        ids = store.trace(next(iter(_orders(1)))["key"])["entry_id"]
        entry = int(ids.max() if figure == "upstream" else ids.min())
        method = getattr(store, figure)
        return lambda: method(entry)
    store = lk.connect(paths["export" if figure in ("openlineage", "prov", "graphml") else "run"])
    if figure == "trace":
        rng = random.Random(7)
        return lambda: store.trace(f"order-{rng.randrange(RUN_RECORDS):08d}")
    if figure == "graphml":
        return lambda: lk.write_graphml(store.graph(), work / "bench.graphml")
    method = {"openlineage": "openlineage_events", "prov": "to_prov"}.get(figure, figure)
    return getattr(store, method)


def child(figure: str, work: Path) -> dict[str, Any]:
    """In a fresh process: the median CPU seconds of one call of ``figure``."""
    import lineage_kit as lk

    paths = _stores(lk, work)
    fn = _call(lk, figure, paths, work)
    fn()  # warm: caches, lazy imports
    samples = []
    for _ in range(FIGURES[figure][1]):
        started = time.process_time()
        fn()
        samples.append(time.process_time() - started)
    return {"cpu": statistics.median(samples), "module": lk.__file__}


def _command(figure: str, work: Path) -> list[str] | None:
    """The command line of a figure that is a whole process, else None."""
    db = work / "cli_run.db"  # each checkout its own, runs added to it
    return {
        "startup": ["-m", "lineage_kit", "--help"],
        "import": ["-c", "import lineage_kit"],
        "cli_run": [
            "-m",
            "lineage_kit",
            "run",
            "data/sample_input.json",
            "--db",
            str(db),
            "--quiet",
        ],
    }.get(figure)


def _process_cpu(tree: Path, command: list[str], reps: int = 5) -> float:
    """Median CPU seconds (user + system) of a fresh ``python command`` in ``tree``."""
    samples = []
    for _ in range(reps):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(
            [sys.executable, *command],
            cwd=tree,
            env=_env(tree),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        samples.append(
            sum(getattr(after, f) - getattr(before, f) for f in ("ru_utime", "ru_stime"))
        )
    return statistics.median(samples)


def measure(tree: Path, figure: str, work: Path) -> float:
    """One sample of ``figure`` on ``tree`` (a fresh child process)."""
    command = _command(figure, work)
    if command is not None:
        work.mkdir(parents=True, exist_ok=True)
        return _process_cpu(tree, command)
    proc = subprocess.run(
        [sys.executable, str(HERE / "before_after.py"), "--child", figure, str(work)],
        cwd=tree,
        env=_env(tree),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{figure} on {tree} failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if not out["module"].startswith(str(tree)):
        raise RuntimeError(f"{tree} ran {out['module']}, not its own lineage_kit")
    return out["cpu"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="*", help="NAME=PATH of each checkout, before first")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--only", help=f"comma-separated figures (default all): {','.join(FIGURES)}"
    )
    parser.add_argument("--work", default=str(HERE / "_work" / "before_after"))
    parser.add_argument("--out", metavar="FILE.json")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="children compile every module (PYTHONDONTWRITEBYTECODE=1), no cached bytecode",
    )
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], Path(args.child[1]))))
        return 0
    if args.compile:
        ENV_WITHOUT.clear()
        os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
    trees = dict(t.split("=", 1) for t in args.trees)
    trees = {name: Path(path).resolve() for name, path in trees.items()}
    figures = args.only.split(",") if args.only else list(FIGURES)
    samples: dict[str, dict[str, list[float]]] = {f: {n: [] for n in trees} for f in figures}
    names = list(trees)
    for r in range(args.rounds + 1):  # round 0 warms .pyc files and builds the stores
        order = names if r % 2 else names[::-1]
        for figure in figures:
            for name in order:
                cpu = measure(trees[name], figure, Path(args.work) / name)
                if r:
                    samples[figure][name].append(cpu)
        print(f"round {r} done", flush=True)
    print("| figure | " + " | ".join(names) + " | ratio | paired |")
    result = {}
    for figure in figures:
        s = samples[figure]
        med = {n: statistics.median(s[n]) for n in names}
        ratio = med[names[-1]] / med[names[0]]
        # the two measured in the same round, one after the other: drift cancels
        paired = statistics.median(a / b for a, b in zip(s[names[-1]], s[names[0]], strict=True))
        result[figure] = {
            "paired_ratio": paired,
            "label": FIGURES[figure][0],
            "median_cpu": med,
            "samples": samples[figure],
        }
        cells = " | ".join(f"{1000 * med[n]:.2f} ms" for n in names)
        print(f"| {FIGURES[figure][0]} | {cells} | {ratio:.3f} | {paired:.3f} |", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
