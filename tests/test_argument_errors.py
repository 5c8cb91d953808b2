"""Wrong arguments raise lineage_kit's own errors, saying what was expected (review
items 8, 9 and 10). ``InvalidArgument`` is a ``TypeError`` and a ``ValueError`` too."""

from __future__ import annotations

import pytest

import lineage_kit as lk
from lineage_kit.cli import main

from .conftest import SAMPLE_JSON

SECRET = "SUPERSECRET"


def test_a_bad_openlineage_url_is_refused_without_its_password(db):
    with pytest.raises(lk.InvalidArgument) as caught:
        lk.run_pipeline(SAMPLE_JSON, db=db, openlineage=f"htp://bob:{SECRET}@x", progress=False)
    assert SECRET not in str(caught.value)
    assert "http:// or https://" in str(caught.value) and "bob:***@x" in str(caught.value)
    assert isinstance(caught.value, ValueError) and caught.value.argument == "openlineage"


def test_the_cli_refuses_a_bad_openlineage_url_without_its_password(db, capsys):
    code = main(["run", str(SAMPLE_JSON), "--db", str(db), f"--openlineage-url=htp://b:{SECRET}@x"])
    err = capsys.readouterr().err
    assert code == 2 and SECRET not in err and "http:// or https://" in err
    assert len(err.strip().splitlines()) == 1


def _wrong(call, *words):
    """``call()`` raises InvalidArgument (a TypeError and a ValueError) naming ``words``."""
    with pytest.raises(lk.InvalidArgument) as caught:
        call()
    assert isinstance(caught.value, TypeError) and isinstance(caught.value, ValueError)
    for word in words:
        assert word in str(caught.value)
    return caught.value


def test_wrong_arguments_of_the_store_say_what_was_expected(sample_store):
    store = sample_store
    error = _wrong(lambda: store.trace("order-101", run=123), "run=", "int 123", "'latest'")
    assert error.argument == "run"
    _wrong(lambda: store.lineage(step="nope"), "'nope'", "not a step")
    _wrong(lambda: store.records(step="nope"), "'nope'", "not a step")
    entry = int(store.lineage()["entry_id"].iloc[0])
    _wrong(lambda: store.upstream(entry, depth=-1), "depth", "-1")
    _wrong(lambda: store.check(extra=[1]), "callable")


def test_wrong_arguments_elsewhere_say_what_was_expected(sample_store, store_db, tmp_path):
    _wrong(
        lambda: lk.run_pipeline(SAMPLE_JSON, db=store_db, key=5, progress=False), "key=", "int 5"
    )
    _wrong(lambda: lk.Pipeline([]), "at least one step")
    _wrong(lambda: lk.plot_runs(sample_store, last=0), "last", "0")
    _wrong(lambda: lk.write_graphml(None, tmp_path / "g.graphml"), "networkx graph", "NoneType")
    assert not (tmp_path / "g.graphml").exists()


def test_registering_a_check_name_twice_is_an_invalid_argument():
    def mine(store, run_ids):
        return []

    lk.register_check("twice")(mine)
    try:
        _wrong(lambda: lk.register_check("twice")(mine), "'twice'", "replace=True")
    finally:
        lk.unregister_check("twice")


@pytest.mark.parametrize("given", ["ingest,normalize,publish", ["ingest", "normalize", "publish"]])
def test_expected_steps_as_one_text_is_a_comma_separated_list(sample_store, given):
    # review item 8: a text is not a sequence of letters
    assert sample_store.check(expected_steps=given).ok
    report = sample_store.check(expected_steps="ingest")
    assert [v for v in report.violations["code"]] == ["unexpected_steps"]
    assert "'i'" not in report.violations["message"].iloc[0]
    _wrong(lambda: sample_store.check(expected_steps=" , "), "expected_steps=")
