"""Integrity checks: every check finds exactly the fault planted with plain SQL.

Each test builds a clean store with the real pipeline, asserts it checks clean,
corrupts a copy the way a real fault would (raw sqlite3, foreign keys off) and
asserts that exactly the expected code is reported, at the right record and entry.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

import lineage_kit as lk
from lineage_kit.checks import CODES, VIOLATION_COLUMNS
from lineage_kit.values import value_hash, value_hash_bytes

from .check_data import (
    KEY,
    MERGE_STEPS,
    RECOUNT,
    SAMPLE_JSON,
    SPLIT_STEPS,
    _build,
    _check,
    _copy,
    _corrupt,
    _dead_pid,
    _delete_entry,
    _entry,
    _link,
    _only,
    _restamp,
    _unlink,
)

# ------------------------------------------------------------------------ helpers


@pytest.fixture(scope="module")
def clean_default(tmp_path_factory) -> Path:
    return _build(tmp_path_factory.mktemp("default") / "clean.db")


@pytest.fixture(scope="module")
def clean_split(tmp_path_factory) -> Path:
    return _build(tmp_path_factory.mktemp("split") / "clean.db", steps=SPLIT_STEPS)


def test_sample_store_checks_clean(sample_store):
    report = sample_store.check()
    assert report.ok
    assert report.violations.empty
    assert list(report.violations.columns) == list(VIOLATION_COLUMNS)
    assert report.summary().empty


def test_messy_store_checks_clean(messy_store):
    # 8 records are rejected (bad keys, duplicates, field collisions): outcomes, not faults.
    run = messy_store.run_rows()[0]
    assert run["n_rejected"] == 8
    report = messy_store.check()
    assert report.violations.empty, report.violations.to_string()


def test_split_and_merge_pipelines_check_clean(clean_split, tmp_path):
    # Split children and merge outputs change keys legitimately.
    assert _check(clean_split).violations.empty
    merged = _build(tmp_path / "merge.db", steps=MERGE_STEPS)
    report = _check(merged)
    assert report.violations.empty, report.violations.to_string()


def test_value_hash_bytes_matches_the_pipeline_hash():
    for text in ['{"a":1}', '{"name":"Zoë 日本"}', "[]", '"\\ud800"']:
        assert value_hash_bytes(text.encode("utf-8")) == value_hash(text)


# ---------------------------------------------------------- one test per code


@pytest.mark.parametrize(
    ("deleted", "reported", "code"),
    [
        # split child #2's chain stops at explode: its publish entry is gone
        ("publish", "explode", "incomplete_chain"),
        # the split child is lost; order-110 still continues through #1, #3, #4
        ("explode", "publish", "missing_parent"),
    ],
)
def test_a_split_child_losing_an_entry(clean_split, tmp_path, deleted, reported, code):
    db = _copy(clean_split, tmp_path)
    at = _entry(db, f"{KEY}#2", reported)
    _corrupt(db, *_delete_entry(_entry(db, f"{KEY}#2", deleted)))
    v = _only(_check(db), code)
    assert (v.record_key, v.entry_id) == (f"{KEY}#2", at)
    assert f"'{reported}'" in v.message  # the step of the entry reported


def test_incomplete_chain_in_a_map_only_run_also_breaks_its_counts(clean_default, tmp_path):
    db = _copy(clean_default, tmp_path)
    normalized = _entry(db, KEY, "normalize")
    _corrupt(db, *_delete_entry(_entry(db, KEY, "publish")))
    v = _check(db).violations
    assert sorted(v["code"]) == ["counts_mismatch", "incomplete_chain"]
    row = v[v["code"] == "incomplete_chain"].iloc[0]
    assert (row.record_key, row.entry_id) == (KEY, normalized)


def test_chain_gap(clean_default, tmp_path):
    db = _copy(clean_default, tmp_path)
    ingest, publish = _entry(db, KEY, "ingest"), _entry(db, KEY, "publish")
    _corrupt(
        db,
        *_delete_entry(_entry(db, KEY, "normalize")),
        *_link(publish, ingest),
    )
    v = _only(_check(db), "chain_gap")
    assert (v.record_key, v.entry_id) == (KEY, publish)


def test_a_lost_link_shows_at_both_ends(clean_default, tmp_path):
    db = _copy(clean_default, tmp_path)
    normalized, publish = _entry(db, KEY, "normalize"), _entry(db, KEY, "publish")
    _corrupt(db, *_unlink(publish))
    v = _check(db).violations.set_index("code")
    assert sorted(v.index) == ["incomplete_chain", "missing_parent"]
    assert v.loc["incomplete_chain", "entry_id"] == normalized
    assert v.loc["missing_parent", "entry_id"] == publish


def test_orphan_parent(clean_default, tmp_path):
    db = _copy(clean_default, tmp_path)
    publish = _entry(db, KEY, "publish")
    _corrupt(db, *_link(publish, 999_999))
    v = _only(_check(db), "orphan_parent")
    assert (v.record_key, v.entry_id) == (KEY, publish)
    assert "999999" in v.message


def test_orphan_parent_from_a_missing_child(clean_default, tmp_path):
    db = _copy(clean_default, tmp_path)
    normalized = _entry(db, KEY, "normalize")
    _corrupt(db, *_link(999_999, normalized))
    v = _only(_check(db), "orphan_parent")
    assert (v.record_key, v.entry_id) == (KEY, normalized)


def test_cross_run_parent(clean_default, tmp_path):
    db = _copy(clean_default, tmp_path)
    old_ingest = _entry(db, KEY, "ingest")
    _build(db)  # a second, clean run
    assert _check(db, run="all").violations.empty
    new_normalize = _entry(db, KEY, "normalize")
    _corrupt(db, *_link(new_normalize, old_ingest))
    report = _check(db)
    v = _only(report, "cross_run_parent")
    assert (v.run_id, v.record_key, v.entry_id) == (report.run_ids[0], KEY, new_normalize)
    assert list(_check(db, run="all").violations["code"]) == ["cross_run_parent"]


def test_cycle(clean_default, tmp_path):
    db = _copy(clean_default, tmp_path)
    publish = _entry(db, KEY, "publish")
    _corrupt(db, *_link(publish, publish))
    v = _only(_check(db), "cycle")
    assert (v.record_key, v.entry_id) == (KEY, publish)


def test_a_longer_cycle_is_found_at_the_link_that_closes_it(clean_default, tmp_path):
    db = _copy(clean_default, tmp_path)
    ingest, publish = _entry(db, KEY, "ingest"), _entry(db, KEY, "publish")
    _corrupt(db, *_link(ingest, publish))
    v = _check(db).violations
    cycles = v[v["code"] == "cycle"]
    assert list(cycles["entry_id"]) == [ingest]
    # The closing link also runs backwards through the steps.
    assert set(v["code"]) == {"cycle", "step_order"}


def test_step_order_created_after_child(clean_default, tmp_path):
    db = _copy(clean_default, tmp_path)
    normalized, publish = _entry(db, KEY, "normalize"), _entry(db, KEY, "publish")
    _corrupt(db, *_restamp(normalized, "2999-01-01T00:00:00.000000+00:00"))
    v = _only(_check(db), "step_order")
    assert (v.record_key, v.entry_id) == (KEY, publish)
    assert "created" in v.message


def test_step_order_parent_at_a_later_step(clean_default, tmp_path):
    db = _copy(clean_default, tmp_path)
    ingest, normalized = _entry(db, KEY, "ingest"), _entry(db, KEY, "normalize")
    # The normalize entry claims to be an ingest entry: its parent is now at the same step.
    _corrupt(db, ("UPDATE entries SET position = 0 WHERE entry_id = ?", normalized))
    v = _check(db).violations
    order = v[v["code"] == "step_order"]
    assert list(order["entry_id"]) == [normalized]
    assert str(ingest) in order.iloc[0]["message"]


def test_duplicate_processing(clean_split, tmp_path):
    db = _copy(clean_split, tmp_path)
    split_child = _entry(db, f"{KEY}#1", "explode")
    publish = _entry(db, f"{KEY}#1", "publish")
    con = sqlite3.connect(db)
    (value,) = con.execute("SELECT value FROM records WHERE entry_id = ?", (publish,)).fetchone()
    (run_no, position, created) = con.execute(
        "SELECT e.run_no, e.position, c.written_at FROM entries e, chunks c "
        "WHERE e.entry_id = ? AND c.chunk_no = 0",
        (publish,),
    ).fetchone()
    con.close()
    # The same record published a second time (a retried chunk that was not rolled back).
    _corrupt(
        db,
        (
            "INSERT INTO entries (entry_id, run_no, position, record_key, status, parent_id,"
            " value_id) VALUES (900000, ?, ?, ?, 0, ?, 900000)",
            run_no,
            position,
            f"{KEY}#1",
            split_child,
        ),
        (
            "INSERT INTO vals (value_id, hash, json) VALUES (900000, ?, ?)",
            bytes.fromhex(value_hash(value)),
            value,
        ),
        (
            "INSERT INTO chunks (run_no, chunk_no, first_entry, last_entry, counts, written_at)"
            " VALUES (?, 99, 900000, 900000, '[]', ?)",
            run_no,
            created,
        ),
        (RECOUNT, 900000),
    )
    v = _only(_check(db), "duplicate_processing")
    assert (v.record_key, v.entry_id) == (f"{KEY}#1", 900000)
    assert str(publish) in v.message


def test_rejected_duplicate_keys_are_not_duplicate_processing(db):
    rows = [{"key": "a", "x": 1}, {"key": "b", "x": 2}, {"key": "a", "x": 3}]
    result = lk.run_pipeline(rows, db=db, progress=False)
    assert result.n_rejected == 1
    assert _check(db).violations.empty


def test_key_changed(clean_default, tmp_path):
    db = _copy(clean_default, tmp_path)
    publish = _entry(db, KEY, "publish")
    _corrupt(db, ("UPDATE entries SET record_key = 'order-999' WHERE entry_id = ?", publish))
    v = _only(_check(db), "key_changed")
    assert (v.record_key, v.entry_id) == ("order-999", publish)
    assert KEY in v.message


@pytest.mark.parametrize(
    ("corruption", "code", "step"),
    [
        ("DELETE FROM vals WHERE value_id = ?", "missing_value", "ingest"),
        (
            "UPDATE vals SET json = '{\"amount\": 0}' WHERE value_id = ?",
            "hash_mismatch",
            "normalize",
        ),
    ],
)
def test_a_broken_value_is_reported_at_its_entry(clean_default, tmp_path, corruption, code, step):
    db = _copy(clean_default, tmp_path)
    entry = _entry(db, KEY, step)
    _corrupt(db, (corruption, entry))
    v = _only(_check(db), code)
    assert (v.record_key, v.entry_id) == (KEY, entry)


def test_a_lost_shared_value_is_missing_at_every_entry_that_had_it(clean_default, tmp_path):
    # publish stored no value of its own (it did not change normalize's): losing
    # normalize's value loses both entries' values, and both are reported
    db = _copy(clean_default, tmp_path)
    normalized, publish = _entry(db, KEY, "normalize"), _entry(db, KEY, "publish")
    _corrupt(db, ("DELETE FROM vals WHERE value_id = ?", normalized))
    v = _check(db).violations
    assert list(zip(v["code"], v["entry_id"], strict=True)) == [
        ("missing_value", normalized),
        ("missing_value", publish),
    ]


def test_orphan_value(clean_default, tmp_path):
    db = _copy(clean_default, tmp_path)
    _corrupt(db, ("INSERT INTO vals (value_id, json) VALUES (?, '{}')", 999_999))
    v = _only(_check(db), "orphan_value")
    assert v.entry_id == 999_999
    assert v.run_id is None and v.record_key is None


@pytest.mark.parametrize("how", ["stored", "writer_gone"])
def test_run_interrupted(clean_default, tmp_path, how):
    db = _copy(clean_default, tmp_path)
    if how == "stored":
        _corrupt(db, ("UPDATE runs SET status = 'interrupted'",))
    else:
        _corrupt(db, ("UPDATE runs SET status = 'running', writer_pid = ?", _dead_pid()))
    report = _check(db)
    v = _only(report, "run_interrupted")
    assert v.run_id == report.run_ids[0]
    assert pd.isna(v.entry_id) and v.record_key is None
    assert not report.ok


def test_a_running_run_with_a_live_writer_is_not_a_violation(clean_default, tmp_path):
    db = _copy(clean_default, tmp_path)
    _corrupt(db, ("UPDATE runs SET status = 'running', writer_pid = ?", os.getpid()))
    assert _check(db).violations.empty


def test_run_failed_is_one_warning_not_many_incomplete_chains(db):
    @lk.step("boom")
    def boom(record: dict) -> dict:
        if record["key"] == "order-105":
            raise RuntimeError("boom")
        return record

    with pytest.raises(lk.StepError):
        lk.run_pipeline(
            SAMPLE_JSON,
            db=db,
            steps=[*lk.steps.DEFAULT_STEPS[:2], boom, lk.steps.publish],
            progress=False,
            fail_fast=True,
        )
    report = _check(db)
    v = _only(report, "run_failed")
    assert v.severity == "warning"
    assert "boom" in v.message
    assert report.ok  # warnings only


def test_run_failed_by_plain_sql(clean_default, tmp_path):
    db = _copy(clean_default, tmp_path)
    _corrupt(db, ("UPDATE runs SET status = 'failed'",))
    assert _only(_check(db), "run_failed").severity == "warning"


def test_counts_mismatch(clean_default, tmp_path):
    db = _copy(clean_default, tmp_path)
    _corrupt(db, ("UPDATE runs SET n_published = n_published - 1",))
    report = _check(db)
    v = _only(report, "counts_mismatch")
    assert v.run_id == report.run_ids[0]
    assert "n_published 29 but 30" in v.message


def test_counts_mismatch_against_entries_only(clean_default, tmp_path):
    # The stored counts add up, but the entries say otherwise.
    db = _copy(clean_default, tmp_path)
    _corrupt(db, ("UPDATE runs SET n_published = 29, n_rejected = 1",))
    v = _only(_check(db), "counts_mismatch")
    assert "n_rejected 1 but 0 rejected entries" in v.message


def test_expected_steps(clean_default):
    assert _check(clean_default, expected_steps=["ingest", "normalize", "publish"]).ok
    report = _check(clean_default, expected_steps=["ingest", "validate", "publish"])
    v = _only(report, "unexpected_steps")
    assert "missing validate" in v.message and "unexpected normalize" in v.message


def test_every_builtin_code_is_documented():
    text = (Path(__file__).parent.parent / "README.md").read_text()
    for code, (severity, explanation) in CODES.items():
        assert severity in ("error", "warning")
        assert explanation
        assert f"`{code}`" in text, code


# ------------------------------------------------------------ choosing runs


def test_run_selection(clean_default, tmp_path):
    db = _copy(clean_default, tmp_path)
    first = _check(db).run_ids[0]
    _build(db)
    with lk.connect(db) as store:
        latest = store.resolve_run("latest")
        assert store.check().run_ids == [latest]
        assert store.check(first[:8]).run_ids == [first]
        assert store.check("all").run_ids == [first, latest]  # oldest first
        assert store.check([first, latest]).run_ids == [first, latest]
        with pytest.raises(lk.RunNotFound):
            store.check("no-such-run")


def test_only_the_chosen_run_is_checked(clean_default, tmp_path):
    db = _copy(clean_default, tmp_path)
    _corrupt(db, ("UPDATE runs SET n_published = 0",))
    _build(db)  # a clean newer run
    assert _check(db).violations.empty
    assert list(_check(db, run="all").violations["code"]) == ["counts_mismatch"]


def test_a_store_without_runs(db):
    lk.LineageStore(db, create=True).close()
    with lk.connect(db) as store:
        report = store.check("all")
        assert report.ok and report.run_ids == [] and report.violations.empty
        with pytest.raises(lk.RunNotFound):
            store.check()


# ---------------------------------------------------------------- the report


def test_report_summary_and_raise(clean_default, tmp_path):
    db = _copy(clean_default, tmp_path)
    _corrupt(
        db,
        ("UPDATE runs SET status = 'failed'",),
        ("INSERT INTO vals (value_id, json) VALUES (999998, '{}')",),
        ("INSERT INTO vals (value_id, json) VALUES (999999, '{}')",),
    )
    report = _check(db)
    summary = report.summary()
    assert list(summary["code"]) == ["orphan_value", "run_failed"]  # errors first
    assert list(summary["count"]) == [2, 1]
    assert summary.loc[0, "description"] == CODES["orphan_value"][1]
    assert (report.n_errors, report.n_warnings) == (2, 1)
    with pytest.raises(lk.IntegrityError, match=r"orphan_value \(2\)"):
        report.raise_if_failed()
    html = report._repr_html_()
    assert "orphan_value" in html and "<table" in html
    assert "orphan_value" in str(report)


def test_clean_report_raise_returns_itself(sample_store):
    report = sample_store.check()
    assert report.raise_if_failed() is report
    assert "ok" in report._repr_html_()
    assert report.violations["entry_id"].dtype == "Int64"


# ----------------------------------------------------------- custom checks


@pytest.mark.sqlite_only
def test_register_a_custom_check(sample_store):
    @lk.register_check("expensive_orders", severity="warning", description="amount over 400")
    def expensive_orders(store, run_ids):
        rows = store.backend.con.execute(
            "SELECT l.run_id, l.record_key, l.entry_id, json_extract(r.value, '$.amount') "
            "FROM lineage l JOIN records r ON r.entry_id = l.entry_id "
            "JOIN steps s ON s.run_id = l.run_id AND s.position = l.position "
            "WHERE s.name = 'publish' AND json_extract(r.value, '$.amount') > 400 "
            "AND l.run_id IN (SELECT value FROM json_each(?))",
            (json.dumps(run_ids),),
        ).fetchall()
        return [
            {"run_id": run, "record_key": key, "entry_id": entry, "message": f"amount {amount}"}
            for run, key, entry, amount in rows
        ]

    try:
        report = sample_store.check()
    finally:
        lk.unregister_check("expensive_orders")
    amounts = {r["key"]: r[" Amount "] for r in json.loads(SAMPLE_JSON.read_text())}
    expected = sorted(k for k, a in amounts.items() if a > 400)
    assert expected  # the sample has some
    v = report.violations
    assert set(v["code"]) == {"expensive_orders"}
    assert set(v["severity"]) == {"warning"}
    assert sorted(v["record_key"]) == expected
    assert report.ok
    assert report.summary().loc[0, "description"] == "amount over 400"
    assert "expensive_orders" not in lk.checks.registered_checks()
    assert sample_store.check().violations.empty


def test_one_off_extra_check_as_a_dataframe(sample_store):
    def no_emea(store, run_ids):
        return pd.DataFrame({"message": ["pretend problem"], "run_id": [run_ids[0]]})

    report = sample_store.check(extra=[no_emea])
    v = _only(report, "no_emea")
    assert v.severity == "error" and v.run_id == report.run_ids[0]
    assert not report.ok


def test_bad_custom_checks_are_refused(sample_store):
    with pytest.raises(ValueError, match="built-in"):
        lk.register_check("hash_mismatch")
    with pytest.raises(ValueError, match="severity"):
        lk.register_check("x", severity="fatal")
    with pytest.raises(ValueError, match="unknown columns"):
        sample_store.check(extra=[lambda s, r: [{"message": "m", "colour": "red"}]])
    with pytest.raises(ValueError, match="DataFrame or dicts"):
        sample_store.check(extra=[lambda s, r: ["not a dict"]])
    with pytest.raises(ValueError, match="built-in"):
        lk.unregister_check("values")
    with pytest.raises(KeyError):
        lk.unregister_check("never_registered")
