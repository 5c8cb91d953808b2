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


@pytest.fixture(scope="module")
def clean_three(tmp_path_factory):
    """A store of three default runs of the sample (the latest a third of the store)."""
    db = tmp_path_factory.mktemp("three") / "clean.db"
    for _ in range(3):
        _build(db)
    return db


#: A copy of entry ``?2`` under the id ``?1``, with the key ``?3`` (NULL: its own).
_COPY_ENTRY = (
    "INSERT INTO entries (entry_id, run_no, position, record_key, status, parent_id, value_id)"
    " SELECT ?1, run_no, position, coalesce(?3, record_key), status, parent_id, value_id"
    " FROM entries WHERE entry_id = ?2"
)


def _run_ids(con: sqlite3.Connection) -> list[str]:
    """The store's run ids, oldest first."""
    return [r for (r,) in con.execute("SELECT run_id FROM runs ORDER BY run_no")]


def test_both_plans_of_repeated_keys_find_the_same_groups(clean_three, tmp_path):
    # The latest run holds a repeated (key, step), inside its last chunk's range (as a
    # retried write that was not rolled back would be): checking it alone takes the
    # per-entry plan, all three runs the index pass; forced either way, both give the
    # same rows.
    db = _copy(clean_three, tmp_path)
    publish = _entry(db, KEY, "publish")
    con = sqlite3.connect(db)
    (run_no,) = con.execute("SELECT run_no FROM entries WHERE entry_id = ?", (publish,)).fetchone()
    (copy,) = con.execute("SELECT max(entry_id) + 1 FROM entries").fetchone()
    con.close()
    _corrupt(
        db,
        (_COPY_ENTRY, copy, publish, None),
        (
            "UPDATE chunks SET last_entry = ?1 WHERE run_no = ?2 AND last_entry = ?1 - 1",
            copy,
            run_no,
        ),
    )
    con = sqlite3.connect(db)
    claims = "SELECT count(*) FROM chunks WHERE ? BETWEEN first_entry AND last_entry"
    assert con.execute(claims, (copy,)).fetchone() == (1,)  # the copy is inside a chunk
    every = _run_ids(con)
    for run_ids in (every[-1:], every):
        runs = sql.runs_param(run_ids)
        seek, scan = (sql.repeated_keys(con, runs, scan=s) for s in (False, True))
        assert seek == scan == sql.repeated_keys(con, runs)
        assert [(r[1], r[3]) for r in seek] == [(KEY, publish), (KEY, copy)]
    con.close()
    with lk.connect(db) as store:
        v = store.check().violations
    assert list(v.loc[v["code"] == "duplicate_processing", "entry_id"]) == [copy], v.to_string()


def test_both_plans_find_a_repeat_outside_every_chunk(clean_three, tmp_path):
    # Two copies of an entry of the latest run, past every chunk (no chunk claims
    # them): the per-entry plan reads the gaps between chunks too.
    db = _copy(clean_three, tmp_path)
    publish = _entry(db, KEY, "publish")
    con = sqlite3.connect(db)
    (top,) = con.execute("SELECT max(last_entry) FROM chunks").fetchone()
    con.close()
    _corrupt(db, (_COPY_ENTRY, top + 5, publish, "ghost"), (_COPY_ENTRY, top + 9, publish, "ghost"))
    con = sqlite3.connect(db)
    runs = sql.runs_param(_run_ids(con)[-1:])
    seek, scan = (sql.repeated_keys(con, runs, scan=s) for s in (False, True))
    con.close()
    assert seek == scan
    assert [(r[1], r[3]) for r in seek] == [("ghost", top + 5), ("ghost", top + 9)]
    with lk.connect(db) as store:
        codes = store.check().violations["code"].tolist()
    assert codes.count("duplicate_processing") == 1 and codes.count("unclaimed_entry") == 2


def test_checking_one_run_of_many_seeks_the_key_index_per_entry(clean_three):
    con = sqlite3.connect(f"file:{clean_three}?mode=ro", uri=True)
    every = _run_ids(con)
    spy = _Plans(con)
    sql.repeated_keys(spy, sql.runs_param(every[-1:]))
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
    sql.repeated_keys(spy, sql.runs_param(every))
    assert any(  # the whole key index, in order (record_key > NULL: every key)
        "SEARCH entries USING COVERING INDEX entries_key (record_key>?)" in x for x in spy.plans[-1]
    ), spy.plans[-1]
    con.close()
