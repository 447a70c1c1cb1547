"""Notebook 04 runs headless with small injected parameters, with and without recorded runs."""
import json
from pathlib import Path

import nbformat
import pytest

from executed import keep

from qwqlab.figures import NOTEBOOK_DIR, execute_notebook, page_problems

NB = NOTEBOOK_DIR / "04_rl_training.ipynb"
# Small on purpose: 2 steps of 4 prompts x 4 samples and 16 held-out problems check that every
# cell runs and writes its figures; the learning itself is tested in test_grpo.py.
SMALL = dict(MAX_SECONDS=20, STEPS=2, NUM_PROMPTS=4, NUM_GENERATIONS=4, MAX_NEW_TOKENS=48, EVAL_PROBLEMS=16)


def _fake_runs(folder: Path) -> None:
    """A recorded-runs folder in the layout scripts/record_runs.py writes (numbers invented)."""
    ev = {"accuracy": 0.5, "think_tokens_mean": 20.0, "completion_tokens_mean": 30.0, "format_rate": 0.8,
          "format_score": 0.8}
    runs = {}
    for k, name in enumerate(("correctness", "length_penalty", "format", "high_lr")):
        (folder / name).mkdir(parents=True)
        rows = [{"step": s, "reward_mean": 0.1 * k + 0.01 * s, "accuracy": 0.5, "think_tokens_mean": 20 + s,
                 "completion_tokens_mean": 30 + s, "format_rate": 0.8, "entropy": 0.5} for s in range(1, 6)]
        (folder / name / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        runs[name] = {"steps": 5, "train_seconds": 10.0, "before": ev, "after": dict(ev, accuracy=0.5 + 0.1 * k),
                      "log": f"{name}/log.jsonl"}
    (folder / "summary.json").write_text(json.dumps({"runs": runs, "checks": {"correctness": {"holds": True}}}))


def _outputs_text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", "") if isinstance(out.get("text", ""), str) else "")
            parts.append(str(out.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


def test_nb04_is_committed_without_outputs_and_has_a_parameters_cell():
    nb = nbformat.read(NB, as_version=4)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# 04")
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    # the GRPO step written out by hand, with the package's pieces, before train_grpo is used
    assert "grpo.clipped_surrogate(" in code and "grpo.kl_estimate(" in code and "loss.backward()" in code
    # issue 22: the step's seed from the one function, train_grpo's gradient read by hooks, not from a checkpoint
    assert "grpo.step_seed(" in code and "register_post_accumulate_grad_hook" in code and "exp_avg" not in code


@pytest.mark.slow
def test_nb04_runs_with_recorded_runs(tmp_path):
    runs = tmp_path / "runs"
    _fake_runs(runs)
    nb = execute_notebook(NB, dict(SMALL, RUNS_DIR=str(runs)), out_dir=tmp_path / "figs", timeout=120)
    assert page_problems(nb) == []  # a clean page: no stderr, warnings, doubled images, stray values
    keep(NB, nb)  # the book's test builds its page from this run
    figs = {p.name for p in (tmp_path / "figs").iterdir()}
    for name in ("grpo_live_run", "grpo_recorded_runs", "grpo_recorded_runs_held_out"):
        assert {f"{name}.png", f"{name}.html"} <= figs, name
    text = _outputs_text(nb)
    assert "steps" in text
    assert "loss: by hand" in text and "gradients differ by at most" in text  # the hand step ran and agreed


@pytest.mark.slow
def test_nb04_says_so_when_no_runs_are_recorded(tmp_path):
    nb = execute_notebook(NB, dict(SMALL, STEPS=1, RUNS_DIR=str(tmp_path / "nothing-here")),
                          out_dir=tmp_path / "figs", timeout=120)
    assert "No recorded runs in" in _outputs_text(nb)
    assert not (tmp_path / "figs" / "grpo_recorded_runs.png").exists()
