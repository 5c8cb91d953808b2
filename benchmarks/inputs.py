"""Input benchmarks (issue 17, item 6c): peak RSS of a run at a large / a small size,
for a JSON array, JSON Lines and CSV input of the same records.

Each run is a fresh process (``--child input ...``), so its peak RSS is its own.
A reader that holds the whole input (as the JSON array reader once did) grows with
the file; a streaming one stays flat: the ratio is ~1.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from common import WORK, Figure, fresh_db, orders, peak_rss_mib, run_child, timed

import lineage_kit as lk

FORMATS = ("json", "jsonl", "csv")
_LABELS = {"json": "JSON array", "jsonl": "JSON Lines", "csv": "CSV"}
_GOAL = 1.3  # the goal for the JSON array; JSON Lines and CSV were flat already


def write_input(fmt: str, n: int) -> Path:
    """``n`` benchmark orders as one input file of the format (written once per run)."""
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / f"input_{n}.{fmt}"
    with path.open("w", encoding="utf-8", newline="") as fh:
        if fmt == "json":
            fh.write("[\n")
            for i, record in enumerate(orders(n)):
                fh.write((",\n" if i else "") + json.dumps(record))
            fh.write("\n]\n")
        elif fmt == "jsonl":
            for record in orders(n):
                fh.write(json.dumps(record) + "\n")
        else:
            writer = None
            for record in orders(n):
                if writer is None:
                    writer = csv.DictWriter(fh, fieldnames=list(record))
                    writer.writeheader()
                writer.writerow(record)
    return path


def child_input(path: str, db: str) -> dict[str, Any]:
    """In a fresh process: the default pipeline over one input file; time and peak RSS."""
    wall, _, result = timed(lambda: lk.run_pipeline(path, db=fresh_db(db), progress=False))
    return {"wall": wall, "n_input": result.n_input, "peak_rss_mib": peak_rss_mib()}


def memory_by_format(pair: tuple[int, int]) -> list[Figure]:
    small, large = pair
    figures = []
    for fmt in FORMATS:
        rss = {}
        for n in (small, large):
            path = write_input(fmt, n)
            out = run_child("input", str(path), f"input_{fmt}_{n}.db")
            assert out["n_input"] == n, out
            rss[n] = out["peak_rss_mib"]
            path.unlink()
        ratio = rss[large] / rss[small]
        goal = fmt == "json"
        print(
            f"  {_LABELS[fmt]:<10} peak RSS {rss[small]:.1f} MiB at {small:,}, "
            f"{rss[large]:.1f} MiB at {large:,}: {ratio:.2f}x",
            flush=True,
        )
        figures.append(
            Figure(
                f"input_memory_ratio_{fmt}",
                f"peak RSS at {large:,} / at {small:,} records, {_LABELS[fmt]} input",
                ratio,
                "x",
                goal=f"<= {_GOAL}" if goal else None,
                met=ratio <= _GOAL if goal else None,
                detail={f"peak_rss_mib_{small}": rss[small], f"peak_rss_mib_{large}": rss[large]},
            )
        )
    return figures
