"""lineage_kit: record-level data lineage in an embedded SQLite store.

Run a record pipeline, and every record's path through every step is kept: where
it came from, what each step did, whether it succeeded and the value afterwards.
Explore it from Jupyter as pandas DataFrames and networkx graphs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import steps
from .base import __version__
from .errors import (
    EntryNotFound,
    ExportTooLarge,
    InputError,
    IntegrityError,
    InvalidArgument,
    InvalidEntryId,
    KeyNotFound,
    LineageKitError,
    MissingExtra,
    NotALineageStore,
    OutputError,
    Reject,
    RunNotFound,
    SchemaVersionError,
    StepError,
    StoreClosed,
    StoreFull,
    StoreNotFound,
    StoreUnavailable,
    StoreWriteError,
)
from .lineage_store import LineageStore, connect
from .model import RunResult, Step, step
from .pipeline import Pipeline, run_pipeline
from .plot import plot_chain, plot_run, plot_runs, plot_timeline
from .summary import RunSummary

if TYPE_CHECKING:
    from .checks import CheckReport, register_check, unregister_check
    from .export.graphml import write_graphml

# lineage_kit.checks imports pandas; loading it lazily keeps `import lineage_kit` (and
# so `lineage-kit run` and `--help`) free of pandas.
_LAZY = {
    "CheckReport": "checks",
    "register_check": "checks",
    "unregister_check": "checks",
    "write_graphml": "export.graphml",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CheckReport",
    "EntryNotFound",
    "ExportTooLarge",
    "InputError",
    "IntegrityError",
    "InvalidArgument",
    "InvalidEntryId",
    "KeyNotFound",
    "LineageKitError",
    "LineageStore",
    "MissingExtra",
    "NotALineageStore",
    "OutputError",
    "Pipeline",
    "Reject",
    "RunNotFound",
    "RunResult",
    "RunSummary",
    "SchemaVersionError",
    "Step",
    "StepError",
    "StoreClosed",
    "StoreFull",
    "StoreNotFound",
    "StoreUnavailable",
    "StoreWriteError",
    "__version__",
    "connect",
    "plot_chain",
    "plot_run",
    "plot_runs",
    "plot_timeline",
    "register_check",
    "run_pipeline",
    "step",
    "steps",
    "unregister_check",
    "write_graphml",
]
