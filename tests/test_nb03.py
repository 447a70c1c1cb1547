"""Notebook 03 (reward shaping): its widget driven without a browser, its plots, and the notebook run headless."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import nbformat
import pytest

from executed import keep

from qwqlab.figures import NOTEBOOK_DIR, execute_notebook, page_problems
from qwqlab.paths import nano_dir

NOTEBOOK = NOTEBOOK_DIR / "03_reward_shaping.ipynb"
FIXTURES = Path(__file__).parent / "fixtures"
sys.path.insert(0, str(FIXTURES))
FIGURES = {"rewards_vs_length", "length_shaping_curves", "advantages_by_estimator", "token_weights_grpo_vs_dr_grpo"}


@pytest.fixture(scope="module")
def rollouts(fake):
    """Rollouts of the fake bigram model (not qwq-nano: no checkpoint needed, and fast)."""
    import torch

    from qwqlab.rollouts import sample
    from qwqlab.tasks import ArithmeticTask

    torch.set_num_threads(1)  # tiny model: one thread is fastest on a shared machine
    model, tok = fake
    task = ArithmeticTask()
    df = sample(model, tok, task.problems(3), task, num_generations=4, max_new_tokens=32,
                temperature=1.0, progress=False)
    return df, tok


def test_notebook_is_committed_clean_with_a_parameters_cell():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code)
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and "MODEL =" in tagged[0].source and "NUM_GENERATIONS =" in tagged[0].source
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# 03")
    source = "\n".join(c.source for c in code)
    assert "widgets.reward_explorer" in source and '"cuda"' not in source
    assert set(re.findall(r'save_figure\("([a-z_]+)"', source)) == FIGURES


def _numbers(html: str) -> list[str]:
    return re.findall(r"[+-]?\d+\.\d{3}", html)


def test_reward_explorer_recomputes_when_a_control_moves(rollouts):
    from qwqlab.widgets import reward_explorer

    df, tok = rollouts
    w = reward_explorer(df, tokenizer=tok, plot=False)
    assert {"weight_accuracy", "weight_kimi_length", "cosine_max_len", "overlong_max_len", "overlong_cache",
            "estimator", "problem"} <= set(w.controls)
    assert len(w.table) == len(df) and len(w.group) == 4
    before = (w.panels["summary"].value, w.panels["table"].value, w.updates)

    w.controls["weight_kimi_length"].value = 1.0      # a length reward: spread appears in every group
    assert w.updates == before[2] + 1
    assert w.panels["summary"].value != before[0] and "kimi_length" in w.panels["summary"].value
    assert _numbers(w.panels["table"].value) != _numbers(before[1])
    assert w.table["reward"].std() > 0

    adv_grpo = w.group["advantage"].tolist()
    w.controls["estimator"].value = "dr_grpo"          # no division by the std: different numbers
    assert "(dr_grpo)" in w.panels["summary"].value
    assert w.group["advantage"].tolist() != adv_grpo
    centred = w.group["reward"] - w.group["reward"].mean()
    assert w.group["advantage"].tolist() == pytest.approx(centred.tolist())

    w.controls["weight_kimi_length"].value = 0.0
    w.controls["weight_cosine"].value = 1.0
    cos_before = w.table["cosine"].tolist()
    w.controls["cosine_max_len"].value = 8              # a length target: the reward itself changes
    assert w.table["cosine"].tolist() != cos_before

    other = w.controls["problem"].options[1]
    w.controls["problem"].value = other
    assert set(w.group["problem_id"]) == {other} and str(other) in w.panels["summary"].value


def test_reward_explorer_rejects_ragged_groups(rollouts):
    from qwqlab.widgets import reward_explorer

    df, tok = rollouts
    with pytest.raises(ValueError, match="same number"):
        reward_explorer(df.iloc[:-1], tokenizer=tok, plot=False)


def test_reward_explorer_draws_its_plot(rollouts):
    from qwqlab.widgets import reward_explorer

    df, tok = rollouts
    w = reward_explorer(df, tokenizer=tok)
    assert w.redraws == 1
    w.controls["estimator"].value = "rloo"
    assert w.redraws == 2


def test_notebook_03_plots_return_both_figures():
    import matplotlib.pyplot as plt
    import pandas as pd

    from test_plots import untitled_axes

    from qwqlab import plots
    from qwqlab import rewards as R

    table = pd.DataFrame({"completion_tokens": [5, 10, 20], "correct": [1.0, 0.0, None],
                          "accuracy": [1.0, 0.0, float("nan")], "format": [1.0, 1.0, 0.0]})
    curves = R.length_curves({"cosine": R.make_cosine_reward(max_len=10)}, [0, 5, 10])
    adv = pd.DataFrame({"label": ["a", "b"] * 2, "estimator": ["grpo"] * 2 + ["dr_grpo"] * 2,
                        "advantage": [1.0, -1.0, 0.5, -0.5]})
    weights = pd.DataFrame({"length": [10, 40] * 2, "advantage": [1.0, -1.0] * 2,
                            "aggregation": ["sequence"] * 2 + ["constant"] * 2,
                            "per_token": [0.05, -0.0125, 0.01, -0.01], "per_completion": [0.5, -0.5, 0.1, -0.4]})
    for fig, pfig in (plots.plot_rewards_vs_length(table, ["accuracy", "format"]), plots.plot_length_curves(curves),
                      plots.plot_group_advantages(adv), plots.plot_token_weights(weights)):
        assert hasattr(fig, "savefig") and hasattr(pfig, "write_html") and len(pfig.data) > 0
        assert untitled_axes(pfig) == [], pfig.layout.title.text
        plt.close(fig)


@pytest.mark.slow
@pytest.mark.skipif(not (nano_dir() / "config.json").exists(), reason="the qwq-nano checkpoint is not in data/models")
def test_notebook_03_runs_and_writes_its_figures(tmp_path):
    params = {"NUM_PROBLEMS": 4, "NUM_GENERATIONS": 4, "MAX_NEW_TOKENS": 48,  # small: a few seconds of sampling
              "OVERLONG_MAX_LEN": 48, "OVERLONG_CACHE": 16, "COSINE_MAX_LEN": 32}
    nb = execute_notebook(NOTEBOOK, params, out_dir=tmp_path / "figs")
    assert page_problems(nb) == []  # a clean page: no stderr, warnings, doubled images, stray values
    keep(NOTEBOOK, nb)  # the book's test builds its page from this run
    entries = [json.loads(line) for line in (tmp_path / "figs" / "manifest.jsonl").read_text().splitlines()]
    assert {e["name"] for e in entries} == FIGURES
    for e in entries:
        assert set(e["files"]) == {f"{e['name']}.png", f"{e['name']}.svg", f"{e['name']}.html"}
        for f in e["files"]:
            assert (tmp_path / "figs" / f).stat().st_size > 1000, f
        assert len(e["data_sha256"]) == 64
    text = "\n".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "16 rollouts of 4 problems" in text
    assert "share of tests passed" in "\n".join(str(o.get("data", {})) for c in nb.cells for o in c.get("outputs", []))
