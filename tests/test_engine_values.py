"""What is recorded for a value cannot be changed by a later step (issue 11, defect 2).

A step may change its input in place (top level or nested), then return, reject or
raise: the value recorded for every earlier point of the chain stays what it was, the
value the next step is handed is the recorded one, and the caller's records are left
alone. The expected values are written out by hand from the inputs, never read back
from the code under test.
"""

from __future__ import annotations

import copy
import json

import pytest

import lineage_kit as lk


def values_at(db, key):
    """``{position: (status, value)}`` of a key's entries in the latest run."""
    with lk.connect(db) as store:
        rows = store.backend.con.execute(
            "SELECT l.position, l.status, r.value FROM lineage l JOIN records r USING (entry_id) "
            "WHERE l.record_key = ? ORDER BY l.entry_id",
            (key,),
        ).fetchall()
    return {pos: (status, json.loads(value)) for pos, status, value in rows}


ORIGINAL = {"key": "b", "amount": 2, "tags": ["x"], "meta": {"n": 1}}


def mutating(outcome):
    """A step that changes its input in place, at the top and nested, then ``outcome``."""

    @lk.step("m")
    def m(record):
        record["amount"] = -999
        record["tags"].append("mutated")
        record["meta"]["n"] = 42
        if outcome == "reject":
            raise lk.Reject("bad", "rejected after mutating")
        if outcome == "raise":
            raise RuntimeError("failed after mutating")
        return record

    return m


@lk.step("passthrough")
def passthrough(record):
    """A user's step that hands its input on as it is (the same object)."""
    return record


PREFIXES = {
    0: [],
    1: [lk.steps.ingest],
    2: [lk.steps.ingest, passthrough],
}


@pytest.mark.parametrize("outcome", ["reject", "raise", "return"])
@pytest.mark.parametrize("position", [0, 1, 2])
@pytest.mark.parametrize("given", ["list", "file"])
def test_a_step_mutating_its_input_changes_nothing_recorded_before_it(
    tmp_path, outcome, position, given
):
    db = tmp_path / "s.db"
    data = [copy.deepcopy(ORIGINAL)]
    if given == "file":
        source = tmp_path / "in.json"
        source.write_text(json.dumps(data))
    else:
        source = data
    steps = [*PREFIXES[position], mutating(outcome), lk.steps.publish]
    lk.Pipeline(steps).run(source, db=db, progress=False)

    if position > 0 or outcome != "return":  # else the first entry holds m's output
        with lk.connect(db) as store:
            arrived = store.source_of("b")["value"][0]
        assert arrived == ORIGINAL  # the case: it arrived with amount 2
    got = values_at(db, "b")
    for earlier in range(position):
        assert got[earlier] == ("ok", ORIGINAL)
    mutated = {"key": "b", "amount": -999, "tags": ["x", "mutated"], "meta": {"n": 42}}
    expected = {
        "reject": ("rejected", ORIGINAL),
        "raise": ("failed", ORIGINAL),
        "return": ("ok", mutated),
    }[outcome]
    assert got[position] == expected
    if given == "list":
        assert data == [ORIGINAL]  # the caller's records are not changed either


def test_the_same_object_given_twice_keeps_the_refused_duplicate_as_given(db):
    record = copy.deepcopy(ORIGINAL)
    lk.Pipeline([mutating("return"), lk.steps.publish]).run([record, record], db=db, progress=False)
    with lk.connect(db) as store:
        dup = store.backend.con.execute(
            "SELECT r.value FROM lineage l JOIN records r USING (entry_id) "
            "WHERE l.reason = 'duplicate_key'"
        ).fetchall()
    assert [json.loads(v) for (v,) in dup] == [ORIGINAL]


@pytest.mark.parametrize("outcome", ["reject", "raise"])
def test_a_batch_step_mutating_its_inputs_keeps_what_they_arrived_with(db, outcome):
    @lk.step("b", batch=True)
    def b(records):
        for r in records:
            r["tags"].append("mutated")
        if outcome == "reject":
            raise lk.Reject("bad", "no")
        raise RuntimeError("no")

    data = [{"key": f"k{i}", "tags": [i]} for i in range(3)]
    lk.Pipeline([b, lk.steps.publish]).run(data, db=db, progress=False)
    for i in range(3):
        _status, value = values_at(db, f"k{i}")[0]
        assert value == {"key": f"k{i}", "tags": [i]}
    assert data == [{"key": f"k{i}", "tags": [i]} for i in range(3)]


@pytest.mark.parametrize("outcome", ["reject", "raise"])
def test_a_split_step_mutating_its_input_keeps_what_it_arrived_with(db, outcome):
    @lk.step("s", kind="split")
    def s(record):
        record["tags"].clear()
        if outcome == "reject":
            raise lk.Reject("bad", "no")
        raise RuntimeError("no")

    lk.Pipeline([s, lk.steps.publish]).run([copy.deepcopy(ORIGINAL)], db=db, progress=False)
    assert values_at(db, "b")[0][1] == ORIGINAL


def test_split_children_sharing_an_object_each_get_their_recorded_value(db):
    # Two children are the same dict; a later step changes its input in place.
    @lk.step("twice", kind="split")
    def twice(record):
        return [record, record]

    @lk.step("tag")
    def tag(record):
        record["tags"].append("t")
        return record

    lk.Pipeline([lk.steps.ingest, twice, tag, lk.steps.publish]).run(
        [copy.deepcopy(ORIGINAL)], db=db, progress=False
    )
    for child in ("b#1", "b#2"):
        got = values_at(db, child)
        assert got[1] == ("ok", ORIGINAL)
        assert got[2] == ("ok", {**ORIGINAL, "tags": ["x", "t"]})


def test_map_outputs_sharing_a_nested_object_are_merged_from_their_recorded_values(db):
    shared: list = []

    @lk.step("with_log")
    def with_log(record):
        return {**record, "log": shared}  # every record's output holds the same list

    @lk.step("total", kind="merge", group_by=lambda key, r: r["g"])
    def total(members):
        for m in members:
            m["log"].append(m["key"])  # changes the shared list, in place
        return {"keys": sorted(m["key"] for m in members), "log": members[0]["log"]}

    data = [{"key": "a", "g": 1}, {"key": "b", "g": 2}]
    lk.Pipeline([lk.steps.ingest, with_log, total, lk.steps.publish]).run(
        data, db=db, progress=False
    )
    assert values_at(db, "1")[2] == ("ok", {"keys": ["a"], "log": ["a"]})
    assert values_at(db, "2")[2] == ("ok", {"keys": ["b"], "log": ["b"]})
    assert shared == []


def test_a_failing_merge_that_mutated_its_members_stores_them_as_they_arrived(db):
    @lk.step("boom", kind="merge", group_by=lambda key, r: "all")
    def boom(members):
        for m in members:
            m["tags"].append("mutated")
        raise RuntimeError("cannot merge")

    data = [{"key": "a", "tags": []}, {"key": "b", "tags": []}]
    lk.Pipeline([passthrough, boom, lk.steps.publish]).run(data, db=db, progress=False)
    assert values_at(db, "all")[1] == ("failed", data)
    assert data == [{"key": "a", "tags": []}, {"key": "b", "tags": []}]
