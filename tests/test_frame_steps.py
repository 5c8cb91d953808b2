"""Frame steps (issue 15): a chunk as a DataFrame, rows matched to records by label."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import lineage_kit as lk

from .conftest import ROOT
from .frame_stored import stored_rows


def entries(db, position=None):
    """``(position, key, status, reason, error, value)`` of the latest run, in id order."""
    with lk.connect(db) as store:
        rows = store.backend.con.execute(
            "SELECT position, record_key, status, reason, error, value FROM lineage "
            "JOIN records USING (entry_id) ORDER BY entry_id"
        ).fetchall()
    out = [(p, k, s, r, e, json.loads(v)) for p, k, s, r, e, v in rows]
    return [e for e in out if position is None or e[0] == position]


def conserved(result):
    return result.n_input == result.n_published + result.n_rejected + result.n_failed


DATA = [
    {"key": "a", "amount": 50, "items": ["x", "y"]},
    {"key": "b", "amount": 150, "items": ["z"]},
    {"key": "c", "amount": 300, "items": []},
]


@lk.step("big", frame=True, description="amount > 100")
def big(df):
    return df[df["amount"] > 100]


@lk.step("double", frame=True)
def double(df):
    return df.assign(twice=df["amount"] * 2)


@lk.step("per_item", frame=True, kind="split")
def per_item(df):
    return df.explode("items")


def run(steps, data=DATA, db=None, **options):
    return lk.Pipeline(steps).run(data, db=db, progress=False, **options)


# ------------------------------------------------------------------ the rules


def test_kept_rows_are_ok_with_the_output_row_and_dropped_ones_filtered_out(db):
    result = run([lk.steps.ingest, big, double, lk.steps.publish], db=db)
    assert (result.n_published, result.n_rejected, result.status) == (
        2,
        1,
        "completed_with_errors",
    )
    assert entries(db, 1) == [
        (1, "b", "ok", None, None, DATA[1]),
        (1, "c", "ok", None, None, DATA[2]),
        (1, "a", "rejected", "filtered_out", "dropped by frame step 'big'", DATA[0]),
    ]
    assert [e[5] for e in entries(db, 2)] == [
        {**DATA[1], "twice": 300},
        {**DATA[2], "twice": 600},
    ]
    with lk.connect(db) as store:
        assert store.check().ok


def test_a_repeated_label_is_a_split_with_children_keyed_like_a_split_steps(db):
    result = run([lk.steps.ingest, per_item, lk.steps.publish], db=db)
    assert conserved(result) and result.n_published == 3
    got = [(k, s, r, v) for _, k, s, r, _, v in entries(db, 1)]
    assert got == [
        ("a#1", "ok", None, {**DATA[0], "items": "x"}),
        ("a#2", "ok", None, {**DATA[0], "items": "y"}),
        ("b", "ok", None, {**DATA[1], "items": "z"}),  # one row: the record keeps its key
        # explode gives an empty list one row holding NaN: stored as null
        ("c", "ok", None, {**DATA[2], "items": None}),
    ]
    with lk.connect(db) as store:
        assert store.check().ok
        trace = store.trace("a")
        assert set(trace.loc[trace["relation"] == "downstream", "key"]) == {"a#1", "a#2"}


def test_split_children_keys_cannot_take_another_records_key(db):
    data = [{"key": "r", "items": [1, 2]}, {"key": "r#1", "items": [3]}]
    result = run([lk.steps.ingest, per_item, lk.steps.publish], data=data, db=db)
    # input order decides, whatever the chunk size: r's children come first, so the
    # input record r#1 is refused
    assert conserved(result) and (result.n_published, result.n_rejected) == (1, 1)
    assert [(k, s, r) for _, k, s, r, _, _ in entries(db, 1)] == [
        ("r#1", "ok", None),
        ("r#2", "ok", None),
    ]
    assert ("r#1", "rejected", "duplicate_key") in [
        (k, s, r) for _, k, s, r, _, _ in entries(db, 0)
    ]
    with lk.connect(db) as store:
        assert store.check().ok


def test_a_map_frame_step_repeating_a_label_fails_the_chunk_and_says_why(db):
    @lk.step("oops", frame=True)
    def oops(df):
        return df.explode("items")

    result = run([lk.steps.ingest, oops, lk.steps.publish], db=db)
    assert result.n_failed == 3 and conserved(result)
    errors = {e for _, _, s, _, e, _ in entries(db, 1) if s == "failed"}
    assert len(errors) == 1
    assert "kind='split'" in errors.pop()


@pytest.mark.parametrize(
    ("func", "needle"),
    [
        (lambda df: df.reset_index(drop=True), "labels are not in its input"),
        (lambda df: df.rename(index={"a": "zz"}), "labels are not in its input"),
        (lambda df: df.to_dict("records"), "not a DataFrame"),
        (lambda df: None, "returned NoneType, not a DataFrame"),
        (lambda df: df["amount"], "returned Series, not a DataFrame"),
        (lambda df: (df, "nope"), "rejected must be a Series"),
        (lambda df: pd.concat([df, df["amount"]], axis=1), "repeated column names"),
        (lambda df: 1 / 0, "ZeroDivisionError: division by zero"),
    ],
    ids=["reset_index", "foreign", "dicts", "none", "series", "bad_rejected", "columns", "raise"],
)
def test_a_bad_output_or_an_exception_fails_every_record_of_the_chunk(db, func, needle):
    bad = lk.step("bad", frame=True)(func)
    result = run([lk.steps.ingest, bad, lk.steps.publish], db=db)
    assert (result.n_failed, result.n_published, result.status) == (3, 0, "completed_with_errors")
    at = entries(db, 1)
    assert [(k, s) for _, k, s, *_ in at] == [("a", "failed"), ("b", "failed"), ("c", "failed")]
    assert all(needle in e for *_, e, _ in at)
    assert [v for *_, v in at] == DATA  # each failed entry holds what the record arrived with


def test_fail_fast_stops_the_run_at_a_failing_frame_step(db):
    bad = lk.step("bad", frame=True)(lambda df: df.reset_index())
    with pytest.raises(lk.StepError, match="labels are not in its input") as info:
        run([lk.steps.ingest, bad, lk.steps.publish], db=db, fail_fast=True)
    assert info.value.result.status == "failed"
    with lk.connect(db) as store:
        # the whole chunk failed with the step, and nothing ran after it
        failed = store.backend.con.execute("SELECT count(*) FROM lineage WHERE status = 'failed'")
        assert failed.fetchone() == (3,)
        later = store.backend.con.execute("SELECT count(*) FROM lineage WHERE position = 2")
        assert later.fetchone() == (0,)


def test_reject_raised_rejects_every_record_of_the_chunk_with_its_reason(db):
    @lk.step("gate", frame=True)
    def gate(df):
        raise lk.Reject("closed", "the gate is closed")

    result = run([lk.steps.ingest, gate, lk.steps.publish], db=db, chunk_size=2)
    assert result.n_rejected == 3 and conserved(result)
    assert {(s, r, e) for _, _, s, r, e, _ in entries(db, 1)} == {
        ("rejected", "closed", "the gate is closed")
    }


@pytest.mark.parametrize("form", ["series", "frame"])
def test_kept_and_rejected_reject_rows_with_their_own_reasons(db, form):
    @lk.step("grade", frame=True)
    def grade(df):
        small = df["amount"] < 100
        huge = df["amount"] > 200
        reasons = pd.Series("too_small", index=df.index[small])
        reasons = pd.concat([reasons, pd.Series("too_big", index=df.index[huge])])
        if form == "frame":
            reasons = pd.DataFrame({"reason": reasons, "message": "amount " + reasons})
        return df[~small & ~huge], reasons

    result = run([lk.steps.ingest, grade, lk.steps.publish], db=db)
    assert (result.n_published, result.n_rejected) == (1, 2)
    messages = {
        "series": ("rejected by frame step 'grade'",) * 2,
        "frame": ("amount too_small", "amount too_big"),
    }[form]
    assert [(k, s, r, e) for _, k, s, r, e, _ in entries(db, 1)] == [
        ("b", "ok", None, None),
        ("a", "rejected", "too_small", messages[0]),
        ("c", "rejected", "too_big", messages[1]),
    ]


def test_a_label_both_kept_and_rejected_fails_the_chunk(db):
    bad = lk.step("bad", frame=True)(lambda df: (df, pd.Series("x", index=df.index[:1])))
    result = run([lk.steps.ingest, bad, lk.steps.publish], db=db)
    assert result.n_failed == 3
    assert all("both kept and rejected" in e for *_, e, _ in entries(db, 1))


def test_frame_step_options_are_checked():
    with pytest.raises(ValueError, match="frame=True"):
        lk.step("m", frame=True, kind="merge", group_by=lambda k, r: k)(lambda df: df)
    with pytest.raises(ValueError, match="frame=True"):
        lk.step("b", frame=True, batch=True)(lambda df: df)


# ------------------------------------------------------------------ values


def test_cells_are_stored_as_a_record_step_would_store_them(db):
    @lk.step("kinds", frame=True)
    def kinds(df):
        n = len(df)
        return df.assign(
            when=pd.to_datetime(["2026-01-02T03:04:05", None, "2026-12-31T00:00:00"][:n]),
            aware=pd.to_datetime(["2026-01-02T03:04:05Z"] * n),
            ratio=[0.5, np.nan, 2.0][:n],
            count=pd.array([1, None, 3][:n], dtype="Int64"),
            flag=[True, False, True][:n],
            colour=pd.Categorical(["red", None, "blue"][:n]),
            big=np.int64(2**53 + 1),
        )

    run([lk.steps.ingest, kinds, lk.steps.publish], db=db)
    values = [v for *_, v in entries(db, 1)]
    extra = [
        {
            "when": "2026-01-02T03:04:05",
            "ratio": 0.5,
            "count": 1,
            "flag": True,
            "colour": "red",
        },
        {"when": None, "ratio": None, "count": None, "flag": False, "colour": None},
        {"when": "2026-12-31T00:00:00", "ratio": 2.0, "count": 3, "flag": True, "colour": "blue"},
    ]
    for value, record, more in zip(values, DATA, extra, strict=True):
        assert value == {
            **record,
            "when": more["when"],
            "aware": "2026-01-02T03:04:05+00:00",
            "ratio": more["ratio"],
            "count": more["count"],
            "flag": more["flag"],
            "colour": more["colour"],
            "big": 2**53 + 1,
        }


def test_unchanged_cells_keep_the_records_own_values(db):
    # pandas makes "n" float (a missing value) and gives "y" to every row; a step that
    # changes neither must store the records as they were
    data = [{"key": "a", "n": 1, "x": 0.0}, {"key": "b", "y": "only b", "x": -0.0}]

    @lk.step("touch", frame=True)
    def touch(df):
        return df.assign(x=df["x"])

    run([lk.steps.ingest, touch, lk.steps.publish], data=data, db=db)
    with lk.connect(db) as store:
        texts = store.backend.con.execute(
            "SELECT value FROM lineage JOIN records USING (entry_id) WHERE position = 1"
        ).fetchall()
    assert [t for (t,) in texts] == [
        '{"key":"a","n":1,"x":0.0}',
        '{"key":"b","y":"only b","x":-0.0}',
    ]


# ------------------------------------------------------------------ chaining


def test_consecutive_frame_steps_pass_the_dataframe_on_and_a_record_step_gets_dicts(db):
    seen = {}

    @lk.step("dates", frame=True)
    def dates(df):
        return df.assign(when=pd.to_datetime("2026-05-01") + pd.to_timedelta(df["amount"], "D"))

    @lk.step("after", frame=True)
    def after(df):
        seen["dtype"] = str(df["when"].dtype)  # a dict round trip would give text
        return df[df["when"] > pd.Timestamp("2026-07-01")]

    @lk.step("as_record")
    def as_record(record):
        seen.setdefault("records", []).append(record)
        return record

    run([lk.steps.ingest, dates, after, as_record, lk.steps.publish], db=db)
    assert seen["dtype"].startswith("datetime64")
    assert seen["records"] == [
        {**DATA[1], "when": "2026-09-28T00:00:00"},
        {**DATA[2], "when": "2027-02-25T00:00:00"},
    ]


def test_a_dataframe_input_feeds_a_frame_step_its_own_rows(db):
    frame = pd.DataFrame(
        {
            "key": ["a", "b", None],
            "when": pd.to_datetime(["2026-01-01", "2026-02-01", "2026-03-01"]),
            "n": [1, 2, 3],
        }
    )
    seen = {}

    @lk.step("look", frame=True)
    def look(df):
        seen["dtype"] = str(df["when"].dtype)
        seen["index"] = list(df.index)
        return df.assign(month=df["when"].dt.month)

    result = lk.Pipeline([lk.steps.ingest, look, lk.steps.publish]).run(
        frame, db=db, progress=False
    )
    assert (result.n_published, result.n_rejected) == (2, 1)  # the row without a key
    assert seen["dtype"].startswith("datetime64") and seen["index"] == ["a", "b"]
    assert [v for *_, v in entries(db, 1)] == [
        {"key": "a", "when": "2026-01-01T00:00:00", "n": 1, "month": 1},
        {"key": "b", "when": "2026-02-01T00:00:00", "n": 2, "month": 2},
    ]


# ------------------------------------------------------------------ built-ins, lineage views


def test_frame_normalize_stores_what_normalize_stores(tmp_path):
    data = [
        {"key": "a", " Amount ": 1, "Customer Name": "x"},
        {"key": "b", "Customer Name": "y", "Tags": [1, {"z": None}]},
        {"key": "c", "amount": 2, " AMOUNT": 3},  # collide: rejected by both
    ]
    stored = {}
    for name, normalize in (("record", lk.steps.normalize), ("frame", lk.steps.normalize_frame)):
        db = tmp_path / f"{name}.db"
        lk.Pipeline([lk.steps.ingest, normalize, lk.steps.publish]).run(data, db=db, progress=False)
        stored[name] = stored_rows(db)
    assert stored["frame"] == stored["record"]


@lk.step("tag", frame=True)
def tag_frame(df):
    return df.assign(label=df["s"].map(lambda s: "\x7f" + s[:1]), twice=df["n"] * 2)


@lk.step("tag")
def tag_record(record):
    return {**record, "label": "\x7f" + record["s"][:1], "twice": record["n"] * 2}


@lk.step("as_is")
def as_is(record):
    return record


@pytest.mark.parametrize("before", [[], [as_is]], ids=["from ingest", "after a record step"])
@pytest.mark.parametrize(
    "texts",
    [
        ["plain", "text"],
        ["caf\u00e9", "\u00fcber"],  # the new column not ASCII
        ["x\ud800", "fine"],  # a lone surrogate: its record's JSON escaped as a whole
        ["\\ud800", "fine"],  # a backslash before "ud" (no surrogate)
    ],
)
def test_columns_added_after_a_records_fields_store_what_a_record_step_stores(
    tmp_path, texts, before
):
    data = [{"key": f"k{i}", "s": text, "n": i} for i, text in enumerate(texts)]
    stored = {}
    for name, tag in (("record", tag_record), ("frame", tag_frame)):
        db = tmp_path / f"{name}.db"
        steps = [lk.steps.ingest, lk.steps.normalize, *before, tag, lk.steps.publish]
        lk.Pipeline(steps).run(data, db=db, progress=False)
        stored[name] = stored_rows(db)
    assert stored["frame"] == stored["record"]
    assert {row[2] for row in stored["frame"]} == {"ok"}
    tagged = [json.loads(row[-1]) for row in stored["frame"] if row[0] == 2 + len(before)]
    assert [t["label"] for t in tagged] == ["\x7f" + text[:1] for text in texts]


def test_trace_changes_plot_and_check_show_frame_steps_like_any_other(db):
    data = [*DATA[:1], {"key": "b", "amount": 150, "items": ["z", "w"]}, *DATA[2:]]
    run([lk.steps.ingest, big, double, per_item, lk.steps.publish], data=data, db=db)
    with lk.connect(db) as store:
        assert store.check().ok
        filtered = store.trace("a")
        assert list(filtered["step"]) == ["ingest", "big"]  # the chain ends at the filter
        assert list(filtered["reason"].fillna("")) == ["", "filtered_out"]
        split = store.trace("b")
        assert list(split.loc[split["relation"] == "self", "step"]) == [
            "ingest",
            "big",
            "double",
        ]
        # the split shows its children: one per item, each published
        children = split[split["relation"] == "downstream"]
        assert set(zip(children["key"], children["step"], strict=True)) == {
            ("b#1", "per_item"),
            ("b#1", "publish"),
            ("b#2", "per_item"),
            ("b#2", "publish"),
        }
        child = store.trace("b#2")  # a child's chain: its parent's steps, then its own
        assert list(child["step"]) == ["ingest", "big", "double", "per_item", "publish"]
        assert list(child["relation"]) == ["upstream"] * 3 + ["self"] * 2
        item = store.changes("b#2")
        assert list(zip(item["step"], item["field"], item["new"], strict=True)) == [
            ("per_item", "items", "w")
        ]
        changes = store.changes("b")
        assert {(c["step"], c["field"], c["change"]) for _, c in changes.iterrows()} >= {
            ("double", "twice", "added")
        }
        steps = store.steps()
        assert list(steps["name"]) == ["ingest", "big", "double", "per_item", "publish"]
        ax = lk.plot_chain(store, "c")
        assert ax.figure is not None


def test_import_and_defining_frame_steps_stay_pandas_free():
    code = (
        "import sys, lineage_kit as lk\n"
        "s = lk.step('f', frame=True)(lambda df: df)\n"
        "p = lk.Pipeline([lk.steps.ingest, s, lk.steps.publish])\n"
        "print('pandas' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_a_frame_step_changing_its_dataframe_in_place_changes_nothing_recorded_before(db):
    @lk.step("in_place", frame=True)
    def in_place(df):
        df["amount"] = df["amount"] * 2  # column replaced in place
        df.loc["b", "items"] = "many"  # one cell set in place
        return df

    run([lk.steps.ingest, in_place, double, lk.steps.publish], db=db)
    assert [v for *_, v in entries(db, 0)] == DATA
    assert [v for *_, v in entries(db, 1)] == [
        {**DATA[0], "amount": 100},
        {**DATA[1], "amount": 300, "items": "many"},
        {**DATA[2], "amount": 600},
    ]
    assert [v["twice"] for *_, v in entries(db, 2)] == [200, 600, 1200]


def test_records_of_one_shape_go_through_frame_steps_without_a_call_per_row(db, monkeypatch):
    # the per-row ways (a record's JSON from its dict, the per-row frame recording,
    # items brought up to date from arrays) are not taken for records of one shape
    import lineage_kit.engine
    import lineage_kit.frame_rows
    from lineage_kit.frame_steps import FrameItems

    def per_row(*args, **kwargs):
        raise AssertionError("a per-row way was taken")

    data = [{"key": k, "Amount": a, "Items": i} for k, a, i in [("a", 50, 2), ("b", 150, 3)]]

    for name in ("_record", "apply_frame"):
        monkeypatch.setattr(lineage_kit.frame_rows, name, per_row)
    monkeypatch.setattr(FrameItems, "sync", per_row)
    with monkeypatch.context() as patched:
        patched.setattr(lineage_kit.engine, "to_json", per_row)
        steps = [lk.steps.ingest, lk.steps.normalize_frame, big, double, lk.steps.publish]
        result = run(steps, data=data, db=db)
    assert (result.n_published, result.n_rejected) == (1, 1)
    assert [e[5] for e in entries(db, 3)] == [{"key": "b", "amount": 150, "items": 3, "twice": 300}]
    # a frame step after a record step starts from the record step's JSON
    other = db.with_name("other.db")
    run([lk.steps.ingest, lk.steps.normalize, big, lk.steps.publish], data=data, db=other)
    assert [e[5] for e in entries(other, 2)] == [
        {"key": "b", "amount": 150, "items": 3},
        {"key": "a", "amount": 50, "items": 2},
    ]
