"""Widgets of notebook 02 (rollout sampling): the resampler and the rollout browser."""
from __future__ import annotations

__all__ = ["resample_explorer", "rollout_browser"]

from qwqlab.widgets.base import add_reset, show


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
    add_reset(box, box.controls, at=4)
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
    add_reset(box, box.controls, at=1)
    box.panels = {"question": question, "thinking": thinking, "answer": answer, "info": info}
    box.show = show
    render()
    return box
