"""Widgets of notebook 01 (models and quantization): the chat widget and the memory explorer."""
from __future__ import annotations

__all__ = ["chat_widget", "memory_explorer"]

from qwqlab.widgets.base import add_reset, fit_labels, model_text_html, show


def chat_widget(model, tokenizer, question: str = "What is 478+396?", max_new_tokens: int = 128,
                seed: int = 0, task=None):
    """A prompt box, a temperature slider and a Generate button; thinking and answer shown apart.

    When the prompt is a question of one of the lab's tasks (``task``, default the arithmetic
    task: "What is 25+17?"), a verdict says whether the boxed answer is right, with the right
    answer when it is not (graded by the task, as in training). Returns a ``VBox`` with
    ``.controls`` (``prompt``, ``temperature``, ``generate``), ``.panels`` (``thinking``,
    ``answer``, ``verdict``, ``status``) and ``.run()`` to generate without a click.
    """
    import ipywidgets as w

    import html

    from qwqlab.chat import build_prompt, extract_boxed, split_think
    from qwqlab.decoding import generate

    prompt = w.Textarea(value=question, description="Prompt", layout=w.Layout(width="95%"))
    temperature = w.FloatSlider(value=0.6, min=0.0, max=1.5, step=0.05, description="temperature")
    button = w.Button(description="Generate", button_style="primary")
    thinking = w.Textarea(description="Thinking", disabled=True, layout=w.Layout(width="95%", height="140px"))
    answer = w.HTMLMath()
    verdict = w.HTML()
    status = w.HTML()
    if task is None:
        from qwqlab.tasks import ArithmeticTask

        task = ArithmeticTask()
    calls = {"n": 0}

    def run(_=None):
        calls["n"] += 1
        text = build_prompt(tokenizer, prompt.value)
        gen = generate(model, tokenizer, [text], 1, temperature=temperature.value, max_new_tokens=max_new_tokens,
                       seed=seed + calls["n"])[0]
        parts = split_think(gen.text)
        thinking.value = parts.thinking or "(no thinking)"
        boxed = extract_boxed(parts.answer)
        answer.value = (f"<b>Answer:</b> {model_text_html(parts.answer) or '(none: the completion was cut off)'}"
                        f"<br><b>Boxed:</b> {model_text_html(boxed) if boxed is not None else '(none)'}")
        problem = task.problem_for(prompt.value) if hasattr(task, "problem_for") else None
        if problem is None:
            verdict.value = "<i>no verdict: not a question of the lab's tasks</i>"
        else:
            score = task.grade(gen.text, problem)
            verdict.value = ("<i>cannot be judged</i>" if score is None else
                             "<b style='color:#2e7d32'>&#10003; correct</b>" if score >= 1 else
                             f"<b style='color:#c62828'>&#10007; wrong</b>: the right answer is "
                             f"<b>{html.escape(str(problem.answer))}</b>")
        status.value = (f"<i>{gen.num_tokens} tokens, finished by {gen.finish_reason}, "
                        f"split case: {parts.case}</i>")

    button.on_click(run)
    fit_labels([prompt, temperature, button, thinking])
    box = w.VBox([prompt, w.HBox([temperature, button]), thinking, answer, verdict, status])
    box.add_class("qwqlab-chat")
    box.controls = {"prompt": prompt, "temperature": temperature, "generate": button}
    box.panels = {"thinking": thinking, "answer": answer, "verdict": verdict, "status": status}
    box.run = run
    return box


def memory_explorer(names=None, bits=(16, 8, 4), context_tokens: int = 32768):
    """A context-length slider over the memory table and plot of the known reasoning models."""
    import ipywidgets as w
    import plotly.graph_objects as go

    from qwqlab.models import memory_table
    from qwqlab.plots import plot_memory

    slider = w.IntSlider(value=context_tokens, min=1024, max=131072, step=1024, description="context (tokens)",
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
    add_reset(box, box.controls, at=1)
    box.figure = fig
    update()
    return box
