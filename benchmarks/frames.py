"""Frame-step benchmarks (issue 15): the same pipeline as frame steps and as record
steps, and against the store's write limit, interleaved in one run.

Pipeline: ingest -> normalize -> filter (drops ~10%) -> derive -> publish, over
synthetic orders. ``record-steps/s`` counts one per record per step it reached, as
the lineage does (a filtered record stops at the filter).
"""

from __future__ import annotations

import sqlite3
from itertools import islice
from pathlib import Path

from capture import bare_executemany, prebuilt_rows
from common import Figure, fresh_db, interleaved, orders

import lineage_kit as lk
from lineage_kit.values import to_json, value_hash

CHUNK = 2_000


@lk.step("keep_paid", frame=True, description="drop refunded orders (about 10%)")
def keep_paid_frame(df):
    return df[df["amount"] % 10 >= 1]


@lk.step("derive", frame=True, description="amount per item")
def derive_frame(df):
    return df.assign(per_item=df["amount"] / df["items"])


@lk.step("keep_paid", description="drop refunded orders (about 10%)")
def keep_paid_record(record):
    if record["amount"] % 10 < 1:
        raise lk.Reject("filtered_out", "dropped by step 'keep_paid'")
    return record


@lk.step("derive", description="amount per item")
def derive_record(record):
    return {**record, "per_item": record["amount"] / record["items"]}


FRAME = lk.Pipeline(
    [lk.steps.ingest, lk.steps.normalize_frame, keep_paid_frame, derive_frame, lk.steps.publish],
    name="frames",
)
RECORD = lk.Pipeline(
    [lk.steps.ingest, lk.steps.normalize, keep_paid_record, derive_record, lk.steps.publish],
    name="records",
)


def run(pipeline: lk.Pipeline, n: int, db: Path) -> lk.RunResult:
    return pipeline.run(orders(n), db=db, progress=False, chunk_size=CHUNK)


def write_probe(n_rows: int, db: Path) -> int:
    """The store's write limit: one lineage row and one JSON row per record-step.

    Rows are prebuilt in memory (nothing else is measured), written in chunks of
    ``CHUNK`` records by ``executemany`` into a bare table pair with no index; the
    indexes are built afterwards, once.
    """
    text = to_json(next(orders(1)))
    vhash = value_hash(text)
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA journal_mode = WAL")
    con.execute("PRAGMA synchronous = NORMAL")
    con.execute(
        "CREATE TABLE lineage (entry_id INTEGER PRIMARY KEY, run_id TEXT, position INTEGER, "
        "record_key TEXT, status TEXT, created_at TEXT, value_hash TEXT, parent_id INTEGER)"
    )
    con.execute("CREATE TABLE records (entry_id INTEGER PRIMARY KEY, value TEXT)")
    rows = (
        (i, "run", i % 5, f"order-{i:08d}", "ok", "2026-12-01T00:00:00", vhash, i - 1)
        for i in range(1, n_rows + 1)
    )
    per_chunk = CHUNK * 5
    while block := list(islice(rows, per_chunk)):
        con.execute("BEGIN IMMEDIATE")
        con.executemany("INSERT INTO lineage VALUES (?, ?, ?, ?, ?, ?, ?, ?)", block)
        con.executemany("INSERT INTO records VALUES (?, ?)", ((r[0], text) for r in block))
        con.execute("COMMIT")
    con.execute("CREATE INDEX lineage_key ON lineage (record_key, run_id, position)")
    con.execute("CREATE INDEX lineage_run ON lineage (run_id, position, status)")
    con.close()
    return n_rows


def frame_steps(n: int, reps: int) -> list[Figure]:
    """Record-steps/s of the frame pipeline over the record pipeline and the probe."""
    paths = {
        "frame": "frames_frame.db",
        "record": "frames_record.db",
        "bare": "frames_bare.db",
        "probe": "frames_probe.db",
    }
    db = {name: fresh_db(p) for name, p in paths.items()}
    run(FRAME, n, db["frame"])  # warm up (pandas imported), and the rows for the bare write
    rows = prebuilt_rows(db["frame"])
    steps_done: dict[str, int] = {}

    def count(name: str, result: lk.RunResult) -> None:
        steps_done[name] = result.n_entries

    t = interleaved(
        {
            "frame": lambda: count("frame", run(FRAME, n, db["frame"])),
            "record": lambda: count("record", run(RECORD, n, db["record"])),
            "bare": lambda: bare_executemany(rows, db["bare"]),
            "probe": lambda: write_probe(steps_done["frame"], db["probe"]),
        },
        reps,
        setup=lambda name: fresh_db(paths[name]),
    )
    frame_rate = steps_done["frame"] / t["frame"].median
    record_rate = steps_done["record"] / t["record"].median
    bare_rate = steps_done["frame"] / t["bare"].median
    probe_rate = steps_done["frame"] / t["probe"].median
    vs_record = frame_rate / record_rate
    vs_probe = frame_rate / bare_rate
    print(
        f"  frame pipeline {frame_rate:,.0f} record-steps/s: {vs_record:.2f}x the record "
        f"pipeline, {vs_probe:.2f} of the store's write limit, {frame_rate / probe_rate:.2f} of "
        f"a bare two-table probe ({n:,} records)",
        flush=True,
    )
    return [
        Figure(
            "frame_vs_record_steps",
            f"frame pipeline record-steps/s / the same as record steps, {n:,} records",
            vs_record,
            "x",
            goal=">= 2",
            met=vs_record >= 2,
            detail={
                "frame_seconds": t["frame"].median,
                "record_seconds": t["record"].median,
                "frame_record_steps_per_s": frame_rate,
                "record_record_steps_per_s": record_rate,
                "entries": steps_done,
                "samples": {"frame": t["frame"].wall, "record": t["record"].wall},
            },
        ),
        Figure(
            "frame_vs_write_probe",
            f"frame pipeline record-steps/s / bare executemany of its rows, {n:,} records",
            vs_probe,
            "x",
            goal=">= 0.5",
            met=vs_probe >= 0.5,
            detail={
                # the store's write limit: the same rows into the same schema (capture.py)
                "bare_seconds": t["bare"].median,
                "bare_record_steps_per_s": bare_rate,
                # a lower floor: one lineage and one JSON row per record-step, no index
                # while writing (write_probe)
                "probe_seconds": t["probe"].median,
                "probe_record_steps_per_s": probe_rate,
                "frame_over_probe": frame_rate / probe_rate,
                "samples": {"bare": t["bare"].wall, "probe": t["probe"].wall},
            },
        ),
    ]
