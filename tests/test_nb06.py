"""Notebook 06 runs headless, writes its figures, and shows the mis-attributed figures against their sources."""
import json

import pytest

from executed import keep

from qwqlab.figures import NOTEBOOK_DIR, execute_notebook, page_problems

REPO = NOTEBOOK_DIR.parent

NOTEBOOK = NOTEBOOK_DIR / "06_benchmark_plots.ipynb"


@pytest.mark.slow
def test_notebook_06_runs_and_writes_its_figures(tmp_path):
    # a qwqlab eval row as a QwQ-32B run would write it (no GPU here): the bundled qwq-nano row's shape
    row = json.loads(next((REPO / "data" / "evals").glob("qwq-nano_*.json")).read_text())
    row.update(model="QwQ-32B (this lab, k=64)", published_model="QwQ-32B", benchmark="AIME24", score=77.3,
               ci_low=70.1, ci_high=83.0)
    (tmp_path / "qwq32b.result.json").write_text(json.dumps(row))
    params = {"SCATTER_BENCHMARKS": ["AIME24"],  # one scatter instead of two, for speed
              "OWN_RESULTS": [{"model": "test-run", "benchmark": "AIME24", "score": 12.5, "params_total_b": 1.5}],
              "EVAL_RESULTS": [str(tmp_path / "qwq32b.result.json")]}
    nb = execute_notebook(NOTEBOOK, params, out_dir=tmp_path)
    assert page_problems(nb) == []  # a clean page: no stderr, warnings, doubled images, stray values
    keep(NOTEBOOK, nb)  # the book's test builds its page from this run
    entries = [json.loads(line) for line in (tmp_path / "manifest.jsonl").read_text().splitlines()]
    names = [e["name"] for e in entries]
    assert names == ["benchmark_bars", "size_efficiency_AIME24", "misattributed_figures", "lab_against_published"]
    for e in entries:
        assert e["data_sha256"]
        for f in e["files"]:
            assert (tmp_path / f).stat().st_size > 1000, f
    bars = (tmp_path / "benchmark_bars.html").read_text()
    assert "test-run" in bars  # own runs are overlaid
    assert "QwQ-32B (this lab)" in bars and "52-problem" in bars  # the lab's traces, in their own column
    assert "44.0 \\u002f 50.0 (disputed)" in bars or "44.0 / 50.0 (disputed)" in bars  # both numbers, neither as fact
    text = "\n".join(o.get("text", "") + json.dumps(o.get("data", {})) for c in nb.cells if c.cell_type == "code"
                     for o in c.get("outputs", []))
    assert "QwQ-preview-blog" in text and "69.5" in text  # the claims shown against their sources
    # the qwqlab eval rows beside the published row of the same name, grader and protocol named
    assert "QwQ-32B AIME24 79.5 (published) against 77.3 (this lab, k=64)" in text
    assert "qwq-nano arithmetic (held-out)" in text and "temperature 0.6, top-p 0.95, top-k 40" in text
    assert not any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))
