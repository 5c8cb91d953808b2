"""The JSON run report written by ``lineage-kit run --report FILE.json``.

The report is streamed chain by chain, so a run of a million records does not need
a million chains in memory.
"""

from __future__ import annotations

import json
import os
from itertools import groupby
from typing import Any

from .lineage_store import connect
from .store.queries import REPORT_COLUMNS, parse_id_list, parse_parameters


def write_report(db: str | os.PathLike[str], run: str, path: str | os.PathLike[str]) -> None:
    """Write a JSON report of one run: counts, steps and every record's chain.

    Parameters
    ----------
    db : str or PathLike
        The lineage store.
    run : str
        A run id, unique prefix or ``"latest"``.
    path : str or PathLike
        Where to write the report.

    Raises
    ------
    StoreNotFound, NotALineageStore, RunNotFound
        The store or the run cannot be found.
    OSError
        The report file cannot be written.

    Notes
    -----
    Shape: the run as ``lineage-kit runs --json`` prints it (``run_id``,
    ``status``, ``input_path``, ``n_input``, ``n_published``, ``n_rejected``,
    ``n_failed``, ``parameters``, ...), then ``"n_entries"``, ``"pipeline_steps":
    [...]``, ``"chains": {key: [{"entry_id", "step", "source", "destination",
    "transform", "status", "reason", "error", "parents", "time"}]}`` and
    ``"unkeyed": [...]``. Records rejected before they had a key are listed under
    ``unkeyed``, never under a made-up key.
    """
    with connect(db) as store:
        run_id = store.resolve_run(run)
        run_row = next(r for r in store.run_rows() if r["run_id"] == run_id)
        steps = [
            dict(
                zip(
                    ("position", "name", "kind", "source", "destination", "description"),
                    row[1:7],  # after run_id
                    strict=True,
                )
            )
            for row in store.backend.step_meta_rows(run_id)
        ]
        header: dict[str, Any] = {
            **run_row,  # the names `lineage-kit runs --json` uses
            "parameters": parse_parameters(run_row["parameters"]),
            "n_entries": store.backend.count_entries(run_id),
            "pipeline_steps": steps,
        }
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(header, indent=2)[:-2] + ',\n  "chains": {')
            unkeyed: list[dict[str, Any]] = []
            first = True
            rows = (
                dict(zip(REPORT_COLUMNS, r, strict=True)) for r in store.backend.report_rows(run_id)
            )
            for key, entries in groupby(rows, key=lambda r: r["record_key"]):
                chain = [_link(entry, steps) for entry in entries]
                if key is None:
                    unkeyed.extend(chain)
                    continue
                fh.write(("\n    " if first else ",\n    ") + json.dumps(key) + ": ")
                fh.write(json.dumps(chain))
                first = False
            fh.write('\n  },\n  "unkeyed": ' + json.dumps(unkeyed) + "\n}\n")


def _link(entry: dict[str, Any], steps: list[dict[str, Any]]) -> dict[str, Any]:
    st = steps[entry["position"]]
    return {
        "entry_id": entry["entry_id"],
        "step": st["name"],
        "source": st["source"],
        "destination": st["destination"],
        "transform": st["description"],
        "status": entry["status"],
        "reason": entry["reason"],
        "error": entry["error"],
        "parents": parse_id_list(entry["parent_ids"]),
        "time": entry["created_at"],
    }
