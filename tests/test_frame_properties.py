"""Properties of frame steps: the same values as record steps; nothing lost."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lineage_kit as lk

from .frame_stored import stored_rows

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Records of one schema, fields in schema order, optional ones sometimes absent.
ints = st.integers(-(2**40), 2**40)
floats = st.floats(allow_nan=False, allow_infinity=False, width=64)
texts = st.text(max_size=4)
nested = st.one_of(st.none(), st.lists(st.integers(0, 3), max_size=2), st.just({"a": None}))


@st.composite
def records(draw):
    n = draw(st.integers(0, 12))
    out = []
    for i in range(n):
        record = {"key": f"k{i}", "n": draw(ints), "x": draw(floats)}
        if draw(st.booleans()):
            record["s"] = draw(st.one_of(st.none(), texts))
        if draw(st.booleans()):
            record["tags"] = draw(nested)
        if draw(st.booleans()):
            record["count"] = draw(st.one_of(st.none(), st.integers(0, 9)))
        out.append(record)
    return out


def _pipelines(threshold):
    @lk.step("keep", frame=True)
    def keep_frame(df):
        return df[df["n"] > threshold]

    @lk.step("derive", frame=True)
    def derive_frame(df):
        return df.assign(y=df["x"] * 2, m=df["n"] - 1)

    @lk.step("tidy", frame=True)
    def tidy_frame(df):
        return df.drop(columns=["x"])

    @lk.step("keep")
    def keep_record(record):
        if not record["n"] > threshold:
            raise lk.Reject("filtered_out", "dropped by frame step 'keep'")
        return record

    @lk.step("derive")
    def derive_record(record):
        return {**record, "y": record["x"] * 2, "m": record["n"] - 1}

    @lk.step("tidy")
    def tidy_record(record):
        return {k: v for k, v in record.items() if k != "x"}

    ends = [lk.steps.publish]
    return (
        [lk.steps.ingest, lk.steps.normalize_frame, keep_frame, derive_frame, tidy_frame, *ends],
        [lk.steps.ingest, lk.steps.normalize, keep_record, derive_record, tidy_record, *ends],
    )


def _assert_frame_and_record_steps_store_alike(data, threshold: int, chunk_size: int) -> None:
    """Run ``data`` through the frame steps and through the equivalent record steps,
    each into a store of its own, and assert both stored the same rows."""
    frame_steps, record_steps = _pipelines(threshold)
    with tempfile.TemporaryDirectory() as tmp:
        stored = []
        for steps, name in ((frame_steps, "frame"), (record_steps, "record")):
            db = Path(tmp) / f"{name}.db"
            lk.Pipeline(steps).run(data, db=db, chunk_size=chunk_size, progress=False)
            stored.append(stored_rows(db))
    assert stored[0] == stored[1]


@SETTINGS
@given(data=records(), threshold=ints, chunk_size=st.integers(1, 6))
def test_a_frame_step_stores_what_the_equivalent_record_step_stores(data, threshold, chunk_size):
    _assert_frame_and_record_steps_store_alike(data, threshold, chunk_size)


@st.composite
def plans(draw):
    """Per input record: what the frame step does with its row."""
    n = draw(st.integers(0, 10))
    return [
        draw(st.sampled_from(["keep", "drop", "reject", "explode", "explode", "change"]))
        for _ in range(n)
    ], draw(st.sampled_from(["rows", "rows", "rows", "raise", "reject", "foreign"]))


@SETTINGS
@given(plan=plans(), chunk_size=st.integers(1, 5))
def test_frame_steps_lose_no_record(plan, chunk_size):
    actions, mode = plan
    data = [
        {"key": f"r{i}", "do": a, "parts": [1, 2, 3][: 1 + i % 3]} for i, a in enumerate(actions)
    ]

    @lk.step("act", frame=True, kind="split")
    def act(df):
        if mode == "raise":
            raise RuntimeError("boom")
        if mode == "reject":
            raise lk.Reject("all_out")
        if mode == "foreign":
            return df.reset_index(drop=True)
        rejected = df.index[df["do"] == "reject"]
        kept = df[df["do"].isin(["keep", "explode", "change"])]
        kept = kept.assign(n=kept["do"].map({"change": 1}))
        exploding = kept["do"] == "explode"
        kept = pd.concat([kept[~exploding], kept[exploding].explode("parts")])
        return kept, pd.Series("asked", index=rejected)

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "x.db"
        result = lk.Pipeline([lk.steps.ingest, act, lk.steps.publish]).run(
            data, db=db, chunk_size=chunk_size, progress=False
        )
        assert result.n_input == len(data)
        assert result.n_published + result.n_rejected + result.n_failed == len(data)
        expected = {
            "raise": (0, 0, len(data)),
            "reject": (0, len(data), 0),
            "foreign": (0, 0, len(data)),
            "rows": (
                sum(a in ("keep", "explode", "change") for a in actions),
                sum(a in ("drop", "reject") for a in actions),
                0,
            ),
        }[mode]
        assert (result.n_published, result.n_rejected, result.n_failed) == expected
        with lk.connect(db) as store:
            assert store.check().ok, store.check().violations
            reasons = dict(
                store.backend.con.execute(
                    "SELECT record_key, reason FROM lineage "
                    "WHERE position = 1 AND status = 'rejected'"
                ).fetchall()
            )
        if mode == "rows":
            assert reasons == {
                f"r{i}": {"drop": "filtered_out", "reject": "asked"}[a]
                for i, a in enumerate(actions)
                if a in ("drop", "reject")
            }


# Records of one shape (every field in every record, in one order): the columnar way
# of frame steps (lineage_kit.frame_rows) takes these chunks, so its JSON texts must be
# the record path's byte for byte, whatever the values: huge integers, -0.0, text
# with escapes, non-ASCII or a lone surrogate, nested values, None, bools, and
# columns mixing types.
cells = st.one_of(
    st.integers(-(2**70), 2**70),
    floats,
    st.text(max_size=3),
    st.sampled_from(["é\u2028", '"\\/%s', "\ud800", "\x00\x1f", "%%"]),
    st.booleans(),
    st.none(),
    nested,
)
extra_fields = st.lists(
    st.tuples(st.sampled_from(["s", "tags", "Ünï", "%d", "count"]), st.booleans()),
    max_size=3,
    unique_by=lambda f: f[0],
)


@st.composite
def one_shape(draw):
    n = draw(st.integers(0, 12))
    fields = draw(extra_fields)
    typed = {name: draw(cells) for name, mixed in fields if not mixed}  # one value per column
    out = []
    for i in range(n):
        record = {"key": f"k{i}", "n": draw(ints), "x": draw(floats)}
        for name, mixed in fields:
            record[name] = draw(cells) if mixed else typed[name]
        out.append(record)
    return out


@SETTINGS
@given(data=one_shape(), threshold=ints, chunk_size=st.integers(1, 6))
def test_records_of_one_shape_store_what_the_equivalent_record_steps_store(
    data, threshold, chunk_size
):
    _assert_frame_and_record_steps_store_alike(data, threshold, chunk_size)
