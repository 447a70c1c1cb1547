"""Notebook 02 (rollout sampling): its widgets driven without a browser, and the notebook run headless."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest

from executed import keep

from qwqlab.figures import NOTEBOOK_DIR, execute_notebook, page_problems
from qwqlab.paths import nano_dir

NOTEBOOK = NOTEBOOK_DIR / "02_rollout_sampling.ipynb"
FIXTURES = Path(__file__).parent / "fixtures"
sys.path.insert(0, str(FIXTURES))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny model: one thread is fastest on a shared machine
    yield
    torch.set_num_threads(old)


def test_notebook_is_committed_clean_with_a_parameters_cell():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code)
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and "MODEL =" in tagged[0].source and "TASK_PATH =" in tagged[0].source
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# 02")
    source = "\n".join(c.source for c in code)
    assert "save_figure(" in source and "widgets.resample_explorer" in source and "widgets.rollout_browser" in source
    assert '"cuda"' not in source


def test_resample_explorer_resamples_when_a_control_moves(fake):
    from qwqlab.tasks import ArithmeticTask
    from qwqlab.widgets import resample_explorer

    model, tok = fake
    task = ArithmeticTask()
    problem = task.problems(1)[0]
    w = resample_explorer(model, tok, problem, task, num_generations=4, max_new_tokens=16)
    assert set(w.controls) == {"temperature", "top_p", "k", "max_new_tokens", "resample"}
    assert len(w.rollouts) == 4 and "4 samples" in w.panels["stats"].value
    first = list(w.rollouts["completion"])
    w.controls["k"].value = 6
    assert len(w.rollouts) == 6
    assert list(w.rollouts["completion"])[:4] == first          # same seed: the first four are unchanged
    w.controls["max_new_tokens"].value = 2
    assert w.rollouts["completion_tokens"].max() <= 2 and w.summary["truncation_rate"] > 0
    w.controls["temperature"].value = 0.0
    assert w.rollouts["completion"].nunique() == 1               # greedy: every sample the same
    w.controls["max_new_tokens"].value = 16
    w.controls["temperature"].value = 1.0
    before = list(w.rollouts["completion"])
    w.controls["resample"].click()                               # a new seed
    assert list(w.rollouts["completion"]) != before and "seed 1" in w.panels["stats"].value
    assert len(w.figures) == 1


def test_rollout_browser_shows_the_chosen_sample(fake):
    from qwqlab.rollouts import sample
    from qwqlab.tasks import ArithmeticTask
    from qwqlab.widgets import rollout_browser

    model, tok = fake
    task = ArithmeticTask()
    df = sample(model, tok, task.problems(3), task, num_generations=3, max_new_tokens=24, progress=False)
    w = rollout_browser(df)
    assert w.row["problem_id"] == df["problem_id"][0] and w.row["sample_index"] == 0
    pid = df["problem_id"].unique()[2]
    w.controls["problem"].value = pid
    w.controls["sample"].value = 2
    row = df[(df.problem_id == pid) & (df.sample_index == 2)].iloc[0]
    assert w.row["completion"] == row["completion"]
    assert f"{int(row['completion_tokens'])} tokens" in w.panels["info"].value
    assert row["question"] in w.panels["question"].value
    w.show(df["problem_id"][0], 1)
    assert w.controls["sample"].value == 1 and w.row["sample_index"] == 1
    assert w.controls["sample"].max == 2
    assert "correct)" in w.controls["problem"].options[0][0]


@pytest.mark.slow
@pytest.mark.skipif(not (nano_dir() / "config.json").exists(), reason="the qwq-nano checkpoint is not in data/models")
def test_notebook_02_runs_and_writes_its_figures(tmp_path):
    params = {"NUM_PROBLEMS": 6, "NUM_GENERATIONS": 4,  # small: a few seconds of sampling
              "TEMPERATURES": [0.6, 1.0], "TOKEN_BUDGETS": [8, 32, 64], "BUDGET_GENERATIONS": 2,
              "MAX_NEW_TOKENS": 64, "OUT": str(tmp_path / "rollouts.jsonl")}
    nb = execute_notebook(NOTEBOOK, params, out_dir=tmp_path / "figs")
    assert page_problems(nb) == []  # a clean page: no stderr, warnings, doubled images, stray values
    keep(NOTEBOOK, nb)  # the book's test builds its page from this run
    entries = [json.loads(line) for line in (tmp_path / "figs" / "manifest.jsonl").read_text().splitlines()]
    names = {e["name"] for e in entries}
    assert {"answer_spread", "pass_at_k_by_temperature", "maj_at_k_by_temperature",
            "truncation_vs_max_new_tokens"} <= names
    for e in entries:
        assert set(e["files"]) == {f"{e['name']}.png", f"{e['name']}.svg", f"{e['name']}.html"}
        for f in e["files"]:
            assert (tmp_path / "figs" / f).stat().st_size > 1000, f
        assert len(e["data_sha256"]) == 64
    assert sum(1 for _ in open(tmp_path / "rollouts.jsonl")) == 6 * 4   # the main run went to OUT
    text = "\n".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "24 rollouts" in text
