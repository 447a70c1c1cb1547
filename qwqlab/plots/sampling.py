"""Figures of notebook 02 (rollout sampling): pass@k, truncation, the spread of answers.

Every ``plot_*`` returns ``(matplotlib_figure, plotly_figure)``; see ``qwqlab.plots``.
"""
from __future__ import annotations

__all__ = ["plot_pass_at_k", "plot_truncation", "plot_answer_spread"]

from qwqlab.plots.style import OUTCOME_COLORS, groups_of, with_axis_titles


def plot_pass_at_k(curves, by: str = "temperature", metric: str = "pass@k",
                   title: str = "pass@k against k (bootstrap 95% intervals)"):
    """pass@k (or ``metric``) against k, one line per value of ``by``, with its bootstrap band.

    ``curves``: rows of ``qwqlab.metrics.evaluate(...).summary`` with a ``by`` column added,
    e.g. one evaluation per sampling temperature. Returns ``(matplotlib_figure, plotly_figure)``.
    """
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go

    t = curves[curves["metric"] == metric]
    fig, ax = plt.subplots(figsize=(6, 3.8))
    pfig = go.Figure()
    for j, (key, g) in enumerate(groups_of(t, by)):
        g = g.sort_values("k")
        label = f"{by} {key:g}" if isinstance(key, (int, float)) else (str(key) if key is not None else metric)
        color = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")[j % 6]
        ax.plot(g["k"], g["value"], marker="o", color=color, label=label)
        ax.fill_between(g["k"], g["ci_low"], g["ci_high"], color=color, alpha=0.15)
        pfig.add_scatter(x=g["k"], y=g["value"], mode="lines+markers", name=label, line={"color": color},
                         error_y={"type": "data", "symmetric": False, "array": g["ci_high"] - g["value"],
                                  "arrayminus": g["value"] - g["ci_low"]},
                         hovertemplate=f"{label}<br>k=%{{x}}<br>{metric}=%{{y:.3f}}<extra></extra>")
    ax.set_xscale("log", base=2)
    ks = sorted(set(t["k"]))
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("k (samples per problem)")
    ax.set_ylabel(metric)
    ax.set_title(title, fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(fontsize=8)
    pfig.update_layout(title=title, template="plotly_white", yaxis={"title": metric, "range": [0, 1.02]},
                       xaxis={"title": "k (samples per problem)", "type": "log", "tickvals": ks,
                              "ticktext": [str(k) for k in ks]})
    return fig, with_axis_titles(fig, pfig)


def plot_truncation(table, x: str = "max_new_tokens",
                    title: str = "Truncation grows as max_new_tokens shrinks"):
    """Truncation rate (and accuracy, when present) against the token budget.

    ``table``: one row per budget with ``truncation_rate`` and optionally ``accuracy`` (see
    ``qwqlab.metrics.run_summary``). Returns ``(matplotlib_figure, plotly_figure)``.
    """
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go

    t = table.sort_values(x)
    series = [("truncation_rate", "truncated (hit max_new_tokens)", OUTCOME_COLORS["incorrect"])]
    if "accuracy" in t.columns:
        series.append(("accuracy", "accuracy", OUTCOME_COLORS["correct"]))
    fig, ax = plt.subplots(figsize=(6, 3.6))
    pfig = go.Figure()
    for col, label, color in series:
        ax.plot(t[x], t[col], marker="o", color=color, label=label)
        pfig.add_scatter(x=t[x], y=t[col], mode="lines+markers", name=label, line={"color": color})
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(x)
    ax.set_ylabel("share of completions")
    ax.set_title(title, fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(fontsize=8)
    pfig.update_layout(title=title, template="plotly_white", xaxis_title=x,
                       yaxis={"title": "share of completions", "range": [-0.02, 1.02]})
    return fig, with_axis_titles(fig, pfig)


def plot_answer_spread(rollouts, title: str | None = None, max_answers: int = 12):
    """For one problem's samples: how often each answer was given (coloured by correctness),
    and the spread of completion lengths (truncated ones apart). Returns ``(matplotlib, plotly)``.
    """
    import matplotlib.pyplot as plt
    import numpy as np
    from plotly.subplots import make_subplots

    answers = rollouts["extracted_answer"].map(
        lambda a: "(none)" if a is None or a != a else (str(a) if len(str(a)) <= 16 else str(a)[:15] + "…"))
    correct = rollouts["correct"] if "correct" in rollouts.columns else np.full(len(rollouts), np.nan)
    counts = answers.value_counts().head(max_answers)
    right = {a: correct[answers == a].mean() for a in counts.index}
    colors = [OUTCOME_COLORS["ungraded"] if right[a] != right[a] else
              OUTCOME_COLORS["correct"] if right[a] >= 0.5 else OUTCOME_COLORS["incorrect"] for a in counts.index]
    title = title or f"{len(rollouts)} samples: answers and lengths"
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
    ax1.bar(range(len(counts)), counts.values, color=colors)
    ax1.set_xticks(range(len(counts)), counts.index, rotation=45, ha="right", fontsize=8)
    ax1.set_ylabel("samples")
    ax1.set_title("answers (green: correct)", fontsize=9)
    truncated = rollouts["is_truncated"].astype(bool)
    lengths = rollouts["completion_tokens"]
    lo, hi = (int(lengths.min()), int(lengths.max())) if len(lengths) else (0, 1)
    bins = np.linspace(lo - 0.5, hi + 0.5, min(20, hi - lo + 1) + 1)  # whole tokens, at most 20 bars
    ax2.hist([lengths[~truncated], lengths[truncated]], bins=bins, stacked=True,
             color=["#4a6fa5", OUTCOME_COLORS["incorrect"]], label=["finished", "truncated"])
    ax2.set_xlabel("completion tokens")
    ax2.set_title("lengths", fontsize=9)
    ax2.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    pfig = make_subplots(rows=1, cols=2, subplot_titles=["answers", "completion tokens"])
    pfig.add_bar(x=list(counts.index), y=list(counts.values), marker_color=colors, showlegend=False, row=1, col=1)
    pfig.add_histogram(x=lengths[~truncated], name="finished", marker_color="#4a6fa5", row=1, col=2)
    pfig.add_histogram(x=lengths[truncated], name="truncated", marker_color=OUTCOME_COLORS["incorrect"], row=1, col=2)
    pfig.update_layout(title=title, barmode="stack", template="plotly_white")
    return fig, with_axis_titles(fig, pfig)
