"""Frame-step benchmarks (issue 15): the same pipeline as frame steps and as record
steps, and against the write-limit probe (issue 17), interleaved in one run.

Pipeline: ingest -> normalize -> filter (drops ~10%) -> derive -> publish, over
synthetic orders. ``record-steps/s`` counts one per record per step it reached, as
the lineage does (a filtered record stops at the filter).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from capture import write_limit_probe
from common import Figure, fresh_db, interleaved, orders, ratio_figure

import lineage_kit as lk
from lineage_kit.store.sqlite import SQLiteBackend

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
# The write-limit probe (capture.write_limit_probe: plain Python, one lineage row and
# one JSON row per record-step, indexes built afterwards) over the same five steps;
# it has no rejects, so its filter passes every record (its rate is per record-step).
PROBE = [
    lk.steps.ingest.func,
    lk.steps.normalize.func,
    lambda record: record,
    derive_record.func,
    lk.steps.publish.func,
]

RECORD = lk.Pipeline(
    [lk.steps.ingest, lk.steps.normalize, keep_paid_record, derive_record, lk.steps.publish],
    name="records",
)


def run(pipeline: lk.Pipeline, n: int, db: Path) -> lk.RunResult:
    return pipeline.run(orders(n), db=db, progress=False, chunk_size=CHUNK)


@contextmanager
def writes_skipped() -> Iterator[None]:
    """Runs in the block reserve no ids and write no chunk (everything else as usual):
    what the two pipelines cost apart from the store's writes, the floor both share."""
    reserve, write = SQLiteBackend.reserve_ids, SQLiteBackend.write_chunk
    SQLiteBackend.reserve_ids = lambda self, n: 1
    SQLiteBackend.write_chunk = lambda self, first_id, chunk: True
    try:
        yield
    finally:
        SQLiteBackend.reserve_ids, SQLiteBackend.write_chunk = reserve, write


def without_writes(n: int, reps: int) -> dict[str, float]:
    """CPU seconds (medians) of the frame and record pipelines with writes skipped."""
    paths = {"frame": "frames_nowrite_frame.db", "record": "frames_nowrite_record.db"}
    with writes_skipped():
        t = interleaved(
            {
                "frame": lambda: run(FRAME, n, fresh_db(paths["frame"])),
                "record": lambda: run(RECORD, n, fresh_db(paths["record"])),
            },
            reps,
        )
    return {name: t[name].median_cpu for name in paths}


def frame_steps(n: int, reps: int) -> list[Figure]:
    """Record-steps/s of the frame pipeline over the record pipeline and the probe."""
    paths = {"frame": "frames_frame.db", "record": "frames_record.db", "probe": "frames_probe.db"}
    db = {name: fresh_db(p) for name, p in paths.items()}
    run(FRAME, min(n, 5_000), db["frame"])  # warm up: pandas imported
    steps_done: dict[str, int] = {}

    def count(name: str, result: lk.RunResult | int) -> None:
        steps_done[name] = result if isinstance(result, int) else result.n_entries

    t = interleaved(
        {
            "frame": lambda: count("frame", run(FRAME, n, db["frame"])),
            "record": lambda: count("record", run(RECORD, n, db["record"])),
            "probe": lambda: count("probe", write_limit_probe(orders(n), db["probe"], PROBE)),
        },
        reps,
        setup=lambda name: fresh_db(paths[name]),
    )
    frame_rate = steps_done["frame"] / t["frame"].median
    record_rate = steps_done["record"] / t["record"].median
    probe_rate = steps_done["probe"] / t["probe"].median
    vs_record = frame_rate / record_rate
    vs_probe = frame_rate / probe_rate
    # the same ratios on CPU seconds: on a shared machine, wall time includes waiting
    cpu = {name: steps_done[name] / t[name].median_cpu for name in paths}
    cpu_vs_record, cpu_vs_probe = cpu["frame"] / cpu["record"], cpu["frame"] / cpu["probe"]
    print(
        f"  frame pipeline {frame_rate:,.0f} record-steps/s: {vs_record:.2f}x the record "
        f"pipeline, {vs_probe:.2f} of the write-limit probe ({n:,} records); on CPU "
        f"seconds {cpu_vs_record:.2f}x and {cpu_vs_probe:.2f}",
        flush=True,
    )
    samples = {name: t[name].wall for name in t}
    # the ceiling: the same ratio with the store's writes skipped, which both
    # pipelines pay alike (one entry row per record-step)
    bare = without_writes(n, reps)
    ceiling = bare["record"] / bare["frame"]
    print(
        f"  without the store's writes (CPU seconds): frame {bare['frame']:.2f} s, record "
        f"{bare['record']:.2f} s: {ceiling:.2f}x; the writes cost "
        f"{t['frame'].median_cpu - bare['frame']:.2f} s and "
        f"{t['record'].median_cpu - bare['record']:.2f} s",
        flush=True,
    )
    return [
        ratio_figure(
            "frame_vs_record_steps",
            f"frame pipeline record-steps/s / the same as record steps, {n:,} records",
            vs_record,
            goal=">= 2",
            detail={
                "frame_seconds": t["frame"].median,
                "record_seconds": t["record"].median,
                "cpu_ratio": cpu_vs_record,
                "frame_cpu_seconds": t["frame"].median_cpu,
                "record_cpu_seconds": t["record"].median_cpu,
                "frame_record_steps_per_s": frame_rate,
                "record_record_steps_per_s": record_rate,
                "entries": steps_done,
                "samples": samples,
            },
        ),
        ratio_figure(
            "frame_vs_record_steps_without_writes",
            f"the same on CPU seconds with the store's writes skipped (the ceiling), {n:,} records",
            ceiling,
            detail={
                "frame_cpu_seconds": bare["frame"],
                "record_cpu_seconds": bare["record"],
                "frame_write_cpu_seconds": t["frame"].median_cpu - bare["frame"],
                "record_write_cpu_seconds": t["record"].median_cpu - bare["record"],
            },
        ),
        ratio_figure(
            "frame_vs_write_probe",
            f"frame pipeline record-steps/s / the write-limit probe's, {n:,} records",
            vs_probe,
            goal=">= 0.5",
            detail={
                "probe_seconds": t["probe"].median,
                "probe_cpu_seconds": t["probe"].median_cpu,
                "cpu_ratio": cpu_vs_probe,
                "probe_record_steps_per_s": probe_rate,
            },
        ),
    ]
