"""Every notebook in a real browser: open it in JupyterLab, Run All, no errors, a widget answers.

Each notebook runs from a test copy with small parameters injected after its ``parameters``
cell (``qwqlab.figures.inject_parameters``, the papermill convention), in a folder that
JupyterLab serves. A notebook listed in ``SPECS`` moves its named widget and checks exactly
what that widget drives; any other notebook is exercised generically: each slider in turn
is moved until something it drives (output text, a table, a plotly figure, an image)
changes, and the test fails if no slider drives anything. The exercises live in
``exercises.py``, shared with the dashboard tests.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest

from browser_harness import LabPage, shutdown_sessions
from exercises import (exercise_any_slider, exercise_benchmarks, exercise_lengths_and_traces, exercise_memory,
                       exercise_reward, exercise_rollout_sampling, exercise_training_monitor)
from qwqlab.figures import NOTEBOOK_DIR, inject_parameters, list_notebooks

pytestmark = [pytest.mark.browser, pytest.mark.slow]
VIEWPORT = {"width": 1400, "height": 1000}


@dataclass
class Spec:
    """How to test one notebook in the browser."""
    parameters: dict = field(default_factory=dict)  # small values, injected after the parameters cell
    exercise: object = exercise_any_slider  # exercise(page, reader) -> str: what moved, what changed


SPECS: dict[str, Spec] = {
    "01_models_and_quantization": Spec(
        {"NUM_DRIFT_PROBLEMS": 8},  # 8 prompts show the logit drift as well as 64; for speed
        exercise_memory),
    "02_rollout_sampling": Spec(
        {"NUM_PROBLEMS": 6, "NUM_GENERATIONS": 4,  # small: a few seconds of sampling
         "TEMPERATURES": [0.6, 1.0], "TOKEN_BUDGETS": [8, 32, 64], "BUDGET_GENERATIONS": 2, "MAX_NEW_TOKENS": 64},
        exercise_rollout_sampling),
    "03_reward_shaping": Spec(
        {"NUM_PROBLEMS": 4, "NUM_GENERATIONS": 4, "MAX_NEW_TOKENS": 48,  # small: a few seconds of sampling
         "OVERLONG_MAX_LEN": 48, "OVERLONG_CACHE": 16, "COSINE_MAX_LEN": 32},
        exercise_reward),
    "04_rl_training": Spec(
        {"MAX_SECONDS": 20, "STEPS": 2, "NUM_PROMPTS": 4, "NUM_GENERATIONS": 4,  # two tiny steps, for speed
         "MAX_NEW_TOKENS": 48, "EVAL_PROBLEMS": 16},
        exercise_training_monitor),
    "05_reasoning_length": Spec(
        {"NUM_PROBLEMS": 12, "NUM_GENERATIONS": 4, "MAX_NEW_TOKENS": 64,  # a few seconds of sampling
         "MAX_RUNS": 1, "NUM_BUCKETS": 3},
        exercise_lengths_and_traces),
    "06_benchmark_plots": Spec(
        {"SCATTER_BENCHMARKS": ["AIME24"]},  # one scatter instead of two, for speed
        exercise_benchmarks),
}


def prepare(notebook: Path, folder: Path, parameters: dict) -> str:
    """Write a test copy of ``notebook`` into ``folder``: small parameters, run from notebooks/."""
    nb = nbformat.read(notebook, as_version=4)
    inject_parameters(nb, parameters)
    for cell in nb.cells:  # a folded solution shows no "[n]:" prompt; unfolded, every cell proves it ran
        cell.get("metadata", {}).get("jupyter", {}).pop("source_hidden", None)
    # Run as if from notebooks/ so that paths relative to it resolve as they do for a student.
    nb.cells.insert(0, nbformat.v4.new_code_cell(f"import os; os.chdir({str(NOTEBOOK_DIR)!r})",
                                                 metadata={"tags": ["injected-by-browser-test"]}))
    nbformat.write(nb, folder / notebook.name)
    return notebook.name


@pytest.mark.parametrize("notebook", list_notebooks(), ids=lambda p: p.stem)
def test_notebook_runs_in_jupyterlab_and_its_widget_answers(notebook, lab_server, lab_root, browser,
                                                            screenshot_dir, record):
    spec = SPECS.get(notebook.stem, Spec())
    name = prepare(notebook, lab_root, spec.parameters)
    page = browser.new_page(viewport=VIEWPORT)
    try:
        lab = LabPage(page, lab_server)
        lab.open(name)
        seconds = lab.run_all()
        prompts = lab.prompts()
        assert all(re.fullmatch(r"\[\d+\]:", p) for p in prompts), f"cells not run: {prompts}"
        assert lab.errors() == [], "a cell shows an error:\n" + "\n\n".join(lab.errors())
        what = spec.exercise(page, lab)
        time.sleep(0.3)  # let the last redraw land before the picture
        shot = screenshot_dir / f"{notebook.stem}.png"
        page.screenshot(path=str(shot))
        print(f"{notebook.stem}: ran all cells in {seconds:.1f} s; {what}")
        record(shot)
    finally:
        page.close()
        shutdown_sessions(lab_server, name)
