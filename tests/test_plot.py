"""Plots: inspect the artists drawn, not the pixels."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.colors import to_rgba

import lineage_kit as lk
from lineage_kit import plot
from lineage_kit.cli import main

from .explore_data import PIPELINE, RUN1, RUN2
from .plot_artists import assert_no_overlap, edge_artists, node_texts, summary_texts

ROOT = Path(__file__).resolve().parent.parent
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def close_figures():
    """Close every figure a test made."""
    yield
    plt.close("all")


def bars(ax, gid: str) -> list:
    """Bars of one status (or span/busy), left to right or top to bottom."""
    found = [p for p in ax.patches if p.get_gid() == gid]
    return sorted(found, key=lambda p: (p.get_x(), p.get_y()))


@pytest.fixture
def fan_store(tmp_path: Path):
    """Two runs of the split/merge pipeline of explore_data (rejections and a failure)."""
    db = tmp_path / "fan.db"
    first = PIPELINE.run(RUN1, db, progress=False)
    second = PIPELINE.run(RUN2, db, progress=False)
    with lk.connect(db) as store:
        yield store, first.run_id, second.run_id


def _merge_step(n_groups: int):
    @lk.step(
        "merge_batch",
        kind="merge",
        group_by=lambda key, record: f"batch-{int(record['amount']) % n_groups}",
        description="combine a batch of orders into one record",
    )
    def merge_batch(records: list[dict]) -> dict:
        return {"orders": len(records), "total": sum(r["amount"] for r in records)}

    return merge_batch


@lk.step("explode", kind="split", description="one record per line item")
def _explode(record: dict) -> list:
    return [(f"{record['key']}/{i}", {"item": i}) for i in range(20)]


# ------------------------------------------------------------------------ chain


def test_chain_draws_one_labelled_box_per_entry_left_to_right(sample_store):
    ax = lk.plot_chain(sample_store, "order-101")
    texts = node_texts(ax)
    expected_ids = set(sample_store.lineage(key="order-101")["entry_id"])
    assert set(texts) == expected_ids and len(texts) == 3
    by_step = {}
    for t in texts.values():
        by_step[t.get_text().splitlines()[0]] = t
    assert set(by_step) == {"ingest", "normalize", "publish"}
    xs = [by_step[s].get_position()[0] for s in ("ingest", "normalize", "publish")]
    assert xs == sorted(xs) and len(set(xs)) == 3
    # The value summary shows what normalize did to the field names.
    assert "' Amount '=19.99" in by_step["ingest"].get_text()
    assert "amount=19.99" in by_step["normalize"].get_text()
    assert len(edge_artists(ax)) == 2
    headers = [t.get_text() for t in ax.get_xticklabels()]
    assert headers[1].startswith("normalize") and "lowercase and strip" in headers[1]
    assert "order-101" in ax.get_title()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(lk.plot.STATUSES)


@pytest.mark.parametrize("key", ["customer-order-2026-12-02-region-emea-000001", "k" * 400])
def test_chain_title_stays_inside_the_figure_for_a_long_key(tmp_path, key):
    db = tmp_path / "long_key.db"
    lk.run_pipeline([{"key": key, "amount": 3}], db=db, progress=False)
    with lk.connect(db) as store:
        ax = lk.plot_chain(store, key)
    fig = ax.figure
    fig.canvas.draw()
    title = ax.title.get_window_extent(fig.canvas.get_renderer())
    assert fig.bbox.x0 <= title.x0 and title.x1 <= fig.bbox.x1, (title, fig.bbox)
    text = ax.get_title()
    assert "3 entries" in text and "run " in text
    if len(key) < 60:  # a key that fits a line is shown whole; a longer one shortened
        assert repr(key) in text
    else:
        assert key[:10] in text and key not in text and "…" in text


def status_of(text) -> str:
    return next(
        s for s, c in plot.STATUS_COLORS.items() if to_rgba(c) == text.get_bbox_patch().get_ec()
    )


def test_chain_colours_follow_status(messy_store, fan_store):
    # order-950 is the record whose " Amount " and "amount" collide at normalize.
    ax = lk.plot_chain(messy_store, "order-950")
    statuses = {t.get_text().splitlines()[0]: status_of(t) for t in node_texts(ax).values()}
    assert statuses == {"ingest": "ok", "normalize": "rejected"}
    plt.close("all")

    store, run1, _ = fan_store
    ax = lk.plot_chain(store, "o4", run=run1)  # amount 13 makes validate raise
    texts = list(node_texts(ax).values())
    statuses = {t.get_text().splitlines()[0]: status_of(t) for t in texts}
    assert statuses == {"ingest": "ok", "validate": "failed"}
    failed = next(t for t in texts if t.get_text().startswith("validate"))
    assert "ValueError: unlucky amount" in " ".join(failed.get_text().split())
    assert failed.get_bbox_patch().get_linestyle() != "-"  # a second cue besides colour
    assert len(ax.get_xticks()) == 5  # the steps o4 never reached keep their column


def test_chain_of_merged_record_shows_split_parents(fan_store):
    store, run1, _ = fan_store
    ax = lk.plot_chain(store, "A", run=run1)
    labels = [t.get_text() for t in node_texts(ax).values()]
    # A = o1 (split into o1/x, o1/y) + o2 (o2/z): 2 ingest, 2 validate, 3 explode,
    # 1 merge, 1 deliver.
    assert len(labels) == 9
    assert sum(label.startswith("explode") for label in labels) == 3
    assert any(label.startswith("explode · o1/x") for label in labels)
    assert len(edge_artists(ax)) == store.graph(run=run1, key="A").number_of_edges() == 9


def test_chain_accepts_graphs(fan_store):
    store, run1, _ = fan_store
    from_key_graph = lk.plot_chain(store.graph(run=run1, key="A"), "A")
    from_run_graph = lk.plot_chain(store.graph(run=run1), "A", run=run1[:8])
    assert set(node_texts(from_key_graph)) == set(node_texts(from_run_graph))
    assert len(node_texts(from_run_graph)) == 9
    # Without stored values (a whole-run graph) labels still name the step.
    assert all(t.get_text() for t in node_texts(from_run_graph).values())


def test_chain_errors(fan_store):
    store, run1, run2 = fan_store
    with pytest.raises(lk.KeyNotFound):
        lk.plot_chain(store, "nope")
    with pytest.raises(lk.KeyNotFound):
        lk.plot_chain(store.graph(run=run1), "nope")
    with pytest.raises(ValueError, match="holds run"):
        lk.plot_chain(store.graph(run=run1), "A", run=run2)
    with pytest.raises(lk.RunNotFound):
        lk.plot_chain(store, "A", run="zzzz")
    with pytest.raises(TypeError):
        lk.plot_chain("lineage.db", "A")


def test_chain_fan_in_of_20_parents_has_no_overlapping_labels(db):
    pipeline = lk.Pipeline([lk.steps.ingest, lk.steps.normalize, _merge_step(2), lk.steps.publish])
    records = [{"key": f"k{i:02d}", " Amount ": float(i), "REGION": "EMEA"} for i in range(40)]
    pipeline.run(records, db, progress=False)
    with lk.connect(db) as store:
        ax = lk.plot_chain(store, "batch-0")
    texts = node_texts(ax)
    # even amounts: 20 parents in two steps; a column holds plot.MAX_ROWS boxes
    assert plot.MAX_ROWS == 10
    assert len(texts) == 9 + 9 + 1 + 1
    merged = next(t for t in texts.values() if t.get_text().startswith("merge_batch"))
    assert "orders=20" in merged.get_text()
    more = summary_texts(ax)
    assert more[0].get_text().splitlines()[0] == "+11 more upstream entries"
    assert more[1].get_text().splitlines() == ["+11 more parents", "11 ok"]
    # 9 + 9 links between the shown parents, summary -> summary -> merged, merged -> publish
    assert len(edge_artists(ax)) == 9 + 9 + 2 + 1
    assert_no_overlap(ax)


def test_chain_fan_out_of_20_children_has_no_overlapping_labels(db):
    lk.Pipeline([lk.steps.ingest, _explode]).run([{"key": "r"}], db, progress=False)
    with lk.connect(db) as store:
        ax = lk.plot_chain(store, "r", max_rows=21)
    assert len(node_texts(ax)) == 21
    assert_no_overlap(ax)
    with lk.connect(db) as store:
        ax = lk.plot_chain(store, "r")
    assert len(node_texts(ax)) == 1 + 9
    assert summary_texts(ax)[1].get_text().splitlines()[0] == "+11 more children"
    assert_no_overlap(ax)


def test_chain_in_a_given_axes_shrinks_the_font_to_fit(fan_store):
    store, run1, _ = fan_store
    _fig, (_left, right) = plt.subplots(1, 2, figsize=(12, 4))
    n_figures = len(plt.get_fignums())
    ax = lk.plot_chain(store, "A", run=run1, ax=right)
    assert ax is right and len(plt.get_fignums()) == n_figures
    sizes = {t.get_fontsize() for t in node_texts(ax).values()}
    assert len(sizes) == 1 and sizes.pop() < plot._FONT
    assert_no_overlap(ax)


def test_value_summary():
    summary = plot.value_summary({"key": "a", " Amount ": 5, "region": "EMEA"}, key="a")
    assert summary == "3 fields: ' Amount '=5,\nregion=EMEA"
    long = plot.value_summary({f"field{i}": "x" * 10 for i in range(20)}, width=20, lines=2)
    assert len(long.splitlines()) == 2 and long.endswith("…")
    assert plot.value_summary([1, 2, 3]) == "list of 3 values"
    assert plot.value_summary(None) == ""


# ----------------------------------------------------------------------- funnel


def test_funnel_bar_heights_equal_stored_counts(fan_store):
    store, run1, _ = fan_store
    ax = lk.plot_run(store, run=run1)
    heights = {s: [b.get_height() for b in bars(ax, s)] for s in plot.STATUSES}
    # RUN1: 8 records in; 2 rejected at ingest (no key, duplicate o1); at validate
    # o3 is rejected and o4 fails; explode makes o1/x, o1/y, o2/z, o5/w and rejects
    # o6 (no items); the merge makes customers A and B, which are delivered.
    assert heights == {
        "ok": [6, 4, 4, 2, 2],
        "rejected": [2, 1, 1, 0, 0],
        "failed": [0, 1, 0, 0, 0],
    }
    steps = store.steps(run1)
    for status in plot.STATUSES:
        assert heights[status] == steps[f"n_{status}"].tolist()
    # Stacked: rejected on ok, failed on both.
    assert [b.get_y() for b in bars(ax, "rejected")] == heights["ok"]
    assert [b.get_y() for b in bars(ax, "failed")] == [
        o + r for o, r in zip(heights["ok"], heights["rejected"], strict=True)
    ]
    assert all(
        to_rgba(b.get_facecolor()) == to_rgba(plot.STATUS_COLORS[s])
        for s in plot.STATUSES
        for b in bars(ax, s)
    )
    ticks = [t.get_text().splitlines()[0] for t in ax.get_xticklabels()]
    assert ticks == ["ingest", "validate", "explode", "by_customer", "deliver"]
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(plot.STATUSES)


def test_funnel_from_a_steps_frame(messy_store):
    steps = messy_store.steps()
    ax = lk.plot_run(steps)
    totals = [
        sum(b.get_height() for b in group)
        for group in zip(*(bars(ax, s) for s in plot.STATUSES), strict=True)
    ]
    # 20 input records reach ingest; 13 survive it; 12 survive normalize.
    assert totals == [20, 13, 12]
    with pytest.raises(ValueError, match="lacks columns"):
        lk.plot_run(steps.drop(columns="n_failed"))


def test_funnel_rejects_a_frame_of_several_runs(fan_store):
    store, _, _ = fan_store
    with pytest.raises(ValueError, match="more than one run"):
        lk.plot_run(store.steps("all"))
    with pytest.raises(lk.RunNotFound, match="'all' selects every run"):
        lk.plot_timeline(store, run="all")


def test_runs_plot_shows_each_run_oldest_first(fan_store):
    store, _, _ = fan_store
    ax = lk.plot_runs(store)
    ok = [b.get_height() for b in bars(ax, "ok")]
    # RUN2: 5 clean records; explode makes 6 items; customers A, B, C.
    assert ok == [6, 4, 4, 2, 2, 5, 5, 6, 3, 3]
    assert sum(b.get_height() for b in bars(ax, "failed")) == 1
    runs = [t.get_text().splitlines()[0] for t in ax.get_xticklabels()]
    assert runs == [r[:8] for r in store.runs()["run_id"][::-1]]
    assert len(ax.get_xticklabels(minor=True)) == 10
    plt.close("all")
    assert len(bars(lk.plot_runs(store, last=1), "ok")) == 5
    with pytest.raises(ValueError):
        lk.plot_runs(store, last=0)


# --------------------------------------------------------------------- timeline


def test_timeline_spans_busy_time_and_chunks(db):
    lk.run_pipeline(ROOT / "data" / "sample_input.json", db=db, chunk_size=7, progress=False)
    with lk.connect(db) as store:
        steps = store.steps()
        ax = lk.plot_timeline(store)
    span, busy = bars(ax, "span"), bars(ax, "busy")
    assert len(span) == len(busy) == 3
    assert ax.get_xlabel().startswith(("milliseconds", "seconds"))
    scale = 1000.0 if ax.get_xlabel().startswith("milli") else 1.0
    expected_span = (steps["finished_at"] - steps["started_at"]).dt.total_seconds() * scale
    by_row = sorted(span, key=lambda p: p.get_y())
    assert np.allclose([p.get_width() for p in by_row], expected_span)
    busy_by_row = sorted(busy, key=lambda p: p.get_y())
    assert np.allclose([p.get_width() for p in busy_by_row], steps["busy_seconds"] * scale)
    # 30 records in chunks of 7: five chunks pass each of the three steps.
    (chunks,) = [c for c in ax.collections if c.get_gid() == "chunk"]
    assert len(chunks.get_offsets()) == 15
    assert [t.get_text().splitlines()[0] for t in ax.get_yticklabels()] == [
        "ingest",
        "normalize",
        "publish",
    ]
    assert ax.get_title() and ax.get_ylabel() and ax.get_legend() is not None


def test_timeline_from_a_steps_frame(sample_store):
    ax = lk.plot_timeline(sample_store.steps())
    assert len(bars(ax, "busy")) == 3
    assert not [c for c in ax.collections if c.get_gid() == "chunk"]


# ------------------------------------------------------------------ conventions


def test_plots_never_show(sample_store, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("plt.show() called")

    monkeypatch.setattr(plt, "show", refuse)
    for draw in (
        lambda: lk.plot_chain(sample_store, "order-101"),
        lambda: lk.plot_run(sample_store),
        lambda: lk.plot_runs(sample_store),
        lambda: lk.plot_timeline(sample_store),
    ):
        assert isinstance(draw(), matplotlib.axes.Axes)


def test_importing_lineage_kit_does_not_import_matplotlib():
    code = "import sys, lineage_kit; print('matplotlib' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "False"


# -------------------------------------------------------------------------- CLI


def test_cli_plot_chain_writes_a_png(sample_store, tmp_path, capsys):
    out = tmp_path / "chain.png"
    assert main(["plot", "order-101", "-o", str(out), "--db", str(sample_store.path)]) == 0
    data = out.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 10_000
    assert str(out) in capsys.readouterr().out
    assert not plt.get_fignums()  # the command closes its figure


@pytest.mark.parametrize(
    ("kind", "suffix", "magic"),
    [("funnel", ".svg", b"<?xml"), ("runs", ".pdf", b"%PDF"), ("timeline", ".png", PNG_SIGNATURE)],
)
def test_cli_plot_kinds_and_formats(sample_store, tmp_path, kind, suffix, magic):
    out = tmp_path / f"plot{suffix}"
    args = ["plot", "--kind", kind, "-o", str(out), "--db", str(sample_store.path)]
    assert main(args) == 0
    assert out.read_bytes().startswith(magic)


@pytest.mark.parametrize(
    "args",
    [
        ["plot", "-o", "x.png"],  # a chain needs a key
        ["plot", "order-101", "-o", "x.gif"],  # unknown format
        ["plot", "order-101", "--kind", "funnel", "-o", "x.png"],  # funnel takes no key
        ["plot", "--kind", "runs", "--last", "0", "-o", "x.png"],
        ["plot", "order-101", "--run", "zzzz", "-o", "x.png"],  # unknown run
    ],
)
def test_cli_plot_bad_usage_exits_2(sample_store, tmp_path, args):
    args = [a if a != "x.png" else str(tmp_path / "x.png") for a in args]
    assert main([*args, "--db", str(sample_store.path)]) == 2
    assert not (tmp_path / "x.png").exists()


def test_cli_plot_subprocess_smoke(sample_store, tmp_path):
    out = tmp_path / "funnel.png"
    db = ["--db", str(sample_store.path)]
    done = subprocess.run(
        [sys.executable, "-m", "lineage_kit", "plot", "--kind", "funnel", "-o", str(out), *db],
        cwd=ROOT,
        capture_output=True,
        text=True,
        # A backend that needs a display: the command must pick Agg itself.
        env={
            **{k: v for k, v in os.environ.items() if k != "DISPLAY"},
            "MPLBACKEND": "TkAgg",
        },
    )
    assert done.returncode == 0, done.stderr
    assert out.read_bytes().startswith(PNG_SIGNATURE)
