"""The lab's shared figure style: colours, groups, and labels placed so no two texts overlap.

Every ``plot_*`` returns ``(matplotlib_figure, plotly_figure)``; see ``qwqlab.plots``.
"""
from __future__ import annotations

__all__ = ["HIGHLIGHT_COLOR", "PEER_COLORS", "OWN_COLOR", "OWN_SHADES", "OUTCOME_COLORS"]


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


def _groups(df, by):
    """``[(label, sub-table)]``: one group per value of ``by``, or the whole table."""
    if not by or by not in df.columns:
        return [(None, df)]
    return [(k, g) for k, g in df.groupby(by, sort=False)]
