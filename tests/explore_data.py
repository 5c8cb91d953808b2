"""A pipeline with fan-out (split), fan-in (merge), rejections and failures, and
two runs of it, for the explore tests.

Run 1 input (8 records):
  o1  A  10  [x, y]   -> split o1/x, o1/y -> merged into A -> published
  o2  A   5  [z]      -> split o2/z       -> merged into A
  o3  B  -1           -> rejected at validate (negative_amount)
  o4  B  13           -> failed at validate (ValueError)
  o5  B   2  [w]      -> split o5/w       -> merged into B -> published
  o6  C   1  []       -> rejected at explode (split_empty)
  {no key}            -> rejected at ingest (record_key NULL)
  o1 again            -> rejected at ingest (duplicate_key)
Run 2 input (5 records): o1 (amount 11), o3 (valid now), o4 (valid now), o5
(unchanged), o7 (new, customer C).
"""

from __future__ import annotations

from pathlib import Path

import lineage_kit as lk

STEP_NAMES = ["ingest", "validate", "explode", "by_customer", "deliver"]


@lk.step("validate", description="amounts must be positive")
def validate(record: dict) -> dict:
    if record["amount"] < 0:
        raise lk.Reject("negative_amount", f"amount is {record['amount']}")
    if record["amount"] == 13:
        raise ValueError("unlucky amount")
    return record


@lk.step("explode", destination="items", kind="split", description="one record per item")
def explode(record: dict) -> list:
    return [
        (
            f"{record['key']}/{item}",
            {"customer": record["customer"], "item": item, "amount": record["amount"]},
        )
        for item in record["items"]
    ]


def _customer(key: str, record: dict) -> str:
    return record["customer"]


@lk.step(
    "by_customer",
    source="items",
    destination="customers",
    kind="merge",
    group_by=_customer,
    description="one record per customer",
)
def by_customer(records: list[dict]) -> dict:
    return {
        "customer": records[0]["customer"],
        "amount": sum(r["amount"] for r in records),
        "items": sorted(r["item"] for r in records),
    }


@lk.step("deliver", destination="output", description="deliver the customer record")
def deliver(record: dict) -> dict:
    return record


PIPELINE = lk.Pipeline([lk.steps.ingest, validate, explode, by_customer, deliver], name="fan")

RUN1 = [
    {"key": "o1", "customer": "A", "amount": 10, "items": ["x", "y"]},
    {"key": "o2", "customer": "A", "amount": 5, "items": ["z"]},
    {"key": "o3", "customer": "B", "amount": -1, "items": ["q"]},
    {"key": "o4", "customer": "B", "amount": 13, "items": ["v"]},
    {"key": "o5", "customer": "B", "amount": 2, "items": ["w"]},
    {"key": "o6", "customer": "C", "amount": 1, "items": []},
    {"customer": "D", "amount": 1, "items": ["n"]},
    {"key": "o1", "customer": "A", "amount": 99, "items": ["x"]},
]
RUN2 = [
    {"key": "o1", "customer": "A", "amount": 11, "items": ["x", "y"]},
    {"key": "o3", "customer": "B", "amount": 3, "items": ["q"]},
    {"key": "o4", "customer": "B", "amount": 4, "items": ["v"]},
    {"key": "o5", "customer": "B", "amount": 2, "items": ["w"]},
    {"key": "o7", "customer": "C", "amount": 1, "items": ["u"]},
]


def build(db: Path) -> tuple[str, str]:
    """Run the fan pipeline twice into ``db``; return (run 1 id, run 2 id)."""
    first = PIPELINE.run(RUN1, db, progress=False)
    second = PIPELINE.run(RUN2, db, progress=False)
    return first.run_id, second.run_id
