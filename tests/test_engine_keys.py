"""Keys a step makes follow the sources' key rule (issue 11, defects 4 and 5).

Split children's keys are checked as input keys are, are unique within the run (among
one split's children, across splits, and against the input records' keys), and merge
group keys are made by the same rule as the sources' keys.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import lineage_kit as lk
from lineage_kit.sources import open_source


def entries(db, *where):
    """``(position, key, status, reason)`` of every entry of the latest run, in id order."""
    with lk.connect(db) as store:
        return store.backend.con.execute(
            "SELECT position, record_key, status, reason FROM lineage ORDER BY entry_id"
        ).fetchall()


def conserved(result):
    return result.n_input == result.n_published + result.n_rejected + result.n_failed


def split_into(children_of):
    @lk.step("s", kind="split")
    def s(record):
        return children_of(record)

    return s


def source_key(value):
    """The key a source makes of a key field holding ``value``."""
    (item,) = open_source([{"key": value}]).items()
    return item.key, item.reason


# ------------------------------------------------------------------ split children


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        (None, "missing_key"),
        ("  ", "missing_key"),
        (True, "invalid_key"),
        (["x"], "invalid_key"),
        (("a",), "invalid_key"),
        ({"a": 1}, "invalid_key"),
        (float("nan"), "invalid_key"),
        (float("inf"), "invalid_key"),
        ("a\x00b", "invalid_key"),
    ],
)
def test_a_split_child_with_a_key_no_source_accepts_rejects_its_parent(db, given, reason):
    assert source_key(given) == (None, reason)  # the sources' own verdict on that key
    s = split_into(lambda r: [("ok-child", {"n": 1}), (given, {"n": 2})])
    result = lk.Pipeline([lk.steps.ingest, s, lk.steps.publish]).run(
        [{"key": "p"}], db=db, progress=False
    )
    assert (result.n_published, result.n_rejected, result.status) == (
        0,
        1,
        "completed_with_errors",
    )
    assert entries(db) == [(0, "p", "ok", None), (1, "p", "rejected", reason)]
    with lk.connect(db) as store:
        (message,) = store.backend.con.execute(
            "SELECT error FROM lineage WHERE position = 1"
        ).fetchone()
        assert message.startswith("split child 2: ")
        assert store.check().ok


@pytest.mark.parametrize("given", [7, 7.0, 2.5, 1e20, np.int64(7), np.float64(2.5), "7"])
def test_a_split_childs_number_key_becomes_the_key_a_source_would_make(db, given):
    expected, _ = source_key(given.item() if isinstance(given, np.generic) else given)
    s = split_into(lambda r: [(given, {"n": 1})])
    lk.Pipeline([lk.steps.ingest, s, lk.steps.publish]).run([{"key": "p"}], db=db, progress=False)
    assert [k for pos, k, *_ in entries(db) if pos > 0] == [expected, expected]
    with lk.connect(db) as store:
        assert len(store.trace(given)) == 3  # found by the same rule: ingest p, s, publish


def test_children_of_one_split_sharing_a_key_reject_the_parent_when_written(db):
    s = split_into(lambda r: [("a", {"n": 1}), ("b", {"n": 2}), ("a", {"n": 3})])
    result = lk.Pipeline([lk.steps.ingest, s, lk.steps.publish]).run(
        [{"key": "p"}, {"key": "q"}], db=db, progress=False
    )
    # p's children are written first; q's repeat them: q is rejected as well
    assert result.status == "completed_with_errors" and conserved(result)
    assert [e for e in entries(db) if e[0] == 1] == [
        (1, "p", "rejected", "duplicate_key"),
        (1, "q", "rejected", "duplicate_key"),
    ]
    with lk.connect(db) as store:
        errors = [
            e for (e,) in store.backend.con.execute("SELECT error FROM lineage WHERE position = 1")
        ]
        assert errors[0] == "split children 1 and 3 share the key 'a'"
        assert store.check().ok  # the pipeline made no duplicate_processing of its own


@pytest.mark.parametrize("chunk_size", [1, 2000])
def test_split_children_of_different_records_cannot_share_a_key(db, chunk_size):
    s = split_into(lambda r: [(f"item-{r['item']}", {"from": r["key"]})])
    data = [{"key": "p", "item": 1}, {"key": "q", "item": 2}, {"key": "r", "item": 1}]
    result = lk.Pipeline([lk.steps.ingest, s, lk.steps.publish]).run(
        data, db=db, chunk_size=chunk_size, progress=False
    )
    assert (result.n_published, result.n_rejected) == (2, 1) and conserved(result)
    assert (1, "r", "rejected", "duplicate_key") in entries(db)
    with lk.connect(db) as store:
        assert store.check().ok
        published = store.backend.con.execute(
            "SELECT record_key, value FROM lineage JOIN records USING (entry_id) "
            "WHERE position = 2 ORDER BY record_key"
        ).fetchall()
    assert [(k, json.loads(v)) for k, v in published] == [
        ("item-1", {"from": "p"}),
        ("item-2", {"from": "q"}),
    ]


@pytest.mark.parametrize("first", [True, False], ids=["split-first", "after-ingest"])
def test_a_generated_child_key_never_takes_an_input_records_key(db, first):
    # r's first child would be r#1, the key of a later input record of the same chunk:
    # r comes first in input order, so its child keeps r#1 and the input r#1 is refused,
    # as it is when each record is a chunk of its own
    s = split_into(lambda r: [{"n": 1}, {"n": 2}])
    steps = [s, lk.steps.publish] if first else [lk.steps.ingest, s, lk.steps.publish]
    result = lk.Pipeline(steps).run([{"key": "r"}, {"key": "r#1"}], db=db, progress=False)
    at = 0 if first else 1
    assert conserved(result) and (result.n_published, result.n_rejected) == (1, 1)
    got = entries(db)
    assert (0, "r#1", "rejected", "duplicate_key") in got
    assert [k for pos, k, status, _ in got if pos == at and status == "ok"][-2:] == ["r#1", "r#2"]
    with lk.connect(db) as store:
        assert store.check().ok
        trace = store.trace("r#1")
        # r's child and the refused input record: never the input's chain mixed with r's
        # (a split at the first step: the children's entries are the first of the chain)
        assert set(trace["key"]) == ({"r#1"} if first else {"r", "r#1"})
        assert list(trace.loc[trace["status"] == "ok", "key"]).count("r#1") == 2


def test_an_input_record_cannot_take_a_key_a_split_child_already_has(db):
    s = split_into(lambda r: [{"n": 1}])
    result = lk.Pipeline([lk.steps.ingest, s, lk.steps.publish]).run(
        [{"key": "r"}, {"key": "r#1"}], db=db, chunk_size=1, progress=False
    )
    # r's child r#1 is written with the first chunk; the input r#1 comes in the second
    assert conserved(result) and (result.n_published, result.n_rejected) == (1, 1)
    assert (0, "r#1", "rejected", "duplicate_key") in entries(db)
    with lk.connect(db) as store:
        (message,) = store.backend.con.execute(
            "SELECT error FROM lineage WHERE reason = 'duplicate_key'"
        ).fetchone()
        assert "split step's child" in message
        assert store.check().ok
        assert set(store.trace("r#1")["key"]) == {"r", "r#1"}  # r's child, never the input


def test_a_split_child_may_keep_its_parents_key(db):
    s = split_into(lambda r: [(r["key"], {"n": 1}), (f"{r['key']}-extra", {"n": 2})])
    result = lk.Pipeline([lk.steps.ingest, s, lk.steps.publish]).run(
        [{"key": "p"}], db=db, progress=False
    )
    assert result.status == "completed" and result.n_published == 1
    with lk.connect(db) as store:
        assert store.check().ok


# ------------------------------------------------------------------ merge group keys


def merged_by(group_of):
    @lk.step("g", kind="merge", group_by=lambda key, r: group_of(r))
    def g(members):
        return {"keys": sorted(m["key"] for m in members)}

    return g


@pytest.mark.parametrize(
    ("group", "reason"),
    [
        (True, "invalid_key"),
        (("a",), "invalid_key"),
        (["x"], "invalid_key"),
        (float("nan"), "invalid_key"),
        (None, "missing_key"),
        ("", "missing_key"),
    ],
)
def test_a_group_key_no_source_accepts_rejects_the_record(db, group, reason):
    assert source_key(group) == (None, reason)
    g = merged_by(lambda r: group if r["key"] == "bad" else "fine")
    result = lk.Pipeline([lk.steps.ingest, g, lk.steps.publish]).run(
        [{"key": "bad"}, {"key": "ok"}], db=db, progress=False
    )
    assert (result.n_published, result.n_rejected, result.n_failed) == (1, 1, 0)
    assert [e for e in entries(db) if e[0] == 1] == [
        (1, "bad", "rejected", reason),
        (1, "fine", "ok", None),
    ]
    with lk.connect(db) as store:
        assert store.check().ok


@pytest.mark.parametrize(
    ("groups", "expected"),
    [
        # the sources' rule: a number is its text, so 1 and "1" are one key (trace(1))
        ((1, "1", np.int64(1)), {"1": ["a", "b", "c"]}),
        ((2.5, "2.5", 2), {"2.5": ["a", "b"], "2": ["c"]}),
        ((1e20, "x", "x"), {"1e+20": ["a"], "x": ["b", "c"]}),
    ],
)
def test_group_keys_are_made_by_the_sources_key_rule(db, groups, expected):
    by_key = dict(zip("abc", groups, strict=True))
    for group, keys in expected.items():
        for k in keys:
            assert source_key(by_key[k])[0] == group or isinstance(by_key[k], np.generic)
    g = merged_by(lambda r: by_key[r["key"]])
    lk.Pipeline([lk.steps.ingest, g, lk.steps.publish]).run(
        [{"key": k} for k in "abc"], db=db, progress=False
    )
    with lk.connect(db) as store:
        merged = store.backend.con.execute(
            "SELECT record_key, value FROM lineage JOIN records USING (entry_id) "
            "WHERE position = 1 ORDER BY entry_id"
        ).fetchall()
    assert {k: json.loads(v)["keys"] for k, v in merged} == expected


def test_a_group_key_cannot_be_another_records_key(db):
    # group "b" (of a) would take the key of the input record b, which is not a member
    g = merged_by(lambda r: r["g"])
    result = lk.Pipeline([lk.steps.ingest, g, lk.steps.publish]).run(
        [{"key": "a", "g": "b"}, {"key": "b", "g": "z"}], db=db, progress=False
    )
    assert conserved(result) and (result.n_published, result.n_rejected) == (1, 1)
    got = entries(db)
    assert (1, "a", "rejected", "duplicate_key") in got
    assert [(p, k) for p, k, s, _ in got if s == "ok"] == [(0, "a"), (0, "b"), (1, "z"), (2, "z")]
    with lk.connect(db) as store:
        assert store.check().ok
        trace = store.trace("b")
        # only the input record b is "self"; its group z is downstream
        assert list(trace.loc[trace["relation"] == "self", "position"]) == [0]
        assert set(trace.loc[trace["relation"] == "downstream", "key"]) == {"z"}


def test_a_group_may_keep_a_members_key(db):
    g = merged_by(lambda r: "a")
    result = lk.Pipeline([lk.steps.ingest, g, lk.steps.publish]).run(
        [{"key": "a"}, {"key": "c"}], db=db, progress=False
    )
    assert (result.status, result.n_published) == ("completed", 2)
    assert [(p, k) for p, k, s, _ in entries(db) if p > 0] == [(1, "a"), (2, "a")]
