"""Live OpenLineage emission during a run, against a real HTTP endpoint on 127.0.0.1."""

from __future__ import annotations

import io
import json
import sys
import warnings

import pytest

import lineage_kit as lk
from lineage_kit.cli import main
from lineage_kit.errors import MissingExtra
from lineage_kit.export.emit import OpenLineageEmitter, OpenLineageWarning, send_events

from .conftest import MESSY_JSON, SAMPLE_JSON
from .lineage_server import LineageServer, _dead_url, _without_client_tags
from .openlineage_schemas import validate_event


def _check_order(events: list[dict]) -> None:
    """Parent before children, each run's START before its terminal event."""
    seen: dict[str, list[str]] = {}
    for e in events:
        seen.setdefault(e["run"]["runId"], []).append(e["eventType"])
        parent = e["run"]["facets"].get("parent")
        if parent is not None:
            assert seen[parent["run"]["runId"]][0] == "START"  # the parent started first
    for types in seen.values():
        assert types[0] == "START" and len(types) == 2 and types[1] != "START"
    assert "parent" not in events[0]["run"]["facets"]
    assert "parent" not in events[-1]["run"]["facets"]  # the run ends after its steps


def test_a_run_sends_its_events_live_in_order(db):
    with LineageServer() as server:
        seen_during_run: list[list[tuple[str, str]]] = []

        @lk.step("watch", source="normalized", destination="watched")
        def watch(record):
            if record["key"] == "order-101":  # the first record: publish has not begun
                # the run's START and the STARTs of the 3 steps begun so far are sent
                # now, not at the end (the wait is a bound for a slow machine)
                assert server.wait_for(4)
                seen_during_run.append([(e["eventType"], e["job"]["name"]) for e in server.events])
            return record

        pipeline = lk.Pipeline([lk.steps.ingest, lk.steps.normalize, watch, lk.steps.publish])
        with warnings.catch_warnings():
            warnings.simplefilter("error", OpenLineageWarning)
            result = pipeline.run(
                SAMPLE_JSON, db=db, chunk_size=4, progress=False, openlineage=server.url
            )
        received = list(server.events)
    assert set(server.paths) == {"/api/v1/lineage"}
    for event in received:
        validate_event(event)  # the client's own tags facet included
    _check_order(received)
    with lk.connect(db) as store:
        assert _without_client_tags(received) == store.openlineage_events(result.run_id)
    (during,) = seen_during_run
    assert during == [
        ("START", "default"),
        ("START", "default.ingest"),
        ("START", "default.normalize"),
        ("START", "default.watch"),
    ]


def test_a_failed_and_an_interrupted_run_send_fail_and_abort(db, tmp_path):
    @lk.step("explode")
    def explode(record):
        if record["key"] == "order-105":
            raise ValueError("cannot handle order-105")
        return record

    @lk.step("stop")
    def stop(record):
        if record["key"] == "order-110":
            raise KeyboardInterrupt
        return record

    with LineageServer() as server:
        with pytest.raises(lk.StepError):
            lk.Pipeline([lk.steps.ingest, explode]).run(
                SAMPLE_JSON, db=db, fail_fast=True, progress=False, openlineage=server.url
            )
        failed = list(server.events)
        server.events.clear()
        with pytest.raises(KeyboardInterrupt):
            lk.Pipeline([lk.steps.ingest, stop]).run(
                SAMPLE_JSON, db=tmp_path / "b.db", progress=False, openlineage=server.url
            )
        aborted = list(server.events)
    assert [(e["eventType"], e["job"]["name"]) for e in failed][-3:] == [
        ("ABORT", "default.ingest"),
        ("FAIL", "default.explode"),
        ("FAIL", "default"),
    ]
    assert "cannot handle order-105" in failed[-1]["run"]["facets"]["errorMessage"]["message"]
    assert [e["eventType"] for e in aborted] == ["START"] * 3 + ["ABORT"] * 3
    for event in failed + aborted:
        validate_event(event)
    _check_order(failed)
    _check_order(aborted)


def test_a_backend_that_is_down_warns_once_and_the_lineage_is_whole(db):
    url = _dead_url()
    with pytest.warns(OpenLineageWarning) as caught:
        result = lk.run_pipeline(MESSY_JSON, db=db, progress=False, openlineage=url)
    assert len(caught) == 1
    assert "lineage-kit export --run" in str(caught[0].message)
    assert (result.status, result.n_input, result.n_published, result.n_rejected) == (
        "completed_with_errors",
        20,
        12,
        8,
    )
    with lk.connect(db) as store:
        assert store.check().ok
        assert len(store.lineage()) == result.n_entries
        events = store.openlineage_events()
    # ... and the events can be sent once the backend is back
    with LineageServer() as server:
        assert send_events(events, server.url) == len(events) == 8
        assert _without_client_tags(server.events) == events


def test_a_backend_that_never_answers_does_not_stall_the_run(db):
    with LineageServer(hang=True) as server:
        emitter = OpenLineageEmitter(server.url, timeout=0.2)
        with pytest.warns(OpenLineageWarning, match="not all sent"):
            result = lk.run_pipeline(SAMPLE_JSON, db=db, progress=False, openlineage=emitter)
    assert result.status == "completed" and result.n_published == 30


def test_one_emitter_serves_several_runs(db):
    with LineageServer() as server:
        emitter = OpenLineageEmitter(server.url, namespace="team")
        first = lk.run_pipeline(SAMPLE_JSON, db=db, progress=False, openlineage=emitter)
        second = lk.run_pipeline(MESSY_JSON, db=db, progress=False, openlineage=emitter)
        received = list(server.events)
    parents = [e["run"]["runId"] for e in received if e["job"]["name"] == "default"]
    assert parents == [first.run_id, first.run_id, second.run_id, second.run_id]
    assert {e["job"]["namespace"] for e in received} == {"team"}


def test_the_clients_own_configuration_is_used(db, tmp_path, monkeypatch):
    with LineageServer() as server:
        monkeypatch.setenv("OPENLINEAGE_URL", server.url)
        lk.run_pipeline(SAMPLE_JSON, db=db, progress=False, openlineage=True)
        assert len(server.events) == 8
    monkeypatch.delenv("OPENLINEAGE_URL")
    # a client config (here the client's file transport), as in openlineage.yml
    log = tmp_path / "events.jsonl"
    config = {"transport": {"type": "file", "log_file_path": str(log), "append": True}}
    result = lk.run_pipeline(MESSY_JSON, db=db, progress=False, openlineage=config)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    with lk.connect(db) as store:
        assert _without_client_tags(lines) == store.openlineage_events(result.run_id)


def test_cli_run_sends_events_to_a_url(db):
    with LineageServer() as server:
        code = main(
            ["run", str(SAMPLE_JSON), "--db", str(db), "--quiet", "--openlineage-url", server.url],
            out=io.StringIO(),
        )
        assert code == 0
        assert [e["eventType"] for e in server.events] == ["START"] * 4 + ["COMPLETE"] * 4


def test_without_the_extra_a_clear_error_before_anything_is_written(db, monkeypatch):
    monkeypatch.setitem(sys.modules, "openlineage.client", None)  # as if not installed
    with pytest.raises(MissingExtra, match=r'pip install "lineage_kit\[openlineage\]"'):
        lk.run_pipeline(SAMPLE_JSON, db=db, progress=False, openlineage="http://127.0.0.1:1")
    assert not db.exists()
    with pytest.raises(MissingExtra):
        send_events([], "http://127.0.0.1:1")


def test_a_bad_target_is_refused(db):
    with pytest.raises(ValueError, match="http"):
        lk.run_pipeline(SAMPLE_JSON, db=db, progress=False, openlineage="ftp://x")
    with pytest.raises(ValueError, match="not int"):
        lk.run_pipeline(SAMPLE_JSON, db=db, progress=False, openlineage=5)
    assert not db.exists()


def test_a_password_in_the_url_never_reaches_a_warning_or_an_error(db):
    from lineage_kit.errors import LineageKitError

    with LineageServer(status=401) as server:
        url = server.url.replace("http://", "http://me:s3cret@")
        with pytest.warns(OpenLineageWarning) as caught:
            result = lk.run_pipeline(SAMPLE_JSON, db=db, progress=False, openlineage=url)
        (warning,) = caught
        assert "401" in str(warning.message) and "s3cret" not in str(warning.message)
        assert "me:***@" in str(warning.message)
        with lk.connect(db) as store, pytest.raises(LineageKitError) as info:
            send_events(store.openlineage_events(), url)
    assert result.status == "completed"
    assert "401" in str(info.value) and "s3cret" not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_emitting_live_imports_neither_pandas_nor_networkx(tmp_path):
    import subprocess

    from .conftest import ROOT

    log = tmp_path / "events.jsonl"
    code = (
        "import sys, lineage_kit as lk\n"
        f"config = {{'transport': {{'type': 'file', 'log_file_path': {str(log)!r},"
        " 'append': True}}\n"
        f"lk.run_pipeline({str(SAMPLE_JSON)!r}, db={str(tmp_path / 'l.db')!r}, progress=False,"
        " openlineage=config)\n"
        "print(sorted(m for m in ('pandas', 'networkx', 'matplotlib') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    assert len(log.read_text().splitlines()) == 8


def test_a_run_removed_by_an_input_error_aborts_what_it_started(db, tmp_path):
    lines = [json.dumps({"key": f"k{i}", "amount": i}) for i in range(6)]
    lines[4] = '{"key": "k4", "amount": '  # malformed, in the third chunk
    source = tmp_path / "broken.jsonl"
    source.write_text("\n".join(lines) + "\n")
    with LineageServer() as server:
        with pytest.raises(lk.InputError, match=r"broken\.jsonl:5"):
            lk.run_pipeline(source, db=db, chunk_size=2, progress=False, openlineage=server.url)
        received = list(server.events)
    with lk.connect(db) as store:
        assert store.run_rows() == []  # nothing is kept of a run over unreadable input
    assert [(e["eventType"], e["job"]["name"]) for e in received] == [
        ("START", "default"),
        ("START", "default.ingest"),
        ("START", "default.normalize"),
        ("START", "default.publish"),
        ("ABORT", "default.ingest"),
        ("ABORT", "default.normalize"),
        ("ABORT", "default.publish"),
        ("ABORT", "default"),
    ]
    for event in received:
        validate_event(event)
    _check_order(received)
