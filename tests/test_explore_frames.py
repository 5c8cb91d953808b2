"""store.steps() and store.lineage(): typed frames over a fan-in/fan-out pipeline."""

from __future__ import annotations

import pandas as pd
import pytest

import lineage_kit as lk

from .explore_data import STEP_NAMES


def test_steps_counts_and_types(fan):
    store, run1, _ = fan
    steps = store.steps(run1)
    assert list(steps["name"]) == STEP_NAMES
    assert list(steps["name"].cat.categories) == STEP_NAMES
    assert steps["name"].cat.ordered
    assert list(steps["kind"]) == ["map", "map", "split", "merge", "map"]
    # ingest: 6 keyed records ok, the keyless one and the duplicate rejected.
    assert steps[["n_ok", "n_rejected", "n_failed"]].values.tolist() == [
        [6, 2, 0],
        [4, 1, 1],
        [4, 1, 0],
        [2, 0, 0],
        [2, 0, 0],
    ]
    for column in ("n_ok", "n_rejected", "n_failed", "position"):
        assert steps[column].dtype == "int64"
    assert steps["busy_seconds"].dtype == "float64"
    assert str(steps["started_at"].dt.tz) == "UTC"
    assert steps["started_at"].notna().all()
    assert (steps["finished_at"] >= steps["started_at"]).all()
    # a step without a source reads from the previous step's destination (if it has one)
    assert steps["source"].fillna("-").tolist() == [
        "input_file",
        "staging",
        "-",
        "items",
        "customers",
    ]
    assert set(steps["run_id"]) == {run1}


def test_steps_latest_prefix_and_all(fan):
    store, run1, run2 = fan
    assert set(store.steps()["run_id"]) == {run2}
    assert set(store.steps(run1[:8])["run_id"]) == {run1}
    both = store.steps("all")
    assert len(both) == 10
    assert list(both["run_id"].cat.categories) == [run1, run2]  # oldest first
    # run 2: every record valid, o1 splits in two -> 6 items, customers A, B, C.
    run2_rows = both[both["run_id"] == run2]
    assert run2_rows["n_ok"].tolist() == [5, 5, 6, 3, 3]


def test_steps_unknown_run(fan):
    store, *_ = fan
    with pytest.raises(lk.RunNotFound):
        store.steps("no-such-run")


def test_step_never_ran_is_nat(db):
    pipeline = lk.Pipeline([lk.steps.ingest, lk.steps.normalize, lk.steps.publish])
    pipeline.run([{"key": "a", "X": 1, "x": 2}], db, progress=False)  # collides
    with lk.connect(db) as store:
        steps = store.steps()
    assert steps["started_at"].notna().tolist() == [True, True, False]
    assert steps["finished_at"].isna().tolist() == [False, False, True]
    assert steps["n_rejected"].tolist() == [0, 1, 0]


def test_lineage_rows_and_types(fan):
    store, run1, _ = fan
    df = store.lineage(run1)
    # 8 ingest + 6 validate + 5 explode + 2 merge + 2 deliver entries
    assert len(df) == 23
    assert df["entry_id"].is_monotonic_increasing
    assert df["status"].dtype == "category"
    assert list(df["status"].cat.categories) == ["ok", "rejected", "failed"]
    assert list(df["step"].cat.categories) == STEP_NAMES
    assert str(df["created_at"].dt.tz) == "UTC"
    assert df["parent_id"].dtype == "Int64"
    assert df["n_parents"].dtype == "int64"
    assert df.groupby("status", observed=False).size().to_dict() == {
        "ok": 18,
        "rejected": 4,
        "failed": 1,
    }
    keyless = df[df["key"].isna()]
    assert keyless[["step", "status", "reason"]].values.tolist() == [
        ["ingest", "rejected", "missing_key"]
    ]
    first = df[df["position"] == 0]
    assert first["parent_id"].isna().all() and (first["n_parents"] == 0).all()
    failed = df[df["status"] == "failed"].iloc[0]
    assert (failed["key"], failed["step"]) == ("o4", "validate")
    assert failed["error"].startswith("ValueError")


def test_lineage_merge_parents(fan):
    store, run1, _ = fan
    df = store.lineage(run1).set_index("entry_id")
    merged_a = df[(df["step"] == "by_customer") & (df["key"] == "A")].iloc[0]
    assert merged_a["n_parents"] == 3
    splits = df[df["key"].isin(["o1/x", "o1/y", "o2/z"])]
    assert merged_a["parent_id"] == splits.index.min()
    # both o1 split children point at o1's validate entry
    o1_validate = df[(df["key"] == "o1") & (df["step"] == "validate")].index[0]
    assert set(df.loc[df["key"].isin(["o1/x", "o1/y"]), "parent_id"]) == {o1_validate}


def test_lineage_filters(fan):
    store, run1, run2 = fan
    o1 = store.lineage(run1, key="o1")
    # the accepted o1 (ingest, validate) and the rejected duplicate at ingest
    assert sorted(zip(o1["step"], o1["status"], strict=True)) == [
        ("ingest", "ok"),
        ("ingest", "rejected"),
        ("validate", "ok"),
    ]
    assert o1.loc[o1["status"] == "rejected", "reason"].tolist() == ["duplicate_key"]
    explode = store.lineage(run1, step="explode")
    assert sorted(explode["key"]) == ["o1/x", "o1/y", "o2/z", "o5/w", "o6"]
    assert store.lineage(run1, step=2).equals(explode)
    assert len(store.lineage(run1, key="o1/x", step="explode")) == 1
    assert len(store.lineage("all", key="o1")) == 3 + 2
    assert store.lineage("all")["run_id"].value_counts().to_dict() == {
        run1: 23,
        run2: 5 + 5 + 6 + 3 + 3,
    }
    assert store.lineage(run1, key="nope").empty
    with pytest.raises(ValueError, match="not a step"):
        store.lineage(run1, step="nope")


def test_lineage_sample(sample_store):
    df = sample_store.lineage()
    assert len(df) == 90
    assert (df["status"] == "ok").all()
    assert df.groupby("step", observed=True).size().tolist() == [30, 30, 30]
    assert isinstance(df["created_at"].iloc[0], pd.Timestamp)


def test_interleaved_runs_stay_apart(db):
    """A run written while another one is in progress shares its entry-id range."""
    state = {"nested": None}

    @lk.step("tag", source="staging", destination="tagged")
    def tag(record: dict) -> dict:
        if record["key"] == "k2" and state["nested"] is None:
            state["nested"] = lk.run_pipeline(
                [{"key": "x1"}, {"key": "x2"}], db=db, progress=False
            ).run_id
        return {**record, "tagged": True}

    outer = lk.Pipeline([lk.steps.ingest, tag]).run(
        [{"key": f"k{i}"} for i in range(4)], db, chunk_size=1, progress=False
    )
    with lk.connect(db) as store:
        a = store.lineage(outer.run_id)
        b = store.lineage(state["nested"])
        assert sorted(set(a["key"])) == ["k0", "k1", "k2", "k3"] and len(a) == 8
        assert sorted(set(b["key"])) == ["x1", "x2"] and len(b) == 6
        assert b["entry_id"].min() < a["entry_id"].max()  # the ranges really interleave
        assert a["parent_id"].notna().sum() == 4 and b["parent_id"].notna().sum() == 4
        G = store.graph(outer.run_id)
        assert G.number_of_nodes() == 8 and G.number_of_edges() == 4
        assert {d["key"] for _, d in G.nodes(data=True)} == {"k0", "k1", "k2", "k3"}
        assert len(store.records(outer.run_id)) == 8
