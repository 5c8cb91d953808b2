"""Plots of big chains and many runs stay readable (issue 11, defect 11).

A chain plot of a merge of 500 parents used to be a 10.9 x 226-inch figure, and
two unreadable bars in a user's 8 x 5 Axes; ``plot_runs(last=50)`` was 56 inches
wide with overlapping labels. Artists are inspected, not pixels; no test is timed
(the benchmark times a 2,000-parent chain).
"""

from __future__ import annotations

from collections import Counter
from itertools import combinations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest

import lineage_kit as lk
from lineage_kit import plot

from .plot_artists import assert_no_overlap, edge_artists, node_texts, summary_texts


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@lk.step("everything", kind="merge", group_by=lambda key, record: "ALL")
def _everything(records: list[dict]) -> dict:
    return {"orders": len(records)}


def _merge_store(db, n: int) -> lk.LineageStore:
    records = [{"key": f"o{i}", "amount": i} for i in range(n)]
    lk.Pipeline([lk.steps.ingest, _everything, lk.steps.publish]).run(
        records, db=db, progress=False
    )
    return lk.connect(db)


def _columns(ax) -> dict[float, list]:
    """The boxes of each column (by x), top to bottom (the y axis is inverted)."""
    columns: dict[float, list] = {}
    for t in ax.texts:
        if (t.get_gid() or "").startswith(("entry:", "more:")):
            columns.setdefault(round(t.get_position()[0], 6), []).append(t)
    return {x: sorted(ts, key=lambda t: t.get_position()[1]) for x, ts in sorted(columns.items())}


def test_chain_of_500_parents_is_capped_ordered_and_summarised(db):
    with _merge_store(db, 500) as store:
        ax = lk.plot_chain(store, "ALL")
    width, height = ax.figure.get_size_inches()
    assert width <= plot.MAX_FIGURE[0] and height <= plot.MAX_FIGURE[1]
    columns = list(_columns(ax).values())
    assert [len(c) for c in columns] == [plot.MAX_ROWS, 1, 1]
    # parents in input order (o0, o1, ..., o8), not as text (o0, o1, o10, o100, ...)
    shown = [t.get_text().splitlines()[0] for t in columns[0][:-1]]
    assert shown == [f"ingest · o{i}" for i in range(9)]
    assert columns[0][-1].get_gid() == "more:0"
    assert columns[0][-1].get_text().splitlines() == ["+491 more parents", "491 ok"]
    # each shown parent has its arrow, the hidden ones one arrow from their summary
    ends = sorted(e.get_gid() for e in edge_artists(ax))
    assert "edge:more:0->" + columns[1][0].get_gid().removeprefix("entry:") in ends
    assert len(ends) == 9 + 1 + 1
    assert "491 in summary boxes" in ax.get_title()
    assert_no_overlap(ax)


def test_a_summary_box_counts_the_hidden_entries_by_status(db):
    @lk.step("explode", kind="split")
    def explode(record: dict) -> list:
        return [(f"r/{i:03d}", {"i": i}) for i in range(300)]

    @lk.step("check")
    def check(record: dict) -> dict:
        if record["i"] % 7 == 0:
            raise ValueError("a multiple of 7")
        if record["i"] % 2:
            raise lk.Reject("odd", "odd item")
        return record

    lk.Pipeline([lk.steps.ingest, explode, check]).run([{"key": "r"}], db=db, progress=False)
    with lk.connect(db) as store:
        ax = lk.plot_chain(store, "r")
        checked = store.lineage(step="check").sort_values("entry_id")
    hidden = Counter(checked["status"].astype(str).iloc[plot.MAX_ROWS - 1 :])
    box = summary_texts(ax)[2]
    head, *rest = box.get_text().splitlines()
    assert head == "+291 more downstream entries"
    parts = " ".join(rest).split(" · ")
    assert {p.split()[1]: int(p.split()[0].replace(",", "")) for p in parts} == dict(hidden)
    assert set(hidden) == {"ok", "rejected", "failed"}
    assert summary_texts(ax)[1].get_text().splitlines() == ["+291 more children", "291 ok"]
    assert_no_overlap(ax)


def test_chain_of_500_parents_in_a_small_axes_is_readable(db):
    with _merge_store(db, 500) as store:
        fig, ax = plt.subplots(figsize=(8, 5))
        assert lk.plot_chain(store, "ALL", ax=ax) is ax
    assert tuple(fig.get_size_inches()) == (8, 5)
    sizes = {t.get_fontsize() for t in node_texts(ax).values()}
    assert len(sizes) == 1 and sizes.pop() >= plot._MIN_FONT
    columns = list(_columns(ax).values())
    assert all(len(c) <= plot.MAX_ROWS for c in columns)
    assert columns[0][-1].get_text().startswith("+")  # the rest summarised, not squeezed
    assert_no_overlap(ax)


def test_chain_of_2000_parents_draws_a_bounded_figure(db, tmp_path):
    with _merge_store(db, 2_000) as store:
        ax = lk.plot_chain(store, "ALL")
    assert len([t for t in ax.texts if t.get_gid()]) == plot.MAX_ROWS + 2
    png = tmp_path / "chain.png"
    ax.figure.savefig(png)
    width, height = ax.figure.get_size_inches()
    assert width <= plot.MAX_FIGURE[0] and height <= plot.MAX_FIGURE[1]
    assert png.stat().st_size < 1_000_000
    assert_no_overlap(ax)


def test_a_long_pipeline_gets_a_wider_figure_with_labels_apart(db):
    hops = [lk.step(f"hop{i:02d}")(lambda r, i=i: {**r, f"f{i}": i}) for i in range(20)]
    lk.Pipeline(hops).run([{"key": "a"}], db=db, progress=False)
    with lk.connect(db) as store:
        ax = lk.plot_chain(store, "a")
    assert ax.figure.get_size_inches()[0] == pytest.approx(1.2 * 20)
    assert len(node_texts(ax)) == 20
    assert_no_overlap(ax)


def test_max_rows_is_checked(db):
    with _merge_store(db, 3) as store:
        for bad in (1, 0, 2.5, True):
            with pytest.raises(ValueError, match="max_rows"):
                lk.plot_chain(store, "ALL", max_rows=bad)
        assert len(node_texts(lk.plot_chain(store, "ALL", max_rows=2))) == 1 + 1 + 1


def _tick_boxes(ax):
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    return [
        t.get_window_extent(renderer)
        for t in [*ax.get_xticklabels(), *ax.get_xticklabels(minor=True)]
        if t.get_text() and t.get_visible()
    ]


def test_plot_runs_of_50_runs_is_capped_with_labels_apart(db):
    for i in range(50):
        records = [{"key": f"k{j}", "amount": j} for j in range(3 + i % 4)]
        lk.run_pipeline(records, db=db, progress=False)
    with lk.connect(db) as store:
        ax = lk.plot_runs(store, last=50)
        assert len(ax.get_xticks()) == 50  # every run keeps its tick
        boxes = _tick_boxes(ax)
        named = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
        oldest = store.runs()["run_id"].iloc[-1][:8]
    assert ax.figure.get_size_inches()[0] <= plot.MAX_FIGURE[0]
    assert named[0].startswith(oldest) and len(named) >= 5
    fig_box = ax.figure.bbox
    for a, b in combinations(boxes, 2):
        assert not a.overlaps(b), (a, b)
    for box in boxes:
        assert fig_box.x0 <= box.x0 and box.x1 <= fig_box.x1
