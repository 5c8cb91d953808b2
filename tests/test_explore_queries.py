"""trace, upstream/downstream, source_of, records, changes, compare_runs, summary.

Expected rows are derived from the fan pipeline's input (see explore_data.py).
"""

from __future__ import annotations

import pytest

import lineage_kit as lk


def _entry(store, run_id, key, step, status="ok"):
    """The id of the (single) entry of ``key`` at ``step`` with ``status``."""
    df = store.lineage(run_id, key=key, step=step)
    ids = df.loc[df["status"] == status, "entry_id"].tolist()
    assert len(ids) == 1
    return ids[0]


def _triples(frame, *columns):
    return [tuple(row) for row in frame[list(columns)].astype(object).values.tolist()]


def test_trace_split_record(fan):
    store, run1, _ = fan
    trace = store.trace("o1", run=run1)
    assert sorted(_triples(trace, "step", "key", "relation", "status")) == sorted(
        [
            ("ingest", "o1", "self", "rejected"),  # the duplicate
            ("ingest", "o1", "self", "ok"),
            ("validate", "o1", "self", "ok"),
            ("explode", "o1/x", "downstream", "ok"),
            ("explode", "o1/y", "downstream", "ok"),
            ("by_customer", "A", "downstream", "ok"),
            ("deliver", "A", "downstream", "ok"),
        ]
    )
    assert trace["position"].is_monotonic_increasing  # step order
    assert trace.loc[trace["status"] == "rejected", "reason"].tolist() == ["duplicate_key"]
    merged = trace[trace["step"] == "by_customer"].iloc[0]
    assert len(merged["parent_ids"]) == 3  # o1/x, o1/y and o2/z (outside the trace)
    assert set(trace["kind"].astype(str)) == {"map", "split", "merge"}
    assert trace.loc[trace["step"] == "explode", "destination"].unique().tolist() == ["items"]
    assert str(trace["created_at"].dt.tz) == "UTC"


def test_trace_merged_record_and_child(fan):
    store, run1, _ = fan
    a = store.trace("A", run=run1)
    assert sorted(_triples(a, "key", "relation")) == sorted(
        [("o1", "upstream")] * 2
        + [("o2", "upstream")] * 2
        + [("o1/x", "upstream"), ("o1/y", "upstream"), ("o2/z", "upstream")]
        + [("A", "self")] * 2
    )
    z = store.trace("o2/z", run=run1)
    assert _triples(z, "step", "key", "relation") == [
        ("ingest", "o2", "upstream"),
        ("validate", "o2", "upstream"),
        ("explode", "o2/z", "self"),
        ("by_customer", "A", "downstream"),
        ("deliver", "A", "downstream"),
    ]


def test_trace_failed_and_runs(fan):
    store, run1, run2 = fan
    o4 = store.trace("o4", run=run1)
    assert _triples(o4, "step", "status") == [("ingest", "ok"), ("validate", "failed")]
    assert o4["error"].iloc[1] == "ValueError: unlucky amount"
    # latest run: ingest, validate, one split child o4/v, merged into B, delivered
    assert len(store.trace("o4")) == 5
    both = store.trace("o1", run="all")
    assert both["run_id"].value_counts().to_dict() == {run1: 7, run2: 6}
    with pytest.raises(lk.KeyNotFound):
        store.trace("o7", run=run1)
    with pytest.raises(lk.RunNotFound):
        store.trace("o1", run="nope")


@pytest.mark.parametrize(
    ("walk", "start", "expected"),
    [
        # fan-in: o1's entries are reached along two paths, each listed once
        (
            "upstream",
            ("A", "deliver"),
            [
                (0, "deliver", "A"),
                (1, "by_customer", "A"),
                (2, "explode", "o1/x"),
                (2, "explode", "o1/y"),
                (2, "explode", "o2/z"),
                (3, "validate", "o1"),
                (3, "validate", "o2"),
                (4, "ingest", "o1"),
                (4, "ingest", "o2"),
            ],
        ),
        # fan-out: the merged entry is reached from both children, listed once
        (
            "downstream",
            ("o1", "ingest"),
            [
                (0, "ingest", "o1"),
                (1, "validate", "o1"),
                (2, "explode", "o1/x"),
                (2, "explode", "o1/y"),
                (3, "by_customer", "A"),
                (4, "deliver", "A"),
            ],
        ),
    ],
)
def test_walks_reach_each_entry_once_by_depth(fan, walk, start, expected):
    store, run1, _ = fan
    found = getattr(store, walk)(_entry(store, run1, *start))
    assert sorted(_triples(found, "depth", "step", "key")) == sorted(expected)
    assert found["entry_id"].is_unique
    assert found["depth"].is_monotonic_increasing


def test_upstream_depth_limit(fan):
    store, run1, _ = fan
    delivered = _entry(store, run1, "A", "deliver")
    assert len(store.upstream(delivered, depth=2)) == 5  # deliver, by_customer, 3 children
    assert store.upstream(delivered, depth=0)["entry_id"].tolist() == [delivered]


def test_downstream_stops_at_a_rejection(fan):
    store, run1, _ = fan
    rejected = _entry(store, run1, "o3", "validate", "rejected")
    assert store.downstream(rejected)["entry_id"].tolist() == [rejected]
    o3 = _entry(store, run1, "o3", "ingest")
    assert _triples(store.downstream(o3), "step", "status") == [
        ("ingest", "ok"),
        ("validate", "rejected"),
    ]


def test_walk_errors(fan):
    store, *_ = fan
    with pytest.raises(lk.EntryNotFound):
        store.upstream(10_000)
    with pytest.raises(ValueError):
        store.downstream(1, depth=-1)


def test_walks_take_integer_entry_ids_and_refuse_the_rest(fan):
    import numpy as np

    store, run1, _ = fan
    o1 = _entry(store, run1, "o1", "ingest")
    expected = store.downstream(o1)["entry_id"].tolist()
    for given in (np.int64(o1), np.int32(o1), str(o1)):
        assert store.downstream(given)["entry_id"].tolist() == expected
    assert store.source_of(entry_id=np.int64(o1))["entry_id"].tolist() == [o1]
    # True is not entry 1, 1.5 is not entry 1, "a" is no id at all
    for bad in ("a", "1.5", "", 1.5, 1.0, True, np.bool_(True), np.float64(1), None, [1]):
        for walk in (store.upstream, store.downstream):
            with pytest.raises(lk.InvalidEntryId, match="an entry id is an integer") as info:
                walk(bad)
            assert isinstance(info.value, lk.LineageKitError)
            assert info.value.value is bad
        with pytest.raises(lk.InvalidEntryId):
            store.source_of(entry_id=bad) if bad is not None else store.upstream(bad)


def test_source_of(fan):
    store, run1, run2 = fan
    sources = store.source_of("A", run=run1)
    assert sorted(sources["key"]) == ["o1", "o2"]
    by_key = dict(zip(sources["key"], sources["value"], strict=True))
    # o1 as it arrived (not the rejected duplicate with amount 99)
    assert by_key["o1"] == {"key": "o1", "customer": "A", "amount": 10, "items": ["x", "y"]}
    assert (sources["status"] == "ok").all()
    assert sorted(store.source_of("B", run=run2)["key"]) == ["o3", "o4", "o5"]
    assert store.source_of("o5/w", run=run1)["key"].tolist() == ["o5"]
    keyless = store.lineage(run1).query("key.isna()")["entry_id"].iloc[0]
    source = store.source_of(entry_id=int(keyless))
    assert source["entry_id"].tolist() == [keyless]
    assert source["value"].iloc[0] == {"customer": "D", "amount": 1, "items": ["n"]}
    with pytest.raises(lk.KeyNotFound):
        store.source_of("nope")
    with pytest.raises(lk.EntryNotFound):
        store.source_of(entry_id=10_000)
    with pytest.raises(lk.KeyNotFound):  # a number is a key, not an entry id
        store.source_of(10_000)


def test_records(fan):
    store, run1, _ = fan
    merged = store.records(run1, step="by_customer")
    assert dict(zip(merged["key"], merged["value"], strict=True)) == {
        "A": {"customer": "A", "amount": 25, "items": ["x", "y", "z"]},
        "B": {"customer": "B", "amount": 2, "items": ["w"]},
    }
    o1 = store.records(run1, key="o1", expand=True)
    assert sorted(zip(o1["status"].astype(str), o1["value.amount"], strict=True)) == [
        ("ok", 10),
        ("ok", 10),
        ("rejected", 99),
    ]
    assert {"value.key", "value.customer", "value.items"} <= set(o1.columns)
    everything = store.records("all")
    assert len(everything) == len(store.lineage("all"))
    assert (everything["entry_id"].values == store.lineage("all")["entry_id"].values).all()


def test_records_sample_expand(sample_store):
    df = sample_store.records(step="normalize", expand=True)
    assert len(df) == 30
    assert "value.customer name" in df.columns and "value.Customer Name" not in df.columns
    raw = sample_store.records(step="ingest", key="order-101")
    assert raw["value"].iloc[0]["Customer Name"] == "Ada Lovelace"


def test_changes_default_pipeline(sample_store):
    ch = sample_store.changes("order-101")
    # normalize renames every field that is not already lower-case and stripped
    renamed = {"Customer Name", " Amount ", "Currency", "REGION", "Order Date", "Items", "Status"}
    assert set(ch["step"].astype(str)) == {"normalize"}
    assert set(ch.loc[ch["change"] == "removed", "field"]) == renamed
    assert set(ch.loc[ch["change"] == "added", "field"]) == {n.strip().lower() for n in renamed}
    assert (ch["change"] != "changed").all()
    added = ch[ch["field"] == "amount"].iloc[0]
    assert (added["old"], added["new"]) == (None, 19.99)


def test_changes_merge(fan):
    store, run1, _ = fan
    ch = store.changes("A", run=run1)
    rows = sorted(_triples(ch, "parent_key", "field", "change", "old", "new"))
    expected = []
    for parent, item, amount in (("o1/x", "x", 10), ("o1/y", "y", 10), ("o2/z", "z", 5)):
        expected += [
            (parent, "amount", "changed", amount, 25),
            (parent, "item", "removed", item, None),
            (parent, "items", "added", None, ["x", "y", "z"]),
        ]
    assert rows == sorted(expected)
    assert set(ch["step"].astype(str)) == {"by_customer"}  # deliver changed nothing
    assert store.changes("o1", run=run1).empty  # validate passes values through


def test_compare_runs(fan):
    store, run1, run2 = fan
    cmp = store.compare_runs(run1, run2)
    got = {d: sorted(cmp.loc[cmp["difference"] == d, "key"]) for d in cmp["difference"].unique()}
    assert got == {
        "only_in_a": ["o2", "o2/z", "o6"],
        "only_in_b": ["C", "o3/q", "o4/v", "o7", "o7/u"],
        # o1 had a duplicate in run 1; o3 was rejected and o4 failed in run 1
        "different_path": ["o1", "o3", "o4"],
        # amounts changed: A 25 -> 22, B 2 -> 9, o1's items 10 -> 11
        "different_value": ["A", "B", "o1/x", "o1/y"],
    }
    o3 = cmp[cmp["key"] == "o3"].iloc[0]
    assert (o3["path_a"], o3["path_b"]) == (
        "ingest:ok > validate:rejected",
        "ingest:ok > validate:ok",
    )
    assert (o3["status_a"], o3["status_b"]) == ("rejected", "ok")
    assert store.compare_runs(run1, run1).empty
    with pytest.raises(lk.RunNotFound, match="'all' selects every run"):
        store.compare_runs("all", run2)


def test_summary_and_html(fan):
    store, run1, run2 = fan
    summary = store.summary(run1)
    assert isinstance(summary, lk.RunSummary)
    assert (summary.run_id, summary.status) == (run1, "completed_with_errors")
    assert [(s["name"], s["ok"], s["rejected"], s["failed"]) for s in summary.steps] == [
        ("ingest", 6, 2, 0),
        ("validate", 4, 1, 1),
        ("explode", 4, 1, 0),
        ("by_customer", 2, 0, 0),
        ("deliver", 2, 0, 0),
    ]
    html = summary._repr_html_()
    assert run1 in html and "by_customer" in html and "<table>" in html
    assert "validate (map): ok 4, rejected 1, failed 1" in repr(summary)
    page = store._repr_html_()
    assert run1 in page and run2 in page and "2 runs" in page
    assert page.index(run2) < page.index(run1)  # newest first
