"""Pipelines and inputs for the Dask tests: every outcome a local run can give, with
chunks small enough that the cross-chunk rules (duplicate keys, split children's keys,
merge groups) are crossed on a cluster.

Input of :func:`inputs` (``n`` records ``r0``..., chunks of 10 in the tests):

- ``r3``: rejected at ``check`` (``too_small``); ``r7``: failed at ``check`` (ValueError).
- ``r12`` again later (``r12`` repeated at ordinal 45): ``duplicate_key`` at ingest.
- ``r5`` splits into ``r5#1`` and a child keyed ``r31`` (a later record, in a later
  chunk): the child keeps it, and the input ``r31`` is a ``duplicate_key`` (as a
  split step's child).
- ``r22`` splits into a child keyed ``r2`` (an earlier record): ``r22`` is rejected
  ``duplicate_key``.
- ``r14`` splits into a child keyed ``r16`` (a later record of the same chunk): the
  child keeps it (first use in input order), ``r16`` is a duplicate.
- every other record splits into one child (its key plus ``#1``); ``r9`` splits into
  none (``split_empty``).
- the merge groups records by ``amount % 4`` (group keys ``g0``...``g3``).

The functions are pickled by value for the workers (the tests register this module).
"""

from __future__ import annotations

import time

import lineage_kit as lk


def inputs(n: int = 60) -> list[dict]:
    out = [{"key": f"r{i}", "amount": i} for i in range(n)]
    out.insert(45, {"key": "r12", "amount": 1000})
    out.append({"amount": 5})  # no key
    return out


@lk.step("check", description="amounts of 3 are too small; 7 raises")
def check(record: dict) -> dict:
    if record["amount"] == 3:
        raise lk.Reject("too_small", "amount is 3")
    if record["amount"] == 7:
        raise ValueError("seven")
    return {**record, "checked": True}


@lk.step("double", description="amount times two")
def double(record: dict) -> dict:
    return {**record, "amount2": record["amount"] * 2}


_CHILD_KEYS = {"r5": "r31", "r22": "r2", "r14": "r16"}


@lk.step("fan", kind="split", description="one or two children")
def fan(record: dict) -> list:
    key = record["key"]
    if key == "r9":
        return []
    if key in _CHILD_KEYS:
        return [(f"{key}#1", dict(record)), (_CHILD_KEYS[key], {**record, "moved": True})]
    return [dict(record)]


def _group(key: str, record: dict) -> str:
    return f"g{record['amount'] % 4}"


@lk.step("pool", kind="merge", group_by=_group, description="one record per amount % 4")
def pool(records: list[dict]) -> dict:
    return {"n": len(records), "total": sum(r["amount"] for r in records)}


@lk.step("audit", description="groups with an odd total fail")
def audit(record: dict) -> dict:
    if record["total"] % 2:
        raise ValueError(f"odd total {record['total']}")
    return record


@lk.step("slow", description="about 2 ms per record")
def slow(record: dict) -> dict:
    time.sleep(0.002)
    return {**record, "slow": True}


MAP = [lk.steps.ingest, check, double, lk.steps.publish]
SPLIT = [lk.steps.ingest, check, fan, double, lk.steps.publish]
MERGE = [lk.steps.ingest, check, pool, audit, lk.steps.publish]
SPLIT_MERGE = [lk.steps.ingest, fan, pool, double]
SLOW = [lk.steps.ingest, slow, lk.steps.publish]


def _by_tens(key: str, record: dict) -> int:
    return record["amount"] // 10


@lk.step("tens", kind="merge", group_by=_by_tens, description="one record per ten amounts")
def tens(records: list[dict]) -> dict:
    amounts = [r["amount"] for r in records]
    return {"n": len(records) % 3, "amount": sum(amounts), "amounts": amounts}


@lk.step("by_n", kind="merge", group_by=lambda key, record: f"n{record['n']}", description="by n")
def by_n(records: list[dict]) -> dict:
    return {"n": len(records)}


#: Two merges, the first with more groups than a chunk holds.
TWO_MERGES = [lk.steps.ingest, check, tens, double, by_n]

#: The built-in frame steps (a DataFrame per chunk, on the worker).
FRAME = [lk.steps.ingest, lk.steps.normalize_frame, lk.steps.publish]
