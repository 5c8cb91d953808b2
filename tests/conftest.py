"""Shared fixtures: stores built by running real pipelines on the sample data."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

import lineage_kit as lk

from .explore_data import build

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


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A path for a new store (nothing exists there yet)."""
    return tmp_path / "lineage.db"


@pytest.fixture
def sample_store(db: Path) -> lk.LineageStore:
    """A store holding one run of the default pipeline over data/sample_input.json."""
    lk.run_pipeline(SAMPLE_JSON, db=db, progress=False)
    with lk.connect(db) as store:
        yield store


@pytest.fixture
def messy_store(db: Path) -> lk.LineageStore:
    """A store holding one run over data/messy_input.json (rejections of every kind)."""
    lk.run_pipeline(MESSY_JSON, db=db, progress=False)
    with lk.connect(db) as store:
        yield store


@pytest.fixture
def fan(db: Path):
    """Two runs of a fan-out/fan-in pipeline (see explore_data.build): the store and
    both run ids."""
    run1, run2 = build(db)
    with lk.connect(db) as store:
        yield store, run1, run2


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
