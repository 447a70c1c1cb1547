"""Figures of notebook 06 (benchmark plots): published scores, size efficiency, mis-attributed figures.

Every ``plot_*`` returns ``(matplotlib_figure, plotly_figure)``; see ``qwqlab.plots``.
"""
from __future__ import annotations

__all__ = ["plot_benchmark_bars", "plot_size_efficiency", "plot_misattributions"]

import math
import textwrap

from qwqlab.plots.style import HIGHLIGHT_COLOR, OWN_COLOR, OWN_SHADES, _model_colors


def plot_benchmark_bars(table, benchmarks=None, models=None, metric="pass@1", highlight: str | None = "QwQ-32B",
                        title: str | None = None):
    """Grouped bars in the style of the QwQ-32B announcement: one group per benchmark, a bar per model.

    ``table`` is ``qwqlab.results.load_published()`` (optionally with ``add_results`` rows,
    drawn hatched orange as "own", with their ``ci_low`` / ``ci_high`` as error bars).
    ``metric`` is one metric or several; with several, each benchmark's label says which
    metric its bars are. The ``highlight`` model is drawn in purple and every bar carries its
    score. A model with no published figure for a benchmark gets no bar: the gap is the honest
    answer (see published_results.md: "leave a cell empty rather than guess"). A disputed
    figure (``status == "disputed"``) is a cross-hatched bar up to the lowest source's number,
    a bracket up to the highest, labelled with every source's number.
    """
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd
    import plotly.graph_objects as go

    from qwqlab.results import BENCHMARKS, disputed_text, metrics_of

    metrics = metrics_of(metric)
    t = table[table["metric"].isin(metrics)]
    models = list(models) if models is not None else list(dict.fromkeys(t["model"]))
    if benchmarks is None:
        present = set(t["benchmark"])
        benchmarks = [b for b in BENCHMARKS if b in present] + sorted(present - set(BENCHMARKS))
    benchmarks = list(benchmarks)
    t = t[t["model"].isin(models) & t["benchmark"].isin(benchmarks)]
    if "score_text" not in t.columns:
        t = t.assign(score_text=t["score"].map(lambda v: f"{v:g}"))
    status = t["status"] if "status" in t.columns else pd.Series("published", index=t.index)
    # One bar per (model, benchmark): its height, label (as published: "50.0", not "50"),
    # the top of a disputed range and an own run's interval.
    bar = {}
    for (m, b), rows in t.groupby(["model", "benchmark"], sort=False):
        disputed = (status[rows.index] == "disputed").any()
        low = rows["score"].min()
        ci = (rows[["ci_low", "ci_high"]].iloc[0].tolist() if {"ci_low", "ci_high"} <= set(rows.columns)
              and rows[["ci_low", "ci_high"]].notna().all(axis=None) else None)
        bar[(m, b)] = {"y": low, "top": rows["score"].max() if disputed else None, "ci": ci,
                       "text": (" / ".join(rows["score_text"]) + " (disputed)") if disputed
                       else rows["score_text"].iloc[0],
                       "hover": disputed_text(rows) if disputed else rows["score_text"].iloc[0]}
    own = set(t.loc[status == "own", "model"])
    own_models = [m for m in models if m in own]
    colors = {**_model_colors(models, highlight),
              **{m: OWN_SHADES[k % len(OWN_SHADES)] for k, m in enumerate(own_models)}}
    title = title or f"Published {', '.join(metrics)} scores (%)"
    if len(metrics) > 1:
        shown = {b: " / ".join(dict.fromkeys(t.loc[t["benchmark"] == b, "metric"])) for b in benchmarks}
        ticks = [f"{b}\n({shown[b]})" if shown[b] else b for b in benchmarks]
    else:
        ticks = list(benchmarks)
    ticks = ["\n".join(textwrap.fill(part, 16) for part in tick.split("\n")) for tick in ticks]
    ylabel = f"{metrics[0]} (%)" if len(metrics) == 1 else "score (%)"

    width = 0.8 / max(1, len(models))
    fig, ax = plt.subplots(figsize=(min(16.0, max(7.0, 0.3 * len(benchmarks) * max(1, len(models)) + 2)), 4.6))
    x = np.arange(len(benchmarks))
    for i, m in enumerate(models):
        cells = [(x[j] + (i - (len(models) - 1) / 2) * width, bar[(m, b)]) for j, b in enumerate(benchmarks)
                 if (m, b) in bar]
        if not cells:
            continue
        xs, cs = [c[0] for c in cells], [c[1] for c in cells]
        bars = ax.bar(xs, [c["y"] for c in cs], width=width * 0.95, color=colors[m], label=m,
                      hatch=["//" if m in own else "xx" if c["top"] is not None else None for c in cs],
                      edgecolor="white" if m not in own else "black", linewidth=0.5)
        for xi, c in zip(xs, cs):
            if c["top"] is not None:  # the disputed range: from the lowest source's number to the highest
                ax.plot([xi - width * 0.4, xi + width * 0.4, xi + width * 0.4, xi - width * 0.4],
                        [c["y"], c["y"], c["top"], c["top"]], color="black", lw=0.8, ls="--")
            if c["ci"] is not None:
                ax.errorbar([xi], [c["y"]], yerr=[[c["y"] - c["ci"][0]], [c["ci"][1] - c["y"]]], fmt="none",
                            ecolor="black", elinewidth=0.8, capsize=2)
        ax.bar_label(bars, labels=[c["text"] for c in cs], fontsize=6.5, padding=1,
                     fontweight="bold" if m == highlight else "normal", rotation=90 if len(models) > 4 else 0)
    ax.set_xticks(x, ticks, fontsize=7 if len(metrics) > 1 else None)
    ax.set_ylim(0, 112)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(fontsize=7, ncol=min(4, max(1, len(models))), loc="upper center", bbox_to_anchor=(0.5, -0.14),
              frameon=False)

    pfig = go.Figure()
    for m in models:
        bs = [b for b in benchmarks if (m, b) in bar]
        if not bs:
            continue
        cs = [bar[(m, b)] for b in bs]
        has_err = any(c["top"] is not None or c["ci"] is not None for c in cs)
        upper = [(c["top"] - c["y"]) if c["top"] is not None else (c["ci"][1] - c["y"]) if c["ci"] else 0
                 for c in cs]
        lower = [(c["y"] - c["ci"][0]) if c["ci"] else 0 for c in cs]
        shapes = ["/" if m in own else "x" if c["top"] is not None else "" for c in cs]
        pfig.add_bar(x=[ticks[benchmarks.index(b)].replace("\n", "<br>") for b in bs], y=[c["y"] for c in cs], name=m,
                     marker_color=colors[m], text=[c["text"] for c in cs], textposition="outside",
                     customdata=[c["hover"] for c in cs],
                     marker_pattern_shape=shapes[0] if len(set(shapes)) == 1 else shapes,
                     error_y={"type": "data", "array": upper, "arrayminus": lower, "visible": True} if has_err else None,
                     hovertemplate=f"{m}<br>%{{x}}: %{{customdata}}<extra></extra>")
    pfig.update_layout(barmode="group", title=title, yaxis_title=ylabel, yaxis_range=[0, 105],
                       xaxis={"categoryorder": "array", "categoryarray": [k.replace("\n", "<br>") for k in ticks]},
                       legend={"orientation": "h", "y": -0.15}, template="plotly_white")
    return fig, pfig


def plot_size_efficiency(table, benchmark: str = "GPQA-Diamond", metric="pass@1", own=None,
                         models=None, title: str | None = None):
    """Score against parameters (log axis): how much model each point of score costs.

    Dense models are one filled dot. A mixture-of-experts model is drawn twice, joined by
    a line: filled at its *active* parameters (compute per token) and hollow at its *total*
    (memory). Models with undisclosed sizes cannot be placed and are listed under the plot.
    ``own`` rows (``qwqlab.results.add_results`` / ``nano_results``) are drawn as stars at
    their own benchmark's score, labelled with it, whatever ``benchmark`` is. ``metric`` is one
    metric or several (as in ``plot_benchmark_bars``); a disputed figure is drawn once per
    source, each labelled "disputed" with its source.
    """
    import matplotlib.pyplot as plt
    import pandas as pd
    import plotly.graph_objects as go

    from qwqlab.results import metrics_of

    metrics = metrics_of(metric)
    metric = ", ".join(metrics)
    all_models = set(table.loc[table["status"] != "own", "model"]) if "status" in table.columns else set(table["model"])
    t = table[(table["benchmark"] == benchmark) & table["metric"].isin(metrics)]
    if "status" in t.columns:
        t = t[t["status"] != "own"]
    if models is not None:
        t = t[t["model"].isin(list(models))]
        all_models &= set(models)
    own = pd.DataFrame(own) if own is not None else pd.DataFrame(columns=["model", "benchmark", "score"])
    placed = t[t["params_total_b"].notna()].sort_values("score", ascending=False)
    unplaced = sorted(set(t.loc[t["params_total_b"].isna(), "model"]))
    no_figure = sorted(all_models - set(t["model"]))
    title = title or f"{benchmark} {metric} against model size"
    notes = ([f"not shown, parameters undisclosed: {', '.join(unplaced)}"] if unplaced else []) + \
        ([f"no published {benchmark} figure: {', '.join(no_figure)}"] if no_figure else [])
    note = "; ".join(notes)

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    pfig = go.Figure()
    xs = [v for v in placed["params_active_b"].tolist() + placed["params_total_b"].tolist()
          + [getattr(r, "params_total_b", math.nan) for r in own.itertuples()] if v == v]
    lo, hi = (min(xs) / 2.5, max(xs) * 6) if xs else (0.1, 1000)
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    taken: list[tuple[float, float, float]] = []

    def label(text, x, y, color="black"):
        # Nudge a label down until it clears those already placed: labels are boxes from the
        # point rightwards, about 1.1% of the axis width per character, 3 points of score high.
        fx = (math.log10(x) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
        width, ly = 0.011 * len(text), y
        while any(fx < b_end and a_start < fx + width and abs(ly - b_y) < 3.0 for a_start, b_end, b_y in taken):
            ly -= 3.2
        taken.append((fx, fx + width, ly))
        ax.annotate(text, (x, y), xytext=(7, (ly - y) * 4.8 * 72 / 105 - 3), textcoords="offset points",
                    fontsize=7, color=color,
                    bbox={"boxstyle": "square,pad=0.05", "fc": "white", "ec": "none", "alpha": 0.75},
                    arrowprops={"arrowstyle": "-", "lw": 0.4, "color": "#999999"} if ly != y else None)

    for r in placed.itertuples():
        color = HIGHLIGHT_COLOR if r.model.startswith("QwQ-32B") and "Preview" not in r.model else "#4a6fa5"
        moe = r.architecture == "MoE" and r.params_active_b != r.params_total_b
        if moe:
            ax.plot([r.params_active_b, r.params_total_b], [r.score, r.score], color=color, lw=1, ls=":")
            ax.scatter([r.params_total_b], [r.score], facecolors="none", edgecolors=color, s=60, zorder=3)
            pfig.add_scatter(x=[r.params_active_b, r.params_total_b], y=[r.score, r.score], mode="lines+markers",
                             line={"dash": "dot", "color": color}, marker={"symbol": ["circle", "circle-open"],
                                                                           "size": 10, "color": color},
                             name=f"{r.model} (active / total)",
                             hovertemplate=f"{r.model}<br>%{{x}}B params<br>{benchmark}: {r.score:g}<extra></extra>")
        else:
            pfig.add_scatter(x=[r.params_total_b], y=[r.score], mode="markers", marker={"size": 10, "color": color},
                             name=f"{r.model} ({r.score:g})",
                             hovertemplate=f"{r.model}<br>{r.params_total_b:g}B params<br>{benchmark}: "
                                           f"{r.score:g} ({r.source})<extra></extra>")
        ax.scatter([r.params_active_b], [r.score], color=color, s=50, zorder=3)
        disputed = f"; disputed, {r.source}" if getattr(r, "status", "") == "disputed" else ""
        label(f"{r.model} ({r.score:g}{disputed}" + (f"; {r.params_active_b:g}B active, {r.params_total_b:g}B total)"
                                                      if moe else ")"), r.params_active_b, r.score)
    for r in own.itertuples():
        x = getattr(r, "params_total_b", float("nan"))
        if x != x:  # NaN: an own run without a size cannot be placed either
            continue
        text = f"{r.model} ({r.benchmark}, own)"
        ax.scatter([x], [r.score], marker="*", s=160, color=OWN_COLOR, zorder=4)
        label(text, x, r.score, color="#b35900")
        pfig.add_scatter(x=[x], y=[r.score], mode="markers+text", text=[text], textposition="top center",
                         marker={"symbol": "star", "size": 16, "color": OWN_COLOR}, name=text)
    from matplotlib.ticker import FuncFormatter, NullFormatter
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("parameters (billions, log scale; MoE: filled = active, hollow = total)")
    ax.set_ylabel(f"{metric} (%)")
    ax.set_ylim(0, 105)
    ax.set_title(title)
    ax.spines[["top", "right"]].set_visible(False)
    if note:
        fig.text(0.01, -0.02, "\n".join(notes), fontsize=7, ha="left", va="top")
    pfig.update_layout(title=title + "".join(f"<br><sup>{n}</sup>" for n in notes), template="plotly_white",
                       xaxis={"type": "log", "title": "parameters (billions, log scale)"},
                       yaxis={"title": f"{metric} (%)", "range": [0, 105]}, showlegend=True)
    return fig, pfig


def plot_misattributions(claims, title: str = "Widely quoted figures against their sources"):
    """One panel per mis-attributed claim (``qwqlab.results.misattributions``): the quoted
    figure, what the sources give for that model and benchmark, and where the quoted number
    really comes from. A missing source figure is written as such, not drawn as zero.
    """
    import matplotlib.pyplot as plt
    from plotly.subplots import make_subplots

    n = len(claims)
    fig, axes = plt.subplots(1, max(1, n), figsize=(4.6 * max(1, n), 3.8), squeeze=False)
    pfig = make_subplots(rows=1, cols=max(1, n),
                         subplot_titles=[f"{c.model}: {c.benchmark}" for c in claims.itertuples()])
    colors = ("#c0392b", HIGHLIGHT_COLOR, "#8fa3bf")
    for j, c in enumerate(claims.itertuples()):
        labels = ["quoted\n(circulating\nsummary)",
                  f"{c.model}\n{c.benchmark}\n(" + (f"per {c.sources_say_source})" if c.sources_say == c.sources_say
                                                     else "no source)"),
                  f"really:\n{c.origin_model}\n{c.origin_benchmark}\n({c.origin_source})"]
        values = [c.quoted_score, c.sources_say, c.origin_score]
        ax = axes[0][j]
        for i, (lab, v) in enumerate(zip(labels, values)):
            if v == v:
                bar = ax.bar([i], [v], color=colors[i], hatch="xx" if i == 0 else None, edgecolor="white")
                ax.bar_label(bar, labels=[f"{v:g}"], fontsize=8)
            else:
                ax.text(i, 4, "no figure\npublished", ha="center", va="bottom", fontsize=8, color="#555555")
        ax.set_xticks(range(3), labels, fontsize=7)
        ax.set_ylim(0, 100)
        ax.set_title(f"\"{c.quoted_score:g}% {c.benchmark}\" for {c.model}", fontsize=9)
        ax.spines[["top", "right"]].set_visible(False)
        pfig.add_bar(x=[lab.replace("\n", " ") for lab in labels], y=[v if v == v else None for v in values],
                     marker_color=list(colors), text=[f"{v:g}" if v == v else "no figure published" for v in values],
                     textposition="outside", showlegend=False, hovertext=[c.quoted_in, c.sources_say_source, c.note],
                     row=1, col=j + 1)
    axes[0][0].set_ylabel("score (%)")
    fig.suptitle(title)
    fig.tight_layout()
    pfig.update_layout(title=title, template="plotly_white", height=450)
    pfig.update_yaxes(range=[0, 100])
    return fig, pfig
