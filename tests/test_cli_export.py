"""lineage-kit export: every format, to stdout or a file, and its exit codes."""

from __future__ import annotations

import io
import json

import networkx as nx
import pytest
from prov.model import ProvDocument

import lineage_kit as lk
from lineage_kit.cli import main

from .conftest import MESSY_JSON, SAMPLE_JSON
from .lineage_server import LineageServer, _dead_url, _without_client_tags


@pytest.fixture
def two_runs(db):
    first = lk.run_pipeline(SAMPLE_JSON, db=db, progress=False).run_id
    second = lk.run_pipeline(MESSY_JSON, db=db, progress=False).run_id
    return db, first, second


def _export(db, *args: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(["export", "--db", str(db), *args], out=out)
    return code, out.getvalue()


def test_openlineage_json_lines_to_stdout_and_to_a_file(two_runs, tmp_path):
    db, first, second = two_runs
    code, text = _export(db, "--format", "openlineage")
    assert code == 0
    events = [json.loads(line) for line in text.splitlines()]
    with lk.connect(db) as store:
        assert events == store.openlineage_events(second)
        everything = store.openlineage_events("all")
    code, text = _export(db, "--format", "openlineage", "--run", "all", "-o", str(tmp_path / "e"))
    assert (code, text) == (0, f"wrote {tmp_path / 'e'}\n")
    lines = (tmp_path / "e").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == everything
    assert {e["run"]["runId"] for e in everything if "parent" not in e["run"]["facets"]} == {
        first,
        second,
    }
    code, text = _export(db, "--format", "openlineage", "--run", first[:8], "--namespace", "x")
    assert {json.loads(line)["job"]["namespace"] for line in text.splitlines()} == {"x"}


def test_prov_json_prov_n_and_graphml(two_runs, tmp_path):
    db, _first, second = two_runs
    code, text = _export(db, "--format", "prov-json", "--key", "order-101", "--values")
    assert code == 0
    doc = ProvDocument.deserialize(content=text, format="json")
    with lk.connect(db) as store:
        assert doc == store.to_prov(key="order-101", values=True)
        graph = store.graph(key="order-101")
        steps = store.step_graph()
    code, text = _export(db, "--format", "prov-n", "--run", second)
    assert code == 0 and text.startswith("document\n") and text.rstrip().endswith("endDocument")
    path = tmp_path / "chain.graphml"
    assert _export(db, "--format", "graphml", "--key", "order-101", "-o", str(path))[0] == 0
    back = nx.read_graphml(path, node_type=int)
    assert set(back.edges) == set(graph.edges)
    code, text = _export(db, "--format", "graphml", "--graph", "steps")
    back = nx.read_graphml(io.BytesIO(text.encode("utf-8")))
    assert set(back.edges) == set(steps.edges)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--format", "xml"], 2, "invalid choice"),
        ([], 2, "give --format"),
        (["--format", "openlineage", "--key", "order-101"], 2, "--key applies"),
        (["--format", "graphml", "--values"], 2, "--values applies"),
        (["--format", "prov-n", "--graph", "steps"], 2, "--graph steps applies"),
        (["--format", "prov-json", "--openlineage-url", "http://x"], 2, "--format openlineage"),
        (["--format", "prov-json", "-o", "no/such/folder/x.json"], 2, "does not exist"),
        (["--format", "prov-json", "--run", "nope"], 2, "no run matches"),
        (["--format", "prov-json", "--key", "order-999"], 1, "order-999"),
        (["--format", "graphml", "--key", "order-999"], 1, "order-999"),
    ],
)
def test_exit_codes(two_runs, capsys, args, code, message):
    db, _first, _second = two_runs
    assert _export(db, *args)[0] == code
    err = capsys.readouterr().err
    assert message in err
    assert err.strip().splitlines()[-1].startswith("lineage-kit")


def test_a_missing_store_is_exit_2(tmp_path, capsys):
    assert _export(tmp_path / "none.db", "--format", "openlineage")[0] == 2
    assert "none.db" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()


def test_openlineage_url_sends_the_events_of_past_runs(two_runs, capsys):
    db, _first, second = two_runs
    with LineageServer() as server:
        code, text = _export(db, "--openlineage-url", server.url, "--run", "all")
        received = list(server.events)
    assert code == 0
    assert text == f"sent 16 events to {server.url}\n"
    with lk.connect(db) as store:
        assert _without_client_tags(received) == store.openlineage_events("all")
    # a password in the URL is sent (HTTP basic auth) but never printed
    with LineageServer() as server:
        secret = server.url.replace("http://", "http://me:s3cret@")
        code, text = _export(db, "--openlineage-url", secret, "--run", second)
    assert (code, len(server.events)) == (0, 8)
    assert "s3cret" not in text + capsys.readouterr().err
    assert text == f"sent 8 events to {server.url.replace('http://', 'http://me:***@')}\n"
    code, _text = _export(db, "--openlineage-url", _dead_url(), "--run", second)
    assert code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "could not be sent (0 sent before it)" in line
