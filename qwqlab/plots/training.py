"""Figures of notebook 04 (GRPO training): the live and recorded runs.

Every ``plot_*`` returns ``(matplotlib_figure, plotly_figure)``; see ``qwqlab.plots``.
"""
from __future__ import annotations

__all__ = ["plot_training", "plot_run_summary", "TRAINING_PANELS"]

import math

from qwqlab.plots.style import with_axis_titles


#: What the GRPO training plots show: log column -> panel title.
TRAINING_PANELS = {"reward_mean": "reward (mean)", "accuracy": "accuracy (training samples)",
                   "think_tokens_mean": "thinking tokens (mean)", "completion_tokens_mean": "completion tokens (mean)"}


def _smooth(values, window: int):
    import pandas as pd
    return pd.Series(values, dtype=float).rolling(window, min_periods=1).mean() if window > 1 else pd.Series(values, dtype=float)


def plot_training(history, panels: dict | None = None, window: int = 5, title: str = "GRPO on qwq-nano",
                  runs: dict | None = None):
    """One small panel per logged quantity over GRPO steps (``train_grpo``'s log table).

    Faint lines are per-step values (noisy: a step sees only a few prompts), bold lines a
    trailing mean over ``window`` steps. ``runs`` (name -> log) draws several runs on the
    same panels instead of ``history``. Returns ``(matplotlib_figure, plotly_figure)``.
    """
    import matplotlib.pyplot as plt
    import pandas as pd
    from plotly.subplots import make_subplots

    runs = runs if runs is not None else {"": history}
    runs = {k: pd.DataFrame(v) for k, v in runs.items()}
    panels = panels or TRAINING_PANELS
    panels = {c: t for c, t in panels.items() if any(c in df.columns for df in runs.values())}
    n = max(1, len(panels))
    cols = n if n <= 4 else math.ceil(n / 2)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 2.6 * rows), squeeze=False)
    pfig = make_subplots(rows=rows, cols=cols, subplot_titles=list(panels.values()))
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
    for k, (col, name) in enumerate(panels.items()):
        ax = axes[k // cols][k % cols]
        for j, (run, df) in enumerate(runs.items()):
            if col not in df.columns or df.empty:
                continue
            color = palette[j % len(palette)]
            steps = df["step"] if "step" in df.columns else range(1, len(df) + 1)
            ax.plot(steps, df[col], color=color, alpha=0.25, lw=0.8)
            ax.plot(steps, _smooth(df[col], window), color=color, lw=1.8, label=run or None)
            pfig.add_scatter(x=list(steps), y=list(_smooth(df[col], window)), mode="lines", name=run or col,
                             legendgroup=run or col, showlegend=(k == 0), line={"color": color},
                             row=k // cols + 1, col=k % cols + 1)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        pfig.update_yaxes(title_text=name, row=k // cols + 1, col=k % cols + 1)  # the HTML names its axes too
        ax.tick_params(labelsize=7)
    for k in range(n, rows * cols):
        axes[k // cols][k % cols].axis("off")
    if any(runs.keys()):
        axes[0][0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    pfig.update_layout(title=title, template="plotly_white", height=300 * rows)
    return fig, with_axis_titles(fig, pfig)


def plot_run_summary(summary, title: str = "Held-out accuracy and thinking length, before and after RL"):
    """Before/after bars per recorded run (``scripts/record_runs.py``'s ``summary.json`` ``runs``).

    ``summary`` maps a run name to ``{"before": {...}, "after": {...}}`` evaluation dicts.
    Returns ``(matplotlib_figure, plotly_figure)``.
    """
    import matplotlib.pyplot as plt
    from plotly.subplots import make_subplots

    names = list(summary)
    fmt = "format_score" if all("format_score" in summary[n]["after"] for n in names) else "format_rate"
    metrics = [("accuracy", "held-out accuracy (pass@1, T=1)"), ("think_tokens_mean", "thinking tokens (mean)"),
               ("completion_tokens_mean", "completion tokens (mean)"),
               (fmt, "format score" if fmt == "format_score" else "well-formed share")]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.2))
    pfig = make_subplots(rows=1, cols=len(metrics), subplot_titles=[m[1] for m in metrics])
    x = range(len(names))
    for k, (key, label) in enumerate(metrics):
        before = [summary[n]["before"].get(key, float("nan")) for n in names]
        after = [summary[n]["after"].get(key, float("nan")) for n in names]
        axes[k].bar([i - 0.2 for i in x], before, width=0.4, label="before", color="#bbbbbb")
        axes[k].bar([i + 0.2 for i in x], after, width=0.4, label="after", color="#1f77b4")
        axes[k].set_xticks(list(x), names, rotation=20, fontsize=8)
        axes[k].set_title(label, fontsize=9)
        pfig.add_bar(x=names, y=before, name="before", marker_color="#bbbbbb", showlegend=k == 0, row=1, col=k + 1)
        pfig.add_bar(x=names, y=after, name="after", marker_color="#1f77b4", showlegend=k == 0, row=1, col=k + 1)
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    pfig.update_layout(title=title, barmode="group", template="plotly_white")
    return fig, with_axis_titles(fig, pfig)
