"""Shared fixtures: stores built by running real pipelines on the sample data."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import lineage_kit as lk

from .explore_data import build
from .pg_server import start_cluster

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
SAMPLE_JSON = DATA / "sample_input.json"
MESSY_JSON = DATA / "messy_input.json"


def sha256(path: Path) -> str:
    """The sha256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def records(n: int, start: int = 0) -> list[dict]:
    """``n`` clean order-like records with messy field names."""
    return [
        {"key": f"k{i}", " Amount ": float(i), "Customer Name": f"c{i % 7}", "REGION": "EMEA"}
        for i in range(start, start + n)
    ]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "sqlite_only: the test reads SQLite itself (its SQL, its query plans); its "
        "[postgres] variant is not collected (tests/test_postgres*.py cover PostgreSQL)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_pg = callspec is not None and callspec.params.get("store_db") == "postgres"
        (drop if on_pg and item.get_closest_marker("sqlite_only") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@contextmanager
def unwritable(*paths: Path):
    """Make files and directories unwritable, as on read-only media.

    root ignores permission bits, so as root the paths are made immutable
    (``chattr +i``, which root cannot write through either).
    """
    if os.geteuid() == 0:
        if shutil.which("chattr") is None:
            pytest.skip("running as root without chattr: cannot make a file unwritable")
        done = subprocess.run(["chattr", "+i", *map(str, paths)], capture_output=True)
        if done.returncode != 0:
            subprocess.run(["chattr", "-i", *map(str, paths)], capture_output=True)
            pytest.skip(f"chattr +i is not supported here: {done.stderr.decode().strip()}")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", *map(str, paths)], check=True)
    else:
        modes = {p: p.stat().st_mode for p in paths}
        for p in paths:
            p.chmod(0o555 if p.is_dir() else 0o444)
        try:
            yield
        finally:
            for p, mode in modes.items():
                p.chmod(mode)


def fresh_process(*args: str | Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """``args`` run in a new process that imports this checkout's lineage_kit, its
    output captured as text (``env`` entries are added to the environment)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **kwargs.pop("env", {})}
    kwargs.setdefault("timeout", 300)
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, env=env, check=False, **kwargs
    )


def run_killed_writer(script: str, *args: str | Path) -> None:
    """Run the Python ``script`` in a new process, which must end killed by SIGKILL."""
    child = fresh_process(sys.executable, "-c", script, *args, cwd=ROOT)
    assert child.returncode == -signal.SIGKILL, child.stderr


def copy_with_wal(db: Path, folder: Path) -> Path:
    """Copy ``db`` and its ``-wal`` and ``-shm`` files into a new ``folder`` (as a
    backup of a live store would); return the copy's path."""
    folder.mkdir()
    for suffix in ("", "-wal", "-shm"):
        shutil.copyfile(f"{db}{suffix}", folder / f"store.db{suffix}")
    return folder / "store.db"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A path for a new store (nothing exists there yet)."""
    return tmp_path / "lineage.db"


@pytest.fixture(scope="session")
def pg_server() -> str:
    """A PostgreSQL server's URL: ``LINEAGE_KIT_TEST_PG_DSN``, or else a throwaway
    cluster started for the session (tests/pg_server.py) and stopped at its end.
    No server is a failure, not a skip."""
    given = os.environ.get("LINEAGE_KIT_TEST_PG_DSN")
    if given:
        yield given
        return
    cluster = start_cluster()
    try:
        yield cluster.dsn
    finally:
        cluster.stop()


def with_schema(url: str, schema: str) -> str:
    """The server URL naming a store schema."""
    return f"{url}{'&' if '?' in url else '?'}schema={schema}"


@pytest.fixture
def pg_url(pg_server: str) -> str:
    """A store URL on the test server, in a schema of its own (dropped afterwards)."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    yield with_schema(pg_server, schema)
    drop_schema(pg_server, schema)


def drop_schema(server: str, schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(server, autocommit=True) as con:
        con.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(params=["sqlite", "postgres"])
def store_db(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """A new store on each backend: a SQLite path, then a PostgreSQL URL (the one
    fixture that runs a storage-facing test against both)."""
    if request.param == "sqlite":
        return tmp_path / "lineage.db"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def sample_store(store_db: Path | str) -> lk.LineageStore:
    """A store holding one run of the default pipeline over data/sample_input.json
    (on each backend)."""
    lk.run_pipeline(SAMPLE_JSON, db=store_db, progress=False)
    with lk.connect(store_db) as store:
        yield store


@pytest.fixture
def messy_store(store_db: Path | str) -> lk.LineageStore:
    """A store holding one run over data/messy_input.json (rejections of every kind),
    on each backend."""
    lk.run_pipeline(MESSY_JSON, db=store_db, progress=False)
    with lk.connect(store_db) as store:
        yield store


@pytest.fixture
def fan(store_db: Path | str):
    """Two runs of a fan-out/fan-in pipeline (see explore_data.build) on each
    backend: the store and both run ids."""
    run1, run2 = build(store_db)
    with lk.connect(store_db) as store:
        yield store, run1, run2


@pytest.fixture
def python_sigint():
    """SIGINT handled by Python's own handler during the test, whatever pytest was
    started with: a shell without job control (``pytest &`` in a script) starts its
    background jobs with SIGINT ignored, and Python then leaves it ignored."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


@pytest.fixture(scope="session")
def dask_client():
    """A real Dask LocalCluster of 2 worker processes (one thread each), shared by the
    session and stopped at its end; the Dask tests' steps are pickled by value."""
    import cloudpickle
    from distributed import Client, LocalCluster

    from . import dask_pipelines

    cloudpickle.register_pickle_by_value(dask_pipelines)
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    client = Client(cluster)
    yield client
    client.close()
    cluster.close()
