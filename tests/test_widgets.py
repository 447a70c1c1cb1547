"""qwqlab.widgets: what every explorer shares (how it fills its Output widget), checked headless."""
from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest
from synthetic import synthetic_rollouts

FIXTURES = str(Path(__file__).parent / "fixtures")


def test_show_sets_the_outputs_in_one_update():
    import ipywidgets as w
    import matplotlib.pyplot as plt
    import pandas as pd

    from qwqlab.widgets import show

    out = w.Output()
    seen = []
    out.observe(lambda change: seen.append(change["new"]), names="outputs")
    fig, ax = plt.subplots()
    show(out, pd.DataFrame({"a": [1]}), fig)
    plt.close(fig)
    assert len(seen) == 1 and [o["output_type"] for o in out.outputs] == ["display_data", "display_data"]
    show(out, text="nothing to show")
    assert out.outputs == ({"output_type": "stream", "name": "stdout", "text": "nothing to show\n"},)


@pytest.mark.slow
def test_explorer_cells_never_wait_for_the_headless_client():
    """With ``with out: display(...)`` one length_explorer cell in about eight waited for
    nbclient's whole cell timeout (and a Voila page for ever): the client emulates the Output
    widget by sending its state back on the shell channel while it waits for the reply there.
    Twelve explorer cells, each of which takes about half a second, must each finish well
    within the timeout."""
    from nbclient import NotebookClient

    setup = (f"import sys; sys.path.insert(0, {FIXTURES!r})\nfrom synthetic import synthetic_rollouts\n"
             "from qwqlab import widgets\nroll = synthetic_rollouts(400, seed=0)\n")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(setup)] + [
        nbformat.v4.new_code_cell("_ = widgets.length_explorer(roll)") for _ in range(12)]
    starts, took = {}, {}
    client = NotebookClient(
        nb, timeout=20, kernel_name="python3",
        on_cell_start=lambda cell, cell_index, **kw: starts.__setitem__(cell_index, time.monotonic()),
        on_cell_executed=lambda cell, cell_index, **kw: took.__setitem__(
            cell_index, time.monotonic() - starts[cell_index]))
    client.execute()
    slow = {i: round(s, 1) for i, s in took.items() if i > 0 and s > 10}
    assert not slow, f"explorer cells that waited for the client's timeout (s): {slow}"


def test_length_explorer_follows_its_controls():
    from qwqlab.widgets import length_explorer

    df = synthetic_rollouts(300)
    box = length_explorer(df, bins=4)
    assert set(box.controls) == {"markers", "bins", "correctness"}
    assert "wait" in box.report.markers["marker"].tolist()
    box.controls["markers"].value = "so, hmm"
    assert box.report.markers["marker"].tolist() == ["so", "hmm", "reflections"]
    box.controls["bins"].value = 2
    assert len(box.report.by_bucket) <= 2
    box.controls["correctness"].value = "correct"
    assert box.report.summary["accuracy"].iloc[0] == 1.0
    assert (box.shown["correct"] == 1.0).all()
    assert len(box.figures) == 2


def _explorers():
    from qwqlab import results, widgets

    table = results.add_results(results.load_published(), results.own_results(nano=True, traces=False))
    yield "memory", widgets.memory_explorer(names=["Qwen/QwQ-32B"], bits=(4,), context_tokens=4096), "context", 8192
    yield "lengths", widgets.length_explorer(synthetic_rollouts(120), bins=3), "bins", 5
    yield "benchmarks", widgets.benchmark_explorer(table, scatter_benchmark="AIME24"), "scatter", "GPQA-Diamond"


def test_every_explorer_has_full_aligned_labels_and_a_reset_button():
    import ipywidgets as w
    import matplotlib.pyplot as plt

    from qwqlab.widgets import LABEL_WIDTH

    for name, box, control, moved in _explorers():
        first = box.controls[control].value
        box.controls[control].value = moved
        assert box.controls[control].value == moved, name
        box.reset.click()
        assert box.controls[control].value == first, name
        assert box.reset in box.children and box.reset.description == "Reset"
        for c in box.controls.values():
            if not isinstance(c, w.Button) and hasattr(c.style, "description_width"):
                assert c.style.description_width == LABEL_WIDTH, (name, c.description)
        plt.close("all")


def test_arithmetic_task_reads_a_typed_question():
    from qwqlab.tasks import ArithmeticTask

    task = ArithmeticTask()
    p = task.problem_for(" What is 25 + 17? ")
    assert p.answer == "42" and p.question == "What is 25+17?"
    assert task.grade("25+17.\n</think>\n\n\\boxed{42}", p) == 1.0
    assert task.problem_for("How many r's are in strawberry?") is None


def test_model_text_is_escaped_and_money_is_not_maths():
    from qwqlab.widgets.base import model_text_html

    money = model_text_html("a wage of $20,000 a year; after 3 years, $66,200 in all")
    assert money.count("mathjax_ignore") == 2 and "$20,000" not in money  # neither dollar opens a formula
    kept = model_text_html(r"so $x^2+1$ and \(y\) and $$z$$, at \$5")
    assert "$x^2+1$" in kept and r"\(y\)" in kept and "$$z$$" in kept and kept.count("mathjax_ignore") == 1
    assert model_text_html("<script>alert(1)</script>") == "&lt;script&gt;alert(1)&lt;/script&gt;"
    # a bare \boxed{} is set as maths (a box, not its source); one already in maths is left alone
    assert model_text_html(r"The answer is \boxed{\frac{1}{2}}.") == r"The answer is \(\boxed{\frac{1}{2}}\)."
    shown = model_text_html(r"\[ \boxed{10} \] for $5")
    assert shown.startswith(r"\[ \boxed{10} \] for <span") and shown.endswith("$</span>5")
