"""Keys are text everywhere, source_of by key or entry id, ``run="all"`` on an empty
store, and the helpers shared by the explore layer, the CLI and the report."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import networkx as nx
import pytest

import lineage_kit as lk

from .explore_data import build


@pytest.fixture
def numbered(db):
    """Records keyed 100..159 by an integer field: entry ids 1..60 are ingest entries
    of keys 100..159, so entry 110 belongs to key 149 (110 - 60 = 50th -> 100 + 49)."""
    lk.run_pipeline([{"id": 100 + i} for i in range(60)], db=db, key="id")
    with lk.connect(db) as store:
        yield store


# ------------------------------------------------------------------- key_text


@pytest.mark.parametrize(
    ("value", "text"),
    [("a", "a"), (110, "110"), (-3, "-3"), (2.5, "2.5"), (1e20, "1e+20"), ("", "")],
)
def test_key_text_is_the_sources_rule(value, text):
    from lineage_kit.base import key_text

    assert key_text(value) == text


def test_key_text_refuses_what_a_source_refuses():
    from lineage_kit.base import key_text

    for bad in (True, None, [1], {"a": 1}):
        with pytest.raises(TypeError):
            key_text(bad)
    for bad in (float("nan"), float("inf"), "a\x00b"):
        with pytest.raises(ValueError):
            key_text(bad)


# ------------------------------------------------------------ int keys: item 1


def test_source_of_int_is_a_key_not_an_entry(numbered):
    store = numbered
    source = store.source_of(110)
    assert source["key"].tolist() == ["110"]
    assert source["value"].tolist() == [{"id": 110}]
    assert source.equals(store.source_of("110"))


def test_source_of_entry_id_keyword(numbered):
    store = numbered
    # entry 110 is the second step (normalize) of the 50th record, key 149
    assert store.lineage().set_index("entry_id").loc[110, "key"] == "149"
    source = store.source_of(entry_id=110)
    assert source["key"].tolist() == ["149"]
    assert source["value"].tolist() == [{"id": 149}]
    with pytest.raises(lk.EntryNotFound):
        store.source_of(entry_id=10_000)


def test_source_of_needs_exactly_one_of_key_and_entry_id(numbered):
    with pytest.raises(TypeError):
        numbered.source_of()
    with pytest.raises(TypeError):
        numbered.source_of("110", entry_id=1)
    assert numbered.source_of(entry_id="1").equals(numbered.source_of(entry_id=1))


def test_every_key_parameter_takes_an_int(numbered):
    store = numbered
    assert store.trace(110).equals(store.trace("110"))
    assert store.lineage(key=110).equals(store.lineage(key="110"))
    assert store.records(key=110).equals(store.records(key="110"))
    assert store.changes(110).equals(store.changes("110"))
    G = store.graph(key=110)
    assert sorted(G.nodes) == sorted(store.graph(key="110").nodes)
    assert {k for _, k in G.nodes(data="key")} == {"110"}
    ax = lk.plot_chain(store.graph(), 110)  # a whole-run graph: keys compared as text
    assert any(t.get_gid() == "entry:11" for t in ax.texts)  # 110 is the 11th record
    plt.close(ax.figure)


def test_float_keys_use_the_sources_text(db):
    """1e20 is stored as "1e+20" (Python's repr); SQLite's own text is "1.0e+20"."""
    lk.run_pipeline([{"id": 1e20}, {"id": 2.5}], db=db, key="id")
    with lk.connect(db) as store:
        assert sorted(store.lineage()["key"].unique()) == ["1e+20", "2.5"]
        assert store.trace(1e20)["key"].unique().tolist() == ["1e+20"]
        assert store.source_of(1e20)["value"].tolist() == [{"id": 1e20}]
        assert len(store.lineage(key=2.5)) == 3


def test_dataframe_int_ids_with_a_missing_value_keep_integer_keys(db):
    """pandas stores [7, 8, None] as floats; the keys are still 7 and 8, not 7.0."""
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame({"id": [7, 8, None], " X ": [1.0, None, 3.0], "f": [7.5, 8.0, None]})
    assert frame["id"].dtype == "float64"  # what the defect came from
    lk.run_pipeline(frame, db=db, key="id")
    with lk.connect(db) as store:
        assert sorted(store.lineage()["key"].dropna().unique()) == ["7", "8"]
        # the record keeps its id as an int; other float columns are left as they are
        assert store.source_of(7)["value"].tolist() == [{"id": 7, " X ": 1.0, "f": 7.5}]
        for key in (7, "7", np.int64(7), np.int32(7), np.uint8(7)):
            assert store.trace(key)["key"].unique().tolist() == ["7"]
            assert "x" in store.changes(key)["field"].tolist()  # normalize renamed " X "
            assert store.source_of(key)["key"].tolist() == ["7"]
            assert len(store.records(key=key)) == 3
            assert {k for _, k in store.graph(key=key).nodes(data="key")} == {"7"}
            ax = lk.plot_chain(store, key)
            assert ax.texts
            plt.close(ax.figure)
    # a whole float is its integer text, whether or not another row is missing (review
    # item 11): 8.0 is "8" beside 7.5 as beside None, and trace(7.0) finds "7"
    lk.run_pipeline(frame, db=db, key="f")
    lk.run_pipeline(pd.DataFrame({"id": [7.0, 8.0]}), db=db, key="id")
    with lk.connect(db) as store:
        runs = store.runs()["run_id"].tolist()  # newest first
        assert sorted(store.lineage(runs[1])["key"].dropna().unique()) == ["7.5", "8"]
        assert sorted(store.lineage(runs[0])["key"].unique()) == ["7", "8"]
        for key in (7.0, np.float64(7.0), 7, "7"):
            assert store.trace(key, run=runs[0])["key"].unique().tolist() == ["7"]


def test_a_key_that_no_source_could_make_is_refused(numbered):
    with pytest.raises(TypeError):
        numbered.trace(True)
    with pytest.raises(TypeError):
        numbered.lineage(key=[110])
    with pytest.raises(ValueError):
        numbered.source_of(float("nan"))


# --------------------------------------------------- run="all", no runs: item 2


@pytest.fixture
def empty(tmp_path):
    path = tmp_path / "empty.db"
    lk.LineageStore(path, create=True).close()
    with lk.connect(path) as store:
        yield store


def test_lineage_all_of_an_empty_store(empty, sample_store):
    frame = empty.lineage("all")
    assert len(frame) == 0
    full = sample_store.lineage("all")
    assert list(frame.columns) == list(full.columns)
    for column in frame.columns:
        assert frame[column].dtype.name == full[column].dtype.name, column
    assert list(frame["run_id"].cat.categories) == []
    assert list(frame["step"].cat.categories) == []
    assert frame["step"].cat.ordered
    assert list(frame["status"].cat.categories) == ["ok", "rejected", "failed"]
    nothing = sample_store.lineage(key="nope")  # no rows from a run: same dtypes
    assert [d.name for d in nothing.dtypes] == [d.name for d in full.dtypes]


def test_records_all_of_an_empty_store(empty):
    frame = empty.records("all")
    columns = ["entry_id", "run_id", "step", "position", "key", "status", "value"]
    assert list(frame.columns) == columns
    assert len(frame) == 0
    assert len(empty.records("all", expand=True)) == 0


def test_graph_all_of_an_empty_store(empty):
    G = empty.graph("all")
    assert isinstance(G, nx.DiGraph)
    assert G.number_of_nodes() == 0
    assert G.graph == {"run_id": None, "run_ids": [], "steps": []}
    with pytest.raises(lk.KeyNotFound):
        empty.graph("all", key="x")


def test_empty_store_latest_still_raises(empty):
    with pytest.raises(lk.RunNotFound):
        empty.lineage()
    with pytest.raises(lk.RunNotFound):
        empty.graph()


# -------------------------------------------------------- shared helpers: item 4


def test_parse_id_list():
    from lineage_kit.store.queries import parse_id_list

    assert parse_id_list(None) == []
    assert parse_id_list("") == []
    assert parse_id_list("7") == [7]
    assert parse_id_list("12,3,40") == [12, 3, 40]


def test_parent_ids_agree_across_trace_cli_and_report(db, tmp_path, capsys):
    run1, _ = build(db)
    with lk.connect(db) as store:
        trace = store.trace("A", run=run1)
    merged = trace[(trace["key"] == "A") & (trace["step"] == "by_customer")]
    parents = merged["parent_ids"].iloc[0]
    assert len(parents) == 3  # o1/x, o1/y, o2/z

    from lineage_kit.cli import main

    assert main(["trace", "A", "--db", str(db), "--run", run1, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_entry = {r["entry_id"]: r["parent_ids"] for r in rows}
    assert by_entry[int(merged["entry_id"].iloc[0])] == parents

    from lineage_kit.report import write_report

    write_report(db, run1, tmp_path / "r.json")
    chains = json.loads((tmp_path / "r.json").read_text())["chains"]
    assert [e["parents"] for e in chains["A"] if e["step"] == "by_customer"] == [parents]


def test_key_not_found_has_one_wording(db):
    run1, run2 = build(db)
    with lk.connect(db) as store:
        messages = []
        for call in (
            lambda: store.trace("nope", run=run1),
            lambda: store.changes("nope", run=run1),
            lambda: store.source_of("nope", run=run1),
            lambda: store.graph(run1, key="nope"),
        ):
            with pytest.raises(lk.KeyNotFound) as info:
                call()
            messages.append(str(info.value))
        with pytest.raises(lk.KeyNotFound) as info:
            lk.plot_chain(store.graph(run1), "nope")
        in_graph = str(info.value)
        with pytest.raises(lk.KeyNotFound) as info:
            store.trace("nope", run="all")
        in_all = str(info.value)
        assert (info.value.key, info.value.run) == ("nope", "all")
        with pytest.raises(lk.KeyNotFound) as info:
            store.trace("nope", run=[run1, run2])
        in_two = str(info.value)
        assert (info.value.key, info.value.run) == ("nope", [run1, run2])
    assert messages == [f"key 'nope' has no lineage entries in run {run1}"] * 4
    assert in_graph == "key 'nope' has no lineage entries in the graph"
    assert in_all == "key 'nope' has no lineage entries in any run"
    assert in_two == f"key 'nope' has no lineage entries in runs {run1}, {run2}"
    error = lk.KeyNotFound("nope", [run1])
    assert (str(error), error.key, error.run, error.run_ids) == (messages[0], "nope", run1, [run1])


def test_chunk_moments_come_from_the_backend(sample_store):
    run_id = sample_store.resolve_run()
    rows = sample_store.backend.chunk_moments(run_id)
    # 30 sample records in one chunk: every step stamps its 30 entries once
    assert [(position, n) for position, _, n in rows] == [(0, 30), (1, 30), (2, 30)]
