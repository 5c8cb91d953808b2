"""The storage seam: ids reserved per chunk, errors that carry data, enums that
store plain text, one transaction helper, migrations split by complete statements."""

from __future__ import annotations

import json
import sqlite3

import pytest

import lineage_kit as lk
from lineage_kit.cli import main
from lineage_kit.model import EntryStatus, RunStatus, StepKind
from lineage_kit.store import open_backend
from lineage_kit.store.connection import statements

from .conftest import SAMPLE_JSON


def test_a_chunk_gets_the_ids_the_backend_reserved(db):
    lk.run_pipeline(SAMPLE_JSON, db=db, progress=False)
    other = open_backend(db)  # another writer takes a range first
    taken = other.reserve_ids(1000)
    other.close()
    assert taken == 91  # after the 90 entries of the first run
    result = lk.run_pipeline(SAMPLE_JSON, db=db, progress=False)
    with lk.connect(db) as store:
        ids = store.lineage(result.run_id)["entry_id"].tolist()
        assert store.check("all").ok
    assert ids == list(range(1091, 1181))  # past the reserved range, in order


def test_concurrent_reservations_are_disjoint(db):
    lk.run_pipeline(SAMPLE_JSON, db=db, progress=False)
    a, b = open_backend(db), open_backend(db)
    try:
        ranges = [(x.reserve_ids(n), n) for x, n in ((a, 10), (b, 5), (a, 1), (b, 0))]
    finally:
        a.close()
        b.close()
    assert ranges == [(91, 10), (101, 5), (106, 1), (107, 0)]


def test_reservations_skip_rows_written_around_the_counter(db):
    lk.run_pipeline(SAMPLE_JSON, db=db, progress=False)
    raw = sqlite3.connect(db)
    raw.execute("UPDATE entry_ids SET next_id = 5")  # a counter left behind
    raw.commit()
    raw.close()
    with open_backend(db) as backend:
        assert backend.reserve_ids(3) == 91  # never an id that is already used


def test_a_closed_store_raises_a_lineage_kit_error(sample_store):
    sample_store.close()
    with pytest.raises(lk.StoreClosed) as info:
        sample_store.runs()
    assert isinstance(info.value, lk.LineageKitError)
    assert info.value.location == str(sample_store.path)
    assert "closed" in repr(sample_store)


def test_registering_a_check_twice_needs_replace(sample_store):
    def first(store, run_ids):
        return []

    def second(store, run_ids):
        return [{"message": "always"}]

    lk.register_check("twice")(first)
    try:
        with pytest.raises(ValueError, match="registered already"):
            lk.register_check("twice")(second)
        assert sample_store.check().ok  # the first one still runs
        lk.register_check("twice", replace=True)(second)
        assert list(sample_store.check().violations["code"]) == ["twice"]
    finally:
        lk.unregister_check("twice")


def test_integrity_error_carries_the_report(sample_store):
    report = sample_store.check(expected_steps=["ingest", "publish"])
    with pytest.raises(lk.IntegrityError) as info:
        report.raise_if_failed()
    assert info.value.report is report
    assert list(info.value.report.violations["code"]) == ["unexpected_steps"]


def test_check_json_prints_the_report_as_it_serialises_itself(sample_store, capsys):
    code = main(["check", "--db", str(sample_store.path), "--json", "--expected-steps", "a"])
    printed = json.loads(capsys.readouterr().out)
    report = sample_store.check(expected_steps=["a"])
    assert code == 1
    assert printed == json.loads(json.dumps(report.to_dict()))
    assert printed["summary"] == {"unexpected_steps": {"severity": "error", "count": 1}}
    assert printed["violations"][0]["entry_id"] is None


def test_enums_store_and_compare_as_their_text(sample_store):
    con = sample_store.backend.con
    stored = con.execute("SELECT status, typeof(status) FROM runs").fetchall()
    assert stored == [("completed", "text")]
    kinds = {row[0] for row in con.execute("SELECT DISTINCT kind FROM steps")}
    assert kinds == {"map"} == {StepKind.MAP}
    (status,) = con.execute("SELECT DISTINCT status FROM lineage").fetchone()
    assert status == EntryStatus.OK and RunStatus(stored[0][0]) is RunStatus.COMPLETED
    assert lk.step("s")(lambda r: r).kind is StepKind.MAP


def test_migrations_split_on_complete_statements_only():
    script = "CREATE TABLE t (x TEXT DEFAULT 'a;b');\nINSERT INTO t VALUES ('c;d')"
    assert statements(script) == [
        "CREATE TABLE t (x TEXT DEFAULT 'a;b');",
        "INSERT INTO t VALUES ('c;d');",
    ]
    with pytest.raises(ValueError, match="incomplete"):
        statements("CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1;")


def test_a_failed_write_is_rolled_back_whole(db):
    from lineage_kit.store.transaction import transaction

    lk.run_pipeline(SAMPLE_JSON, db=db, progress=False)
    with open_backend(db) as backend:
        con = backend.con
        with pytest.raises(sqlite3.IntegrityError), transaction(con):
            con.execute("DELETE FROM vals")
            con.execute("INSERT INTO runs (run_id) VALUES (NULL)")  # NOT NULL: fails
        # 30 records' ingest and normalize values; publish shares normalize's
        assert con.execute("SELECT count(*) FROM vals").fetchone() == (60,)
