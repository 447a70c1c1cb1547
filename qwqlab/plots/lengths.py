"""Figures of notebook 05 (reasoning length): lengths, buckets, markers, QwQ-32B's traces.

Every ``plot_*`` returns ``(matplotlib_figure, plotly_figure)``; see ``qwqlab.plots``.
"""
from __future__ import annotations

__all__ = ["plot_length_summary", "plot_length_distributions", "plot_accuracy_by_length", "plot_length_vs_pass_rate", "plot_marker_rates", "plot_length_over_steps", "plot_missing_premise", "plot_thinking_efficiency"]

from qwqlab.plots.style import OUTCOME_COLORS, groups_of, with_axis_titles


def plot_length_summary(summary, by: str = "run", title: str = "Mean tokens per completion"):
    """Bars of mean thinking, answer and total tokens per group (``lengths.length_summary(..., by)``)."""
    import matplotlib.pyplot as plt
    import numpy as np
    import plotly.graph_objects as go

    labels = [str(v) for v in summary[by]] if by in summary.columns else ["all"] * len(summary)
    parts = [("think_tokens_mean", "thinking"), ("answer_tokens_mean", "answer"), ("completion_tokens_mean", "total")]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    x = np.arange(len(parts))
    w = 0.8 / max(1, len(labels))
    for i, lab in enumerate(labels):
        vals = [summary[c].iloc[i] for c, _ in parts]
        bars = ax.bar(x + (i - (len(labels) - 1) / 2) * w, vals, width=w * 0.95, label=lab)
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks(x, [n for _, n in parts])
    ax.set_ylabel("tokens")
    ax.set_title(title)
    ax.legend(fontsize=8)
    pfig = go.Figure([go.Bar(x=[n for _, n in parts], y=[summary[c].iloc[i] for c, _ in parts], name=lab)
                      for i, lab in enumerate(labels)])
    pfig.update_layout(barmode="group", title=title, yaxis_title="tokens", template="plotly_white")
    return fig, with_axis_titles(fig, pfig)


def plot_length_distributions(rollouts, length: str = "think_tokens", by: str | None = None, bins: int = 30,
                              title: str | None = None):
    """Histograms of ``length`` for correct against incorrect completions, one panel per group of ``by``."""
    import matplotlib.pyplot as plt
    import numpy as np
    from plotly.subplots import make_subplots

    from qwqlab.lengths import correctness_label

    groups = groups_of(rollouts, by)
    title = title or f"{length} of correct and incorrect completions"
    lengths = rollouts[length].astype(float)
    edges = np.histogram_bin_edges(lengths, bins=bins) if len(lengths) else np.arange(2)
    fig, axes = plt.subplots(1, len(groups), figsize=(4.5 * len(groups), 3.3), sharey=True, squeeze=False)
    pfig = make_subplots(rows=1, cols=len(groups), subplot_titles=[str(k) if k is not None else "" for k, _ in groups],
                         shared_yaxes=True)
    for j, (key, g) in enumerate(groups):
        outcome = correctness_label(g)
        ax = axes[0][j]
        for name in ("correct", "incorrect", "ungraded"):
            vals = g.loc[outcome == name, length].astype(float)
            if not len(vals):
                continue
            ax.hist(vals, bins=edges, alpha=0.55, color=OUTCOME_COLORS[name], label=f"{name} (n={len(vals)})")
            pfig.add_histogram(x=vals, name=name, marker_color=OUTCOME_COLORS[name], opacity=0.6,
                               xbins={"start": edges[0], "end": edges[-1], "size": edges[1] - edges[0]},
                               legendgroup=name, showlegend=j == 0, row=1, col=j + 1)
        ax.set_title(str(key) if key is not None else "")
        ax.set_xlabel(length)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("completions")
    fig.suptitle(title)
    fig.tight_layout()
    pfig.update_layout(barmode="overlay", title=title, template="plotly_white")
    return fig, with_axis_titles(fig, pfig)


def plot_accuracy_by_length(by_bucket, by: str | None = None,
                            title: str = "Accuracy by thinking length (quantile buckets)"):
    """Accuracy per length bucket (``lengths.accuracy_by_length``), a line per group of ``by``."""
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go

    # x is each bucket's mean length, sorted: buckets are quantiles of each group's own lengths, so
    # two groups' bucket labels differ, and a shared categorical axis drew one group's shortest
    # bucket after its longest.
    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    pfig = go.Figure()
    for key, g in groups_of(by_bucket, by):
        g = g.sort_values("mean_length")
        label = str(key) if key is not None else "all"
        ax.plot(g["mean_length"], g["accuracy"], marker="o", label=label)
        pfig.add_scatter(x=g["mean_length"], y=g["accuracy"], mode="lines+markers", name=label,
                         customdata=list(zip(g["bucket"], g["n"])),
                         hovertemplate="bucket %{customdata[0]} (mean %{x:.0f} tokens)<br>accuracy %{y:.2f}"
                                       "<br>n=%{customdata[1]}<extra></extra>")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy")
    ax.set_xlabel("thinking tokens (mean of each quantile bucket)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    pfig.update_layout(title=title, yaxis={"range": [0, 1.05], "title": "accuracy"},
                       xaxis_title="thinking tokens (mean of each quantile bucket)",
                       template="plotly_white")
    return fig, with_axis_titles(fig, pfig)


def plot_length_vs_pass_rate(by_problem, by: str | None = None,
                             title: str = "Thinking length against problem difficulty"):
    """One dot per problem: its pass rate against its mean length (``lengths.length_vs_pass_rate``)."""
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go

    fig, ax = plt.subplots(figsize=(6, 3.8))
    pfig = go.Figure()
    for key, g in groups_of(by_problem, by):
        label = str(key) if key is not None else "problems"
        ax.scatter(g["pass_rate"], g["mean_length"], s=14, alpha=0.6, label=label)
        pfig.add_scatter(x=g["pass_rate"], y=g["mean_length"], mode="markers", name=label, text=g["problem_id"],
                         hovertemplate="%{text}<br>pass rate %{x:.2f}<br>mean length %{y:.1f}<extra></extra>")
    ax.set_xlabel("pass rate of the problem (harder to the left)")
    ax.set_ylabel("mean thinking tokens")
    ax.set_title(title)
    ax.legend(fontsize=8)
    pfig.update_layout(title=title, xaxis_title="pass rate", yaxis_title="mean thinking tokens",
                       template="plotly_white")
    return fig, with_axis_titles(fig, pfig)


def plot_marker_rates(markers, by: str | None = None, title: str = "Reflection markers per 1,000 thinking tokens"):
    """Bars of each marker's rate per 1,000 thinking tokens (``lengths.marker_summary``)."""
    import matplotlib.pyplot as plt
    import numpy as np
    import plotly.graph_objects as go

    names = list(dict.fromkeys(markers["marker"]))
    groups = groups_of(markers, by)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(names) + 1.5), 3.5))
    x = np.arange(len(names))
    w = 0.8 / len(groups)
    pfig = go.Figure()
    for i, (key, g) in enumerate(groups):
        rate = g.set_index("marker")["per_1k_think_tokens"].reindex(names)
        label = str(key) if key is not None else "all"
        ax.bar(x + (i - (len(groups) - 1) / 2) * w, rate.fillna(0), width=w * 0.95, label=label)
        pfig.add_bar(x=names, y=rate, name=label)
    ax.set_xticks(x, names, rotation=20, fontsize=8)
    ax.set_ylabel("per 1,000 thinking tokens")
    ax.set_title(title)
    ax.legend(fontsize=8)
    pfig.update_layout(barmode="group", title=title, yaxis_title="per 1,000 thinking tokens", template="plotly_white")
    return fig, with_axis_titles(fig, pfig)


def plot_length_over_steps(steps, title: str = "Length over RL steps"):
    """Thinking/completion tokens over GRPO steps (``lengths.length_over_steps``), accuracy on a second axis."""
    import matplotlib.pyplot as plt
    from plotly.subplots import make_subplots

    fig, ax = plt.subplots(figsize=(7, 3.6))
    pfig = make_subplots(specs=[[{"secondary_y": True}]])
    right = ax.twinx() if "accuracy" in steps.columns or "reward" in steps.columns else None
    colors = {"think_tokens": "#1f77b4", "completion_tokens": "#ff7f0e", "accuracy": "#2ca02c", "reward": "#d62728"}
    dashes = ["-", "--", "-.", ":"]
    for i, (key, g) in enumerate(groups_of(steps, "run")):
        suffix, ls = (f" ({key})" if key is not None else ""), dashes[i % len(dashes)]
        for col in ("think_tokens", "completion_tokens"):
            if col in g.columns:
                ax.plot(g["step"], g[col], ls, color=colors[col], label=f"{col}{suffix}")
                pfig.add_scatter(x=g["step"], y=g[col], mode="lines", name=f"{col}{suffix}",
                                 line={"color": colors[col], "dash": "solid" if i == 0 else "dash"}, secondary_y=False)
        for col in ("accuracy", "reward"):
            if right is not None and col in g.columns:
                right.plot(g["step"], g[col], ls, color=colors[col], alpha=0.6, lw=1, label=f"{col}{suffix}")
                pfig.add_scatter(x=g["step"], y=g[col], mode="lines", name=f"{col}{suffix}",
                                 line={"color": colors[col], "dash": "dot" if i == 0 else "dashdot"}, secondary_y=True)
    ax.set_xlabel("RL step")
    ax.set_ylabel("tokens (mean per completion)")
    ax.set_title(title)
    handles = ax.get_legend_handles_labels()
    if right is not None:
        right.set_ylabel("accuracy / reward")
        h2 = right.get_legend_handles_labels()
        handles = (handles[0] + h2[0], handles[1] + h2[1])
    # Beside the plot, not over the data: a run per line style makes the legend long.
    ax.legend(*handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.12 if right is not None else 1.02, 1),
              frameon=False)
    pfig.update_layout(title=title, xaxis_title="RL step", template="plotly_white")
    pfig.update_yaxes(title_text="tokens", secondary_y=False)
    pfig.update_yaxes(title_text="accuracy / reward", secondary_y=True)
    return fig, with_axis_titles(fig, pfig)




def plot_missing_premise(summary, title: str = "When a premise is missing: longer responses, and does it say so?"):
    """Two panels from ``traces.missing_premise_summary``: mean response tokens per model as posed
    and with a premise removed, and the share of missing-premise questions where the model says
    the question cannot be answered (the source's judge label 0)."""
    import matplotlib.pyplot as plt
    import numpy as np
    from plotly.subplots import make_subplots

    models = list(summary["model"])
    x = np.arange(len(models))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.8))
    a1.bar(x - 0.2, summary["completion_tokens_normal"], 0.4, label="as posed")
    a1.bar(x + 0.2, summary["completion_tokens_missing"], 0.4, label="premise removed")
    for i, r in enumerate(summary["completion_ratio"]):
        a1.text(i + 0.2, summary["completion_tokens_missing"].iloc[i], f"x{r:.1f}", ha="center", va="bottom",
                fontsize=8)
    a1.set_ylabel("mean response tokens (QwQ-32B's tokenizer)")
    a1.set_title("Response length")
    a2.bar(x, summary["abstain_rate"], 0.5, color="tab:green", label="says it cannot be answered")
    a2.bar(x, summary["answers_anyway_rate"], 0.5, bottom=summary["abstain_rate"], color="tab:red",
           label="gives the original answer anyway")
    a2.set_ylim(0, 1.05)
    a2.set_ylabel("share of missing-premise questions")
    a2.set_title("What it does when it cannot know")
    for ax in (a1, a2):
        ax.set_xticks(x, [m.replace("DeepSeek-R1-Distill-Qwen-32B", "R1-Distill-32B") for m in models],
                      fontsize=8, rotation=15)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    pfig = make_subplots(rows=1, cols=2, subplot_titles=("Response length", "What it does when it cannot know"))
    pfig.add_bar(x=models, y=summary["completion_tokens_normal"], name="as posed", row=1, col=1)
    pfig.add_bar(x=models, y=summary["completion_tokens_missing"], name="premise removed", row=1, col=1,
                 text=[f"x{r:.1f}" for r in summary["completion_ratio"]])
    pfig.add_bar(x=models, y=summary["abstain_rate"], name="says it cannot be answered", row=1, col=2)
    pfig.add_bar(x=models, y=summary["answers_anyway_rate"], name="gives the original answer anyway", row=1, col=2)
    pfig.update_layout(title=title, barmode="group", template="plotly_white")
    pfig.update_yaxes(range=[0, 1.05], row=1, col=2)
    return fig, with_axis_titles(fig, pfig)


def plot_thinking_efficiency(summary, title: str = "Thinking efficiency by MATH level (first correct / all thinking)"):
    """``traces.efficiency_summary(by=("model", "level"))``: token efficiency and reasoning tokens
    per level, a line per model."""
    import matplotlib.pyplot as plt
    from plotly.subplots import make_subplots

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.6))
    pfig = make_subplots(rows=1, cols=2, subplot_titles=("token efficiency", "thinking tokens"))
    for model, g in summary.groupby("model", sort=False):
        g = g.sort_values("level")
        a1.plot(g["level"].astype(str), g["token_efficiency"], marker="o", label=model)
        a2.plot(g["level"].astype(str), g["reasoning_tokens"], marker="o", label=model)
        pfig.add_scatter(x=g["level"].astype(str), y=g["token_efficiency"], mode="lines+markers", name=model,
                         row=1, col=1, legendgroup=model)
        pfig.add_scatter(x=g["level"].astype(str), y=g["reasoning_tokens"], mode="lines+markers", name=model,
                         row=1, col=2, legendgroup=model, showlegend=False)
    a1.set_ylim(0, 1.05)
    a1.set_ylabel("first-correct tokens / thinking tokens")
    a2.set_ylabel("mean thinking tokens")
    for ax in (a1, a2):
        ax.set_xlabel("MATH level")
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    pfig.update_layout(title=title, template="plotly_white")
    return fig, with_axis_titles(fig, pfig)
