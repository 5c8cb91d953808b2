"""The shared passes behind the integrity checks.

The checks ``chains``, ``missing_parents`` and ``links`` read one pass over each
entry joined to its parent links and to the links that name it as a parent, so an
entry with several parents and several children comes back once per pair. These
tests corrupt such entries (split parents, merge children) and assert that each
fault is still reported exactly once. The plan tests pin the shape that keeps a
million-record check fast: rowid ranges and seeks, no correlated subquery per row
over the big tables, no temporary B-tree.
"""

from __future__ import annotations

import re
import sqlite3

import pytest

import lineage_kit as lk
from lineage_kit.store import integrity as sql
from lineage_kit.values import value_digest_bytes

from .check_data import (
    KEY,
    MERGE_STEPS,
    SPLIT_STEPS,
    _build,
    _check,
    _copy,
    _corrupt,
    _delete_entry,
    _entry,
    _restamp,
    _unlink,
)

# SQLite's own query plans; tests/test_postgres_plans.py holds PostgreSQL's.
pytestmark = pytest.mark.sqlite_only


@pytest.fixture(scope="module")
def clean_split(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("split") / "clean.db", steps=SPLIT_STEPS)


@pytest.fixture(scope="module")
def clean_merge(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("merge") / "clean.db", steps=MERGE_STEPS)


def _children(path, entry_id: int) -> int:
    con = sqlite3.connect(path)
    try:
        return con.execute(
            "SELECT count(*) FROM parents WHERE parent_id = ?", (entry_id,)
        ).fetchone()[0]
    finally:
        con.close()


def test_a_bad_link_of_a_split_parent_is_reported_once(clean_split, tmp_path):
    db = _copy(clean_split, tmp_path)
    ingest, normalized = _entry(db, KEY, "ingest"), _entry(db, KEY, "normalize")
    assert _children(db, normalized) == 4  # order-110 has 4 items: #1..#4
    # The ingest entry now claims to be created after the normalize entry it feeds.
    _corrupt(db, *_restamp(ingest, "9999-12-31"))
    v = _check(db).violations
    assert list(v["code"]) == ["step_order"], v.to_string()
    assert (v.iloc[0].record_key, v.iloc[0].entry_id) == (KEY, normalized)


def test_a_split_parent_without_its_own_parent_is_reported_once(clean_split, tmp_path):
    db = _copy(clean_split, tmp_path)
    ingest, normalized = _entry(db, KEY, "ingest"), _entry(db, KEY, "normalize")
    _corrupt(db, *_unlink(normalized))
    v = _check(db).violations.sort_values("code")
    assert list(v["code"]) == ["incomplete_chain", "missing_parent"], v.to_string()
    assert list(v["entry_id"]) == [ingest, normalized]
    # The pass returns the entry once, not once per child: its 4 children are not
    # joined in (an entry with many parents and many children would multiply).
    with lk.connect(db) as store:
        runs = [store.resolve_run()]
        rows = store.backend.check_chain_rows(runs, runs)
    assert [r[0] for r in rows].count(normalized) == 1


def test_a_merge_output_that_stops_is_reported_once(clean_merge, tmp_path):
    db = _copy(clean_merge, tmp_path)
    merged, published = _entry(db, "EMEA", "by_region"), _entry(db, "EMEA", "publish")
    con = sqlite3.connect(db)
    (n_parents,) = con.execute(
        "SELECT count(*) FROM parents WHERE child_id = ?", (merged,)
    ).fetchone()
    con.close()
    assert n_parents > 1  # every EMEA order of the sample feeds this entry
    _corrupt(db, *_delete_entry(published))
    v = _check(db).violations
    assert list(v["code"]) == ["incomplete_chain"], v.to_string()
    assert (v.iloc[0].record_key, v.iloc[0].entry_id) == ("EMEA", merged)


def test_checks_of_several_runs_share_nothing_across_calls(clean_split, tmp_path):
    # The pass is cached for one check() call only: a fault planted between two
    # calls on the same open store shows in the second.
    db = _copy(clean_split, tmp_path)
    with lk.connect(db) as store:
        assert store.check().ok
        normalized = _entry(db, KEY, "normalize")
        _corrupt(db, *_unlink(normalized))
        assert not store.check().ok


# ------------------------------------------------------------------ query plans

BIG = ("entries", "vals", "extra_parents")


class _Plans:
    """A connection stand-in that records the plan of every statement it is given."""

    def __init__(self, con: sqlite3.Connection) -> None:
        self.con = con
        self.plans: list[list[str]] = []

    def create_function(self, *args, **kwargs):
        return self.con.create_function(*args, **kwargs)

    def execute(self, statement, params=()):
        self.plans.append(
            [row[3] for row in self.con.execute("EXPLAIN QUERY PLAN " + statement, params)]
        )
        return self.con.execute(statement, params)


@pytest.fixture
def plans(sample_store):
    run_ids = [sample_store.resolve_run()]
    runs = sql.runs_param(run_ids)
    spy = _Plans(sample_store.backend.con)
    sql.value_problems(spy, runs, value_digest_bytes)
    sql.chain_rows(spy, runs, runs)
    sql.values_without_entry(spy)
    sql.links_from_missing_children(spy, runs)
    sql.unclaimed_entries(spy, runs, "[]")
    return spy.plans


def test_no_pass_sorts_into_a_temporary_btree(plans):
    for plan in plans:
        assert not any("TEMP B-TREE" in line for line in plan), "\n".join(plan)


#: The correlated subqueries the passes may run, each a seek guarded by a cheap test
#: so it runs for few rows: a step lookup (a tiny table) when a key changes; whether
#: an ok entry before the last step has a child (covering indexes of the first and
#: the extra parents; a join there would multiply an entry's rows by its parents
#: times its children); whether an entry without a first parent has extra ones;
#: the time of a parent in an earlier chunk; the run id of a row returned.
GUARDED = (
    "SEARCH s USING PRIMARY KEY",
    "SEARCH k USING COVERING INDEX entries_parent (parent_id=?)",
    "SEARCH kx USING COVERING INDEX extra_parents_parent (parent_id=?)",
    "SEARCH x USING PRIMARY KEY (child_id=?)",
    "SEARCH ch USING INDEX chunks_first (first_entry<?)",
    "SEARCH runs USING INTEGER PRIMARY KEY (rowid=?)",
)


def test_no_correlated_subquery_over_a_big_table(plans):
    # A correlated subquery per entry costs several times a join's seek.
    for plan in plans:
        for i, line in enumerate(plan):
            if "CORRELATED" in line:
                assert plan[i + 1].startswith(GUARDED), "\n".join(plan)


def test_the_entry_passes_read_a_rowid_range(plans):
    for plan in plans[:2]:  # value_problems, chain_rows
        assert any("INTEGER PRIMARY KEY (rowid>? AND rowid<?)" in line for line in plan), plan
        assert not any(re.match(rf"SCAN ({'|'.join(BIG)})\b", line) for line in plan), plan


def test_the_chunk_counts_group_one_chunk_at_a_time(sample_store):
    # The entries are grouped by a subquery per chunk over its rowid range: the only
    # sort is of one chunk's rows, never of the whole run.
    spy = _Plans(sample_store.backend.con)
    sql.chunk_counts(spy, sql.runs_param([sample_store.resolve_run()]))
    (plan,) = spy.plans
    at = next(i for i, line in enumerate(plan) if line.startswith("CORRELATED SCALAR SUBQUERY"))
    inner = plan[at + 1 :]
    assert any("SEARCH e USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)" in x for x in inner)
    sorts = [i for i, line in enumerate(plan) if "TEMP B-TREE FOR GROUP BY" in line]
    assert sorts and all(i > at for i in sorts), "\n".join(plan)
    assert not any(re.match(rf"SCAN ({'|'.join(BIG)})\b", line) for line in plan), plan


def test_the_gaps_between_chunks_are_read_as_rowid_ranges(plans):
    plan = plans[-1]  # unclaimed_entries
    assert any("SEARCH e USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)" in x for x in plan)
    assert not any(re.match(rf"SCAN ({'|'.join(BIG)})\b", line) for line in plan), plan


# ------------------------------------------------------------- repeated keys


def _duplicate_publish_of(db, key: str) -> int:
    """A second publish entry of ``key`` in the latest run, inside that run's last
    chunk's id range (so it is claimed, as a retried write that was not rolled back
    would be); returns its entry id."""
    publish = _entry(db, key, "publish")
    con = sqlite3.connect(db)
    (run_no,) = con.execute("SELECT run_no FROM entries WHERE entry_id = ?", (publish,)).fetchone()
    (last,) = con.execute(
        "SELECT max(last_entry) FROM chunks WHERE run_no = ?", (run_no,)
    ).fetchone()
    (top,) = con.execute("SELECT max(entry_id) FROM entries").fetchone()
    con.close()
    copy = top + 1
    _corrupt(
        db,
        (
            "INSERT INTO entries (entry_id, run_no, position, record_key, status, parent_id,"
            " value_id) SELECT ?, run_no, position, record_key, status, parent_id, value_id"
            " FROM entries WHERE entry_id = ?",
            copy,
            publish,
        ),
        (
            "UPDATE chunks SET last_entry = ? WHERE run_no = ? AND last_entry = ?",
            copy,
            run_no,
            last,
        ),
    )
    return copy


def test_both_plans_of_repeated_keys_find_the_same_groups(tmp_path):
    # A store of three runs, the latest holding a repeated (key, step): checking the
    # latest run alone takes the per-entry plan, all three the index pass; forced
    # either way, both give the same rows.
    db = tmp_path / "three.db"
    for _ in range(3):
        _build(db)
    publish = _entry(db, KEY, "publish")
    copy = _duplicate_publish_of(db, KEY)
    con = sqlite3.connect(db)
    latest = [con.execute("SELECT run_id FROM runs ORDER BY run_no DESC LIMIT 1").fetchone()[0]]
    every = [r for (r,) in con.execute("SELECT run_id FROM runs ORDER BY run_no")]
    for run_ids in (latest, every):
        runs = sql.runs_param(run_ids)
        seek, scan = (sql.repeated_keys(con, runs, scan=s) for s in (False, True))
        assert seek == scan == sql.repeated_keys(con, runs)
        assert [(r[1], r[3]) for r in seek] == [(KEY, publish), (KEY, copy)]
    con.close()
    with lk.connect(db) as store:
        v = store.check().violations
    assert list(v.loc[v["code"] == "duplicate_processing", "entry_id"]) == [copy], v.to_string()


def test_both_plans_find_a_repeat_outside_every_chunk(tmp_path):
    # Two copies of an entry of the latest run, past every chunk (no chunk claims
    # them): the per-entry plan reads the gaps between chunks too.
    db = tmp_path / "three.db"
    for _ in range(3):
        _build(db)
    publish = _entry(db, KEY, "publish")
    con = sqlite3.connect(db)
    (top,) = con.execute("SELECT max(last_entry) FROM chunks").fetchone()
    con.close()
    copy = (
        "INSERT INTO entries (entry_id, run_no, position, record_key, status, parent_id,"
        " value_id) SELECT ?, run_no, position, 'ghost', status, parent_id, value_id"
        " FROM entries WHERE entry_id = ?"
    )
    _corrupt(db, (copy, top + 5, publish), (copy, top + 9, publish))
    con = sqlite3.connect(db)
    latest = con.execute("SELECT run_id FROM runs ORDER BY run_no DESC LIMIT 1").fetchone()[0]
    runs = sql.runs_param([latest])
    seek, scan = (sql.repeated_keys(con, runs, scan=s) for s in (False, True))
    con.close()
    assert seek == scan
    assert [(r[1], r[3]) for r in seek] == [("ghost", top + 5), ("ghost", top + 9)]
    with lk.connect(db) as store:
        codes = store.check().violations["code"].tolist()
    assert codes.count("duplicate_processing") == 1 and codes.count("unclaimed_entry") == 2


def test_checking_one_run_of_many_seeks_the_key_index_per_entry(tmp_path):
    db = tmp_path / "three.db"
    for _ in range(3):
        _build(db)
    con = sqlite3.connect(db)
    latest = con.execute("SELECT run_id FROM runs ORDER BY run_no DESC LIMIT 1").fetchone()[0]
    spy = _Plans(con)
    sql.repeated_keys(spy, sql.runs_param([latest]))
    plan = spy.plans[-1]
    text = "\n".join(plan)
    # the run's entries by rowid range, each asking the covering key index
    assert any("SEARCH e USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)" in x for x in plan), text
    assert any(
        "SEARCH d USING COVERING INDEX entries_key (record_key=? AND run_no=? AND position=?)" in x
        for x in plan
    ), text
    assert not any(re.match(r"SCAN (entries|e)\b", line) for line in plan), text
    spy.plans.clear()
    every = [r for (r,) in con.execute("SELECT run_id FROM runs")]
    sql.repeated_keys(spy, sql.runs_param(every))
    assert any(  # the whole key index, in order (record_key > NULL: every key)
        "SEARCH entries USING COVERING INDEX entries_key (record_key>?)" in x for x in spy.plans[-1]
    ), spy.plans[-1]
    con.close()
