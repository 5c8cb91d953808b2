"""A v2 store written by the released code (tests/fixtures/make_store_v2.py, commit
ea53b1e) migrates to v4 in place and then reads and checks exactly as the v2 code
read it before (tests/fixtures/store_v2_expected.json); readers that cannot
migrate it read it as it is; a store newer than the code is refused unchanged."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

import lineage_kit as lk
from lineage_kit.store import SCHEMA_VERSION

from .conftest import sha256, unwritable
from .fixtures.make_store_v2 import frame_records

FIXTURES = Path(__file__).resolve().parent / "fixtures"
EXPECTED = json.loads((FIXTURES / "store_v2_expected.json").read_text())


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "old" / "store_v2.db"
    target.parent.mkdir()
    shutil.copyfile(FIXTURES / "store_v2.db", target)
    return target


def _same(old: list[dict], new: list[dict]) -> None:
    """Every row and column the v2 code read is read alike now (later columns aside)."""
    assert len(new) == len(old)
    for before, after in zip(old, new, strict=True):
        assert {c: after.get(c) for c in before} == before


def _assert_reads_as_before(store: lk.LineageStore) -> None:
    runs = EXPECTED["runs"]
    for name, per in EXPECTED["per_run"].items():
        run_id = runs[name]
        _same(per["lineage"], frame_records(store.lineage(run_id)))
        for key, rows in per["trace"].items():
            _same(rows, frame_records(store.trace(key, run_id)))
        for key, rows in per["changes"].items():
            _same(rows, frame_records(store.changes(key, run_id)))
    _same(
        EXPECTED["compare_runs"]["fan"],
        frame_records(store.compare_runs(runs["fan1"], runs["fan2"])),
    )
    _same(
        EXPECTED["compare_runs"]["default_messy"],
        frame_records(store.compare_runs(runs["default"], runs["messy"])),
    )
    report = store.check("all")
    assert report.ok and frame_records(report.violations) == EXPECTED["check"] == []


def test_the_fixture_is_a_v2_store_of_four_runs():
    raw = sqlite3.connect(f"{(FIXTURES / 'store_v2.db').as_uri()}?mode=ro", uri=True)
    try:
        assert raw.execute("PRAGMA user_version").fetchone() == (2,)
        assert raw.execute("SELECT count(*) FROM runs").fetchone() == (4,)
        # the merge and the split: links with several parents, keys made by a split
        assert raw.execute(
            "SELECT count(*) FROM (SELECT child_id FROM parents GROUP BY child_id "
            "HAVING count(*) > 1)"
        ).fetchone()[0]
        assert raw.execute("SELECT count(*) FROM lineage WHERE record_key = 'o1/x'").fetchone()
    finally:
        raw.close()


def test_a_v2_store_migrates_in_place_and_reads_and_checks_as_before(tmp_path):
    db = _copy(tmp_path)
    with lk.connect(db) as store:
        assert store.schema_version == SCHEMA_VERSION == 4
        _assert_reads_as_before(store)
    # the migrated store takes new runs, which check clean beside the old ones
    lk.run_pipeline(FIXTURES.parent.parent / "data" / "sample_input.json", db=db, progress=False)
    with lk.connect(db) as store:
        assert store.check("all").ok
        assert len(store.runs()) == 5


def test_the_migration_keeps_every_row_and_timestamp(tmp_path):
    db = _copy(tmp_path)
    raw = sqlite3.connect(db)
    before = {
        table: raw.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
        for table in ("lineage", "parents", "records")
    }
    raw.close()
    with lk.connect(db):
        pass
    raw = sqlite3.connect(db)
    try:
        # the views give v3's columns, row for row
        for table, rows in before.items():
            assert raw.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall() == rows
        # identity steps' values were stored once per entry by v2: nothing is shared yet
        assert raw.execute("SELECT count(*) FROM vals").fetchone()[0] == len(before["records"])
        tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"entries", "vals", "extra_parents", "chunks", "runs", "steps"} <= tables
    finally:
        raw.close()


def test_a_tampered_value_is_caught_after_the_migration(tmp_path):
    db = _copy(tmp_path)
    with lk.connect(db):
        pass
    raw = sqlite3.connect(db)
    (entry,) = raw.execute(
        "SELECT entry_id FROM lineage WHERE record_key = 'order-101' AND position = 1 "
        "AND run_id = ?",
        (EXPECTED["runs"]["default"],),
    ).fetchone()
    raw.execute("UPDATE vals SET json = '{\"amount\": 0}' WHERE value_id = ?", (entry,))
    raw.commit()
    raw.close()
    with lk.connect(db) as store:
        violations = store.check("all").violations
    assert list(violations["code"]) == ["hash_mismatch"]
    assert list(violations["entry_id"]) == [entry]


def test_an_unwritable_v2_store_is_read_as_it_is(tmp_path):
    db = _copy(tmp_path)
    before = sha256(db)
    with unwritable(db, db.parent), lk.connect(db) as store:
        assert store.schema_version == 2
        _assert_reads_as_before(store)
    assert sha256(db) == before
    assert sorted(p.name for p in db.parent.iterdir()) == ["store_v2.db"]


def test_a_store_newer_than_the_code_is_refused_unchanged(tmp_path):
    db = _copy(tmp_path)
    with lk.connect(db):
        pass  # now v4
    raw = sqlite3.connect(db)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.commit()
    raw.close()
    before = sha256(db)
    for opener in (lk.connect, lambda p: lk.LineageStore(p)):
        with pytest.raises(lk.SchemaVersionError, match="newer than this lineage_kit"):
            opener(db)
    with pytest.raises(lk.SchemaVersionError):
        lk.run_pipeline(FIXTURES.parent.parent / "data" / "sample_input.json", db=db)
    assert sha256(db) == before
