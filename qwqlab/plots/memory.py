"""Figures of notebook 01 (models and quantization): memory per model, measured footprints.

Every ``plot_*`` returns ``(matplotlib_figure, plotly_figure)``; see ``qwqlab.plots``.
"""
from __future__ import annotations
from qwqlab.plots.style import with_axis_titles

__all__ = ["plot_memory", "plot_footprints"]


def plot_memory(table, title: str | None = None):
    """Stacked bars of weights + KV cache + overhead per model and precision (from ``models.memory_table``).

    Returns ``(matplotlib_figure, plotly_figure)``.
    """
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go

    ctx = int(table["context_tokens"].iloc[0])
    title = title or f"Memory to serve one sequence of {ctx:,} tokens"
    labels = [f"{m.split('/')[-1]} {b}-bit" for m, b in zip(table["model"], table["bits"])]
    parts = [("weights_gib", "weights"), ("kv_cache_gib", "KV cache (bf16)"), ("overhead_gib", "overhead (10% allowance)")]
    fig, ax = plt.subplots(figsize=(9, 0.28 * len(labels) + 1.5))
    left = [0.0] * len(labels)
    for col, name in parts:
        ax.barh(labels, table[col], left=left, label=name)
        left = [a + b for a, b in zip(left, table[col])]
    ax.invert_yaxis()
    ax.set_xlabel("GiB")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    pfig = go.Figure([go.Bar(y=labels, x=table[col], name=name, orientation="h") for col, name in parts])
    pfig.update_layout(barmode="stack", title=title, xaxis_title="GiB", yaxis_autorange="reversed",
                       height=120 + 22 * len(labels))
    return fig, with_axis_titles(fig, pfig)


def plot_footprints(table, title: str = "qwq-nano: measured against estimated weight memory"):
    """Grouped bars of measured and estimated footprints per precision (from ``models.compare_footprints``)."""
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go

    x = [f"{b}-bit" for b in table["bits"]]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    idx = range(len(x))
    ax.bar([i - 0.2 for i in idx], table["measured_mb"], width=0.4, label="measured (get_memory_footprint)")
    ax.bar([i + 0.2 for i in idx], table["estimated_mb"], width=0.4, label="estimated (estimate_memory)")
    ax.set_xticks(list(idx), x)
    ax.set_ylabel("MB")
    ax.set_title(title)
    ax.legend(fontsize=8)
    pfig = go.Figure([go.Bar(x=x, y=table["measured_mb"], name="measured"),
                      go.Bar(x=x, y=table["estimated_mb"], name="estimated")])
    pfig.update_layout(barmode="group", title=title, yaxis_title="MB")
    return fig, with_axis_titles(fig, pfig)
