"""What the plot tests read off matplotlib artists (shared by test_plot and
test_plot_scale)."""

from __future__ import annotations

from itertools import combinations

import matplotlib
import matplotlib.text
from matplotlib.patches import ConnectionPatch


def node_texts(ax) -> dict[int, matplotlib.text.Text]:
    return {
        int(t.get_gid().split(":")[1]): t
        for t in ax.texts
        if (t.get_gid() or "").startswith("entry:")
    }


def edge_artists(ax) -> list[ConnectionPatch]:
    return [a for a in ax.get_children() if (a.get_gid() or "").startswith("edge:")]


def assert_no_overlap(ax) -> None:
    """No two node boxes overlap, none overlaps a header, none leaves the figure."""
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [
        t.get_bbox_patch().get_window_extent(renderer)
        for t in ax.texts
        if (t.get_gid() or "").startswith(("entry:", "more:"))
    ]
    for a, b in combinations(boxes, 2):
        assert not a.overlaps(b), (a, b)
    headers = [t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_text()]
    title = ax.title.get_window_extent(renderer)
    for box in boxes:
        assert fig.bbox.contains(box.x0, box.y0) and fig.bbox.contains(box.x1, box.y1)
        assert not any(box.overlaps(h) for h in headers)
        assert not box.overlaps(title)
    for a, b in combinations(headers, 2):
        assert not a.overlaps(b)
    for h in headers:
        assert fig.bbox.contains(h.x0, h.y0) and fig.bbox.contains(h.x1, h.y1)


def summary_texts(ax) -> dict[int, matplotlib.text.Text]:
    """The summary boxes of a chain plot, by step position."""
    return {
        int(t.get_gid().split(":")[1]): t
        for t in ax.texts
        if (t.get_gid() or "").startswith("more:")
    }
