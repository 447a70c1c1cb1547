"""Figures: each one both static (matplotlib, for papers) and interactive (plotly, for exploring).

Every ``plot_*`` function takes a table (never a model) and returns
``(matplotlib_figure, plotly_figure)``, so a notebook saves both with
``qwqlab.figures.save_figure(name, *plot_x(table), data=table)``. Functions are grouped in
sections, one per notebook; add yours in your notebook's section (or a new one).
Static images are matplotlib's: plotly's own static export needs Chromium.
"""
from __future__ import annotations

import math
import textwrap

# ----------------------------------------------------------------------------- models (notebook 01)

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
    return fig, pfig


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
    return fig, pfig


# ----------------------------------------------------------------------------- shared style
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


# ----------------------------------------------------------------------------- benchmarks (notebook 06)

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
    import plotly.graph_objects as go
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

def plot_lab_against_published(pairs, title: str = "This lab's evaluations against the published figures"):
    """One panel per ``qwqlab eval`` row (``qwqlab.results.lab_against_published``): the published
    figure of the same model and benchmark (solid) beside the lab's (hatched, with its bootstrap
    interval), titled with both numbers; the grader and protocol are in the hover text. A missing
    published figure is written as such, not drawn as zero.
    """
    import matplotlib.pyplot as plt
    from plotly.subplots import make_subplots

    n = max(1, len(pairs))
    fig, axes = plt.subplots(1, n, figsize=(4.4 * n, 4.0), squeeze=False)
    pfig = make_subplots(rows=1, cols=n, subplot_titles=[textwrap.fill(p.label, 48) for p in pairs.itertuples()])
    for j, p in enumerate(pairs.itertuples()):
        ax = axes[0][j]
        names = [f"{p.reference_source}", "this lab"]
        if p.reference == p.reference:
            bar = ax.bar([0], [p.reference], color=HIGHLIGHT_COLOR, edgecolor="white")
            ax.bar_label(bar, labels=[f"{p.reference:g}"], fontsize=8)
        else:
            ax.text(0, 4, "no figure\npublished", ha="center", va="bottom", fontsize=8, color="#555555")
        err = [[p.score - p.ci_low], [p.ci_high - p.score]] if p.ci_low == p.ci_low else None
        bar = ax.bar([1], [p.score], color="#e67e22", hatch="//", edgecolor="white", yerr=err, capsize=4)
        ax.bar_label(bar, labels=[f"{p.score:.1f}"], fontsize=8, padding=8)
        ax.set_xticks([0, 1], [textwrap.fill(x, 22) for x in names], fontsize=7)
        ax.set_ylim(0, 105)
        ax.set_title(textwrap.fill(p.label, 44), fontsize=8)
        ax.spines[["top", "right"]].set_visible(False)
        hover = f"grader: {p.grader}<br>protocol: {p.protocol}"
        pfig.add_bar(x=names, y=[p.reference if p.reference == p.reference else None, p.score],
                     marker_color=[HIGHLIGHT_COLOR, "#e67e22"], marker_pattern_shape=["", "/"],
                     error_y={"type": "data", "symmetric": False, "array": [0, p.ci_high - p.score],
                              "arrayminus": [0, p.score - p.ci_low]},
                     text=[f"{p.reference:g}" if p.reference == p.reference else "no figure published",
                           f"{p.score:.1f}"], textposition="outside", hovertext=[p.reference_source, hover],
                     showlegend=False, row=1, col=j + 1)
    axes[0][0].set_ylabel("pass@1 (%)")
    fig.suptitle(title)
    fig.tight_layout()
    pfig.update_layout(title=title, template="plotly_white", height=460)
    pfig.update_yaxes(range=[0, 105])
    return fig, pfig

# ----------------------------------------------------------------------------- reasoning length (notebook 05)

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
    return fig, pfig


def plot_length_distributions(rollouts, length: str = "think_tokens", by: str | None = None, bins: int = 30,
                              title: str | None = None):
    """Histograms of ``length`` for correct against incorrect completions, one panel per group of ``by``."""
    import matplotlib.pyplot as plt
    import numpy as np
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from qwqlab.lengths import correctness_label

    groups = _groups(rollouts, by)
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
    return fig, pfig


def plot_accuracy_by_length(by_bucket, by: str | None = None,
                            title: str = "Accuracy by thinking length (quantile buckets)"):
    """Accuracy per length bucket (``lengths.accuracy_by_length``), a line per group of ``by``."""
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go

    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    pfig = go.Figure()
    for key, g in _groups(by_bucket, by):
        label = str(key) if key is not None else "all"
        ax.plot(g["bucket"], g["accuracy"], marker="o", label=label)
        pfig.add_scatter(x=g["bucket"], y=g["accuracy"], mode="lines+markers", name=label,
                         customdata=g["n"], hovertemplate="%{x}<br>accuracy %{y:.2f}<br>n=%{customdata}<extra></extra>")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy")
    ax.set_xlabel("thinking tokens (bucket)")
    ax.set_title(title)
    ax.tick_params(axis="x", labelsize=7, rotation=20)
    ax.legend(fontsize=8)
    pfig.update_layout(title=title, yaxis={"range": [0, 1.05], "title": "accuracy"}, xaxis_title="thinking tokens",
                       template="plotly_white")
    return fig, pfig


def plot_length_vs_pass_rate(by_problem, by: str | None = None,
                             title: str = "Thinking length against problem difficulty"):
    """One dot per problem: its pass rate against its mean length (``lengths.length_vs_pass_rate``)."""
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go

    fig, ax = plt.subplots(figsize=(6, 3.8))
    pfig = go.Figure()
    for key, g in _groups(by_problem, by):
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
    return fig, pfig


def plot_marker_rates(markers, by: str | None = None, title: str = "Reflection markers per 1,000 thinking tokens"):
    """Bars of each marker's rate per 1,000 thinking tokens (``lengths.marker_summary``)."""
    import matplotlib.pyplot as plt
    import numpy as np
    import plotly.graph_objects as go

    names = list(dict.fromkeys(markers["marker"]))
    groups = _groups(markers, by)
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
    return fig, pfig


def plot_length_over_steps(steps, title: str = "Length over RL steps"):
    """Thinking/completion tokens over GRPO steps (``lengths.length_over_steps``), accuracy on a second axis."""
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig, ax = plt.subplots(figsize=(7, 3.6))
    pfig = make_subplots(specs=[[{"secondary_y": True}]])
    right = ax.twinx() if "accuracy" in steps.columns or "reward" in steps.columns else None
    colors = {"think_tokens": "#1f77b4", "completion_tokens": "#ff7f0e", "accuracy": "#2ca02c", "reward": "#d62728"}
    dashes = ["-", "--", "-.", ":"]
    for i, (key, g) in enumerate(_groups(steps, "run")):
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
    ax.legend(*handles, fontsize=7, loc="best")
    pfig.update_layout(title=title, xaxis_title="RL step", template="plotly_white")
    pfig.update_yaxes(title_text="tokens", secondary_y=False)
    pfig.update_yaxes(title_text="accuracy / reward", secondary_y=True)
    return fig, pfig


# ----------------------------------------------------------------------------- GRPO training (notebook 04)

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
        ax.tick_params(labelsize=7)
    for k in range(n, rows * cols):
        axes[k // cols][k % cols].axis("off")
    if any(runs.keys()):
        axes[0][0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    pfig.update_layout(title=title, template="plotly_white", height=300 * rows)
    return fig, pfig


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
    return fig, pfig


# ----------------------------------------------------------------------------- rollout sampling (notebook 02)

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
    for j, (key, g) in enumerate(_groups(t, by)):
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
    return fig, pfig


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
    return fig, pfig


def plot_answer_spread(rollouts, title: str | None = None, max_answers: int = 12):
    """For one problem's samples: how often each answer was given (coloured by correctness),
    and the spread of completion lengths (truncated ones apart). Returns ``(matplotlib, plotly)``.
    """
    import matplotlib.pyplot as plt
    import numpy as np
    import plotly.graph_objects as go
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
    return fig, pfig


# ----------------------------------------------------------------------------- reward shaping (notebook 03)

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
    for k in range(len(rewards), rows * cols):
        axes[k // cols][k % cols].axis("off")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    pfig.update_layout(title=title, template="plotly_white", height=280 * rows)
    return fig, pfig


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
    return fig, pfig


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
    return fig, pfig


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
    axes[0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    pfig.update_layout(title=title, template="plotly_white")
    return fig, pfig


def plot_missing_premise(summary, title: str = "When a premise is missing: longer responses, and does it say so?"):
    """Two panels from ``traces.missing_premise_summary``: mean response tokens per model as posed
    and with a premise removed, and the share of missing-premise questions where the model says
    the question cannot be answered (the source's judge label 0)."""
    import matplotlib.pyplot as plt
    import numpy as np
    import plotly.graph_objects as go
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
    return fig, pfig


def plot_thinking_efficiency(summary, title: str = "Thinking efficiency by MATH level (first correct / all thinking)"):
    """``traces.efficiency_summary(by=("model", "level"))``: token efficiency and reasoning tokens
    per level, a line per model."""
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go
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
    return fig, pfig
