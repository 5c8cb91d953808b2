"""Matplotlib drawings of lineage: one record's chain, a run's step funnel, the
funnel across runs, and a run's step timeline.

matplotlib is imported inside the functions, so ``import lineage_kit`` stays fast
and never chooses a backend. Every function takes ``ax=None`` (then it makes a new
figure sized to what it draws), draws on the Axes and returns it; none calls
``plt.show()``. Statuses have one colour-blind-safe palette (Okabe-Ito) across every
plot, :data:`STATUS_COLORS`, with a second cue (line style or hatch) for each.
"""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING, Any

from .base import key_text
from .errors import InvalidArgument, KeyNotFound
from .lineage_store import LineageStore
from .model import EntryStatus

if TYPE_CHECKING:
    import networkx as nx
    import pandas as pd
    from matplotlib.axes import Axes


__all__ = [
    "STATUSES",
    "STATUS_COLORS",
    "plot_chain",
    "plot_run",
    "plot_runs",
    "plot_timeline",
]

#: Entry statuses, in the order they are stacked and listed in legends.
STATUSES: tuple[str, ...] = tuple(s.value for s in EntryStatus)

#: One colour per status (Okabe-Ito: blue, orange, vermillion), used by every plot.
STATUS_COLORS: dict[str, str] = {"ok": "#0072B2", "rejected": "#E69F00", "failed": "#D55E00"}

# A second cue besides colour: box outlines in chain plots, hatches in bar plots.
STATUS_LINESTYLES: dict[str, str] = {"ok": "-", "rejected": "--", "failed": ":"}
STATUS_HATCHES: dict[str, str] = {"ok": "", "rejected": "..", "failed": "//"}

# Timeline colours (not statuses): Okabe-Ito sky blue and bluish green.
_SPAN_COLOR = "#56B4E9"
_BUSY_COLOR = "#009E73"
_EDGE_COLOR = "0.3"

_FONT = 8.5  # points; labels, headers and ticks
_LABEL_WIDTH = 30  # characters per line of a node label's value summary
_CHAR_EM = 0.6  # average character width in ems (DejaVu Sans is ~0.55)
_LINE_EM = 1.2  # matplotlib's default line spacing


# --------------------------------------------------------------------- helpers


def _new_axes(ax: Axes | None, size: tuple[float, float]) -> Axes:
    """The given Axes, or the Axes of a new figure of ``size`` inches."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _fig, new = plt.subplots(figsize=size, layout="constrained")
    return new


def _fit_title(parts: list[str], width_in: float, fontsize: float) -> str:
    """``parts`` joined by " · ", broken into lines that fit ``width_in`` inches.

    Lines break between parts; a part longer than a line (a long record key) is
    shortened in its middle, so the title never runs past the figure's edges.

    Examples
    --------
    >>> _fit_title(["Lineage of 'a'", "run 1", "3 entries"], 6.4, 10)
    "Lineage of 'a' · run 1 · 3 entries"
    >>> print(_fit_title(["Lineage of 'a'", "run 1", "3 entries"], 1.6, 10))
    Lineage of 'a'
    run 1 · 3 entries
    """
    per_line = max(12, int(width_in * 72 / (fontsize * _CHAR_EM)))
    lines: list[str] = []
    for part in parts:
        if len(part) > per_line:
            keep = per_line - 1
            part = part[: keep - keep // 2] + "…" + part[len(part) - keep // 2 :]
        if lines and len(lines[-1]) + 3 + len(part) <= per_line:
            lines[-1] += " · " + part
        else:
            lines.append(part)
    return "\n".join(lines)


def _tint(color: str, amount: float = 0.8) -> tuple[float, float, float]:
    """``color`` mixed with ``amount`` of white."""
    from matplotlib.colors import to_rgb

    return tuple(c + (1 - c) * amount for c in to_rgb(color))  # type: ignore[return-value]


def _status_handles() -> list[Any]:
    """Legend handles for the three statuses (box style, as in chain plots)."""
    from matplotlib.patches import Patch

    return [
        Patch(
            facecolor=_tint(STATUS_COLORS[s]),
            edgecolor=STATUS_COLORS[s],
            linestyle=STATUS_LINESTYLES[s],
            linewidth=1.8,
            label=s,
        )
        for s in STATUSES
    ]


def _short(value: Any, width: int) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _field_name(name: str) -> str:
    # Quote names with outer whitespace, so that what normalize fixed stays visible.
    return repr(name) if name != name.strip() or not name else name


def value_summary(value: Any, key: Any = None, width: int = _LABEL_WIDTH, lines: int = 2) -> str:
    """A short, wrapped summary of a stored record value for a node label.

    A dict shows its field count and its first fields (a field holding the record's
    own key is left out: the label already names it); a list shows its length.

    Parameters
    ----------
    value : object
        The stored value (parsed JSON).
    key : str, optional
        The record key, dropped from the summary.
    width, lines : int
        Characters per line and most lines; longer text ends with "…".

    Returns
    -------
    str
        Up to ``lines`` lines; ``""`` for ``None``.

    Examples
    --------
    >>> value_summary({"key": "a", " Amount ": 5, "region": "EMEA"}, key="a")
    "3 fields: ' Amount '=5,\\nregion=EMEA"
    """
    if value is None:
        return ""
    if isinstance(value, dict):
        shown = [
            f"{_field_name(str(k))}={_short(v, 18)}"
            for k, v in value.items()
            if v != key or not key
        ]
        text = f"{len(value)} field{'s' if len(value) != 1 else ''}"
        text += f": {', '.join(shown)}" if shown else ""
    elif isinstance(value, list):
        text = f"list of {len(value)} value{'s' if len(value) != 1 else ''}"
    else:
        text = _short(value, width * lines)
    wrapped = textwrap.wrap(
        text, width=width, max_lines=lines, placeholder=" …", drop_whitespace=True
    )
    return "\n".join(wrapped)


def _run_label(run_id: Any) -> str:
    return str(run_id)[:8] if run_id else "?"


# ------------------------------------------------------------------------ chain


def _chain_graph(
    source: LineageStore | nx.DiGraph, key: str | int | float, run: str | None
) -> nx.DiGraph:
    """The graph of ``key``'s entries with all their ancestors and descendants."""
    import networkx as nx

    if isinstance(source, nx.DiGraph):
        run_id = source.graph.get("run_id")
        wanted = str(run).lower()
        if run not in (None, "latest") and run_id and not str(run_id).startswith(wanted):
            raise ValueError(f"the graph holds run {run_id!r}, not {run!r}")
        key = key_text(key)
        own = [n for n, k in source.nodes(data="key") if k == key]
        if not own:
            raise KeyNotFound(key, None)
        keep = set(own)
        for node in own:
            keep |= nx.ancestors(source, node) | nx.descendants(source, node)
        return source.subgraph(keep)
    if isinstance(source, LineageStore):
        # one run: resolve_run refuses "all", whose rows would sit under one run's title
        return source.graph(run=source.resolve_run(run), key=key)
    raise TypeError(
        f"source must be a LineageStore or a networkx.DiGraph from store.graph(), "
        f"not {type(source).__name__}"
    )


def _steps_of(graph: nx.DiGraph) -> dict[int, dict[str, Any]]:
    """Step dicts by position: from ``graph.graph["steps"]``, else from the nodes."""
    steps = {int(s["position"]): dict(s) for s in graph.graph.get("steps") or ()}
    for _node, data in graph.nodes(data=True):
        position = int(data["position"])
        steps.setdefault(position, {"position": position, "name": str(data.get("step", ""))})
    return dict(sorted(steps.items()))


def _node_label(data: dict[str, Any], focus_key: str, width: int, values: bool = True) -> str:
    head = str(data.get("step", ""))
    node_key = data.get("key")
    if node_key != focus_key:
        head += f" · {'(no key)' if node_key is None else _short(node_key, 16)}"
    lines = [head]
    if values and "value" in data:
        summary = value_summary(data["value"], key=node_key, width=width)
        if summary:
            lines.append(summary)
    status = data.get("status", "ok")
    if status != "ok":
        why = data.get("reason") or data.get("error") or ""
        text = f"{status}: {why}" if why else str(status)
        lines.extend(
            textwrap.wrap(text, width=width, max_lines=2 if values else 1, placeholder=" …")
        )
    return "\n".join(lines)


def _header(step: dict[str, Any], width: int) -> str:
    name = str(step.get("name", ""))
    kind = step.get("kind")
    if kind and kind != "map":
        name += f" ({kind})"
    description = str(step.get("description") or "")
    wrapped = textwrap.wrap(description, width=width, max_lines=3, placeholder=" …")
    return "\n".join([name, *wrapped])


#: Most boxes in one column of a chain plot (the default of ``max_rows``).
MAX_ROWS = 10
#: A new chain figure is never larger than this (inches); what does not fit shrinks.
MAX_FIGURE = (16.0, 11.0)
_MIN_FONT = 6.0  # points: in a small Axes, fewer rows and shorter labels before smaller text


def _columns(graph: nx.DiGraph, steps: dict[int, Any]) -> dict[int, list[Any]]:
    """The entries of each step position, in input order (entry id)."""
    columns: dict[int, list[Any]] = {position: [] for position in steps}
    for node, position in sorted(graph.nodes(data="position"), key=lambda item: item[0]):
        columns[int(position)].append(node)
    return columns


def _shown(
    graph: nx.DiGraph, columns: dict[int, list[Any]], focus: str, rows: int
) -> dict[int, list[Any]]:
    """At most ``rows`` boxes a column: the record's own entries, then the first
    others in input order; one box of the ``rows`` is the summary of the rest."""
    shown = {}
    for position, members in columns.items():
        if len(members) <= rows:
            shown[position] = members
            continue
        own = {n for n in members if graph.nodes[n].get("key") == focus}
        room = max(rows - 1 - len(own), 0)
        others = [n for n in members if n not in own][:room]
        shown[position] = sorted([*own, *others])
    return shown


def _relation(graph: nx.DiGraph, hidden: list[Any], own: set[Any], upstream: set[Any]) -> str:
    """How hidden entries relate to the record: parents, children, up- or downstream."""
    if all(any(c in own for c in graph.successors(n)) for n in hidden):
        return "parents"
    if all(any(p in own for p in graph.predecessors(n)) for n in hidden):
        return "children"
    if all(n in upstream for n in hidden):
        return "upstream entries"
    if not any(n in upstream for n in hidden):
        return "downstream entries"
    return "entries"


def _summary_label(graph: nx.DiGraph, hidden: list[Any], relation: str, width: int) -> str:
    counts = {status: 0 for status in STATUSES}
    for node in hidden:
        status = graph.nodes[node].get("status", "ok")
        counts[status] = counts.get(status, 0) + 1
    by_status = " · ".join(f"{n:,} {status}" for status, n in counts.items() if n)
    head = f"+{len(hidden):,} more {relation}"
    return "\n".join([head, *textwrap.wrap(by_status, width=max(width, len(head)), max_lines=2)])


def plot_chain(
    source: LineageStore | nx.DiGraph,
    key: str | int | float,
    run: str | None = "latest",
    ax: Axes | None = None,
    *,
    max_rows: int = MAX_ROWS,
) -> Axes:
    """Draw one record's lineage: one column per step, parent -> child arrows.

    Each entry is a box labelled with its step (and its key when that differs from
    ``key``, as for the parents of a merge), a short summary of its stored value, and
    for a rejected or failed entry the reason or error; the box is coloured by status
    (:data:`STATUS_COLORS`, with a dashed outline for rejected and a dotted one for
    failed). Column headers give each step's name, kind and description. Columns come
    from networkx's ``multipartite_layout`` with the step position as the layer; steps
    the record never reached keep an empty column, so it shows where a chain stopped.
    Within a column, entries are in input order (entry id).

    A column holds at most ``max_rows`` boxes: a merge of 2,000 records shows the
    record's own entries and the first parents, then one grey summary box for the
    rest ("+1,991 more parents", with their count by status), and the arrows of the
    hidden entries end at it. A new figure is at most :data:`MAX_FIGURE` inches (a
    pipeline of many steps gets 1.2 inches a step); there, and in a small Axes,
    fewer rows and shorter labels are drawn before the font shrinks below 6 pt.

    Parameters
    ----------
    source : LineageStore or networkx.DiGraph
        A store (then ``store.graph(run=run, key=key)`` is drawn), or a graph from
        ``store.graph()``, with or without ``key`` (then the entries of ``key`` and
        all their ancestors and descendants are drawn). Value summaries need the
        ``value`` node attribute, which ``store.graph(key=...)`` provides.
    key : str, int or float
        The record key (a number is turned into key text, ``110`` -> ``"110"``).
    run : str, default "latest"
        A run id, unique prefix or ``"latest"``; for a graph it must match the
        graph's run.
    ax : matplotlib Axes, optional
        Where to draw. By default a new figure sized so that no label overlaps;
        a given Axes keeps its size (fewer rows, shorter labels, then a smaller
        font, down to 4 pt).
    max_rows : int, default :data:`MAX_ROWS`
        Most boxes in one column, the summary box included (at least 2).

    Returns
    -------
    matplotlib.axes.Axes
        Node boxes are ``Text`` artists with ``gid`` ``"entry:<id>"``, summary boxes
        ``"more:<position>"``; arrows are ``ConnectionPatch`` artists with ``gid``
        ``"edge:<parent>-><child>"`` (an end in a summary box is ``more:<position>``).

    Raises
    ------
    KeyNotFound
        ``key`` has no entry in the run or graph.
    RunNotFound
        ``run`` matches no run of the store, or is ``"all"`` (a store's chain is
        drawn for one run; a graph passed in is drawn as given).
    ValueError
        A graph was given together with a ``run`` it does not hold, or
        ``max_rows`` is below 2.
    TypeError
        ``source`` is neither a store nor a graph.

    Examples
    --------
    >>> import lineage_kit as lk
    >>> with lk.connect("lineage.db") as store:
    ...     ax = lk.plot_chain(store, "order-101")
    >>> ax.get_title()
    "Lineage of 'order-101' · run ... · 3 entries (arrows: parent → child)"
    """
    import networkx as nx
    from matplotlib.patches import ConnectionPatch
    from matplotlib.transforms import ScaledTranslation

    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 2:
        raise InvalidArgument(f"max_rows must be an int of at least 2, not {max_rows!r}")
    graph = _chain_graph(source, key, run)
    focus = key_text(key)
    steps = _steps_of(graph)
    columns = _columns(graph, steps)
    own = {n for n, k in graph.nodes(data="key") if k == focus}
    upstream = set().union(*(nx.ancestors(graph, n) for n in own)) - own if own else set()

    def layout(rows: int) -> tuple[dict[int, list[Any]], dict[Any, list[Any]]]:
        """Boxes per column (summary boxes as ``("more", position)``), and what each
        summary box stands for."""
        shown = _shown(graph, columns, focus, rows)
        hidden = {}
        for position, members in columns.items():
            if len(shown[position]) < len(members):
                kept = set(shown[position])
                hidden[("more", position)] = [n for n in members if n not in kept]
                shown[position] = [*shown[position], ("more", position)]
        return shown, hidden

    def sized(
        boxes: dict[int, list[Any]], hidden: dict[Any, list[Any]], width: int, values: bool
    ) -> tuple[dict[Any, str], int, int]:
        """Labels wrapped at ``width`` characters, their most lines and characters."""
        labels = {}
        for members in boxes.values():
            for node in members:
                if node in hidden:
                    relation = _relation(graph, hidden[node], own, upstream)
                    labels[node] = _summary_label(graph, hidden[node], relation, width)
                else:
                    # the record's own entries keep their values in a compact layout
                    labels[node] = _node_label(
                        graph.nodes[node], focus, width, values or node in own
                    )
        lines = max((label.count("\n") + 1 for label in labels.values()), default=1)
        chars = max((len(ln) for label in labels.values() for ln in label.splitlines()), default=8)
        return labels, lines, max(chars, 8)

    def fit(avail_w: float, avail_h: float, lines: int, chars: int) -> float:
        """The largest font (points) whose boxes fit a column and row of that size.

        A box is ``_CHAR_EM * chars`` ems wide plus its padding and a gap of 3 ems
        for arrows; ``_LINE_EM * lines`` ems high plus padding and a 0.6 em gap.
        """
        return min(
            avail_w / (_CHAR_EM * chars + 1.0 + 3.0), avail_h / (_LINE_EM * lines + 0.8 + 0.6)
        )

    n_cols = len(columns)
    boxes, hidden = layout(max_rows)
    labels, n_lines, n_chars = sized(boxes, hidden, _LABEL_WIDTH, True)
    font = _FONT
    if ax is None:
        n_rows = max(len(m) for m in boxes.values()) or 1
        col_in = font * (_CHAR_EM * n_chars + 4.0) / 72
        row_in = font * (_LINE_EM * n_lines + 1.4) / 72
        header_in = (max(_header(st, n_chars).count("\n") for st in steps.values()) + 7) * 0.2
        size = (max(6.4, n_cols * col_in + 0.8), max(2.6, n_rows * row_in + header_in))
        # A long pipeline may go wider than the cap: 1.2 in a column stays readable.
        capped = (min(size[0], max(MAX_FIGURE[0], 1.2 * n_cols)), min(size[1], MAX_FIGURE[1]))
        ax = _new_axes(None, capped)
        fits = capped == size
    else:
        fits = False
    if not fits:
        # The Axes keeps its size: show fewer rows, then drop the value summaries and
        # wrap labels narrower, and only then shrink the font (not below 4 pt).
        fig_w, fig_h = ax.figure.get_size_inches()
        box = ax.get_position()
        options = []
        for rows in sorted({max_rows, *(r for r in (8, 6, 4, 3, 2) if r < max_rows)}, reverse=True):
            option_boxes, option_hidden = layout(rows)
            n_rows = max(len(m) for m in option_boxes.values()) or 1
            avail_w = box.width * fig_w * 72 / n_cols
            avail_h = box.height * fig_h * 72 / n_rows * 0.85  # headers and legend take room
            for values in (True, False):
                for width in (30, 24, 18, 14):
                    lab, ln, ch = sized(option_boxes, option_hidden, width, values)
                    options.append(
                        (fit(avail_w, avail_h, ln, ch), option_boxes, option_hidden, lab, ch)
                    )
        readable = [o for o in options if o[0] >= _MIN_FONT]
        chosen = readable[0] if readable else max(options, key=lambda o: o[0])
        font, boxes, hidden, labels, n_chars = chosen
        font = max(4.0, min(_FONT, font))
    headers = [_header(step, max(n_chars, 12)) for step in steps.values()]

    layout_graph = nx.DiGraph()
    for position, members in boxes.items():
        if not members:  # a placeholder keeps the empty step's column
            members.append(("__empty_step__", position))
        layout_graph.add_nodes_from(members)
    xy = nx.multipartite_layout(layout_graph, subset_key=boxes)

    # multipartite_layout spaces layers and rows alike, one unit apart before scaling.
    xs = sorted({float(p[0]) for p in xy.values()})
    n_rows = max(len(m) for m in boxes.values())
    if n_cols > 1:
        unit = (xs[-1] - xs[0]) / (n_cols - 1)
    elif n_rows > 1:
        ys = sorted(float(p[1]) for p in xy.values())
        unit = (ys[-1] - ys[0]) / (n_rows - 1)
    else:
        unit = 1.0

    def gid(node: Any) -> str:
        return f"more:{node[1]}" if node in hidden else f"entry:{node}"

    for node, label in labels.items():
        if node in hidden:
            color, style, face = "0.45", "-", "0.94"
        else:
            status = graph.nodes[node].get("status", "ok")
            color = STATUS_COLORS.get(status, _EDGE_COLOR)
            style, face = STATUS_LINESTYLES.get(status, "-"), _tint(color)
        x, y = xy[node]
        ax.text(
            x,
            y,
            label,
            ha="center",
            va="center",
            fontsize=font,
            zorder=3,
            gid=gid(node),
            bbox={
                "boxstyle": "round,pad=0.4",
                "facecolor": face,
                "edgecolor": color,
                "linestyle": style,
                "linewidth": 1.8,
            },
        )
    # Arrows run from the right edge of the parent's box to the left edge of the
    # child's, so they stay in the gap between columns and never cross a box. Box
    # sizes are fixed in points, so the anchors are offsets in inches from the
    # node positions, valid at any dpi and after layout changes.
    fig = ax.figure
    pad_in = (0.4 * font + 1.0) / 72
    half = {}
    for text in ax.texts:
        text_gid = text.get_gid() or ""
        if text_gid.startswith(("entry:", "more:")):
            half[text_gid] = text.get_window_extent().width / fig.dpi / 2 + pad_in
    drawn = {node: node for members in boxes.values() for node in members}
    for summary, members in hidden.items():
        drawn.update(dict.fromkeys(members, summary))
    arrows = dict.fromkeys(
        (drawn[parent], drawn[child])
        for parent, child in graph.edges()
        if drawn[parent] != drawn[child]
    )
    for parent, child in arrows:
        start = ax.transData + ScaledTranslation(half[gid(parent)], 0, fig.dpi_scale_trans)
        end = ax.transData + ScaledTranslation(-half[gid(child)], 0, fig.dpi_scale_trans)
        ax.add_artist(
            ConnectionPatch(
                xy[parent],
                xy[child],
                coordsA=start,
                coordsB=end,
                arrowstyle="-|>",
                mutation_scale=10,
                shrinkA=0,
                shrinkB=1,
                color=_EDGE_COLOR,
                linewidth=1.0,
                zorder=2,
                gid=f"edge:{gid(parent).removeprefix('entry:')}->"
                f"{gid(child).removeprefix('entry:')}",
            )
        )

    column_x = [float(xy[members[0]][0]) for members in boxes.values()]
    ax.set_xticks(column_x, headers, fontsize=font)
    ax.xaxis.tick_top()
    ax.tick_params(axis="x", length=0, pad=4)
    ax.set_xlim(min(column_x) - 0.5 * unit, max(column_x) + 0.5 * unit)
    all_y = [float(p[1]) for p in xy.values()]
    ax.set_ylim(max(all_y) + 0.5 * unit, min(all_y) - 0.5 * unit)  # first row on top
    ax.set_yticks([])
    ax.set_ylabel("entries, in input order", fontsize=font)
    for spine in ax.spines.values():
        spine.set_visible(False)
    run_id = graph.graph.get("run_id") or next(iter(dict(graph.nodes(data="run")).values()), None)
    n_hidden = sum(len(m) for m in hidden.values())
    title_font = font + 1.5
    ax.set_title(
        _fit_title(
            [
                f"Lineage of {key!r}",
                f"run {_run_label(run_id)}",
                f"{graph.number_of_nodes():,} entries"
                + (f" ({n_hidden:,} in summary boxes)" if n_hidden else "")
                + " (arrows: parent → child)",
            ],
            ax.get_position().width * ax.figure.get_size_inches()[0],
            title_font,
        ),
        fontsize=title_font,
    )
    ax.legend(
        handles=_status_handles(),
        title="status",
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncols=3,
        fontsize=font,
        title_fontsize=font,
        frameon=False,
    )
    return ax


# ----------------------------------------------------------------------- funnel

_STEP_COUNT_COLUMNS = ("position", "name", "n_ok", "n_rejected", "n_failed")


def _steps_frame(source: LineageStore | pd.DataFrame, run: str | None) -> pd.DataFrame:
    """The steps DataFrame of ``store.steps(run)``, or the given one (checked)."""
    import pandas as pd

    if isinstance(source, pd.DataFrame):
        frame = source
        run_ids = frame["run_id"].unique() if "run_id" in frame else []
        if len(run_ids) > 1:
            raise ValueError("the steps DataFrame holds more than one run; pass one run's steps")
        wanted = str(run).lower()
        if run not in (None, "latest") and len(run_ids) and not str(run_ids[0]).startswith(wanted):
            raise ValueError(f"the steps DataFrame holds run {run_ids[0]!r}, not {run!r}")
    elif isinstance(source, LineageStore):
        frame = source.steps(run=source.resolve_run(run))  # one run; "all" is refused
    else:
        raise TypeError(
            "source must be a LineageStore or a DataFrame from store.steps(), "
            f"not {type(source).__name__}"
        )
    missing = [c for c in _STEP_COUNT_COLUMNS if c not in frame]
    if missing:
        raise ValueError(f"the steps DataFrame lacks columns {missing}")
    return frame.sort_values("position").reset_index(drop=True)


def _step_tick(row: Any, width: int = 16) -> str:
    description = textwrap.wrap(
        str(row.get("description") or ""), width=width, max_lines=3, placeholder=" …"
    )
    return "\n".join([str(row["name"]), *description])


def _stack(ax: Axes, x: Any, counts: dict[str, Any], width: float, *, label: bool) -> None:
    """Stacked bars of ok, rejected and failed counts at ``x``."""
    import numpy as np

    bottom = np.zeros(len(x))
    for status in STATUSES:
        heights = np.asarray(counts[status], dtype=float)
        ax.bar(
            x,
            heights,
            width=width,
            bottom=bottom,
            color=STATUS_COLORS[status],
            hatch=STATUS_HATCHES[status],
            edgecolor="white",
            linewidth=0.6,
            label=status if label else f"_{status}",
            gid=status,
        )
        bottom += heights


def _status_bar_legend(ax: Axes, **kwargs: Any) -> None:
    from matplotlib.patches import Patch

    handles = [
        Patch(
            facecolor=STATUS_COLORS[s],
            hatch=STATUS_HATCHES[s],
            edgecolor="white",
            label=s,
        )
        for s in STATUSES
    ]
    ax.legend(handles=handles, title="status", fontsize=_FONT, title_fontsize=_FONT, **kwargs)


def plot_run(
    source: LineageStore | pd.DataFrame, run: str | None = "latest", ax: Axes | None = None
) -> Axes:
    """Draw a run's step funnel: the entries reaching each step, by status.

    One bar per step in pipeline order; its height is the number of entries the
    step made (records reaching it; groups for a merge step, pieces after a split),
    stacked ok (bottom), rejected, failed (top). The total and the rejected and
    failed counts are written above each bar, so a drop-off reads at a glance.

    Parameters
    ----------
    source : LineageStore or pandas.DataFrame
        A store (``store.steps(run)`` is drawn) or one run's ``store.steps()`` frame.
    run : str, default "latest"
        A run id, unique prefix or ``"latest"``.
    ax : matplotlib Axes, optional
        Where to draw; by default a new figure.

    Returns
    -------
    matplotlib.axes.Axes
        ``ax.containers`` holds one ``BarContainer`` per status, in
        :data:`STATUSES` order, one bar per step.

    Raises
    ------
    RunNotFound
        ``run`` matches no run, or is ``"all"`` (this draws one run).
    ValueError
        A DataFrame without the step count columns, or of another run.

    Examples
    --------
    >>> import lineage_kit as lk
    >>> with lk.connect("lineage.db") as store:
    ...     ax = lk.plot_run(store)
    >>> [t.get_text().splitlines()[0] for t in ax.get_xticklabels()]
    ['ingest', 'normalize', 'publish']
    """
    import numpy as np

    frame = _steps_frame(source, run)
    n = len(frame)
    ax = _new_axes(ax, (max(6.4, 1.4 * n + 1.5), 4.8))
    x = np.arange(n)
    counts = {s: frame[f"n_{s}"].to_numpy() for s in STATUSES}
    _stack(ax, x, counts, 0.6, label=True)
    totals = sum(counts.values()) if n else np.zeros(0)
    for i in range(n):
        lost = [f"{int(counts[s][i])} {s}" for s in ("rejected", "failed") if int(counts[s][i]) > 0]
        text = f"{int(totals[i])}" + (f"\n({', '.join(lost)})" if lost else "")
        ax.annotate(
            text,
            (x[i], totals[i]),
            xytext=(0, 3),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=_FONT,
        )
    ax.set_xticks(x, [_step_tick(row) for _, row in frame.iterrows()], fontsize=_FONT)
    ax.set_xlim(-0.6, n - 0.4)
    top = float(totals.max()) if n else 1.0
    ax.set_ylim(0, max(top, 1.0) * 1.22)
    ax.set_xlabel("pipeline step (in order)")
    ax.set_ylabel("entries reaching the step")
    run_id = frame["run_id"].iloc[0] if n and "run_id" in frame else None
    ax.set_title(f"Run {_run_label(run_id)}: entries reaching each step")
    ax.spines[["top", "right"]].set_visible(False)
    _status_bar_legend(ax, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return ax


def plot_runs(store: LineageStore, last: int = 10, ax: Axes | None = None) -> Axes:
    """Draw the step funnel of each of the last runs side by side, oldest first.

    Runs are groups along the x axis; within a group one stacked bar per step (ok,
    rejected, failed, as in :func:`plot_run`), the step names written under the
    bars. A drop-off that grows from run to run shows as rising orange and
    vermillion.

    Parameters
    ----------
    store : LineageStore
    last : int, default 10
        How many of the newest runs to draw (at least 1).
    ax : matplotlib Axes, optional
        Where to draw; by default a new figure.

    Returns
    -------
    matplotlib.axes.Axes
        ``ax.containers`` holds, per run, one ``BarContainer`` per status.

    Raises
    ------
    ValueError
        ``last`` is below 1.
    RunNotFound
        The store has no runs.

    Examples
    --------
    >>> import lineage_kit as lk
    >>> with lk.connect("lineage.db") as store:
    ...     ax = lk.plot_runs(store, last=5)
    >>> ax.get_title()
    'Last 1 run: entries per step'
    """
    import numpy as np

    from .errors import RunNotFound

    if isinstance(last, bool) or not isinstance(last, int) or last < 1:
        raise InvalidArgument(f"last must be a positive int, not {last!r}")
    runs = store.runs().head(last).iloc[::-1]  # oldest first
    if runs.empty:
        raise RunNotFound(f"the store {store.path} has no runs yet")
    frames = [_steps_frame(store, run_id) for run_id in runs["run_id"]]
    widest = max(max(len(f) for f in frames), 1)
    bar = 0.8 / widest
    names = [str(name) for f in frames for name in f["name"]]
    name_chars = max((len(n) for n in names), default=4)
    natural = len(frames) * (0.25 * widest + 0.35) + 1.5
    ax = _new_axes(ax, (min(MAX_FIGURE[0], max(6.4, natural)), 5.2))

    minor_x, minor_labels = [], []
    for i, frame in enumerate(frames):
        x = i + (np.arange(len(frame)) - (len(frame) - 1) / 2) * bar
        counts = {s: frame[f"n_{s}"].to_numpy() for s in STATUSES}
        _stack(ax, x, counts, bar * 0.9, label=(i == 0))
        minor_x.extend(x)
        minor_labels.extend(_short(str(n), 12) for n in frame["name"])

    major = [
        f"{_run_label(r.run_id)}\n{r.started_at:%m-%d %H:%M}\n{r.status}" for r in runs.itertuples()
    ]
    # Labels that do not fit side by side are thinned: step names go to the axis
    # label when their bars are too narrow, and only every k-th run is named.
    fig_w = ax.figure.get_size_inches()[0]
    per_run = ax.get_position().width * fig_w * 72 * 0.85 / (len(frames) + 0.2)  # points
    minor_font, major_font = _FONT - 1.5, _FONT - 0.5
    name_steps = per_run * bar >= minor_font * _LINE_EM * 1.3
    steps_note = "bars: steps in order"
    if not name_steps:
        minor_labels = [""] * len(minor_x)
        orders = {tuple(str(n) for n in f["name"]) for f in frames}
        if len(orders) == 1:
            steps_note = "bars: " + ", ".join(_short(n, 12) for n in next(iter(orders)))
    ax.set_xticks(np.arange(len(frames)), major)
    ax.set_xticks(minor_x, minor_labels, minor=True)
    # tick_params, not set_xticks kwargs: they also style ticks matplotlib adds later.
    ax.tick_params(axis="x", which="minor", labelrotation=90, labelsize=minor_font)
    ax.tick_params(axis="x", which="major", labelsize=major_font)
    # Run labels sit below the rotated step names.
    pad = min(name_chars, 12) * _CHAR_EM * minor_font + 8 if name_steps else 6
    ax.tick_params(axis="x", which="major", length=0, pad=pad)
    ax.tick_params(axis="x", which="minor", length=2)
    ax.xaxis.remove_overlapping_locs = False  # a step bar may sit at a run's centre
    every = _label_every(ax, len(frames))
    if every > 1:
        ax.set_xticks(
            np.arange(len(frames)), [t if i % every == 0 else "" for i, t in enumerate(major)]
        )
    ax.set_xlim(-0.6, len(frames) - 0.4)
    ax.set_ylim(0, ax.get_ylim()[1] * 1.15)
    named = "" if every == 1 else f", one in {every} named"
    ax.set_xlabel(f"run (oldest first{named}): id, start (UTC), status; {steps_note}")
    ax.set_ylabel("entries reaching the step")
    ax.set_title(f"Last {len(frames)} run{'s' if len(frames) != 1 else ''}: entries per step")
    ax.spines[["top", "right"]].set_visible(False)
    _status_bar_legend(ax, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return ax


def _label_every(ax: Axes, n: int) -> int:
    """The smallest k such that naming every k-th run leaves a gap between names.

    Measured on the laid-out figure (``draw_without_rendering``), from the real
    widths of the run labels and the distance between run centres.
    """
    if n < 2:
        return 1
    fig = ax.figure
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    widths = [t.get_window_extent(renderer).width for t in ax.get_xticklabels()]
    step = abs(ax.transData.transform((1, 0))[0] - ax.transData.transform((0, 0))[0])
    gap = 0.3 * _FONT * fig.dpi / 72
    for k in range(1, n):
        if all((widths[i] + widths[i + k]) / 2 + gap <= k * step for i in range(n - k)):
            return k
    return n


# --------------------------------------------------------------------- timeline


def plot_timeline(
    source: LineageStore | pd.DataFrame, run: str | None = "latest", ax: Axes | None = None
) -> Axes:
    """Draw when each step ran and how long it worked.

    The pipeline works in chunks, so steps interleave: a step is active from the
    first chunk it saw to the end of the last one (the light bar, its *span*), but
    busy only while it worked on a chunk. The dark bar's length is the step's busy
    time summed over chunks (drawn from the span's start; it is a total, not one
    continuous stretch), and the text gives both. When ``source`` is a store, a tick
    marks each moment a chunk entered the step.

    Parameters
    ----------
    source : LineageStore or pandas.DataFrame
        A store, or one run's ``store.steps()`` frame (no chunk ticks then).
    run, ax
        As for :func:`plot_run`.

    Returns
    -------
    matplotlib.axes.Axes
        Span bars are ``Rectangle`` patches with ``gid`` ``"span"``, busy bars with
        ``gid`` ``"busy"``, one per step that ran; x is seconds since the first step
        started.

    Raises
    ------
    RunNotFound
        ``run`` matches no run, or is ``"all"`` (this draws one run).
    ValueError
        A DataFrame without ``started_at``, ``finished_at`` and ``busy_seconds``.

    Examples
    --------
    >>> import lineage_kit as lk
    >>> with lk.connect("lineage.db") as store:
    ...     ax = lk.plot_timeline(store)
    >>> ax.get_title()
    'Run ...: when each step ran'
    """
    import numpy as np
    import pandas as pd

    frame = _steps_frame(source, run)
    missing = [c for c in ("started_at", "finished_at", "busy_seconds") if c not in frame]
    if missing:
        raise ValueError(f"the steps DataFrame lacks columns {missing}")
    n = len(frame)
    ax = _new_axes(ax, (7.2, max(3.4, 0.75 * n + 2.0)))
    started = pd.to_datetime(frame["started_at"], utc=True)
    finished = pd.to_datetime(frame["finished_at"], utc=True)
    t0 = started.min()
    start_s = (started - t0).dt.total_seconds().to_numpy(dtype=float)
    span_s = (finished - started).dt.total_seconds().to_numpy(dtype=float)
    busy_s = frame["busy_seconds"].to_numpy(dtype=float)
    ran = ~np.isnan(start_s)
    end = float(np.nanmax(start_s + span_s)) if ran.any() else 0.0
    # Short runs read better in milliseconds.
    scale, unit = (1000.0, "milliseconds") if end < 1 else (1.0, "seconds")
    y = np.arange(n)

    ax.barh(
        y[ran],
        np.nan_to_num(span_s[ran]) * scale,
        left=start_s[ran] * scale,
        height=0.6,
        color=_tint(_SPAN_COLOR, 0.55),
        edgecolor=_SPAN_COLOR,
        label="span: first chunk in to last chunk out",
        gid="span",
    )
    ax.barh(
        y[ran],
        busy_s[ran] * scale,
        left=start_s[ran] * scale,
        height=0.22,
        color=_BUSY_COLOR,
        label="busy time, summed over chunks (not one stretch)",
        gid="busy",
    )

    run_id = frame["run_id"].iloc[0] if n and "run_id" in frame else None
    moments = _chunk_moments(source, run_id) if run_id is not None else None
    if moments is not None and len(moments) and pd.notna(t0):
        rows = {int(p): i for i, p in enumerate(frame["position"])}
        known = moments["position"].astype(int).isin(rows)
        ax.scatter(
            (moments.loc[known, "created_at"] - t0).dt.total_seconds() * scale,
            moments.loc[known, "position"].astype(int).map(rows),
            marker="|",
            s=260,
            linewidths=1.2,
            color="0.15",
            zorder=3,
            label="a chunk enters the step",
            gid="chunk",
        )

    # The numbers go on a right-hand axis: tick labels always get room in the layout.
    stats = []
    for i in range(n):
        if not ran[i]:
            stats.append("did not run")
            continue
        text = f"busy {_seconds(busy_s[i])}\nof span {_seconds(span_s[i])}"
        if span_s[i] > 0:
            share = busy_s[i] / span_s[i]
            # Busy time and span are timed by different clocks; within a hair of
            # each other they mean "busy all along".
            text += " (≈100%)" if share >= 0.995 else f" ({share:.0%})"
        stats.append(text)
    ax.set_yticks(y, [_step_tick(row, width=24) for _, row in frame.iterrows()], fontsize=_FONT)
    ax.set_ylim(n - 0.4, -0.6)  # first step on top
    right = ax.secondary_yaxis("right")
    right.set_yticks(y, stats, fontsize=_FONT)
    right.tick_params(length=0)
    right.spines["right"].set_visible(False)
    ax.set_xlim(-0.02 * end * scale, end * scale * 1.05 if end > 0 else 1.0)
    ax.set_xlabel(
        f"{unit} since the first step started"
        + (f" ({t0:%Y-%m-%d %H:%M:%S} UTC)" if pd.notna(t0) else "")
    )
    ax.set_ylabel("pipeline step")
    ax.set_title(f"Run {_run_label(run_id)}: when each step ran", pad=34)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        ncols=2,
        fontsize=_FONT - 0.5,
        frameon=False,
    )
    return ax


def _seconds(value: float) -> str:
    if value >= 1:
        return f"{value:.3g} s"
    return f"{value * 1000:.2g} ms"


def _chunk_moments(source: Any, run_id: Any) -> pd.DataFrame | None:
    """When each chunk entered each step (a store only), or None."""
    if not isinstance(source, LineageStore):
        return None
    import pandas as pd

    rows = source.backend.chunk_moments(str(run_id))
    frame = pd.DataFrame(rows, columns=["position", "created_at", "entries"])
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True, format="ISO8601")
    return frame
