"""The same runs written into a SQLite store and a PostgreSQL store read back as the
same DataFrames: same columns, dtypes and values (timestamps are each run's own, so
they are compared by dtype and order; run ids by position)."""

from __future__ import annotations

import networkx as nx
import pandas as pd
import pytest

import lineage_kit as lk

from .conftest import MESSY_JSON, SAMPLE_JSON
from .explore_data import build as build_fan


@lk.step("halve", description="fails on odd amounts")
def halve(record: dict) -> dict:
    if int(record["amount"]) % 2:
        raise ZeroDivisionError("odd amount")
    return {**record, "amount": record["amount"] / 2}


def _map(db):
    lk.run_pipeline(SAMPLE_JSON, db=db, progress=False)


def _rejected(db):
    lk.run_pipeline(MESSY_JSON, db=db, progress=False)


def _failed(db):
    lk.Pipeline([lk.steps.ingest, lk.steps.normalize, halve]).run(
        SAMPLE_JSON, db=db, progress=False, chunk_size=7
    )


def _fan(db):  # a split step and a merge step, two runs
    build_fan(db)


RUNS = {"map": _map, "rejected": _rejected, "failed": _failed, "merge_split": _fan}
KEYS = {
    "map": ["order-101", "order-130"],
    "rejected": ["order-203", "nope"],
    "failed": ["order-101", "order-102"],
    "merge_split": ["o1", "o3", "o4", "o1#1", "A", "B"],
}

_TIME_COLUMNS = ("created_at", "started_at", "finished_at", "written_at")
_WRITER_COLUMNS = (
    "writer_host",
    "writer_pid",
    "writer_started",
    "elapsed_seconds",
    "busy_seconds",
    "duration_s",
)


def _normal(frame: pd.DataFrame, run_ids: list[str]) -> pd.DataFrame:
    """Run ids as their position, time columns checked for type then dropped."""
    frame = frame.copy()
    for column in frame.columns:
        if column in _TIME_COLUMNS:
            assert str(frame[column].dtype).startswith("datetime64") or frame[column].isna().all()
            frame = frame.drop(columns=column)
        elif column in _WRITER_COLUMNS:
            frame = frame.drop(columns=column)
        elif column in ("run_id", "run", "run_a", "run_b"):
            codes = {r: f"run{i}" for i, r in enumerate(run_ids)}
            mapped = frame[column].astype(object).map(lambda r, codes=codes: codes.get(r, r))
            frame[column] = (
                pd.Categorical(mapped, categories=[codes[r] for r in frame[column].cat.categories])
                if isinstance(frame[column].dtype, pd.CategoricalDtype)
                else mapped.astype(frame[column].dtype)
            )
    return frame


def _same(a: pd.DataFrame, b: pd.DataFrame, ids_a: list[str], ids_b: list[str]) -> None:
    assert list(a.columns) == list(b.columns)
    assert dict(a.dtypes.astype(str)) == dict(b.dtypes.astype(str))
    pd.testing.assert_frame_equal(_normal(a, ids_a), _normal(b, ids_b), check_exact=True)


@pytest.fixture(params=list(RUNS))
def pair(request, db, pg_url):
    RUNS[request.param](db)
    RUNS[request.param](pg_url)
    with lk.connect(db) as a, lk.connect(pg_url) as b:
        yield request.param, a, b


def test_frames_are_identical_on_both_backends(pair):
    kind, a, b = pair
    ids_a, ids_b = a.resolve_runs("all"), b.resolve_runs("all")
    assert len(ids_a) == len(ids_b)
    for run in ["latest", "all"]:
        _same(a.runs(), b.runs(), ids_a, ids_b)
        _same(a.steps(run), b.steps(run), ids_a, ids_b)
        _same(a.lineage(run), b.lineage(run), ids_a, ids_b)
        _same(a.records(run), b.records(run), ids_a, ids_b)
        for key in KEYS[kind]:
            try:
                want = a.trace(key, run=run)
            except lk.KeyNotFound:
                with pytest.raises(lk.KeyNotFound):
                    b.trace(key, run=run)
                continue
            _same(want, b.trace(key, run=run), ids_a, ids_b)
            _same(a.changes(key, run=run), b.changes(key, run=run), ids_a, ids_b)
    for entry_id in a.lineage("all")["entry_id"].tolist()[::7]:
        _same(a.upstream(entry_id), b.upstream(entry_id), ids_a, ids_b)
        _same(a.downstream(entry_id, depth=1), b.downstream(entry_id, depth=1), ids_a, ids_b)
    if len(ids_a) > 1:
        _same(a.compare_runs(ids_a[0], ids_a[1]), b.compare_runs(ids_b[0], ids_b[1]), ids_a, ids_b)
    ga, gb = a.graph("all"), b.graph("all")
    assert set(ga.edges) == set(gb.edges) and set(ga.nodes) == set(gb.nodes)
    assert nx.utils.graphs_equal(
        nx.relabel_nodes(a.step_graph(), str), nx.relabel_nodes(b.step_graph(), str)
    ) or sorted(a.step_graph().edges) == sorted(b.step_graph().edges)
    ra, rb = a.check("all"), b.check("all")
    assert ra.ok == rb.ok
    _same(ra.violations, rb.violations, ids_a, ids_b)
    ea, eb = a.openlineage_events(), b.openlineage_events()
    assert [e["eventType"] for e in ea] == [e["eventType"] for e in eb]
