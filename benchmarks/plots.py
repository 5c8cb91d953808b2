"""Plot benchmark (issue 11, defect 11): a chain plot of a big merge, PNG included."""

from __future__ import annotations

from common import Figure, fresh_db, interleaved, orders

import lineage_kit as lk


def _all(key: str, record: dict) -> str:
    return "ALL"


def chain_plot(n_parents: int, reps: int) -> list[Figure]:
    """``lk.plot_chain`` of a record merged from ``n_parents`` records, and its PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    merge = lk.step("everything", kind="merge", group_by=_all)(
        lambda records: {"orders": len(records)}
    )
    path = fresh_db(f"plot_{n_parents}.db")
    lk.Pipeline([lk.steps.ingest, lk.steps.normalize, merge, lk.steps.publish]).run(
        orders(n_parents), db=path, progress=False
    )
    png = path.with_suffix(".png")

    def draw() -> tuple[float, float]:
        ax = lk.plot_chain(store, "ALL")
        ax.figure.savefig(png)
        size = tuple(ax.figure.get_size_inches())
        plt.close(ax.figure)
        return size

    with lk.connect(path) as store:
        width, height = draw()
        t = interleaved({"plot": draw}, max(1, reps))
    seconds = t["plot"].median
    label = f"lk.plot_chain of a {n_parents:,}-parent merge, PNG written"
    print(
        f"  chain plot of {n_parents:,} parents: {seconds:.2f} s, "
        f"{width:.1f} x {height:.1f} in, PNG {png.stat().st_size / 1024:.0f} KiB",
        flush=True,
    )
    return [
        Figure(
            "chain_plot_seconds",
            label,
            seconds,
            "s",
            goal="< 5 s",
            met=seconds < 5,
            detail={
                "parents": n_parents,
                "figure_inches": [width, height],
                "png_bytes": png.stat().st_size,
            },
        )
    ]
