"""Who keeps a contested key does not depend on the chunk size (review item 2).

The first use in input order wins: a split child of an earlier record keeps its key
and a later record with that key is refused, in one chunk as in many.
"""

from __future__ import annotations

import pytest

import lineage_kit as lk


def outcome(db):
    """``(position, key, status, reason)`` of every entry, in id order."""
    with lk.connect(db) as store:
        rows = store.lineage()
        return sorted(
            zip(
                rows["position"],
                rows["key"],
                rows["status"],
                rows["reason"].fillna(""),
                strict=True,
            )
        )


@lk.step("sp", kind="split")
def sp(r):
    return [("later", dict(r))] if r["key"] == "a" else [dict(r)]


@pytest.mark.parametrize("chunk_size", [1, 2, 2000])
def test_an_earlier_records_split_child_keeps_a_key_whatever_the_chunk_size(tmp_path, chunk_size):
    db = tmp_path / "s.db"
    result = lk.Pipeline([lk.steps.ingest, sp, lk.steps.publish]).run(
        [{"key": "a"}, {"key": "later"}], db=db, chunk_size=chunk_size, progress=False
    )
    assert (result.n_published, result.n_rejected) == (1, 1)
    # a (input order 0) is split first; its child takes "later"; the input "later" is refused
    assert outcome(db) == [
        (0, "a", "ok", ""),
        (0, "later", "rejected", "duplicate_key"),
        (1, "later", "ok", ""),
        (2, "later", "ok", ""),
    ]
    with lk.connect(db) as store:
        assert store.check().ok
        trace = store.trace("later")  # the refused input, and a's child (a upstream)
        assert set(trace.loc[trace["relation"] != "self", "key"]) == {"a"}


@pytest.mark.parametrize("chunk_size", [1, 3, 2000])
def test_splits_at_different_steps_give_a_key_to_the_first_record(tmp_path, chunk_size):
    # b (later in input) claims "k" at the first split, a (earlier) at the second:
    # one record at a time, a's child is written first, so b's split is the one rejected
    @lk.step("s1", kind="split")
    def s1(r):
        return [("k", dict(r))] if r["key"] == "b" else [(r["key"], dict(r))]

    @lk.step("s2", kind="split")
    def s2(r):
        return [("k", dict(r))] if r["key"] == "a" else [(r["key"], dict(r))]

    db = tmp_path / "s.db"
    result = lk.Pipeline([lk.steps.ingest, s1, s2, lk.steps.publish]).run(
        [{"key": "a"}, {"key": "c"}, {"key": "b"}], db=db, chunk_size=chunk_size, progress=False
    )
    assert (result.n_published, result.n_rejected) == (2, 1)
    assert (1, "b", "rejected", "duplicate_key") in outcome(db)
    with lk.connect(db) as store:
        assert store.check().ok
        trace = store.trace("k")
        assert set(trace.loc[trace["relation"] != "self", "key"]) == {"a"}
