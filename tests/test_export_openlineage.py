"""OpenLineage events: valid against the 2-0-2 spec and every facet's schema, offline,
for runs of every kind; and what they say matches the store."""

from __future__ import annotations

import copy
import json
import uuid

import jsonschema
import pytest

import lineage_kit as lk
from lineage_kit.export.openlineage import step_run_id

from .conftest import MESSY_JSON, SAMPLE_JSON, sha256
from .export_runs import KINDS, RUNNING_EVENTS, events_of
from .openlineage_schemas import facets_of, validate_event


def _types(events: list[dict]) -> list[tuple[str, str]]:
    return [(e["eventType"], e["job"]["name"]) for e in events]


@pytest.mark.parametrize("kind", KINDS)
def test_every_event_and_facet_of_every_kind_of_run_is_valid(kind, db):
    _run_id, events = events_of(kind, db)
    assert events
    for event in events:
        validate_event(event)
    names = {name for e in events for _w, name, _f in facets_of(e)}
    assert {"parent", "processing_engine", "jobType", "dataSource", "lineageKit_run"} <= names


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda e: e["run"].update(runId="run-1"), "is not a 'uuid'"),
        (lambda e: e.pop("producer"), "'producer' is a required property"),
        (lambda e: e.update(eventType="DONE"), "is not one of"),
        (lambda e: e.update(eventTime="yesterday"), "is not a 'date-time'"),
        # a facet that breaks its own schema (the core schema alone would accept it)
        (lambda e: e["run"]["facets"]["processing_engine"].pop("version"), "'version' is a"),
        (lambda e: e["run"]["facets"]["lineageKit_run"].update(status="done"), "is not one of"),
        # a standard facet under another name
        (
            lambda e: e["run"]["facets"].update(engine=e["run"]["facets"].pop("processing_engine")),
            "engine",
        ),
    ],
)
def test_a_broken_event_fails_validation(sample_store, mutate, message):
    event = sample_store.openlineage_events()[0]
    validate_event(event)
    broken = copy.deepcopy(event)
    mutate(broken)
    with pytest.raises(jsonschema.ValidationError, match=message):
        validate_event(broken)


def test_a_completed_run_is_a_parent_job_with_one_child_job_per_step(sample_store):
    run_id = sample_store.resolve_run("latest")
    events = sample_store.openlineage_events(namespace="shop")
    steps = ["ingest", "normalize", "publish"]
    assert _types(events) == [
        ("START", "default"),
        *[("START", f"default.{s}") for s in steps],
        *[("COMPLETE", f"default.{s}") for s in steps],
        ("COMPLETE", "default"),
    ]
    assert {e["job"]["namespace"] for e in events} == {"shop"}
    parent = events[0]
    assert parent["run"]["runId"] == run_id
    children = events[1:4]
    for position, child in enumerate(children):
        assert child["run"]["runId"] == step_run_id(run_id, position)
        assert uuid.UUID(child["run"]["runId"]).version == 5
        link = child["run"]["facets"]["parent"]
        assert link["run"] == {"runId": run_id}
        assert link["job"] == {"namespace": "shop", "name": "default"}
    # the ids are the same each time the run is exported, distinct per step
    again = sample_store.openlineage_events(namespace="shop")
    assert [e["run"]["runId"] for e in again] == [e["run"]["runId"] for e in events]
    assert len({c["run"]["runId"] for c in children}) == 3


def test_the_namespace_comes_from_the_environment_when_not_given(sample_store, monkeypatch):
    monkeypatch.setenv("OPENLINEAGE_NAMESPACE", "from-env")
    assert {e["job"]["namespace"] for e in sample_store.openlineage_events()} == {"from-env"}
    monkeypatch.delenv("OPENLINEAGE_NAMESPACE")
    assert {e["job"]["namespace"] for e in sample_store.openlineage_events()} == {"lineage_kit"}


def test_input_dataset_has_version_schema_and_row_count(sample_store):
    done = sample_store.openlineage_events()[-1]
    (source,) = done["inputs"]
    assert (source["namespace"], source["name"]) == ("file", str(SAMPLE_JSON))
    facets = source["facets"]
    assert facets["version"]["datasetVersion"] == sha256(SAMPLE_JSON)
    assert facets["dataSource"]["uri"] == SAMPLE_JSON.as_uri()
    fields = [f["name"] for f in facets["schema"]["fields"]]
    first = json.loads(SAMPLE_JSON.read_text())[0]
    assert fields == list(first)  # ingest stores the record exactly as read
    assert source["inputFacets"]["inputStatistics"]["rowCount"] == 30
    (output,) = done["outputs"]
    assert output["name"] == "default.output"
    assert output["outputFacets"]["outputStatistics"]["rowCount"] == 30


def test_step_counts_and_reject_reasons_match_the_store(messy_store):
    events = messy_store.openlineage_events()
    steps = messy_store.steps()
    lineage = messy_store.lineage()
    terminal = events[4:7]
    previous_ok = None
    for (_i, step), event in zip(steps.iterrows(), terminal, strict=True):
        (inp,) = event["inputs"]
        (out,) = event["outputs"]
        assert out["outputFacets"]["outputStatistics"]["rowCount"] == step["n_ok"]
        n_in = inp["inputFacets"]["inputStatistics"]["rowCount"]
        assert n_in == (20 if previous_ok is None else previous_ok)
        previous_ok = step["n_ok"]
        rejected = lineage[(lineage["step"] == step["name"]) & (lineage["status"] == "rejected")]
        expected = rejected["reason"].value_counts().to_dict()
        assertions = inp["inputFacets"].get("dataQualityAssertions", {"assertions": []})
        got = {a["assertion"]: int(a["actual"]) for a in assertions["assertions"]}
        assert got == expected
        assert all(a["success"] is False for a in assertions["assertions"])
        step_facet = event["run"]["facets"]["lineageKit_step"]
        assert (step_facet["ok"], step_facet["rejected"], step_facet["failed"]) == (
            step["n_ok"],
            step["n_rejected"],
            step["n_failed"],
        )
    assert sum(got for e in terminal for got in _reject_counts(e)) == 8  # messy: 8 rejected
    run_facet = events[-1]["run"]["facets"]["lineageKit_run"]
    assert (run_facet["inputRecords"], run_facet["published"], run_facet["rejected"]) == (20, 12, 8)
    assert run_facet["entries"] == len(lineage)
    path = messy_store.path  # a PostgreSQL store's is its URL, without password
    assert run_facet["store"] == (path if isinstance(path, str) else str(path.resolve()))


def _reject_counts(event: dict) -> list[int]:
    facet = event["inputs"][0]["inputFacets"].get("dataQualityAssertions")
    return [int(a["actual"]) for a in facet["assertions"]] if facet else []


def test_stages_are_datasets_that_chain_the_steps(sample_store):
    terminal = sample_store.openlineage_events()[4:7]
    names = [(e["inputs"][0]["name"], e["outputs"][0]["name"]) for e in terminal]
    assert names == [
        (str(SAMPLE_JSON), "default.staging"),
        ("default.staging", "default.normalized"),
        ("default.normalized", "default.output"),
    ]


def _lineage(event: dict) -> dict[str, list[tuple[str, str]]]:
    fields = event["outputs"][0]["facets"]["columnLineage"]["fields"]
    return {
        out: [(f["field"], f["transformations"][0]["subtype"]) for f in spec["inputFields"]]
        for out, spec in fields.items()
    }


def test_column_lineage_shows_renames_identity_and_new_fields(sample_store):
    events = sample_store.openlineage_events()
    normalize, publish = events[5], events[6]
    first = json.loads(SAMPLE_JSON.read_text())[0]
    # normalize lowercases and strips field names: each new name is its old field, unchanged
    assert _lineage(normalize) == {name.strip().lower(): [(name, "IDENTITY")] for name in first}
    # publish passes every field on unchanged
    assert _lineage(publish) == {
        name.strip().lower(): [(name.strip().lower(), "IDENTITY")] for name in first
    }
    assert "columnLineage" not in events[4]["outputs"][0]["facets"]  # ingest: no parents


def test_a_new_field_equal_to_a_removed_constant_claims_no_rename(db):
    # review item 4: "retries" is new; it equals the removed "flag" (0 everywhere) only
    # by chance, and "ok" turns 1 into True (equal in Python, not the same JSON value)
    @lk.step("reshape")
    def reshape(r):
        return {"key": r["key"], "amount": r["amount"], "retries": 0, "ok": True, "id": r["n"]}

    data = [{"key": f"k{i}", "amount": i, "flag": 0, "ok": 1, "n": i * 10} for i in range(5)]
    lk.Pipeline([lk.steps.ingest, reshape, lk.steps.publish]).run(data, db=db, progress=False)
    with lk.connect(db) as store:
        events = store.openlineage_events()
    step = next(
        e for e in events if e["job"]["name"].endswith(".reshape") and e["eventType"] != "START"
    )
    assert _lineage(step) == {
        "key": [("key", "IDENTITY")],
        "amount": [("amount", "IDENTITY")],
        "retries": [],  # a new field: its inputs are unknown
        "ok": [("ok", "TRANSFORMATION")],
        "id": [("n", "IDENTITY")],  # five different values, each the removed n's
    }


def test_a_merge_aggregates_and_a_split_derives(db, tmp_path):
    _run_id, events = events_of("merge", db)
    merge = next(
        e for e in events if e["job"]["name"] == "merge.by_customer" and e["eventType"] != "START"
    )
    assert _lineage(merge) == {
        "customer name": [("customer name", "IDENTITY")],
        "amount": [("amount", "AGGREGATION")],
        "orders": [],  # a new field: its inputs are unknown
    }
    assert merge["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] == 7
    assert merge["inputs"][0]["inputFacets"]["inputStatistics"]["rowCount"] == 14
    _run_id, events = events_of("split", tmp_path / "split.db")
    split = next(
        e for e in events if e["job"]["name"] == "split.per_item" and e["eventType"] != "START"
    )
    assert _lineage(split) == {"order": [("key", "IDENTITY")], "item": []}
    assertions = split["inputs"][0]["inputFacets"]["dataQualityAssertions"]["assertions"]
    assert [(a["assertion"], a["actual"]) for a in assertions] == [("split_empty", "1")]
    assert split["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] == 6


def test_a_failed_run_fails_with_its_error_and_aborts_the_other_steps(db):
    _run_id, events = events_of("failed", db)
    assert _types(events)[-5:] == [
        ("ABORT", "default.ingest"),
        ("ABORT", "default.normalize"),
        ("FAIL", "default.explode"),
        ("ABORT", "default.publish"),
        ("FAIL", "default"),
    ]
    with lk.connect(db) as store:
        (run,) = store.run_rows()
    for event in (events[-1], events[-3]):
        message = event["run"]["facets"]["errorMessage"]
        assert message["message"] == run["error"]
        assert "cannot handle order-105" in message["message"]
        assert message["programmingLanguage"] == "python"
    assert "errorMessage" not in events[-2]["run"]["facets"]


def test_an_interrupted_run_is_aborted(db, tmp_path):
    _run_id, events = events_of("interrupted", db)
    assert [t for t, _name in _types(events)] == ["START"] * 5 + ["ABORT"] * 5
    # a killed writer stored no step times: the entries' stamps give them
    _run_id, killed = events_of("killed", tmp_path / "killed.db")
    assert [t for t, _name in _types(killed)] == ["START"] * 5 + ["ABORT"] * 5
    starts = [e["eventTime"] for e in killed[1:5]]
    ends = [e["eventTime"] for e in killed[5:9]]
    assert all(s <= e for s, e in zip(starts, ends, strict=True))
    assert killed[0]["eventTime"] <= min(starts)


def test_a_running_run_has_start_events_only(db):
    _run_id, events = events_of("running", db)
    assert RUNNING_EVENTS["status"] == "running"
    assert _types(events) == [
        ("START", "default"),
        ("START", "default.ingest"),
        ("START", "default.normalize"),
        ("START", "default.peek"),
        ("START", "default.publish"),
    ]
    assert events[0]["run"]["facets"]["lineageKit_run"]["status"] == "running"


def test_events_hold_no_record_data(db):
    lk.run_pipeline(MESSY_JSON, db=db, progress=False)
    with lk.connect(db) as store:
        text = json.dumps(store.openlineage_events())
        keys = set(store.lineage()["key"].dropna())
    assert keys and not any(f'"{k}"' in text for k in keys)
    assert len(text) < 40_000  # counts and names, not records


def test_all_runs_are_exported_oldest_first(db):
    first = lk.run_pipeline(SAMPLE_JSON, db=db, progress=False).run_id
    second = lk.run_pipeline(MESSY_JSON, db=db, progress=False).run_id
    with lk.connect(db) as store:
        events = store.openlineage_events("all")
    parents = [e["run"]["runId"] for e in events if e["job"]["name"] == "default"]
    assert parents == [first, first, second, second]


def test_pure_builder_with_a_database_url_and_a_relative_input(sample_store):
    """The builder takes facts, not a store: a store given by URL and an input path
    that is not absolute still give valid events (no file: URI is made up)."""
    import dataclasses

    from lineage_kit.export.openlineage import RunFacts, gather, run_events

    facts = gather(sample_store.backend, sample_store.resolve_run("latest"))
    facts = RunFacts(
        run={**facts.run, "input_path": "data/orders.json"},
        steps=[dataclasses.replace(s) for s in facts.steps],
        store="postgresql://analyst@db.example/lineage",
    )
    events = run_events(facts, "team")
    for event in events:
        validate_event(event)
    (source,) = events[-1]["inputs"]
    assert (source["namespace"], source["name"]) == ("file", "data/orders.json")
    assert "uri" not in source["facets"]["dataSource"]
    stage = events[-1]["outputs"][0]["facets"]["dataSource"]
    assert stage["uri"] == "postgresql://analyst@db.example/lineage"
    assert events[-1]["run"]["facets"]["lineageKit_run"]["store"] == facts.store


def test_rows_a_frame_step_drops_are_reported_as_filtered_out(db):
    run_id, events = events_of("frame", db)
    with lk.connect(db) as store:
        steps = store.steps(run_id).set_index("name")
    step = next(
        e for e in events if e["job"]["name"] == "frames.big_orders" and e["eventType"] != "START"
    )
    assertions = step["inputs"][0]["inputFacets"]["dataQualityAssertions"]["assertions"]
    assert [(a["assertion"], int(a["actual"])) for a in assertions] == [
        ("filtered_out", steps.loc["big_orders", "n_rejected"])
    ]
    assert steps.loc["big_orders", "n_rejected"] > 0
    out = step["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"]
    assert out == steps.loc["big_orders", "n_ok"]
