"""Readers open a store read-only: lk.connect never writes a current-version store."""

from __future__ import annotations

import io
import shutil
import sqlite3
from pathlib import Path

import pytest

import lineage_kit as lk
from lineage_kit.cli import main
from lineage_kit.store import SCHEMA_VERSION

from .conftest import SAMPLE_JSON, copy_with_wal, sha256, unwritable

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _files(db: Path) -> dict[str, str | None]:
    return {
        suffix: sha256(Path(f"{db}{suffix}")) if Path(f"{db}{suffix}").exists() else None
        for suffix in ("", "-wal")
    }


def _assert_read_only(store: lk.LineageStore) -> None:
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        store.backend.con.execute("UPDATE runs SET pipeline = 'changed'")
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        store.backend.con.execute("CREATE TABLE scratch (x)")


def test_connect_after_a_clean_close_reads_without_writing(db):
    lk.run_pipeline(SAMPLE_JSON, db=db, progress=False)
    assert not Path(f"{db}-wal").exists()  # the writer's close checkpointed the WAL
    before = sha256(db)
    with lk.connect(db) as store:
        _assert_read_only(store)
        assert store.schema_version == SCHEMA_VERSION
        (run,) = store.run_rows()
        assert run["n_published"] == 30
        # the integrity checks register a SQL function and read in one transaction
        report = store.check("all")
        assert report.ok, report.violations
        assert len(store.lineage()) == 90
    assert sha256(db) == before


def test_connect_reads_while_the_writer_holds_an_unfinished_wal(db):
    lk.run_pipeline(SAMPLE_JSON, db=db, progress=False)
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    writer.execute("UPDATE runs SET pipeline = 'renamed in the WAL'")
    assert Path(f"{db}-wal").stat().st_size > 0 and Path(f"{db}-shm").exists()
    before = _files(db)
    with lk.connect(db) as store:
        _assert_read_only(store)
        (run,) = store.run_rows()
        assert run["pipeline"] == "renamed in the WAL"  # sees committed WAL content
        assert store.check().ok
    assert _files(db) == before  # not checkpointed by the reader's close
    writer.close()


def test_the_cli_readers_work_on_a_read_only_connection(db):
    lk.run_pipeline(SAMPLE_JSON, db=db, progress=False)
    before = sha256(db)
    for argv in (
        ["runs"],
        ["trace", "order-101"],
        ["check", "--run", "all"],
        ["plot", "order-101", "-o", str(db.parent / "chain.png")],
    ):
        assert main([*argv, "--db", str(db)], out=io.StringIO()) == 0, argv
    assert sha256(db) == before


def test_read_only_media_with_wal_files_present_is_readable(tmp_path):
    # A WAL store copied to read-only media together with its -wal and -shm.
    src = tmp_path / "src.db"
    lk.run_pipeline(SAMPLE_JSON, db=src, progress=False)
    writer = sqlite3.connect(src, isolation_level=None)
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    writer.execute("UPDATE runs SET pipeline = 'in the WAL'")
    media = tmp_path / "media"
    db = copy_with_wal(src, media)
    writer.close()
    files = [media / f"store.db{s}" for s in ("", "-wal", "-shm")]
    with unwritable(*files, media):
        with lk.connect(db) as store:
            assert store.run_rows()[0]["pipeline"] == "in the WAL"
            assert store.check().ok
        assert main(["runs", "--db", str(db)], out=io.StringIO()) == 0


def test_read_only_media_without_wal_files_is_readable(tmp_path):
    # SQLite cannot create the -shm a WAL store needs here, and nothing can write the
    # store (immutable file and directory), so it is read as an immutable file.
    media = tmp_path / "media"
    media.mkdir()
    db = media / "store.db"
    lk.run_pipeline(SAMPLE_JSON, db=db, progress=False)
    before = sha256(db)
    with unwritable(db, media):
        with lk.connect(db) as store:
            _assert_read_only(store)
            assert store.run_rows()[0]["n_published"] == 30
            assert store.check().ok
        assert main(["runs", "--db", str(db)], out=io.StringIO()) == 0
    assert sha256(db) == before
    assert sorted(p.name for p in media.iterdir()) == ["store.db"]


def _old_store(tmp_path: Path) -> Path:
    target = tmp_path / "old" / "store_v1.db"
    target.parent.mkdir()
    shutil.copyfile(FIXTURES / "store_v1.db", target)
    return target


def test_an_older_store_is_migrated_by_connect_when_writable(tmp_path):
    db = _old_store(tmp_path)
    with lk.connect(db) as store:
        assert store.schema_version == SCHEMA_VERSION
        _assert_read_only(store)  # migrated, then reopened for reading
        assert store.check("all").ok
    raw = sqlite3.connect(db)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    raw.close()


def test_an_unwritable_older_store_is_a_clear_error_and_unchanged(tmp_path, capsys):
    db = _old_store(tmp_path)
    before = sha256(db)
    with unwritable(db, db.parent):
        with pytest.raises(lk.SchemaVersionError, match="open it once with write access"):
            lk.connect(db)
        assert main(["runs", "--db", str(db)], out=io.StringIO()) == 2
    err = capsys.readouterr().err
    assert "schema version 1" in err and "Traceback" not in err
    assert sha256(db) == before
    assert sorted(p.name for p in db.parent.iterdir()) == ["store_v1.db"]


def test_writers_still_open_read_write(db):
    with lk.LineageStore(db, create=True) as store:
        store.backend.con.execute("CREATE TEMP TABLE scratch (x)")
        assert store.backend.con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert not hasattr(lk.LineageStore, "atomic")
