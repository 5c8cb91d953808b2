"""lineage_kit: record-level data lineage in an embedded SQLite store.

Run a record pipeline, and every record's path through every step is kept: where
it came from, what each step did, whether it succeeded and the value afterwards.
Explore it from Jupyter as pandas DataFrames and networkx graphs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
    StoreWriteError,
)

if TYPE_CHECKING:
    from . import steps
    from .checks import CheckReport, register_check, unregister_check
    from .export.graphml import write_graphml
    from .lineage_store import LineageStore, connect
    from .model import RunResult, Step, step
    from .pipeline import Pipeline, run_pipeline
    from .plot import plot_chain, plot_run, plot_runs, plot_timeline
    from .summary import RunSummary

# Everything else is imported on first use, so that `lineage-kit --help` and any
# module of the package (the CLI, the storage layer) load only what they need;
# lineage_kit.checks and the plots import pandas.
_LAZY = {
    **dict.fromkeys(("LineageStore", "connect"), "lineage_store"),
    **dict.fromkeys(("RunResult", "Step", "step"), "model"),
    **dict.fromkeys(("Pipeline", "run_pipeline"), "pipeline"),
    **dict.fromkeys(("plot_chain", "plot_run", "plot_runs", "plot_timeline"), "plot"),
    **dict.fromkeys(("CheckReport", "register_check", "unregister_check"), "checks"),
    "RunSummary": "summary",
    "write_graphml": "export.graphml",
}


def __getattr__(name: str) -> Any:
    from importlib import import_module

    if name in _LAZY:
        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
    else:  # a submodule, as `lk.steps.ingest` and `lk.plot.STATUS_COLORS` read it
        try:
            value = import_module(f".{name}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    globals()[name] = value  # later look-ups do not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


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
