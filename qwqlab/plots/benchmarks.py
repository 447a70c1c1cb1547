"""Figures of notebook 06 (benchmark plots): published scores, size efficiency, mis-attributed figures.

Every ``plot_*`` returns ``(matplotlib_figure, plotly_figure)``; see ``qwqlab.plots``.
"""
from __future__ import annotations

__all__ = ["FAMILIES", "benchmark_family", "plot_benchmark_bars", "plot_size_efficiency", "plot_misattributions",
           "plot_lab_against_published"]

import math
import textwrap

from qwqlab.plots.style import HIGHLIGHT_COLOR, OWN_COLOR, place_labels, with_axis_titles


#: Benchmarks that are one family (one panel): the first matching prefix names the family.
FAMILIES = ("AIME", "GPQA", "MATH", "LiveCodeBench", "LiveBench", "IFEval", "BFCL")
PEER_COLOR = "#8fa3bf"


def benchmark_family(benchmark: str) -> str:
    """The panel a benchmark is drawn in: ``AIME24``, ``AIME25`` and ``AIME`` are all ``AIME``."""
    return next((f for f in FAMILIES if benchmark.startswith(f)), benchmark)


def _benchmark_cells(table, benchmarks, models, metrics):
    """One cell per (model, benchmark): score, label as published, disputed top, own interval."""
    import pandas as pd

    from qwqlab.results import BENCHMARKS, disputed_text

    t = table[table["metric"].isin(metrics)]
    models = list(models) if models is not None else list(dict.fromkeys(t["model"]))
    if benchmarks is None:
        present = set(t["benchmark"])
        benchmarks = [b for b in BENCHMARKS if b in present] + sorted(present - set(BENCHMARKS))
    benchmarks = list(benchmarks)
    t = t[t["model"].isin(models) & t["benchmark"].isin(benchmarks)]
    if "score_text" not in t.columns:
        t = t.assign(score_text=t["score"].map(lambda v: f"{v:.1f}"))
    status = t["status"] if "status" in t.columns else pd.Series("published", index=t.index)
    cells = []
    for (m, b), rows in t.groupby(["model", "benchmark"], sort=False):
        disputed = bool((status[rows.index] == "disputed").any())
        ci = (rows[["ci_low", "ci_high"]].iloc[0].tolist() if {"ci_low", "ci_high"} <= set(rows.columns)
              and rows[["ci_low", "ci_high"]].notna().all(axis=None) else None)
        own = bool((status[rows.index] == "own").any())
        text = (" / ".join(rows["score_text"]) + " (disputed)") if disputed else rows["score_text"].iloc[0]
        if own or text != text:  # the lab's numbers: one decimal, as the published ones
            text = f"{rows['score'].iloc[0]:.1f}"
        if ci is not None:
            text += f"  [{ci[0]:.0f}, {ci[1]:.0f}]"
        cells.append({"model": m, "benchmark": b, "metric": rows["metric"].iloc[0], "y": rows["score"].min(),
                      "top": rows["score"].max() if disputed else None, "ci": ci, "text": text,
                      "own": own,
                      "hover": disputed_text(rows) if disputed else rows["score_text"].iloc[0]})
    order = {b: i for i, b in enumerate(benchmarks)}
    cells.sort(key=lambda c: (order[c["benchmark"]], -c["y"]))
    return cells, benchmarks


def plot_benchmark_bars(table, benchmarks=None, models=None, metric="pass@1", highlight: str | None = "QwQ-32B",
                        title: str | None = None, ncols: int = 2):
    """Published scores as small panels, one per benchmark family, a bar per model: readable from across a room.

    ``table`` is ``qwqlab.results.load_published()`` (optionally with ``add_results`` rows).
    Each panel (AIME, GPQA, MATH, ...) has one horizontal bar per (model, benchmark) with a
    figure, the model named on the left and the score at the bar's end, followed by which
    benchmark of the family it is (``AIME24``) and its metric when it is not pass@1. The
    ``highlight`` model is purple, the others one quiet colour. The lab's own measurements
    (``status == "own"``) get panels of their own, in orange, below a line, with their
    ``ci_low`` / ``ci_high`` interval as an error bar. A model with no figure for a benchmark
    gets no bar: the gap is the honest answer. A disputed figure is a hatched bar up to the
    lowest source's number and a dashed bracket up to the highest, labelled with every number.
    """
    import matplotlib.pyplot as plt
    from plotly.subplots import make_subplots

    from qwqlab.results import metrics_of

    metrics = metrics_of(metric)
    cells, benchmarks = _benchmark_cells(table, benchmarks, models, metrics)
    panels: dict[tuple[bool, str], list] = {}
    for c in cells:
        panels.setdefault((c["own"], benchmark_family(c["benchmark"]) if not c["own"] else c["benchmark"]),
                          []).append(c)
    published = [k for k in panels if not k[0]]
    own = [k for k in panels if k[0]]
    metric_note = metrics[0] if len(metrics) == 1 else "pass@1 unless a bar says otherwise"
    title = title or f"Reasoning benchmarks: published scores (%, {metric_note}), one panel per family"
    if not panels:
        fig, ax = plt.subplots(figsize=(6, 1.5))
        ax.axis("off")
        ax.text(0.5, 0.5, "no published figure for this choice", ha="center", va="center")
        pfig = make_subplots(rows=1, cols=1)
        pfig.update_layout(title=title, xaxis_title="score (%)", yaxis_title="model")
        return fig, with_axis_titles(fig, pfig)

    # Rows of panels: published families first, then the lab's own, never mixed in one row.
    grid = [published[i:i + ncols] for i in range(0, len(published), ncols)]
    grid += [own[i:i + ncols] for i in range(0, len(own), ncols)]
    heights = [max(len(panels[k]) for k in row) + 1.6 for row in grid]
    fig = plt.figure(figsize=(7.2 * ncols, 0.36 * sum(heights) + 1.0), layout="constrained")
    spec = fig.add_gridspec(len(grid), ncols, height_ratios=heights)
    pfig = make_subplots(rows=len(grid), cols=ncols, row_heights=[h / sum(heights) for h in heights],
                         vertical_spacing=0.35 / len(grid), horizontal_spacing=0.34,
                         subplot_titles=[("this lab: " if k[0] else "") + k[1] for row in grid for k in row])
    renderer = fig.canvas.get_renderer()
    for r, row in enumerate(grid):
        for col, key in enumerate(row):
            ax = fig.add_subplot(spec[r, col])
            rows = panels[key]
            ys = list(range(len(rows)))[::-1]
            several = len({c["benchmark"] for c in rows}) > 1 or key[0]
            shared = {c["metric"] for c in rows}
            shared_metric = shared.pop() if len(shared) == 1 else None  # then said once, in the panel's title
            colors = [OWN_COLOR if c["own"] else HIGHLIGHT_COLOR if c["model"] == highlight else PEER_COLOR
                      for c in rows]
            ax.barh(ys, [c["y"] for c in rows], color=colors, height=0.72,
                    hatch=["xx" if c["top"] is not None else None for c in rows], edgecolor="white")
            ax.set_xlim(0, 135)  # room right of 100 for the labels; the axis itself stops at 100
            ax.spines["bottom"].set_bounds(0, 100)
            ax.set_xticks([0, 20, 40, 60, 80, 100])
            ax.set_ylim(-0.6, len(rows) - 0.4)
            ax.set_yticks(ys, [c["model"] for c in rows], fontsize=11)
            for tick, c in zip(ax.get_yticklabels(), rows):
                if c["model"] == highlight:
                    tick.set_fontweight("bold")
            ax.tick_params(axis="x", labelsize=10)
            ax.set_xlabel("score (%)", fontsize=10)
            name = ("This lab: " + key[1].replace(" (this lab)", "")) if key[0] else key[1]
            if shared_metric not in (None, "pass@1"):
                name += f" ({shared_metric})"
            ax.set_title(name, fontsize=13,
                         fontweight="bold", loc="left")
            ax.spines[["top", "right"]].set_visible(False)
            ax.grid(axis="x", color="#e5e5e5", lw=0.8)
            ax.set_axisbelow(True)
            for y, c in zip(ys, rows):
                end = c["y"]
                if c["top"] is not None:
                    ax.plot([c["y"], c["top"], c["top"]], [y - 0.3, y - 0.3, y + 0.3], color="black", lw=1, ls="--")
                    end = c["top"]
                if c["ci"] is not None:
                    ax.errorbar([c["y"]], [y], xerr=[[c["y"] - c["ci"][0]], [c["ci"][1] - c["y"]]], fmt="none",
                                ecolor="black", elinewidth=1, capsize=3)
                    end = max(end, c["ci"][1])
                b = c["benchmark"]  # "LiveCodeBench 2408-2502" is told apart by its dates alone
                tag = [b if len(b) <= 14 else b[len(benchmark_family(b)):].strip()] if several and not c["own"] else []
                tag += [c["metric"]] if c["metric"] not in ("pass@1", shared_metric) else []
                label = c["text"] + (f"  {' · '.join(tag)}" if tag else "")
                t = ax.text(end + 1.0, y, label, va="center", ha="left", fontsize=11,
                            fontweight="bold" if c["model"] == highlight else "normal")
                # No room right of the bar: write it inside, right-aligned, in white.
                if t.get_window_extent(renderer).x1 > ax.get_window_extent(renderer).x1:
                    t.set_position((c["y"] - 1.0, y))
                    t.set_ha("right")
                    t.set_color("white")
            hover = [f"{c['model']}<br>{c['benchmark']} ({c['metric']}): {c['hover']}" for c in rows]
            upper = [(c["top"] - c["y"]) if c["top"] is not None else (c["ci"][1] - c["y"]) if c["ci"] else 0
                     for c in rows]
            lower = [(c["y"] - c["ci"][0]) if c["ci"] else 0 for c in rows]
            short = [b if len(b) <= 14 else b[len(benchmark_family(b)):].strip() for b in (c["benchmark"] for c in rows)]
            pfig.add_bar(x=[c["y"] for c in rows], y=[f"{c['model']} · {tag}" if several and not key[0] else c["model"]
                                                   for c, tag in zip(rows, short)],
                         orientation="h", marker_color=colors, text=[c["text"] for c in rows],
                         textposition="outside", hovertext=hover, hoverinfo="text", showlegend=False,
                         name=key[1], marker_pattern_shape=["x" if c["top"] is not None else "" for c in rows],
                         error_x={"type": "data", "array": upper, "arrayminus": lower, "visible": True}
                         if any(upper) or any(lower) else None,
                         row=r + 1, col=col + 1)
            pfig.update_xaxes(title_text="score (%)", range=[0, 115], row=r + 1, col=col + 1)
            pfig.update_yaxes(autorange="reversed", row=r + 1, col=col + 1)
    fig.suptitle(title, fontsize=15, fontweight="bold")
    pfig.update_layout(title=title, template="plotly_white", height=int(38 * sum(heights) + 140),
                       margin={"l": 260})
    return fig, with_axis_titles(fig, pfig)


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
    metric = ", ".join(dict.fromkeys(t["metric"])) or metric  # the metrics this benchmark's figures are
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
    labels, hollow = [], []

    for r in placed.itertuples():
        color = HIGHLIGHT_COLOR if r.model.startswith("QwQ-32B") and "Preview" not in r.model else "#4a6fa5"
        moe = r.architecture == "MoE" and r.params_active_b != r.params_total_b
        if moe:
            ax.plot([r.params_active_b, r.params_total_b], [r.score, r.score], color=color, lw=1, ls=":")
            ax.scatter([r.params_total_b], [r.score], facecolors="none", edgecolors=color, s=60, zorder=3)
            hollow += [(r.params_active_b * (r.params_total_b / r.params_active_b) ** (k / 8), r.score)
                       for k in range(1, 9)]  # the dotted line and the hollow dot: no label on them
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
        labels.append((f"{r.model} ({r.score:g}{disputed}" + (f"; {r.params_active_b:g}B active, "
                                                              f"{r.params_total_b:g}B total)" if moe else ")"),
                       r.params_active_b, r.score, "black"))
    for r in own.itertuples():
        x = getattr(r, "params_total_b", float("nan"))
        if x != x:  # NaN: an own run without a size cannot be placed either
            continue
        text = f"{r.model} ({r.benchmark}, own)"
        ax.scatter([x], [r.score], marker="*", s=160, color=OWN_COLOR, zorder=4)
        labels.append((text, x, r.score, "#b35900"))
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
    place_labels(ax, labels, avoid=hollow, fontsize=8)  # after the limits: positions are measured as drawn
    if note:
        fig.text(0.01, -0.02, "\n".join(notes), fontsize=7, ha="left", va="top")
    pfig.update_layout(title=title + "".join(f"<br><sup>{n}</sup>" for n in notes), template="plotly_white",
                       xaxis={"type": "log", "title": "parameters (billions, log scale)"},
                       yaxis={"title": f"{metric} (%)", "range": [0, 105]}, showlegend=True)
    return fig, with_axis_titles(fig, pfig)


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
    return fig, with_axis_titles(fig, pfig)


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
        bar = ax.bar([1], [p.score], color=OWN_COLOR, hatch="//", edgecolor="white", yerr=err, capsize=4)
        ax.bar_label(bar, labels=[f"{p.score:.1f}"], fontsize=8, padding=8)
        ax.set_xticks([0, 1], [textwrap.fill(x, 22) for x in names], fontsize=7)
        ax.set_ylim(0, 105)
        ax.set_title(textwrap.fill(p.label, 44), fontsize=8)
        ax.spines[["top", "right"]].set_visible(False)
        hover = f"grader: {p.grader}<br>protocol: {p.protocol}"
        pfig.add_bar(x=names, y=[p.reference if p.reference == p.reference else None, p.score],
                     marker_color=[HIGHLIGHT_COLOR, OWN_COLOR], marker_pattern_shape=["", "/"],
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
    return fig, with_axis_titles(fig, pfig)
