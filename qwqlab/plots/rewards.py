"""Figures of notebook 03 (reward shaping): rewards against length, shaping curves, advantages, token weights.

Every ``plot_*`` returns ``(matplotlib_figure, plotly_figure)``; see ``qwqlab.plots``.
"""
from __future__ import annotations

__all__ = ["plot_rewards_vs_length", "plot_length_curves", "plot_group_advantages", "plot_token_weights", "ESTIMATOR_COLORS", "AGGREGATION_STYLE"]

import math

from qwqlab.plots.style import OUTCOME_COLORS, with_axis_titles


ESTIMATOR_COLORS = {"grpo": "#4a6fa5", "dr_grpo": "#e67e22", "rloo": "#2e8b57", "batch": "#8e44ad"}
AGGREGATION_STYLE = {"sequence": ("#4a6fa5", "GRPO: / |o_i| (per sequence)"),
                     "constant": ("#e67e22", "Dr. GRPO: / max_tokens (constant)"),
                     "token": ("#2e8b57", "DAPO: / all tokens (per token)")}


def _outcome(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "ungraded"
    return "correct" if v >= 0.5 else "incorrect"


def plot_rewards_vs_length(table, rewards, length: str = "completion_tokens", correct: str = "correct",
                           title: str = "Every reward against completion length (qwq-nano rollouts)"):
    """One panel per reward: its value against ``length``, coloured by correctness.

    ``table`` holds the rollouts with one column per reward (``qwqlab.rewards.reward_table``).
    """
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    rewards = list(rewards)
    cols = min(4, len(rewards))
    rows = math.ceil(len(rewards) / cols)
    outcome = [_outcome(v) for v in table[correct]] if correct in table else ["ungraded"] * len(table)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    pfig = make_subplots(rows=rows, cols=cols, subplot_titles=rewards)
    for k, name in enumerate(rewards):
        ax = axes[k // cols][k % cols]
        for label, color in OUTCOME_COLORS.items():
            sel = [o == label for o in outcome]
            sub = table[sel]
            if sub.empty:
                continue
            ax.scatter(sub[length], sub[name], s=12, alpha=0.6, color=color, label=label)
            pfig.add_trace(go.Scatter(x=sub[length], y=sub[name], mode="markers", name=label, legendgroup=label,
                                      showlegend=k == 0, marker=dict(color=color, size=6, opacity=0.6)),
                           row=k // cols + 1, col=k % cols + 1)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(length, fontsize=8)
        ax.tick_params(labelsize=8)
        pfig.update_xaxes(title_text=length, row=k // cols + 1, col=k % cols + 1)
        pfig.update_yaxes(title_text="reward", row=k // cols + 1, col=k % cols + 1)
    for k in range(len(rewards), rows * cols):
        axes[k // cols][k % cols].axis("off")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    pfig.update_layout(title=title, template="plotly_white", height=280 * rows)
    return fig, with_axis_titles(fig, pfig)


def plot_length_curves(curves, title: str = "Length shaping: reward against completion length"):
    """Each length-shaping reward for a right and a wrong answer (``qwqlab.rewards.length_curves``)."""
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = list(dict.fromkeys(curves["reward"]))
    fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.0), squeeze=False)
    pfig = make_subplots(rows=1, cols=len(names), subplot_titles=names)
    for k, name in enumerate(names):
        ax = axes[0][k]
        for correct, label in ((True, "correct"), (False, "incorrect")):
            sub = curves[(curves["reward"] == name) & (curves["correct"] == correct)].sort_values("length")
            ax.plot(sub["length"], sub["value"], color=OUTCOME_COLORS[label], label=label)
            pfig.add_trace(go.Scatter(x=sub["length"], y=sub["value"], mode="lines", name=label, legendgroup=label,
                                      showlegend=k == 0, line=dict(color=OUTCOME_COLORS[label])), row=1, col=k + 1)
        ax.axhline(0, color="#999999", lw=0.6)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("completion tokens", fontsize=8)
    axes[0][0].set_ylabel("reward")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    pfig.update_layout(title=title, template="plotly_white")
    return fig, with_axis_titles(fig, pfig)


def plot_group_advantages(table, title: str = "One group of rollouts: advantage under each estimator"):
    """Grouped bars: per completion (``label``), its ``advantage`` under each ``estimator``."""
    import matplotlib.pyplot as plt
    import numpy as np
    import plotly.graph_objects as go

    labels = list(dict.fromkeys(table["label"]))
    estimators = list(dict.fromkeys(table["estimator"]))
    width = 0.8 / len(estimators)
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(labels)), 3.4))
    pfig = go.Figure()
    x = np.arange(len(labels))
    for j, est in enumerate(estimators):
        sub = table[table["estimator"] == est].set_index("label").reindex(labels)
        color = ESTIMATOR_COLORS.get(est)
        ax.bar(x + (j - (len(estimators) - 1) / 2) * width, sub["advantage"], width, label=est, color=color)
        pfig.add_bar(x=labels, y=list(sub["advantage"]), name=est, marker_color=color)
    ax.axhline(0, color="#333333", lw=0.6)
    ax.set_xticks(x)
    ax.set_xticklabels(labels, fontsize=8, rotation=30, ha="right")
    ax.set_ylabel("advantage")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    pfig.update_layout(title=title, barmode="group", template="plotly_white", yaxis_title="advantage")
    return fig, with_axis_titles(fig, pfig)


def plot_token_weights(table, title: str = "How the loss weighs a completion: GRPO against Dr. GRPO"):
    """Per-token and whole-completion weight against length, per loss aggregation.

    ``table``: ``length``, ``advantage``, ``aggregation``, ``per_token`` (weight of each token,
    ``qwqlab.grpo.token_weights``) and ``per_completion`` (``per_token * length``).
    Filled markers: positive advantage (pushed up); hollow: negative (pushed down).
    """
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    panels = (("per_token", "weight of each token"), ("per_completion", "weight of the whole completion"))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    pfig = make_subplots(rows=1, cols=2, subplot_titles=[p[1] for p in panels])
    for k, (col, label) in enumerate(panels):
        ax = axes[k]
        for agg, (color, name) in AGGREGATION_STYLE.items():
            sub = table[table["aggregation"] == agg]
            if sub.empty:
                continue
            pos, neg = sub[sub["advantage"] > 0], sub[sub["advantage"] <= 0]
            ax.scatter(pos["length"], pos[col], color=color, s=22, label=name)
            ax.scatter(neg["length"], neg[col], facecolors="none", edgecolors=color, s=22)
            pfig.add_trace(go.Scatter(x=sub["length"], y=sub[col], mode="markers", name=name, legendgroup=agg,
                                      showlegend=k == 0, marker=dict(color=color, size=8,
                                                                     symbol=["circle" if a > 0 else "circle-open"
                                                                             for a in sub["advantage"]])),
                           row=1, col=k + 1)
        ax.axhline(0, color="#333333", lw=0.6)
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("completion tokens")
        ax.set_ylabel(label)
    axes[0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    pfig.update_layout(title=title, template="plotly_white")
    return fig, with_axis_titles(fig, pfig)
