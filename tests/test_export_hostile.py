"""Hostile keys and values (quotes, |, spaces, newlines, every Unicode plane, NUL)
export to every format and read back."""

from __future__ import annotations

import io
import json
import re

import networkx as nx
import pytest
from prov.model import ProvDocument

import lineage_kit as lk
from lineage_kit.cli import main
from lineage_kit.export.graphml import xml_text

from .openlineage_schemas import PROV_JSON_SCHEMA, validate_event

# one code point from each of the 17 planes (0: CJK; 1: emoji; 14: a tag; 15, 16: private)
PLANES = [chr(0x4E2D)] + [chr(p * 0x10000 + 0x600) for p in range(1, 17)]
HOSTILE_KEYS = [
    'quote"double',
    "quote'single",
    'triple"""quote',
    "pipe|key",
    "with space",
    " leading and trailing ",
    "line\nfeed",
    "carriage\r\nreturn",
    "tab\there",
    "back\\slash\\",
    "<xml & 'markup'>",
    "%%percent%%",
    *[f"plane{p}-{c}" for p, c in enumerate(PLANES)],
    "".join(PLANES),
]
NUL_KEY = "nul\x00key"  # refused by the source (invalid_key): an entry without a key


def _records() -> list[dict]:
    rows = [
        {"key": k, " Amount ": 1.5, "Customer Name": f"name {k}", "note": "nul\x00inside"}
        for k in HOSTILE_KEYS
    ]
    return [*rows, {"key": NUL_KEY, " Amount ": 1.0}]


@pytest.fixture
def hostile(db):
    result = lk.run_pipeline(_records(), db=db, progress=False)
    assert (result.n_published, result.n_rejected) == (len(HOSTILE_KEYS), 1)
    with lk.connect(db) as store:
        yield store


def test_openlineage_events_of_hostile_input_are_valid_json_lines(hostile, db):
    out = io.StringIO()
    assert main(["export", "--db", str(db), "--format", "openlineage"], out=out) == 0
    lines = out.getvalue().splitlines()
    events = [json.loads(line) for line in lines]
    assert events == hostile.openlineage_events()
    for event in events:
        validate_event(event)


def test_prov_json_reads_back_every_hostile_key_and_value(hostile):
    import jsonschema

    doc = hostile.to_prov(values=True)
    text = doc.serialize(format="json")
    jsonschema.Draft4Validator(json.loads(PROV_JSON_SCHEMA.read_text())).validate(json.loads(text))
    back = ProvDocument.deserialize(content=text, format="json")
    assert back == doc
    keys, values = [], []
    for record in back.get_records():
        for name, value in record.attributes:
            if str(name) == "lk:key":
                keys.append(value)
            if str(name) == "lk:value":
                values.append(json.loads(value))
    assert sorted(set(keys)) == sorted(HOSTILE_KEYS)
    assert {v.get("note") for v in values if isinstance(v, dict)} >= {"nul\x00inside"}
    # one record's lineage by key, whatever the key holds
    for key in HOSTILE_KEYS:
        one = hostile.to_prov(key=key)
        assert {v for r in one.get_records() for n, v in r.attributes if str(n) == "lk:key"} == {
            key
        }


def _provn_strings(text: str) -> list[str]:
    """The lk:key string literals of a PROV-N document, unescaped (PROV-N grammar)."""
    found = re.findall(r'lk:key=(""".*?(?<!\\)"""|"(?:[^"\\]|\\.)*")', text, flags=re.S)
    out = []
    for literal in found:
        body = literal[3:-3] if literal.startswith('"""') else literal[1:-1]
        out.append(re.sub(r"\\(.)", lambda m: {"r": "\r", "n": "\n"}.get(m[1], m[1]), body))
    return out


def test_prov_n_holds_every_hostile_key(hostile, db):
    out = io.StringIO()
    assert main(["export", "--db", str(db), "--format", "prov-n"], out=out) == 0
    assert sorted(set(_provn_strings(out.getvalue()))) == sorted(HOSTILE_KEYS)


def test_graphml_reads_back_every_hostile_key(hostile, db, tmp_path):
    path = tmp_path / "run.graphml"
    assert main(["export", "--db", str(db), "--format", "graphml", "-o", str(path)]) == 0
    back = nx.read_graphml(path, node_type=int)
    keys = {a.get("key") for _n, a in back.nodes(data=True)}
    # XML readers turn a carriage return into a newline: it is written as \u000d
    assert [k for k in HOSTILE_KEYS if xml_text(k) != k] == ["carriage\r\nreturn"]
    assert xml_text("carriage\r\nreturn") == "carriage\\u000d\nreturn"
    assert keys == {*map(xml_text, HOSTILE_KEYS), None}  # the refused NUL key has no key
    graph = hostile.graph()
    assert set(back.edges) == set(graph.edges)
    (refused,) = [a for _n, a in back.nodes(data=True) if "key" not in a]
    assert refused["reason"] == "invalid_key"
    for key in HOSTILE_KEYS:
        lk.write_graphml(hostile.graph(key=key), tmp_path / "k.graphml")
        one = nx.read_graphml(tmp_path / "k.graphml", node_type=int)
        assert {a["key"] for _n, a in one.nodes(data=True)} == {xml_text(key)}
        notes = {json.loads(a["value"]).get("note") for _n, a in one.nodes(data=True)}
        # a value is JSON text, which escapes NUL itself: it reads back exactly
        assert notes == {"nul\x00inside"}
