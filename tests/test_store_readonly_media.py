"""A store on read-only media can be explored by any user (issue 11, defect 8).

The tests run as root, whom permission bits do not stop, so each reader runs in a
subprocess that becomes the ``nobody`` user once it has imported what it uses (the
checkout may sit in a directory only its owner can enter, as a ``mktemp -d`` clone
does); run as another user, the reader stays that user. The store is copied into a
fresh directory under ``/tmp`` that ``nobody`` can read, with no ``-wal`` or
``-shm`` next to it.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import lineage_kit as lk

from .conftest import ROOT, SAMPLE_JSON, sha256

_READER = """
import json, os, sqlite3, sys
import lineage_kit as lk
from lineage_kit.cli import main
import lineage_kit.checks, lineage_kit.frames, lineage_kit.graph, lineage_kit.lineage_store
import lineage_kit.report, lineage_kit.store.sqlite, lineage_kit.summary
import networkx, numpy, pandas

db, uid, gid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if uid >= 0:  # root: from here on, the store is read as another user
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
out = {}
try:
    with lk.connect(db) as store:
        out["runs"] = len(store.runs())
        out["trace"] = store.trace("order-101")["step"].astype(str).tolist()
        out["check_ok"] = store.check("all").ok
        out["records"] = len(store.records(step="publish"))
        out["graph_nodes"] = store.graph().number_of_nodes()
        try:
            store.backend.con.execute("UPDATE runs SET pipeline = 'changed'")
            out["wrote"] = True
        except sqlite3.OperationalError as exc:
            out["wrote"] = str(exc)
except lk.LineageKitError as exc:
    out["error"] = str(exc)
out["cli_runs"] = main(["runs", "--db", db])
print(json.dumps(out))
"""


def _reader_ids() -> tuple[int, int]:
    """``(uid, gid)`` of the ``nobody`` user when we are root, else ``(-1, -1)``:
    the reader keeps our own user."""
    if os.geteuid() != 0:
        return -1, -1
    nobody = pwd.getpwnam("nobody")
    return nobody.pw_uid, nobody.pw_gid


def _read(db: Path) -> tuple[dict, str]:
    uid, gid = _reader_ids()
    done = subprocess.run(
        [sys.executable, "-c", _READER, str(db), str(uid), str(gid)],
        cwd="/",
        env={**os.environ, "PYTHONPATH": str(ROOT), "HOME": "/tmp"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


@pytest.fixture
def media() -> Iterator[Path]:
    """A directory another user can enter and read (``tmp_path`` is private to root)."""
    base = Path(tempfile.mkdtemp(prefix="lk-media-"))
    base.chmod(0o755)
    media = base / "media"
    media.mkdir()
    try:
        yield media
    finally:
        media.chmod(0o755)
        shutil.rmtree(base)


def _store_in(media: Path, tmp_path: Path, *, with_wal: bool = False) -> Path:
    src = tmp_path / "src.db"
    lk.run_pipeline(SAMPLE_JSON, db=src, progress=False)
    assert not Path(f"{src}-wal").exists()  # a finished run leaves no WAL behind
    db = media / "store.db"
    shutil.copyfile(src, db)
    if with_wal:  # a writer that never finished: committed data still in the -wal
        import sqlite3

        writer = sqlite3.connect(db, isolation_level=None)
        writer.execute("PRAGMA wal_autocheckpoint = 0")
        writer.execute("UPDATE runs SET pipeline = 'in the WAL'")
        shutil.copyfile(f"{db}-wal", tmp_path / "kept-wal")
        writer.close()  # checkpoints and removes the -wal: put the copy back
        shutil.copyfile(src, db)
        shutil.copyfile(tmp_path / "kept-wal", f"{db}-wal")
        Path(f"{db}-shm").unlink(missing_ok=True)
    for path in media.iterdir():
        path.chmod(0o644)
    return db


def test_a_store_in_a_read_only_directory_is_explored_by_another_user(media, tmp_path):
    db = _store_in(media, tmp_path)
    before = sha256(db)
    media.chmod(0o555)
    out, err = _read(db)
    assert "error" not in out, out["error"]
    assert out["runs"] == 1 and out["check_ok"] and out["records"] == 30
    assert out["trace"] == ["ingest", "normalize", "publish"]
    assert out["graph_nodes"] == 90
    assert "readonly" in out["wrote"]  # still a connection that cannot write
    assert out["cli_runs"] == 0, err
    assert sha256(db) == before
    assert sorted(p.name for p in media.iterdir()) == ["store.db"]  # no -shm left behind


def test_a_read_only_store_file_is_explored_by_another_user(media, tmp_path):
    # the directory is writable by its owner, but the store file by no one
    db = _store_in(media, tmp_path)
    db.chmod(0o444)
    out, err = _read(db)
    assert "error" not in out, out["error"]
    assert out["check_ok"] and out["cli_runs"] == 0, err


def test_a_store_its_owner_may_still_write_is_not_read_as_immutable(media, tmp_path):
    # The owner (root) can write the directory and the file, so a pipeline may start
    # on it at any moment: another user who cannot create the -shm gets a clear error.
    db = _store_in(media, tmp_path)
    out, err = _read(db)
    assert "cannot be opened read-only" in out["error"]
    assert "Copy the store" in out["error"]
    assert out["cli_runs"] == 2
    assert "Traceback" not in err and err.startswith("lineage-kit: error: ")


def test_a_leftover_wal_on_read_only_media_is_not_skipped(media, tmp_path):
    # Committed data in a -wal would be missed by an immutable read: refuse instead.
    db = _store_in(media, tmp_path, with_wal=True)
    media.chmod(0o555)
    out, _ = _read(db)
    assert "cannot be opened read-only" in out["error"]
    assert out["cli_runs"] == 2
