"""Shared fixtures: stores built by running real pipelines on the sample data."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from contextlib import contextmanager
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
