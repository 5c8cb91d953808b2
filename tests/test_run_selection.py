"""Run selection: 'all' where one run is needed, and case-insensitive prefixes."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest

import lineage_kit as lk

from .conftest import SAMPLE_JSON

ONE_RUN = "'all' selects every run; this needs one run: an id, a unique prefix or 'latest'"


@pytest.fixture
def two_runs(db):
    first = lk.run_pipeline(SAMPLE_JSON, db=db, progress=False)
    second = lk.run_pipeline(SAMPLE_JSON, db=db, progress=False)
    with lk.connect(db) as store:
        yield store, first.run_id, second.run_id
    plt.close("all")


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.resolve_run("all"),
        lambda s: s.summary("all"),
        lambda s: s.source_of("order-101", run="all"),
        lambda s: s.compare_runs("all", "latest"),
        lambda s: s.compare_runs("latest", "all"),
        lambda s: lk.plot_run(s, run="all"),
        lambda s: lk.plot_timeline(s, run="all"),
        lambda s: lk.plot_chain(s, "order-101", run="all"),
    ],
    ids=[
        "resolve_run",
        "summary",
        "source_of",
        "compare_a",
        "compare_b",
        "plot_run",
        "plot_timeline",
        "plot_chain",
    ],
)
def test_methods_of_one_run_refuse_all(two_runs, call):
    store, _, _ = two_runs
    with pytest.raises(lk.RunNotFound) as info:
        call(store)
    assert str(info.value) == ONE_RUN
    assert plt.get_fignums() == []  # nothing drawn


def test_methods_of_several_runs_still_take_all(two_runs):
    store, first, second = two_runs
    assert store.resolve_runs("all") == [first, second]
    assert set(store.lineage("all")["run_id"]) == {first, second}


def test_prefixes_match_case_insensitively(db, monkeypatch):
    ids = iter(["abcd0000-0000-4000-8000-000000000001", "abce0000-0000-4000-8000-000000000002"])
    monkeypatch.setattr("lineage_kit.pipeline.new_run_id", lambda: next(ids))
    first = lk.run_pipeline(SAMPLE_JSON, db=db, progress=False).run_id
    second = lk.run_pipeline(SAMPLE_JSON, db=db, progress=False).run_id
    with lk.connect(db) as store:
        assert store.resolve_run("ABCD") == first
        assert store.resolve_run(second.upper()) == second
        assert store.resolve_runs(["ABCE", "AbCd"]) == [second, first]
        with pytest.raises(lk.RunNotFound, match="more than one"):
            store.resolve_run("ABC")


def test_a_graph_passed_in_is_drawn_as_given(two_runs):
    store, _, _ = two_runs
    graph = store.graph("all", key="order-101")  # rows of both runs, on purpose
    ax = lk.plot_chain(graph, "order-101")
    boxes = [t for t in ax.texts if (t.get_gid() or "").startswith("entry:")]
    assert len(boxes) == 6  # 3 steps x 2 runs
