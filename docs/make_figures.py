"""Regenerate the README figures under docs/ from the sample data.

Run from the repository root:  python docs/make_figures.py

Every figure is drawn by lineage_kit itself at its default size, from pipeline
runs over data/sample_input.json (and data/messy_input.json for the rejected record)
into a temporary store.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import lineage_kit as lk  # noqa: E402

DOCS = ROOT / "docs"
SAMPLE = ROOT / "data" / "sample_input.json"
MESSY = ROOT / "data" / "messy_input.json"


@lk.step(
    "by_region",
    source="normalized",
    destination="regions",
    kind="merge",
    group_by=lambda key, record: record["region"],
    description="one record per region: order count and total amount",
)
def by_region(records: list[dict]) -> dict:
    """Merge the orders of one region."""
    return {
        "orders": len(records),
        "total": round(sum(r["amount"] for r in records), 2),
    }


def save(ax, name: str) -> None:
    path = DOCS / name
    ax.figure.savefig(path, dpi=110)
    plt.close(ax.figure)
    print(f"wrote {path.relative_to(ROOT)}")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "lineage.db"
        lk.run_pipeline(SAMPLE, db=db, progress=False, chunk_size=10)
        with lk.connect(db) as store:
            save(lk.plot_chain(store, "order-101"), "chain.png")
            save(lk.plot_run(store), "funnel.png")
            save(lk.plot_timeline(store), "timeline.png")

        merged = Path(tmp) / "merged.db"
        steps = [lk.steps.ingest, lk.steps.normalize, by_region, lk.steps.publish]
        lk.Pipeline(steps, name="regions").run(SAMPLE, merged, progress=False)
        with lk.connect(merged) as store:
            save(lk.plot_chain(store, "AMER"), "chain_merge.png")

        messy = Path(tmp) / "messy.db"
        lk.run_pipeline(MESSY, db=messy, progress=False)
        with lk.connect(messy) as store:
            save(lk.plot_chain(store, "order-950"), "chain_rejected.png")
            save(lk.plot_run(store), "funnel_messy.png")


if __name__ == "__main__":
    main()
