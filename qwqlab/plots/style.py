"""The lab's shared figure style: colours, groups, and labels placed so no two texts overlap.

Every ``plot_*`` returns ``(matplotlib_figure, plotly_figure)``; see ``qwqlab.plots``.
"""
from __future__ import annotations

__all__ = ["HIGHLIGHT_COLOR", "PEER_COLORS", "OWN_COLOR", "OWN_SHADES", "OUTCOME_COLORS", "text_boxes",
           "text_overlaps", "place_labels", "with_axis_titles", "groups_of"]


# Every figure function returns ``(matplotlib_figure, plotly_figure)``, so a notebook writes
# both with ``save_figure(name, *plot_x(...), data=table)``. Static PNGs come from
# matplotlib (plotly's static export needs Chromium); the HTML from plotly.

#: The QwQ-32B announcement draws QwQ in a strong purple and its peers in quieter colours.
HIGHLIGHT_COLOR = "#6f42c1"
PEER_COLORS = ("#8fa3bf", "#c9a77c", "#9fc5a8", "#d8a0a6", "#b7b7b7", "#a3c4dc", "#e0c97f", "#b39ddb")
OWN_COLOR = "#e67e22"  # the user's own runs, in every plot
OWN_SHADES = (OWN_COLOR, "#f5b041", "#a04000", "#f8c471", "#ca6f1e", "#fae5d3")  # several own runs side by side
OUTCOME_COLORS = {"correct": "#2e8b57", "incorrect": "#c0392b", "ungraded": "#999999"}


def _model_colors(models, highlight=None) -> dict:
    peers = iter(PEER_COLORS * (1 + len(models) // len(PEER_COLORS)))
    return {m: HIGHLIGHT_COLOR if highlight and m == highlight else next(peers) for m in models}


def groups_of(df, by):
    """``[(label, sub-table)]``: one group per value of ``by``, or the whole table."""
    if not by or by not in df.columns:
        return [(None, df)]
    return [(k, g) for k, g in df.groupby(by, sort=False)]


# ----------------------------------------------------------------------------- text that never overlaps

def text_boxes(fig) -> list:
    """``[(text, bbox)]`` of every visible, non-empty text in ``fig``, in display pixels (as drawn)."""
    from matplotlib.text import Text

    renderer = fig.canvas.get_renderer()
    fig.draw_without_rendering()
    boxes = []
    for t in fig.findobj(Text):
        if t.get_visible() and t.get_text().strip() and t.get_figure() is not None:
            boxes.append((t.get_text(), t.get_window_extent(renderer)))
    return boxes


def text_overlaps(fig, tolerance: float = 1.0) -> list[tuple[str, str]]:
    """Pairs of texts in ``fig`` whose boxes overlap by more than ``tolerance`` pixels each way."""
    boxes = text_boxes(fig)
    pairs = []
    for i, (a, ba) in enumerate(boxes):
        for b, bb in boxes[i + 1:]:
            dx = min(ba.x1, bb.x1) - max(ba.x0, bb.x0)
            dy = min(ba.y1, bb.y1) - max(ba.y0, bb.y0)
            if dx > tolerance and dy > tolerance:
                pairs.append((a, b))
    return pairs


def place_labels(ax, items, avoid=(), marker_px: float = 6.0, fontsize: float = 9) -> list:
    """Label points so that no label covers another label or a point, nor leaves the axes.

    ``items`` is ``[(text, x, y, color)]`` in data coordinates; ``avoid`` more points ``[(x, y)]``. Each label tries the
    positions right, left, above and below its point, then the same further out (with a thin
    leader line), and takes the first whose box (measured by the renderer, not guessed)
    touches no earlier label and no point. Returns the ``Text`` artists.
    """
    from matplotlib.transforms import Bbox

    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    axbox = ax.get_window_extent(renderer)
    points = [ax.transData.transform((x, y)) for _, x, y, _ in items]
    others = [ax.transData.transform(xy) for xy in avoid]  # markers without a label of their own
    taken = [Bbox.from_extents(px - marker_px, py - marker_px, px + marker_px, py + marker_px)
             for px, py in points + others]
    offsets = [(8, 0, "left", "center"), (-8, 0, "right", "center"), (0, 9, "center", "bottom"),
               (0, -9, "center", "top")]
    offsets += [(dx * k, dy * k + (-12 * k if dy == 0 else 0), ha, va)
                for k in (2, 3, 4) for dx, dy, ha, va in offsets]
    artists = []
    for (text, x, y, color), (px, py) in zip(items, points):
        chosen = None
        for dx, dy, ha, va in offsets:
            t = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va,
                            fontsize=fontsize, color=color)
            box = t.get_window_extent(renderer)
            inside = axbox.x0 <= box.x0 and box.x1 <= axbox.x1 and axbox.y0 <= box.y0 and box.y1 <= axbox.y1
            if inside and not any(box.overlaps(b) for b in taken):
                chosen = t
                break
            t.remove()
        if chosen is None:  # nowhere free: the last resort is right of the point, as before
            chosen = ax.annotate(text, (x, y), xytext=(8, 0), textcoords="offset points", ha="left",
                                 va="center", fontsize=fontsize, color=color)
        elif abs(dx) > 8 or abs(dy) > 9:  # moved out: a thin leader line back to its point
            ax.annotate("", (x, y), xytext=(dx, dy), textcoords="offset points",
                        arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "#999999", "shrinkA": 0, "shrinkB": 3})
        taken.append(chosen.get_window_extent(renderer))
        artists.append(chosen)
    return artists


def with_axis_titles(fig, pfig):
    """Give each plotly axis that has none the title of the matching matplotlib axis, and return ``pfig``.

    The two figures of a ``plot_*`` function draw the same panels in the same order (matplotlib's
    axes, twins left out; plotly's ``xaxis``, ``xaxis2``, ...), so the static figure's labels are
    the interactive one's titles: an HTML figure never has an untitled axis its PNG names.
    """
    seen, axes = set(), []
    for ax in fig.axes:
        key = tuple(round(v, 4) for v in ax.get_position().bounds)
        if key not in seen:  # a twinx axis shares its parent's position: it is not a panel of its own
            seen.add(key)
            axes.append(ax)
    keys = sorted((k for k in pfig.layout if k.startswith("xaxis")), key=lambda k: int(k[5:] or 1))
    if len(keys) != len(axes):
        return pfig
    for i, ax in enumerate(axes):
        xkey, ykey = keys[i], "y" + keys[i][1:]
        ylabel = ax.get_ylabel() or next((o.get_ylabel() for o in axes[:i] if o.get_ylabel()
                                           and ax.get_shared_y_axes().joined(ax, o)), "")  # sharey: said once
        for key, label in ((xkey, ax.get_xlabel()), (ykey, ylabel)):
            if label and not pfig.layout[key].title.text:
                pfig.layout[key].title.text = label
    return pfig
