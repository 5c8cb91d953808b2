"""The typed frames of trace / upstream / downstream are built column by column for
speed; these tests hold them to the plain pandas recipe (``DataFrame.from_records``
then ``astype`` / ``pd.Categorical`` / ``pd.to_datetime``) they replace."""

from __future__ import annotations

import sqlite3

import numpy as np
import pandas as pd
import pytest

from lineage_kit import frames
from lineage_kit.store import queries as q
from lineage_kit.store.schema import ENTRY_STATUSES, STEP_KINDS

from .explore_data import STEP_NAMES


def _reference(rows, columns, run_ids, step_categories):
    """The frame the plain pandas recipe makes of trace / walk rows."""
    frame = pd.DataFrame.from_records(rows, columns=list(columns))
    frame = frame.rename(columns={"record_key": "key"})
    for column in ("entry_id", "position", "depth"):
        if column in frame:
            frame[column] = frame[column].astype("int64")
    frame["run_id"] = pd.Categorical(frame["run_id"], categories=run_ids)
    frame["step"] = pd.Categorical(frame["step"], categories=step_categories, ordered=True)
    frame["kind"] = pd.Categorical(frame["kind"], categories=list(STEP_KINDS))
    frame["status"] = pd.Categorical(frame["status"], categories=list(ENTRY_STATUSES))
    if "relation" in frame:
        frame["relation"] = pd.Categorical(
            frame["relation"], categories=["upstream", "self", "downstream"]
        )
    for column in ("key", "source", "destination", "description", "reason", "error"):
        frame[column] = frame[column].astype("str")
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True, format="ISO8601")
    frame["parent_ids"] = [
        [int(p) for p in text.split(",")] if isinstance(text, str) else []
        for text in frame["parent_ids"]
    ]
    return frame


def _assert_same(got, want):
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    for column in want.columns:
        assert got[column].dtype == want[column].dtype, column
        if isinstance(want[column].dtype, pd.CategoricalDtype):
            assert got[column].cat.ordered == want[column].cat.ordered, column
            assert list(got[column].cat.categories) == list(want[column].cat.categories)


@pytest.mark.parametrize("key", ["o1", "o3", "o4", "o5", "o6", "A", "B", "o1/x"])
def test_trace_matches_plain_pandas(fan, key):
    store, run1, _ = fan
    for run in (run1, "all"):
        run_ids = store.resolve_runs(run)
        rows = [r for run_id in run_ids for r in q.trace_rows(store.backend.con, run_id, key)]
        want = _reference(rows, q.TRACE_COLUMNS, run_ids, STEP_NAMES)
        _assert_same(store.trace(key, run=run), want)


def test_walks_match_plain_pandas(fan):
    store, run1, _ = fan
    ids = store.lineage(run1)["entry_id"].tolist()
    for entry_id in ids:
        for direction, method in (("up", store.upstream), ("down", store.downstream)):
            for depth in (None, 1):
                rows = q.walk_rows(store.backend.con, entry_id, depth, direction)
                columns = ("entry_id", "depth", *q.TRACE_COLUMNS[1:])
                want = _reference(rows, columns, [run1], STEP_NAMES).drop(columns="relation")
                _assert_same(method(entry_id, depth), want)


def test_trace_dtypes(fan):
    store, run1, _ = fan
    dtypes = {c: str(t) for c, t in store.trace("o1", run=run1).dtypes.items()}
    text = str(pd.Series(["a"], dtype="str").dtype)
    assert dtypes == {
        "entry_id": "int64",
        "run_id": "category",
        "position": "int64",
        "step": "category",
        "kind": "category",
        "source": text,
        "destination": text,
        "description": text,
        "key": text,
        "relation": "category",
        "status": "category",
        "reason": text,
        "error": text,
        "value_hash": text,
        "created_at": "datetime64[us, UTC]",
        "parent_ids": "object",
    }


@pytest.mark.parametrize(
    "texts",
    [
        ["2026-03-01T10:00:00.123456+00:00", "2026-03-01T10:00:00.000001+00:00"],
        ["2026-03-01T10:00:00.123456+01:00"],  # same width, another offset
        ["2026-03-01T10:00:00+00:00", "2026-03-01T10:00:00.5Z"],  # other shapes
        ["2026-03-01T10:00:00.123456789+00:00"],  # nanoseconds
        ["2026-03-01 10:00:00.123456+00:00"],  # space separator
        ["2026-13-01T10:00:00.123456+00:00"],  # not a date: pandas decides
    ],
)
def test_utc_texts_is_to_datetime(texts):
    try:
        want = pd.to_datetime(texts, utc=True, format="ISO8601")
    except ValueError:
        with pytest.raises(ValueError):
            frames._utc_texts(texts)
        return
    got = frames._utc_texts(texts)
    assert got.dtype == want.dtype
    assert list(got) == list(want)


def test_utc_texts_writer_stamps_are_utc_microseconds():
    got = frames._utc_texts(["2026-03-01T23:59:59.999999+00:00"])
    assert got.dtype == pd.DatetimeTZDtype("us", "UTC")
    assert got[0] == pd.Timestamp(2026, 3, 1, 23, 59, 59, 999999, tz="UTC")
    assert np.asarray(got.asi8)[0] % 1_000_000 == 999_999


def test_split_stamps_runs_and_rejects():
    a, b = "2026-03-01T10:00:00.000001+00:00", "2026-03-01T10:00:00.000002+00:00"
    codes, texts = frames._split_stamps(",".join([a, a, b, a]), 4)
    assert [texts[c] for c in codes] == [a, a, b, a]
    assert frames._split_stamps(None, 0)[1] == []
    assert frames._split_stamps(",".join([a, a]), 3) is None  # count does not match
    short = "2026-03-01T10:00:00+00:00"  # 25 characters
    assert frames._split_stamps(",".join([a, short]), 2) is None
    odd = "2026-03-01,10:00:00.000001+00:00"  # 32 characters with a comma inside
    assert frames._split_stamps(",".join([a, odd]), 2) is None
    assert frames._split_stamps(",".join([a, "2026-03-01T10:00:00.00000é+00:00"]), 2) is None


def test_lineage_and_graph_read_stamps_of_other_widths(fan, tmp_path):
    """A store whose created_at texts are not the writer's fixed width (another tool
    wrote them) still loads: the stamps are then read as JSON and parsed by pandas."""
    store, run1, _ = fan
    entry_ids = store.lineage(run1)["entry_id"].tolist()
    # an entry's time is its chunk's: run 1 wrote two (before the merge, and after)
    stamps = {0: "2026-03-01T10:00:00Z", 1: "2026-03-01T10:00:00.5+02:00"}
    writer = sqlite3.connect(store.path)  # the test, not the package, edits the file
    with writer:
        writer.executemany(
            "UPDATE chunks SET written_at = ? WHERE chunk_no = ? "
            "AND run_no = (SELECT run_no FROM runs WHERE run_id = ?)",
            [(text, chunk_no, run1) for chunk_no, text in stamps.items()],
        )
    writer.close()
    con = store.backend.con
    frame = store.lineage(run1)
    texts = [
        r[0]
        for r in con.execute(
            "SELECT created_at FROM lineage WHERE run_id = ? ORDER BY entry_id", (run1,)
        )
    ]
    want = pd.to_datetime(texts, utc=True, format="ISO8601")
    assert list(frame["created_at"]) == list(want)
    assert frame["created_at"].iloc[-1] == pd.Timestamp("2026-03-01T08:00:00.5", tz="UTC")
    assert frame["created_at"].iloc[0] == pd.Timestamp("2026-03-01T10:00:00", tz="UTC")
    graph = store.graph(run1)
    assert [pd.Timestamp(graph.nodes[i]["created_at"]) for i in entry_ids] == list(want)
