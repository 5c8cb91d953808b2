"""W3C PROV export: valid PROV-JSON, read back by the prov package, and the same
entries, derivations and times as the store."""

from __future__ import annotations

import json
import sys

import jsonschema
import pytest
from prov.model import ProvActivity, ProvDerivation, ProvDocument, ProvEntity

import lineage_kit as lk
from lineage_kit.errors import ExportTooLarge, MissingExtra
from lineage_kit.export.prov import LK_NAMESPACE, prov_json

from .export_runs import KINDS, make_run
from .openlineage_schemas import PROV_JSON_SCHEMA

PROV_SCHEMA = json.loads(PROV_JSON_SCHEMA.read_text(encoding="utf-8"))
ENTRY = f"{LK_NAMESPACE}Entry"


def _read_back(doc: ProvDocument) -> tuple[dict, ProvDocument]:
    text = prov_json(doc)
    data = json.loads(text)
    jsonschema.Draft4Validator(PROV_SCHEMA).validate(data)
    back = ProvDocument.deserialize(content=text, format="json")
    assert back == doc
    return data, back


def _entries(doc: ProvDocument) -> list[ProvEntity]:
    return [
        r
        for r in doc.get_records(ProvEntity)
        if any(v.uri == ENTRY for v in r.get_attribute("prov:type"))
    ]


def _attr(record, name: str):
    (value,) = record.get_attribute(name)
    return value


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "running"])
def test_prov_json_of_every_kind_of_run_validates_and_counts_match(kind, db):
    run_id = make_run(kind, db)
    with lk.connect(db) as store:
        doc = store.to_prov(run_id)
        lineage = store.lineage(run_id)
        links = int(lineage["n_parents"].sum())
    _data, back = _read_back(doc)
    entries = _entries(back)
    assert len(entries) == len(lineage)
    assert len(list(back.get_records(ProvDerivation))) == links
    by_id = {int(_attr(e, "lk:entryId")): e for e in entries}
    for row in lineage.itertuples():
        entity = by_id[row.entry_id]
        assert _attr(entity, "lk:status") == row.status
        assert _attr(entity, "lk:step") == row.step
        if isinstance(row.key, str):
            assert _attr(entity, "lk:key") == row.key
        if isinstance(row.reason, str):
            assert _attr(entity, "lk:reason") == row.reason
        assert not entity.get_attribute("lk:value")  # values only when asked


def test_merges_and_splits_derive_from_several(db, tmp_path):
    run_id = make_run("merge", db)
    with lk.connect(db) as store:
        doc = store.to_prov(run_id)
    derived: dict = {}
    for d in doc.get_records(ProvDerivation):
        attrs = dict(d.formal_attributes)
        derived.setdefault(attrs[_q(doc, "prov:generatedEntity")], []).append(
            attrs[_q(doc, "prov:usedEntity")]
        )
    # records(14): customers c0..c6 each merged from two orders
    assert sorted(len(v) for v in derived.values()).count(2) == 7
    run_id = make_run("split", tmp_path / "s.db")
    with lk.connect(tmp_path / "s.db") as store:
        doc = store.to_prov(run_id)
    children: dict = {}
    for d in doc.get_records(ProvDerivation):
        attrs = dict(d.formal_attributes)
        children.setdefault(attrs[_q(doc, "prov:usedEntity")], []).append(d)
    assert sorted(len(v) for v in children.values() if len(v) > 1) == [2, 3]


def _q(doc: ProvDocument, name: str):
    from prov.constants import PROV

    return PROV[name.split(":")[1]]


def test_steps_and_the_run_are_activities_with_times_and_an_agent(sample_store):
    doc = sample_store.to_prov()
    steps = sample_store.steps()
    activities = {str(a.identifier).split(":")[1]: a for a in doc.get_records(ProvActivity)}
    assert set(activities) == {"run", "step-0", "step-1", "step-2"}
    for row in steps.itertuples():
        act = activities[f"step-{row.position}"]
        assert act.get_startTime() == row.started_at.to_pydatetime()
        assert act.get_endTime() == row.finished_at.to_pydatetime()
        assert _attr(act, "lk:name") == row.name
    (run,) = sample_store.run_rows()
    assert activities["run"].get_startTime().isoformat() == run["started_at"]
    provn = doc.get_provn()
    assert "prov:type='prov:SoftwareAgent'" in provn
    assert "prov:type='prov:Plan'" in provn
    assert provn.count("wasStartedBy(") == 3
    assert provn.count("wasAssociatedWith(") == 1


def test_one_key_exports_its_upstream_and_downstream_with_values(db):
    make_run("merge", db)
    with lk.connect(db) as store:
        doc = store.to_prov(key="c1", values=True)
        graph = store.graph(key="c1")
    entries = _entries(doc)
    assert {int(_attr(e, "lk:entryId")) for e in entries} == set(graph.nodes)
    assert {_attr(e, "lk:key") for e in entries} == {"k1", "k8", "c1"}
    merged = next(
        e for e in entries if _attr(e, "lk:key") == "c1" and _attr(e, "lk:step") == "by_customer"
    )
    value = json.loads(_attr(merged, "lk:value"))
    assert value == {"customer name": "c1", "amount": 9.0, "orders": 2}  # k1 + k8


def test_an_unknown_key_and_too_big_a_document_are_refused(sample_store):
    with pytest.raises(lk.KeyNotFound):
        sample_store.to_prov(key="no-such-key")
    from lineage_kit.export.prov import to_prov

    with pytest.raises(ExportTooLarge, match="key=") as info:
        to_prov(sample_store.backend, max_entries=89)
    assert (info.value.n_entries, info.value.limit) == (90, 89)
    assert len(_entries(to_prov(sample_store.backend, max_entries=90))) == 90


def test_without_the_extra_a_clear_error(sample_store, monkeypatch):
    monkeypatch.setitem(sys.modules, "prov.model", None)
    with pytest.raises(MissingExtra, match=r'pip install "lineage_kit\[prov\]"'):
        sample_store.to_prov()
