"""The store: identity, refusal of foreign files, pragmas, schema, indexes."""

from __future__ import annotations

import sqlite3
import struct

import pytest

import lineage_kit as lk
from lineage_kit.store import APPLICATION_ID, SCHEMA_VERSION

from .conftest import SAMPLE_JSON, sha256


def test_new_store_is_marked_as_ours_and_versioned(db):
    lk.run_pipeline(SAMPLE_JSON, db=db, progress=False)
    header = db.read_bytes()[:100]
    assert struct.unpack(">I", header[68:72])[0] == APPLICATION_ID
    with lk.LineageStore(db, create=True) as store:  # a writer's connection
        assert store.schema_version == SCHEMA_VERSION
        con = store.backend.con
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert con.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert con.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
        assert con.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    with lk.connect(db) as store:  # a reader's
        assert store.schema_version == SCHEMA_VERSION
        assert store.backend.con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.backend.con.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000


def test_connect_to_missing_file_raises_and_creates_nothing(tmp_path):
    path = tmp_path / "nope.db"
    with pytest.raises(lk.StoreNotFound, match="no lineage store"):
        lk.connect(path)
    assert not path.exists()


def _foreign_db(path):
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    con.execute("INSERT INTO customers (name) VALUES ('Ada')")
    con.commit()
    con.close()


def test_foreign_sqlite_file_is_refused_and_left_unchanged(tmp_path):
    path = tmp_path / "theirs.db"
    _foreign_db(path)
    before = sha256(path)
    with pytest.raises(lk.NotALineageStore, match="customers"):
        lk.connect(path)
    with pytest.raises(lk.NotALineageStore):
        lk.run_pipeline(SAMPLE_JSON, db=path, progress=False)
    assert sha256(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["theirs.db"]


def test_foreign_wal_database_is_not_checkpointed(tmp_path):
    # A WAL database with uncheckpointed pages: opening it read-write and closing
    # would fold the WAL into the main file. We must not.
    path = tmp_path / "theirs.db"
    keeper = sqlite3.connect(path)
    keeper.execute("PRAGMA journal_mode = WAL")
    keeper.execute("PRAGMA wal_autocheckpoint = 0")
    keeper.execute("CREATE TABLE t (x)")
    keeper.execute("INSERT INTO t VALUES (1)")
    keeper.commit()
    before = sha256(path)
    with pytest.raises(lk.NotALineageStore):
        lk.connect(path)
    assert sha256(path) == before
    keeper.close()


def test_file_that_is_not_sqlite_is_refused(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("just some text, definitely not a database\n" * 10)
    before = sha256(path)
    with pytest.raises(lk.NotALineageStore, match="not a SQLite database"):
        lk.run_pipeline(SAMPLE_JSON, db=path, progress=False)
    assert sha256(path) == before


def test_sqlite_file_of_another_application_id_is_refused(tmp_path):
    path = tmp_path / "other.db"
    con = sqlite3.connect(path)
    con.execute("PRAGMA application_id = 1234")
    con.execute("CREATE TABLE runs (x)")
    con.commit()
    con.close()
    before = sha256(path)
    with pytest.raises(lk.NotALineageStore, match="application_id"):
        lk.connect(path)
    assert sha256(path) == before


def test_empty_sqlite_file_is_initialised_by_a_pipeline(tmp_path):
    path = tmp_path / "empty.db"
    path.touch()
    with pytest.raises(lk.NotALineageStore, match="empty"):
        lk.connect(path)
    result = lk.run_pipeline(SAMPLE_JSON, db=path, progress=False)
    assert result.n_published == 30


def test_newer_schema_version_is_refused_unchanged(db):
    lk.run_pipeline(SAMPLE_JSON, db=db, progress=False)
    con = sqlite3.connect(db)
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    before = sha256(db)
    with pytest.raises(lk.SchemaVersionError, match="newer"):
        lk.connect(db)
    assert sha256(db) == before


def _plan(con, sql, params):
    return " | ".join(row[-1] for row in con.execute("EXPLAIN QUERY PLAN " + sql, params))


@pytest.mark.sqlite_only
def test_key_lookup_uses_the_key_index(sample_store):
    plan = _plan(
        sample_store.backend.con,
        "SELECT entry_id FROM lineage WHERE record_key = ? AND run_id = ?",
        ("order-101", "x"),
    )
    # user SQL on the lineage view: the key's entries from entries_key, its run by id
    assert "USING INDEX entries_key" in plan or "USING COVERING INDEX entries_key" in plan
    assert "SCAN" not in plan


@pytest.mark.sqlite_only
def test_duplicate_key_lookup_per_chunk_uses_an_index(sample_store):
    from lineage_kit.store.writer import _EXISTING_KEYS

    plan = _plan(sample_store.backend.con, _EXISTING_KEYS, ('["a"]', "run"))
    assert "entries_key" in plan
    assert "SCAN entries" not in plan and "SCAN e" not in plan
    run_id = sample_store.resolve_run()
    found = sample_store.backend.existing_keys(run_id, ["order-101", "nope", "order-130"])
    assert found == {"order-101": 0, "order-130": 0}


@pytest.mark.sqlite_only
def test_parent_walks_use_indexes(sample_store):
    down = _plan(sample_store.backend.con, "SELECT child_id FROM parents WHERE parent_id = ?", (1,))
    up = _plan(sample_store.backend.con, "SELECT parent_id FROM parents WHERE child_id = ?", (1,))
    assert "parents_parent" in down and "SCAN" not in down
    assert "PRIMARY KEY" in up or "INDEX" in up
    assert "SCAN" not in up


@pytest.mark.sqlite_only
def test_run_filter_reads_the_runs_chunk_ranges(sample_store):
    from lineage_kit.store.queries import RUN_ENTRIES, RUN_NO

    sql = f"SELECT count(*) FROM {RUN_ENTRIES} WHERE ch.run_no = {RUN_NO.format('?')}"
    plan = _plan(sample_store.backend.con, sql, ("x",))
    assert "SEARCH ch USING PRIMARY KEY (run_no=?)" in plan
    assert "SEARCH e USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)" in plan
    assert sample_store.backend.count_entries(sample_store.resolve_run()) == 90


def test_resolve_run_by_prefix_latest_and_errors(db, monkeypatch):
    ids = iter(["abcd0000-0000-4000-8000-000000000001", "abcd0000-0000-4000-8000-000000000002"])
    monkeypatch.setattr("lineage_kit.pipeline.new_run_id", lambda: next(ids))
    first = lk.run_pipeline(SAMPLE_JSON, db=db, progress=False)
    second = lk.run_pipeline(SAMPLE_JSON, db=db, progress=False)
    with lk.connect(db) as store:
        assert store.resolve_run() == second.run_id
        assert store.resolve_run("latest") == second.run_id
        assert store.resolve_run(first.run_id) == first.run_id
        assert store.resolve_run(first.run_id[:-1] + "1") == first.run_id
        with pytest.raises(lk.RunNotFound, match="no run matches"):
            store.resolve_run("ffff")
        with pytest.raises(lk.RunNotFound, match="more than one"):
            store.resolve_run("abcd")


def test_store_is_a_context_manager_and_closes(sample_store, store_db):
    with lk.connect(store_db) as store:
        assert "open" in repr(store)
    assert "closed" in repr(store)
    with pytest.raises(ValueError, match="closed"):
        store.run_rows()


def test_every_statement_is_parameterised():
    """No SQL text is built with user values: f-strings in the store only name columns."""
    import ast
    from pathlib import Path

    root = Path(lk.__file__).parent / "store"
    for path in root.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") in (
                "execute",
                "executemany",
            ):
                sql = node.args[0]
                if isinstance(sql, ast.JoinedStr):
                    names = {
                        ast.unparse(v.value)
                        for v in sql.values
                        if isinstance(v, ast.FormattedValue)
                    }
                    # `where`, `source`, `extra_source` and `stamp` in queries.py are
                    # chosen from literal clauses with placeholders (queries._scope);
                    # `groups` in integrity.repeated_keys is one of two literal queries
                    allowed = {
                        "APPLICATION_ID",
                        "SCHEMA_VERSION",
                        "BUSY_TIMEOUT_MS",
                        "version",
                        "where",
                        "source",
                        "extra_source",
                        "stamp",
                        "groups",
                    }
                    # module constants (SQL fragments, column lists), possibly .format()ted
                    # with literals; never a value that came from a caller
                    constants = {
                        n for n in names if n.split(".")[0].lstrip("_").isupper() or "COLUMNS" in n
                    }
                    assert names <= allowed | constants, f"{path.name}: SQL formatted with {names}"


def test_a_running_run_whose_pid_was_reused_is_interrupted(db):
    import os

    from lineage_kit.store.liveness import process_start, this_writer, writer_alive

    lk.run_pipeline(SAMPLE_JSON, db=db, progress=False)
    host, pid, started = this_writer()
    assert started is not None and started == process_start(pid)  # Linux: /proc is there
    raw = sqlite3.connect(db)
    # a run left 'running' by a process that had our pid before us
    raw.execute(
        "UPDATE runs SET status = 'running', writer_pid = ?, writer_started = ?",
        (os.getpid(), str(int(started) - 1)),
    )
    raw.commit()
    raw.close()
    with lk.connect(db) as store:
        (run,) = store.run_rows()
    assert run["status"] == "interrupted"
    assert writer_alive(host, pid, started)
    assert not writer_alive(host, pid, str(int(started) - 1))
    assert writer_alive("some-other-host", pid, "0")  # cannot tell from here: alive


def test_sqlite_file_with_only_a_user_version_is_refused_unchanged(tmp_path):
    # No tables and application_id 0, but user_version 7: another application's
    # database, not an empty one; initialising it (or switching it to WAL) would
    # rewrite its header.
    path = tmp_path / "e.db"
    con = sqlite3.connect(path)
    con.execute("PRAGMA user_version = 7")
    con.close()
    before = sha256(path)
    with pytest.raises(lk.NotALineageStore, match="user_version 7"):
        lk.run_pipeline(SAMPLE_JSON, db=path, progress=False)
    with pytest.raises(lk.NotALineageStore, match="user_version 7"):
        lk.connect(path)
    assert sha256(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.db"]


def test_initialise_refuses_a_database_with_a_user_version(tmp_path):
    from lineage_kit.store.connection import _initialise

    path = tmp_path / "e.db"
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA user_version = 7")
    with pytest.raises(lk.NotALineageStore, match="user_version 7"):
        _initialise(con)
    assert con.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
    con.close()
