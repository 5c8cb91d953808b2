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
