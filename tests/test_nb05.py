"""Notebook 05 runs headless on qwq-nano (and on a traces file) and writes its figures."""
import json

import pytest

from executed import keep

from qwqlab.figures import NOTEBOOK_DIR, execute_notebook, page_problems
from qwqlab.paths import nano_dir

NOTEBOOK = NOTEBOOK_DIR / "05_reasoning_length.ipynb"


@pytest.mark.slow
@pytest.mark.skipif(not (nano_dir() / "config.json").exists(), reason="the qwq-nano checkpoint is not in data/models")
def test_notebook_05_runs_and_writes_its_figures(tmp_path):
    traces = tmp_path / "traces.jsonl"
    rows = [{"q": f"What is {i}+{i}?", "out": f"{i}+{i}={2 * i}, wait, yes\n</think>\n\n\\boxed{{{2 * i}}}",
             "ok": i % 3 != 0} for i in range(30)]
    traces.write_text("".join(json.dumps(r) + "\n" for r in rows))
    params = {"NUM_PROBLEMS": 12, "NUM_GENERATIONS": 4,  # small: a few seconds of sampling
              "MAX_NEW_TOKENS": 64, "RUNS_DIR": str(tmp_path / "no-runs"), "NUM_BUCKETS": 3,
              "TRACES_FILE": str(traces), "TRACES_FIELDS": {"question": "q", "response": "out", "correct": "ok"},
              "EXTRA_MARKERS": ["so"]}
    nb = execute_notebook(NOTEBOOK, params, out_dir=tmp_path / "figs")
    assert page_problems(nb) == []  # a clean page: no stderr, warnings, doubled images, stray values
    keep(NOTEBOOK, nb)  # the book's test builds its page from this run
    entries = [json.loads(line) for line in (tmp_path / "figs" / "manifest.jsonl").read_text().splitlines()]
    names = {e["name"] for e in entries}
    assert {"length_summary", "accuracy_by_length", "length_distributions", "length_vs_pass_rate",
            "reflection_markers", "traces_accuracy_by_length", "traces_length_distributions",
            "traces_reflection_markers"} <= names
    assert "length_over_steps" not in names  # no runs recorded in RUNS_DIR: said so, not faked
    for e in entries:
        for f in e["files"]:
            assert (tmp_path / "figs" / f).stat().st_size > 1000, f
    text = "\n".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "No GRPO logs recorded" in text and "before RL" in text


@pytest.mark.slow
def test_notebook_05_uses_recorded_runs(tmp_path):
    """Recorded rollouts and a GRPO log in RUNS_DIR are read instead of sampling (no model needed)."""
    import pandas as pd
    from synthetic import synthetic_rollouts

    runs = tmp_path / "runs"
    runs.mkdir()
    synthetic_rollouts(200, seed=1).to_parquet(runs / "before_rollouts.parquet")
    synthetic_rollouts(200, seed=2, mix={"careful": 0.9, "reflect": 0.1}).to_parquet(runs / "after_rollouts.parquet")
    pd.DataFrame({"step": range(10), "completion_tokens_mean": range(30, 40), "think_tokens_mean": range(10, 20),
                  "reward_mean": [0.1 * i for i in range(10)], "accuracy": [0.05 * i for i in range(10)]}
                 ).to_json(runs / "grpo_log.jsonl", orient="records", lines=True)
    execute_notebook(NOTEBOOK, {"RUNS_DIR": str(runs), "NUM_BUCKETS": 3}, out_dir=tmp_path / "figs")
    entries = [json.loads(line) for line in (tmp_path / "figs" / "manifest.jsonl").read_text().splitlines()]
    assert "length_over_steps" in {e["name"] for e in entries}
    summary = (tmp_path / "figs" / "length_summary.html").read_text()
    assert "before_rollouts" in summary and "after_rollouts" in summary
