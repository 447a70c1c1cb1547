"""Notebook 06 runs headless, writes its figures, and shows the mis-attributed figures against their sources."""
import json

import pytest

from executed import keep

from qwqlab.figures import NOTEBOOK_DIR, execute_notebook, page_problems

NOTEBOOK = NOTEBOOK_DIR / "06_benchmark_plots.ipynb"


@pytest.mark.slow
def test_notebook_06_runs_and_writes_its_figures(tmp_path):
    params = {"SCATTER_BENCHMARKS": ["AIME24"],  # one scatter instead of two, for speed
              "OWN_RESULTS": [{"model": "test-run", "benchmark": "AIME24", "score": 12.5, "params_total_b": 1.5}]}
    nb = execute_notebook(NOTEBOOK, params, out_dir=tmp_path)
    assert page_problems(nb) == []  # a clean page: no stderr, warnings, doubled images, stray values
    keep(NOTEBOOK, nb)  # the book's test builds its page from this run
    entries = [json.loads(line) for line in (tmp_path / "manifest.jsonl").read_text().splitlines()]
    names = [e["name"] for e in entries]
    assert names == ["benchmark_bars", "size_efficiency_AIME24", "misattributed_figures"]
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
    assert not any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))
