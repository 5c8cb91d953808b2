"""lineage_kit: record-level data lineage in an embedded SQLite store.

Run a record pipeline, and every record's path through every step is kept: where
it came from, what each step did, whether it succeeded and the value afterwards.
Explore it from Jupyter as pandas DataFrames and networkx graphs.
"""

from __future__ import annotations

__version__ = "0.1.0"

from . import steps
from .checks import CheckReport, register_check, unregister_check
from .errors import (
    InputError,
    IntegrityError,
    KeyNotFound,
    LineageKitError,
    NotALineageStore,
    RunNotFound,
    SchemaVersionError,
    StepError,
    StoreFull,
    StoreNotFound,
    StoreWriteError,
)
from .pipeline import Pipeline, Reject, RunResult, Step, run_pipeline, step
from .store import LineageStore, connect

__all__ = [
    "CheckReport",
    "InputError",
    "IntegrityError",
    "KeyNotFound",
    "LineageKitError",
    "LineageStore",
    "NotALineageStore",
    "Pipeline",
    "Reject",
    "RunNotFound",
    "RunResult",
    "SchemaVersionError",
    "Step",
    "StepError",
    "StoreFull",
    "StoreNotFound",
    "StoreWriteError",
    "__version__",
    "connect",
    "register_check",
    "run_pipeline",
    "step",
    "steps",
    "unregister_check",
]
