"""Real runs of every kind for the export tests, each made by running a pipeline.

``make_run(kind, db)`` returns the run id of one run of that kind written into the
store ``db``: the statuses ``completed``, ``completed_with_errors``, ``failed``
(fail_fast), ``interrupted`` (Ctrl-C in a step), ``killed`` (the writer killed:
``interrupted`` without step times), ``running`` (the events are read by a step
while the run is still going; see :data:`RUNNING_EVENTS`), and the shapes ``merge``
``split`` and ``frame`` (a DataFrame step that filters rows out).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import lineage_kit as lk

from .conftest import MESSY_JSON, SAMPLE_JSON, records, run_killed_writer

KINDS = (
    "completed",
    "completed_with_errors",
    "failed",
    "interrupted",
    "killed",
    "running",
    "merge",
    "split",
    "frame",
)

#: What a step of the ``running`` run saw: {"run_id": ..., "events": [...], "status": ...}.
RUNNING_EVENTS: dict[str, Any] = {}

_KILLED_WRITER = """
import os, signal, sys
import lineage_kit as lk
from lineage_kit.steps import ingest, normalize, publish

@lk.step("check", source="normalized", destination="checked")
def check(record):
    if record["key"] == "order-104":
        raise lk.Reject("not_wanted")
    if record["key"] == "order-125":
        os.kill(os.getpid(), signal.SIGKILL)
    return record

lk.run_pipeline(sys.argv[1], db=sys.argv[2], steps=[ingest, normalize, check, publish],
                chunk_size=10, progress=False)
"""


def by_customer() -> lk.Step:
    """A merge: one record per customer, amounts summed, the name kept."""

    @lk.step(
        "by_customer",
        kind="merge",
        group_by=lambda key, r: r["customer name"],
        source="normalized",
        destination="customers",
        description="one row per customer, amounts summed",
    )
    def merge(members: list[dict]) -> dict:
        return {
            "customer name": members[0]["customer name"],
            "amount": sum(m["amount"] for m in members),
            "orders": len(members),
        }

    return merge


def per_item() -> lk.Step:
    """A split: one record per unit of amount (amount 0: rejected as split_empty)."""

    @lk.step("per_item", kind="split", source="staging", destination="items")
    def split(record: dict) -> list[dict]:
        return [{"order": record["key"], "item": n} for n in range(int(record[" Amount "]))]

    return split


def make_run(kind: str, db: Path) -> str:
    """Run a pipeline of the given kind into ``db``; return its run id."""
    if kind == "completed":
        return lk.run_pipeline(SAMPLE_JSON, db=db, progress=False).run_id
    if kind == "completed_with_errors":
        return lk.run_pipeline(MESSY_JSON, db=db, progress=False).run_id
    if kind == "failed":

        @lk.step("explode", source="normalized", destination="checked")
        def explode(record: dict) -> dict:
            if record["key"] == "order-105":
                raise ValueError("cannot handle order-105")
            return record

        pipeline = lk.Pipeline([lk.steps.ingest, lk.steps.normalize, explode, lk.steps.publish])
        with pytest.raises(lk.StepError) as info:
            pipeline.run(SAMPLE_JSON, db=db, fail_fast=True, progress=False, chunk_size=4)
        return info.value.result.run_id
    if kind == "interrupted":

        @lk.step("stop", source="normalized", destination="checked")
        def stop(record: dict) -> dict:
            if record["key"] == "order-110":
                raise KeyboardInterrupt
            return record

        pipeline = lk.Pipeline([lk.steps.ingest, lk.steps.normalize, stop, lk.steps.publish])
        with pytest.raises(KeyboardInterrupt):
            pipeline.run(SAMPLE_JSON, db=db, progress=False, chunk_size=4)
        with lk.connect(db) as store:
            return store.resolve_run("latest")
    if kind == "killed":
        run_killed_writer(_KILLED_WRITER, SAMPLE_JSON, db)
        with lk.connect(db) as store:
            return store.resolve_run("latest")
    if kind == "running":

        @lk.step("peek", source="normalized", destination="peeked")
        def peek(record: dict) -> dict:
            if record["key"] == "order-121" and not RUNNING_EVENTS:
                with lk.connect(db) as store:  # chunks 1-5 are committed; this run goes on
                    (row,) = [r for r in store.run_rows() if r["status"] == "running"]
                    RUNNING_EVENTS.update(
                        run_id=row["run_id"],
                        status=row["status"],
                        events=store.openlineage_events(row["run_id"]),
                    )
            return record

        RUNNING_EVENTS.clear()
        pipeline = lk.Pipeline([lk.steps.ingest, lk.steps.normalize, peek, lk.steps.publish])
        pipeline.run(SAMPLE_JSON, db=db, progress=False, chunk_size=4)
        return RUNNING_EVENTS["run_id"]
    if kind == "merge":
        pipeline = lk.Pipeline(
            [lk.steps.ingest, lk.steps.normalize, by_customer(), lk.steps.publish], name="merge"
        )
        return pipeline.run(records(14), db=db, chunk_size=4, progress=False).run_id
    if kind == "split":
        pipeline = lk.Pipeline([lk.steps.ingest, per_item(), lk.steps.publish], name="split")
        return pipeline.run(records(4), db=db, progress=False).run_id
    if kind == "frame":

        @lk.step("big_orders", frame=True, description="amount > 20")
        def big_orders(df):
            return df[df["amount"] > 20]

        pipeline = lk.Pipeline(
            [lk.steps.ingest, lk.steps.normalize, big_orders, lk.steps.publish], name="frames"
        )
        return pipeline.run(SAMPLE_JSON, db=db, chunk_size=7, progress=False).run_id
    raise ValueError(kind)


def events_of(kind: str, db: Path) -> tuple[str, list[dict]]:
    """The run id and OpenLineage events of a fresh run of ``kind``."""
    run_id = make_run(kind, db)
    if kind == "running":
        return run_id, RUNNING_EVENTS["events"]
    with lk.connect(db) as store:
        return run_id, store.openlineage_events(run_id)
