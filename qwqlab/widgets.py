"""ipywidgets explorers used by the notebooks, built by functions so tests can drive them.

Each function returns a widget (usually a ``VBox``) whose controls are reachable as
attributes (``w.controls["temperature"]``) and whose output can be inspected after a control
is moved, so tests need no browser.
"""
from __future__ import annotations


def show(out, *objects, text: str | None = None) -> None:
    """Replace what the ``Output`` widget ``out`` shows with ``objects`` (or a line of ``text``),
    as one update of its ``outputs`` state.

    Why not ``with out: display(...)``: that routes the outputs through the kernel's display
    hooks, and a headless client (nbclient, under ``make figures`` and Voila's dashboards)
    emulates the Output widget by sending its state back to the kernel on the shell channel
    for every output, while it waits for the cell's reply on that same channel. Seen here: one
    ``length_explorer`` cell in about ten then waited for the client's whole cell timeout (the
    reply was there; the waiting side was not woken), and a Voila page, which has no such
    timeout, never loaded. Setting ``outputs`` directly sends one state message the other
    way and nothing back. Each object is formatted as IPython displays it (tables as HTML,
    matplotlib figures as PNG); outside a kernel as its ``repr``.
    """
    import base64

    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:
        shell = None
    outputs = []
    if text is not None:
        outputs.append({"output_type": "stream", "name": "stdout", "text": text.rstrip("\n") + "\n"})
    for obj in objects:
        if shell is not None:
            data, metadata = shell.display_formatter.format(obj)
        else:
            data, metadata = {"text/plain": repr(obj)}, {}
        data = {k: base64.b64encode(v).decode("ascii") if isinstance(v, bytes) else v for k, v in data.items()}
        outputs.append({"output_type": "display_data", "data": data, "metadata": metadata})
    out.outputs = tuple(outputs)


# ----------------------------------------------------------------------------- notebook 01

def chat_widget(model, tokenizer, question: str = "What is 478+396?", max_new_tokens: int = 128,
                seed: int = 0):
    """A prompt box, a temperature slider and a Generate button; thinking and answer shown apart.

    Returns a ``VBox`` with ``.controls`` (``prompt``, ``temperature``, ``generate``) and
    ``.panels`` (``thinking``, ``answer``) and ``.run()`` to generate without a click.
    """
    import ipywidgets as w

    from qwqlab.chat import build_prompt, extract_boxed, split_think
    from qwqlab.decoding import generate

    prompt = w.Textarea(value=question, description="Prompt", layout=w.Layout(width="95%"))
    temperature = w.FloatSlider(value=0.6, min=0.0, max=1.5, step=0.05, description="temperature")
    button = w.Button(description="Generate", button_style="primary")
    thinking = w.Textarea(description="Thinking", disabled=True, layout=w.Layout(width="95%", height="140px"))
    answer = w.HTML()
    status = w.HTML()
    calls = {"n": 0}

    def run(_=None):
        calls["n"] += 1
        text = build_prompt(tokenizer, prompt.value)
        gen = generate(model, tokenizer, [text], 1, temperature=temperature.value, max_new_tokens=max_new_tokens,
                       seed=seed + calls["n"])[0]
        parts = split_think(gen.text)
        thinking.value = parts.thinking or "(no thinking)"
        boxed = extract_boxed(parts.answer)
        answer.value = (f"<b>Answer:</b> {parts.answer or '(none: the completion was cut off)'}"
                        f"<br><b>Boxed:</b> {boxed}")
        status.value = (f"<i>{gen.num_tokens} tokens, finished by {gen.finish_reason}, "
                        f"split case: {parts.case}</i>")

    button.on_click(run)
    box = w.VBox([prompt, w.HBox([temperature, button]), thinking, answer, status])
    box.add_class("qwqlab-chat")
    box.controls = {"prompt": prompt, "temperature": temperature, "generate": button}
    box.panels = {"thinking": thinking, "answer": answer, "status": status}
    box.run = run
    return box


def memory_explorer(names=None, bits=(16, 8, 4), context_tokens: int = 32768):
    """A context-length slider over the memory table and plot of the known reasoning models."""
    import ipywidgets as w
    import plotly.graph_objects as go

    from qwqlab.models import memory_table
    from qwqlab.plots import plot_memory

    slider = w.IntSlider(value=context_tokens, min=1024, max=131072, step=1024, description="context",
                         continuous_update=False, layout=w.Layout(width="60%"))
    table_out = w.Output()
    import matplotlib.pyplot as plt

    first_static, first = plot_memory(memory_table(names, bits, context_tokens))
    plt.close(first_static)  # left open, a notebook's inline backend would draw it under the cell
    fig = go.FigureWidget(first)

    def update(_=None):
        table = memory_table(names, bits, slider.value)
        mfig, pfig = plot_memory(table)
        plt.close(mfig)
        with fig.batch_update():
            for trace, new in zip(fig.data, pfig.data):
                trace.x = new.x
            fig.layout.title.text = pfig.layout.title.text
        show(table_out, table[["model", "bits", "weights_gib", "kv_cache_gib", "total_gib"]])
        box.table = table

    slider.observe(update, names="value")
    box = w.VBox([slider, fig, table_out])
    box.add_class("qwqlab-memory")
    box.controls = {"context": slider}
    box.figure = fig
    update()
    return box


# ----------------------------------------------------------------------------- notebook 05

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

    marker_box = w.Text(value=", ".join(DEFAULT_MARKERS if markers is None else markers), description="markers",
                        continuous_update=False, layout=w.Layout(width="80%"))
    bins_slider = w.IntSlider(value=bins, min=1, max=20, description="buckets", continuous_update=False)
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
    box.output = out
    box.update = update
    update()
    return box


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
    problems = [(f"{k}: {str(q)[:70]}", k) for k, q in zip(first[key], first["question"])]
    problem = w.Dropdown(options=problems, value=problems[0][1], description="problem",
                         layout=w.Layout(width="70%"))
    splits = list(dict.fromkeys(traces["split"])) if "split" in traces.columns else []
    split_pick = w.ToggleButtons(options=splits, value=split if split in splits else splits[0],
                                 description="split") if splits else None
    left = w.Dropdown(options=names, value=models[0], description="left")
    right = w.Dropdown(options=names, value=models[1], description="right")
    panes = [w.HTML(layout=w.Layout(width="50%")), w.HTML(layout=w.Layout(width="50%"))]

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
        return (f"<div style='padding:4px 8px'>{head}"
                f"<div style='margin:6px 0;white-space:pre-wrap'>{marked(row['answer_text'])}</div>"
                f"<details><summary>thinking ({int(row['think_tokens']):,} tokens)</summary>"
                f"<div style='white-space:pre-wrap;max-height:420px;overflow-y:auto;font-size:90%'>"
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
    box = w.VBox([w.HBox(top), w.HBox([left, right]), w.HBox(panes)])
    box.add_class("qwqlab-trace-reader")
    box.controls, box.panels = controls, panes
    box.update = update
    update()
    return box


# ----------------------------------------------------------------------------- notebook 06

def benchmark_explorer(table, benchmarks=None, models=None, scatter_benchmark: str = "GPQA-Diamond",
                       own=None, metric=None):
    """Pick benchmarks and models; the grouped bars, the size-efficiency scatter and the table follow.

    ``table`` is ``qwqlab.results.load_published()`` (plus ``add_results`` rows). Controls
    (``.controls``): ``benchmarks``, ``models`` (multiple selection), ``scatter`` (the
    benchmark the scatter plots). ``metric``: one or several (default
    ``qwqlab.results.HEADLINE_METRICS``: pass@1, IFEval's prompt-strict accuracy, and the
    figures whose source names no metric). After each change ``.table`` holds the wide table
    shown and ``.figures`` the matplotlib figures; ``.update()`` recomputes without a click.
    """
    import ipywidgets as w

    from qwqlab.results import BENCHMARKS, HEADLINE_METRICS

    metric = HEADLINE_METRICS if metric is None else metric

    present = set(table["benchmark"])
    all_benchmarks = [b for b in BENCHMARKS if b in present] + sorted(present - set(BENCHMARKS))
    all_models = list(dict.fromkeys(table["model"]))
    pick_b = w.SelectMultiple(options=all_benchmarks, value=tuple(benchmarks or all_benchmarks),
                              description="benchmarks", rows=min(9, len(all_benchmarks)))
    pick_m = w.SelectMultiple(options=all_models, value=tuple(models or all_models), description="models",
                              rows=min(10, len(all_models)), layout=w.Layout(width="45%"))
    scatter = w.Dropdown(options=all_benchmarks, value=scatter_benchmark if scatter_benchmark in all_benchmarks
                         else all_benchmarks[0], description="scatter")
    out = w.Output()

    def update(_=None):
        import matplotlib.pyplot as plt

        from qwqlab.plots import plot_benchmark_bars, plot_size_efficiency
        from qwqlab.results import wide

        chosen_b, chosen_m = list(pick_b.value), list(pick_m.value)
        if not chosen_b or not chosen_m:
            show(out, text="Pick at least one benchmark and one model.")
            box.table, box.figures = None, []
            return
        shown = wide(table, metric=metric, models=chosen_m, benchmarks=chosen_b)
        figs = [plot_benchmark_bars(table, benchmarks=chosen_b, models=chosen_m, metric=metric)[0],
                plot_size_efficiency(table, benchmark=scatter.value, models=chosen_m, own=own, metric=metric)[0]]
        show(out, shown, *figs)
        for f in figs:
            plt.close(f)
        box.table, box.figures = shown, figs

    for c in (pick_b, pick_m, scatter):
        c.observe(update, names="value")
    box = w.VBox([w.HBox([pick_b, pick_m]), scatter, out])
    box.add_class("qwqlab-benchmarks")
    box.controls = {"benchmarks": pick_b, "models": pick_m, "scatter": scatter}
    box.output = out
    box.update = update
    update()
    return box


# ----------------------------------------------------------------------------- notebook 04

def training_monitor(panels: dict | None = None, window: int = 5, min_seconds: float = 2.0,
                     title: str = "GRPO on qwq-nano (live)"):
    """Live plots of a GRPO run: pass ``monitor.callback`` to ``train_grpo(..., callback=...)``.

    A status line and matplotlib panels (``qwqlab.plots.plot_training``) redrawn in an
    ``Output`` widget at most every ``min_seconds`` (a redraw costs ~0.2 s, a step ~1 s);
    ``monitor.finish()`` draws the final state. ``monitor.history`` holds the rows received,
    ``monitor.redraws`` counts redraws (tests drive it without a browser).
    """
    import time

    import ipywidgets as w

    status = w.HTML("<i>waiting for the first step...</i>")
    out = w.Output()
    box = w.VBox([status, out])
    box.add_class("qwqlab-training-monitor")
    box.history, box.redraws = [], 0
    last = {"t": -float("inf")}

    def redraw():
        import matplotlib.pyplot as plt

        from qwqlab.plots import plot_training

        fig, _ = plot_training(box.history, panels=panels, window=window, title=title)
        show(out, fig)
        plt.close(fig)
        box.redraws += 1
        last["t"] = time.perf_counter()

    def callback(row: dict):
        box.history.append(dict(row))
        status.value = (f"step {row['step']}: reward {row.get('reward_mean', float('nan')):.3f}, "
                        f"accuracy {row.get('accuracy', float('nan')):.3f}, "
                        f"{row.get('completion_tokens_mean', float('nan')):.1f} tokens "
                        f"({row.get('think_tokens_mean', float('nan')):.1f} thinking), "
                        f"{row.get('seconds', float('nan')):.2f} s/step")
        if time.perf_counter() - last["t"] >= min_seconds:
            redraw()
        return False

    def finish():
        if box.history:
            redraw()
        return box

    box.callback, box.finish, box.controls, box.panels = callback, finish, {}, {"status": status, "plots": out}
    return box


# ----------------------------------------------------------------------------- notebook 02

def resample_explorer(model, tokenizer, problem, task=None, num_generations: int = 8, temperature: float = 0.6,
                      top_p: float = 0.95, top_k: int | None = 40, max_new_tokens: int = 96, seed: int = 0,
                      max_k: int = 64, max_tokens_limit: int | None = None, backend: str = "hf"):
    """Resample one problem with sliders for temperature, top_p, k and max_new_tokens.

    Each change draws k fresh completions (``qwqlab.rollouts.sample``) and shows how the
    answers and lengths spread. Moving a slider keeps the seed, so differences come from the
    setting, not from luck; "Resample" moves to a new seed. ``.controls`` holds
    ``temperature``, ``top_p``, ``k``, ``max_new_tokens`` and ``resample``; after each update
    ``.rollouts`` is the table drawn, ``.summary`` its ``qwqlab.metrics.run_summary`` and
    ``.figures`` the matplotlib figures; ``.update()`` resamples without a click.
    """
    import html

    import ipywidgets as w

    limit = max_tokens_limit or max(max_new_tokens, 256)
    temp = w.FloatSlider(value=temperature, min=0.0, max=1.5, step=0.05, description="temperature",
                         continuous_update=False)
    top_p_s = w.FloatSlider(value=top_p, min=0.05, max=1.0, step=0.05, description="top_p", continuous_update=False)
    k_s = w.IntSlider(value=num_generations, min=1, max=max_k, description="k", continuous_update=False)
    tokens_s = w.IntSlider(value=max_new_tokens, min=1, max=limit, step=1, description="max_new_tokens",
                           continuous_update=False, style={"description_width": "initial"})
    button = w.Button(description="Resample (new seed)", button_style="primary")
    header = w.HTML()
    stats = w.HTML()
    out = w.Output()
    state = {"seed": seed}

    def update(_=None):
        import matplotlib.pyplot as plt

        from qwqlab.metrics import run_summary
        from qwqlab.plots import plot_answer_spread
        from qwqlab.rollouts import sample

        df = sample(model, tokenizer, [problem], task, num_generations=k_s.value, temperature=temp.value,
                    top_p=top_p_s.value, top_k=top_k, max_new_tokens=tokens_s.value, seed=state["seed"],
                    batch_size=max(1, k_s.value), progress=False, backend=backend)
        summary = run_summary(df)
        answers = df["extracted_answer"].map(lambda a: "(none)" if a is None or a != a else str(a))
        spread = ", ".join(f"{html.escape(a)} &times;{n}" for a, n in answers.value_counts().items())
        stats.value = (f"<b>{len(df)} samples</b> (seed {state['seed']}): accuracy {summary['accuracy']:.2f}, "
                       f"truncated {summary['truncation_rate']:.0%}, mean {summary['mean_completion_tokens']:.1f} "
                       f"tokens<br>answers: {spread}")
        fig, _ = plot_answer_spread(df, title=f"T={temp.value:g}, top_p={top_p_s.value:g}, "
                                              f"k={k_s.value}, max_new_tokens={tokens_s.value}")
        show(out, fig)
        plt.close(fig)
        box.rollouts, box.summary, box.figures = df, summary, [fig]

    def new_seed(_=None):
        state["seed"] += 1
        update()

    gold = getattr(problem, "answer", None)
    header.value = (f"<b>{html.escape(getattr(problem, 'id', ''))}</b>: "
                    f"{html.escape(getattr(problem, 'question', str(problem)))}"
                    + (f" &nbsp;<i>(gold: {html.escape(str(gold))})</i>" if gold is not None else ""))
    for c in (temp, top_p_s, k_s, tokens_s):
        c.observe(update, names="value")
    button.on_click(new_seed)
    box = w.VBox([header, w.HBox([temp, top_p_s]), w.HBox([k_s, tokens_s]), button, stats, out])
    box.add_class("qwqlab-resample")
    box.controls = {"temperature": temp, "top_p": top_p_s, "k": k_s, "max_new_tokens": tokens_s, "resample": button}
    box.panels = {"stats": stats, "plots": out}
    box.output = out
    box.update = update
    update()
    return box


def rollout_browser(rollouts):
    """Browse a rollout table: pick a problem and a sample, read its thinking and its answer.

    ``.controls``: ``problem`` (dropdown, labelled with each problem's accuracy) and
    ``sample`` (slider over its samples). ``.panels``: ``question``, ``thinking``, ``answer``
    and ``info`` (HTML). ``.row`` is the row shown; ``.show(problem_id, sample_index)``
    jumps without touching the controls by hand.
    """
    import html

    import ipywidgets as w

    df = rollouts.reset_index(drop=True)
    ids = list(dict.fromkeys(df["problem_id"]))
    acc = df.groupby("problem_id", sort=False)["correct"].mean() if "correct" in df.columns else None

    def label(pid):
        a = acc.get(pid) if acc is not None else None
        return f"{pid}  ({a:.0%} correct)" if a is not None and a == a else str(pid)

    problem = w.Dropdown(options=[(label(p), p) for p in ids], value=ids[0], description="problem",
                         layout=w.Layout(width="70%"))
    sample_s = w.IntSlider(value=0, min=0, max=0, description="sample")
    question, thinking, answer, info = w.HTML(), w.HTML(), w.HTML(), w.HTML()

    def pre(text, color="#f6f6f6"):
        return (f"<pre style='white-space:pre-wrap;background:{color};padding:6px;max-height:260px;"
                f"overflow:auto'>{html.escape(text)}</pre>")

    def render(_=None):
        rows = df[df["problem_id"] == problem.value].sort_values("sample_index")
        sample_s.max = max(0, len(rows) - 1)
        row = rows.iloc[min(sample_s.value, len(rows) - 1)]
        gold = row.get("gold_answer")
        question.value = (f"<b>{html.escape(str(row['question']))}</b>"
                          + (f" &nbsp;<i>gold: {html.escape(str(gold))}</i>" if gold is not None and gold == gold else ""))
        thinking.value = "<b>Thinking</b>" + pre(row["thinking"] or "(no thinking)")
        answer.value = "<b>Answer</b>" + pre(row["answer_text"] or "(none: cut off before </think>)", "#eef6ee")
        verdict = row.get("correct")
        verdict = "ungraded" if verdict is None or verdict != verdict else ("correct" if verdict == 1 else "wrong")
        info.value = (f"sample {int(row['sample_index'])}: extracted <code>{html.escape(str(row['extracted_answer']))}"
                      f"</code> ({verdict}); {int(row['completion_tokens'])} tokens "
                      f"({int(row['think_tokens'])} thinking, {int(row['answer_tokens'])} answer); "
                      f"finished by {row['finish_reason']}")
        box.row = row

    def show(problem_id, sample_index: int = 0):
        problem.value = problem_id
        sample_s.value = sample_index
        render()
        return box.row

    problem.observe(lambda _: (setattr(sample_s, "value", 0), render()), names="value")
    sample_s.observe(render, names="value")
    box = w.VBox([w.HBox([problem, sample_s]), question, thinking, answer, info])
    box.add_class("qwqlab-rollout-browser")
    box.controls = {"problem": problem, "sample": sample_s}
    box.panels = {"question": question, "thinking": thinking, "answer": answer, "info": info}
    box.show = show
    render()
    return box


# ----------------------------------------------------------------------------- notebook 03

def reward_explorer(rollouts, tokenizer=None, weights: dict | None = None, estimator: str = "grpo",
                    cosine_max_len: int = 64, overlong_max_len: int = 96, overlong_cache: int = 32,
                    problem_id: str | None = None, plot: bool = True):
    """Reward weights, length targets and an advantage estimator; a group's rewards and advantages, live.

    ``rollouts`` is a table from ``qwqlab.rollouts.sample`` (prompt-major, the same number of
    samples per problem). Every control recomputes the weighted reward
    (``qwqlab.rewards.combine`` semantics: ``None`` terms skipped) of every rollout and the
    advantages (``qwqlab.grpo.compute_advantages``) of the whole batch, then shows the chosen
    problem's group. ``box.controls``: a weight slider per reward (``weight_<name>``),
    ``cosine_max_len``, ``overlong_max_len``, ``overlong_cache``, ``estimator``, ``problem``;
    ``box.table`` (all rows), ``box.group`` (the shown group), ``box.panels`` (``summary``,
    ``table``, ``plot``); ``box.updates``/``box.redraws`` count recomputations and plots;
    ``box.recompute()`` after changing ``rollouts`` in place.
    """
    import html

    import ipywidgets as w
    import numpy as np

    from qwqlab.grpo import ESTIMATORS, compute_advantages
    from qwqlab.rewards import DEFAULT_TABLE_REWARDS, get_reward, reward_table, weighted_sum

    sizes = rollouts.groupby("problem_id", sort=False).size()
    if sizes.nunique() != 1 or sizes.iloc[0] < 2:
        raise ValueError("reward_explorer needs the same number (at least 2) of rollouts per problem; "
                         f"got group sizes {sorted(set(sizes))}")
    num_generations = int(sizes.iloc[0])
    names = list(DEFAULT_TABLE_REWARDS)
    weights = {"accuracy": 1.0, **(weights or {})}
    slider = dict(min=-2.0, max=2.0, step=0.1, continuous_update=False, style={"description_width": "initial"})
    weight_sliders = {n: w.FloatSlider(value=float(weights.get(n, 0.0)), description=n, **slider) for n in names}
    longest = int(max(rollouts["completion_tokens"].max(), overlong_max_len, cosine_max_len))
    cos_len = w.IntSlider(value=cosine_max_len, min=8, max=max(2 * longest, 16), step=4, continuous_update=False,
                          description="cosine max_len", style={"description_width": "initial"})
    over_len = w.IntSlider(value=overlong_max_len, min=8, max=max(2 * longest, 16), step=4, continuous_update=False,
                           description="overlong max", style={"description_width": "initial"})
    over_cache = w.IntSlider(value=overlong_cache, min=1, max=max(2 * longest, 16), step=1, continuous_update=False,
                             description="overlong cache", style={"description_width": "initial"})
    est = w.Dropdown(options=list(ESTIMATORS), value=estimator, description="advantage")
    pids = list(sizes.index)
    problem = w.Dropdown(options=pids, value=problem_id if problem_id in pids else pids[0], description="problem")
    summary, table_html, out = w.HTML(), w.HTML(), w.Output()
    cache: dict = {}

    def column(name):
        params = {"cosine": {"max_len": cos_len.value},
                  "soft_overlong": {"max_completion_len": over_len.value,
                                    "soft_punish_cache": min(over_cache.value, over_len.value)}}.get(name, {})
        key = (name, tuple(sorted(params.items())))
        if key not in cache:
            cache[key] = reward_table(rollouts, {name: get_reward(name, **params)}, tokenizer=tokenizer)[name]
        return cache[key]

    def recompute(_=None):
        parts = {n: column(n) for n in names}
        active = [n for n in names if weight_sliders[n].value != 0]
        summed = weighted_sum([parts[n].tolist() for n in active], [weight_sliders[n].value for n in active],
                              names=active, n=len(rollouts))
        total = np.array([np.nan if v is None else v for v in summed], dtype=float)
        adv = compute_advantages(list(total), num_generations, estimator=est.value)
        table = rollouts[["problem_id", "sample_index", "completion_tokens"]].copy()
        if "correct" in rollouts:
            table["correct"] = rollouts["correct"]
        for n in names:
            table[n] = parts[n]
        table["reward"], table["advantage"] = total, np.asarray(adv, dtype=float)
        box.table = table
        box.group = table[table["problem_id"] == problem.value]
        g = box.group
        formula = " + ".join(f"{weight_sliders[n].value:g}*{n}" for n in active) or "0"
        spread = g["reward"].std(ddof=1) if g["reward"].notna().sum() > 1 else float("nan")
        summary.value = (f"<b>reward</b> = {html.escape(formula)}<br>"
                         f"<b>group {html.escape(str(problem.value))}</b>: mean reward {g['reward'].mean():.3f}, "
                         f"spread {spread:.3f}; advantages ({est.value}): "
                         + ", ".join(f"{a:+.3f}" for a in g["advantage"])
                         + f"<br>batch: {len(table)} rollouts, mean reward {np.nanmean(total):.3f}; "
                         f"{_reward_zero_spread_share(total, num_generations):.0%} of groups have no reward spread")
        shown = g[["sample_index", "completion_tokens"] + (["correct"] if "correct" in g else [])
                  + active + ["reward", "advantage"]]
        table_html.value = shown.to_html(index=False, float_format=lambda v: f"{v:.3f}", na_rep="None")
        if plot:
            _draw_reward_group(out, g, est.value)
            box.redraws += 1
        box.updates += 1

    box = w.VBox([w.HTML("<b>Reward weights</b>"), w.VBox(list(weight_sliders.values())),
                  w.HTML("<b>Length targets</b>"), w.HBox([cos_len, over_len, over_cache]),
                  w.HBox([est, problem]), summary, table_html, out])
    box.add_class("qwqlab-reward-explorer")
    box.updates = box.redraws = 0
    box.controls = {**{f"weight_{n}": s for n, s in weight_sliders.items()}, "cosine_max_len": cos_len,
                    "overlong_max_len": over_len, "overlong_cache": over_cache, "estimator": est, "problem": problem}
    box.panels = {"summary": summary, "table": table_html, "plot": out}
    box.recompute = recompute
    for c in box.controls.values():
        c.observe(recompute, names="value")
    recompute()
    return box


def _reward_zero_spread_share(total, num_generations: int) -> float:
    import numpy as np

    groups = np.asarray(total, dtype=float).reshape(-1, num_generations)
    flat = [np.nanmax(g) - np.nanmin(g) < 1e-12 if np.isfinite(g).sum() > 1 else True for g in groups]
    return float(np.mean(flat))


def _draw_reward_group(out, group, estimator: str):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 2.4))
    labels = [str(i) for i in group["sample_index"]]
    axes[0].bar(labels, group["reward"].fillna(0.0), color="#4a6fa5")
    axes[0].set_title("reward", fontsize=9)
    axes[1].bar(labels, group["advantage"], color=["#2e8b57" if a > 0 else "#c0392b" for a in group["advantage"]])
    axes[1].set_title(f"advantage ({estimator})", fontsize=9)
    for ax in axes:
        ax.set_xlabel("sample", fontsize=8)
        ax.axhline(0, color="#333333", lw=0.6)
    fig.tight_layout()
    show(out, fig)
    plt.close(fig)
