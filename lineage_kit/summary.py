"""Notebook display: a run summary and the store's HTML view (no pandas needed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .base import html_table
from .model import EntryStatus

if TYPE_CHECKING:
    from .store import Backend

#: Run columns the store's HTML view shows.
_RUN_VIEW = ("run_id", "started_at", "status", "n_input", "n_published", "n_rejected", "n_failed")


@dataclass(frozen=True)
class RunSummary:
    """One run at a glance: its status and counts, and each step's outcome counts.

    Built by :meth:`LineageStore.summary`; shown as HTML in notebooks.

    Attributes
    ----------
    run : dict
        The run's row (``run_id``, ``status``, ``n_input``, ``n_published``, ...).
    steps : list of dict
        Per step: ``position``, ``name``, ``kind``, ``source``, ``destination``,
        ``ok``, ``rejected``, ``failed``.
    """

    run: dict[str, Any]
    steps: list[dict[str, Any]] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        """The run id."""
        return self.run["run_id"]

    @property
    def status(self) -> str:
        """The run status (``completed``, ``completed_with_errors``, ...)."""
        return self.run["status"]

    def __repr__(self) -> str:
        r = self.run
        lines = [
            f"run {r['run_id']}  {r['status']}  started {r['started_at']}",
            f"input {r['n_input']}  published {r['n_published']}  "
            f"rejected {r['n_rejected']}  failed {r['n_failed']}",
        ]
        for s in self.steps:
            lines.append(
                f"  {s['position']}. {s['name']} ({s['kind']}): ok {s['ok']}, "
                f"rejected {s['rejected']}, failed {s['failed']}"
            )
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        r = self.run
        head = html_table(
            [
                "run",
                "pipeline",
                "status",
                "started (UTC)",
                "input",
                "published",
                "rejected",
                "failed",
            ],
            [
                [
                    r["run_id"],
                    r["pipeline"],
                    r["status"],
                    r["started_at"],
                    r["n_input"],
                    r["n_published"],
                    r["n_rejected"],
                    r["n_failed"],
                ]
            ],
            caption="lineage_kit run",
        )
        steps = html_table(
            ["#", "step", "kind", "from", "to", "ok", "rejected", "failed"],
            [
                [
                    s["position"],
                    s["name"],
                    s["kind"],
                    s["source"],
                    s["destination"],
                    s["ok"],
                    s["rejected"],
                    s["failed"],
                ]
                for s in self.steps
            ],
            caption="steps",
        )
        return head + steps


def store_html(path: str, schema_version: int, runs: list[dict[str, Any]], limit: int = 20) -> str:
    """The HTML view of a store: its path and its newest runs with counts and status."""
    rows = [[r[c] for c in _RUN_VIEW] for r in runs[:limit]]
    more = f" (newest {limit} of {len(runs)})" if len(runs) > limit else ""
    caption = f"lineage store {path} (schema {schema_version}): {len(runs)} runs{more}"
    return html_table(
        ["run", "started (UTC)", "status", "input", "published", "rejected", "failed"],
        rows,
        caption=caption,
    )


def run_summary(backend: Backend, run: str | None = "latest") -> RunSummary:
    """The :class:`RunSummary` behind :meth:`LineageStore.summary`."""
    run_id = backend.resolve_run(run)
    row = next(r for r in backend.run_rows() if r["run_id"] == run_id)
    counts = {(p, st): n for p, st, n in backend.step_status_counts(run_id)}
    steps = [
        {
            "position": m[1],
            "name": m[2],
            "kind": m[3],
            "source": m[4],
            "destination": m[5],
            **{str(s): counts.get((m[1], s), 0) for s in EntryStatus},
        }
        for m in backend.step_meta_rows(run_id)
    ]
    return RunSummary(row, steps)
