"""Widgets of notebook 05 (reasoning length): the length explorer and the trace reader."""
from __future__ import annotations

__all__ = ["length_explorer", "trace_reader"]

from qwqlab.widgets.base import add_reset, model_text_html, show


def length_explorer(rollouts, markers=None, bins: int = 5, by: str | None = None, length: str = "think_tokens",
                    filters=None):
    """Reflection markers, length buckets and a correctness filter over a rollouts table.

    Controls (``.controls``): ``markers`` (comma-separated words or phrases), ``bins``
    (quantile buckets for accuracy by length), ``correctness`` (``all``, ``correct``,
    ``incorrect``: which completions the marker table and length histogram describe), and one
    control per column of ``filters``: ``{"model": "many", "split": "one"}`` adds a multiple
    choice of models and a single choice of split, which select the rows every table and
    figure describe. After each change ``.report`` holds the ``qwqlab.lengths.LengthReport``
    shown, ``.shown`` the rows and ``.figures`` the matplotlib figures drawn; ``.update()``
    recomputes without a click.
    """
    import ipywidgets as w

    from qwqlab.lengths import DEFAULT_MARKERS

    marker_box = w.Text(value=", ".join(DEFAULT_MARKERS if markers is None else markers), description="marker words",
                        continuous_update=False, layout=w.Layout(width="80%"))
    bins_slider = w.IntSlider(value=bins, min=1, max=20, description="length buckets", continuous_update=False)
    correctness = w.ToggleButtons(options=["all", "correct", "incorrect"], value="all", description="show")
    pickers = {}
    for column, kind in (filters or {}).items():
        if column not in rollouts.columns:
            raise KeyError(f"filters: the table has no column {column!r} (columns: {', '.join(rollouts.columns)})")
        if kind not in ("one", "many"):
            raise ValueError(f"filters[{column!r}] must be 'one' or 'many', not {kind!r}")
        options = [str(v) for v in dict.fromkeys(rollouts[column])]
        pickers[column] = (w.SelectMultiple(options=options, value=tuple(options), description=column,
                                            rows=min(6, len(options))) if kind == "many"
                           else w.ToggleButtons(options=options, value=options[0], description=column))
    out = w.Output()

    def selected():
        rows = rollouts
        for column, picker in pickers.items():
            chosen = set(picker.value) if isinstance(picker.value, tuple) else {picker.value}
            rows = rows[rows[column].astype(str).isin(chosen)]
        return rows

    def update(_=None):
        import matplotlib.pyplot as plt

        from qwqlab.lengths import analyze, correctness_label
        from qwqlab.plots import plot_accuracy_by_length, plot_length_distributions

        rows = selected()
        if rows.empty:
            show(out, text="Nothing selected: pick at least one " + " and one ".join(pickers) + ".")
            box.report, box.figures, box.shown = None, [], rows
            return
        words = [m.strip() for m in marker_box.value.split(",") if m.strip()]
        report = analyze(rows, markers=words, bins=bins_slider.value, length=length, by=by,
                         correctness=correctness.value, include_overthinking=False)
        shown = rows if correctness.value == "all" else rows[correctness_label(rows) == correctness.value]
        figs = [plot_accuracy_by_length(report.by_bucket, by=by)[0],
                plot_length_distributions(shown, length=length, by=by)[0]]
        show(out, report.markers, *figs)
        for f in figs:
            plt.close(f)
        box.report, box.figures, box.shown = report, figs, shown

    for c in (marker_box, bins_slider, correctness, *pickers.values()):
        c.observe(update, names="value")
    rows_of_controls = [marker_box, w.HBox([bins_slider, correctness])]
    if pickers:
        rows_of_controls.append(w.HBox(list(pickers.values())))
    box = w.VBox([*rows_of_controls, out])
    box.add_class("qwqlab-lengths")
    box.controls = {"markers": marker_box, "bins": bins_slider, "correctness": correctness, **pickers}
    add_reset(box, box.controls)
    box.output = out
    box.update = update
    update()
    return box


#: Inside the trace reader's panes: the content may shrink to the pane, text wraps anywhere, and
#: a display equation wider than the pane scrolls by itself instead of pushing the pane sideways,
#: and so does MathJax's hidden copy of each formula for screen readers.
PANE_CSS = ("<style>.qwqlab-trace-reader .widget-htmlmath-content,.qwqlab-trace-reader .widget-html-content"
            "{min-width:0;overflow-wrap:anywhere}"
            ".qwqlab-trace-reader mjx-container[display='true']{overflow-x:auto;overflow-y:hidden;"
            "max-width:100%}"
            # MathJax's hidden copy for screen readers (MathML, clipped but unwrapped) counted
            # in the pane's scroll width: 1321 px of content in a 480 px pane
            ".qwqlab-trace-reader mjx-assistive-mml{max-width:100%!important}</style>")


def trace_reader(traces, models=("QwQ-32B", "DeepSeek-R1"), markers=None, split: str = "normal"):
    """Two models' responses to one problem, side by side: thinking folded, markers highlighted.

    ``traces`` is a traces table (``qwqlab.traces.load_mip_traces()``: one row per model,
    split and problem). Controls (``.controls``): ``problem`` (a dropdown of the problems),
    ``split`` (``normal`` / ``missing_premise``, when the table has splits), ``left`` and
    ``right`` (the two models). Each side shows the model's thinking and answer lengths, the
    extracted answer, qwqlab's verdict and the source's judge label, the answer, and the
    thinking under a fold with the reflection markers highlighted. ``.rows`` holds the two
    rows shown and ``.panels`` the two HTML panes.
    """
    import html
    import re

    import ipywidgets as w

    from qwqlab.lengths import DEFAULT_MARKERS

    words = [m for m in (DEFAULT_MARKERS if markers is None else markers) if m.strip()]
    pattern = re.compile("|".join(re.escape(m) for m in sorted(words, key=len, reverse=True)), re.I) if words else None
    names = list(dict.fromkeys(traces["model"]))
    missing = [m for m in models if m not in names]
    if missing:
        raise ValueError(f"trace_reader: no rows for {', '.join(missing)}; the table has {', '.join(names)}")
    key = "problem_index" if "problem_index" in traces.columns else "problem_id"
    first = traces.drop_duplicates(key)
    problems = [(f"{k}: {' '.join(str(q).split())[:160]}", k) for k, q in zip(first[key], first["question"])]
    problem = w.Dropdown(options=problems, value=problems[0][1], description="problem",
                         layout=w.Layout(width="95%"))
    splits = list(dict.fromkeys(traces["split"])) if "split" in traces.columns else []
    split_pick = w.ToggleButtons(options=splits, value=split if split in splits else splits[0],
                                 description="split") if splits else None
    left = w.Dropdown(options=names, value=models[0], description="left")
    right = w.Dropdown(options=names, value=models[1], description="right")
    # HTMLMath: the responses' LaTeX (\\frac, \\[ ... \\]) is typeset in the browser, not shown raw.
    # min_width 0 (and PANE_CSS for the content inside): a flex item is otherwise at least as
    # wide as its widest unbreakable piece, a long display equation, and the pane scrolled sideways.
    panes = [w.HTMLMath(layout=w.Layout(width="50%", min_width="0", overflow="auto")) for _ in range(2)]

    def marked(text: str) -> str:
        escaped = html.escape(text or "")
        if pattern is None:
            return escaped
        return pattern.sub(lambda m: f"<mark>{m.group(0)}</mark>", escaped)

    def pane(row) -> str:
        if row is None:
            return "<i>no response from this model to this problem</i>"
        verdict = {1.0: "correct", 0.0: "wrong"}.get(row.get("correct"), "cannot be judged")
        judge = row.get("judge_verdict", row.get("judge_label", ""))
        count = len(pattern.findall(row["thinking"] or "")) if pattern is not None else 0
        head = (f"<b>{html.escape(str(row['model']))}</b><br>{int(row['think_tokens']):,} thinking tokens, "
                f"{int(row['answer_tokens']):,} answer tokens; {count} reflection markers<br>"
                f"answer <code>{html.escape(str(row.get('extracted_answer')))}</code> "
                f"(gold <code>{html.escape(str(row['gold_answer']))}</code>): qwqlab says <b>{verdict}</b>"
                + (f", the source's judge says <b>{html.escape(str(judge))}</b>" if judge != "" else ""))
        return (f"{PANE_CSS}<div style='padding:4px 8px;min-width:0'>{head}"
                f"<div style='margin:6px 0;white-space:pre-wrap;overflow-wrap:anywhere'>"
                f"{model_text_html(row['answer_text'])}</div>"
                f"<details><summary>thinking ({int(row['think_tokens']):,} tokens)</summary>"
                f"<div class='tex2jax_ignore mathjax_ignore' "  # thinking is raw text: "$20,000" is money, not maths
                f"style='white-space:pre-wrap;overflow-wrap:anywhere;max-height:420px;overflow-y:auto;font-size:90%'>"
                f"{marked(row['thinking'])}</div></details></div>")

    def update(_=None):
        rows = traces[traces[key] == problem.value]
        if split_pick is not None:
            rows = rows[rows["split"] == split_pick.value]
        picked = []
        for pane_widget, model in zip(panes, (left.value, right.value)):
            match = rows[rows["model"] == model]
            row = match.iloc[0].to_dict() if len(match) else None
            pane_widget.value = pane(row)
            picked.append(row)
        box.rows = picked

    controls = {"problem": problem, "left": left, "right": right}
    if split_pick is not None:
        controls["split"] = split_pick
    for c in controls.values():
        c.observe(update, names="value")
    top = [problem] + ([split_pick] if split_pick is not None else [])
    box = w.VBox([w.VBox(top), w.HBox([left, right]), w.HBox(panes)])
    box.add_class("qwqlab-trace-reader")
    box.controls, box.panels = controls, panes
    add_reset(box, controls)
    box.update = update
    update()
    return box
