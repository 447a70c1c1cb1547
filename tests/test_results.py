"""qwqlab.results and data/published_results.csv: every figure as published, with its source."""
import json
import math
import re

import pandas as pd
import pytest

from qwqlab import results as R
from qwqlab.paths import REPO_ROOT

REFERENCE = REPO_ROOT.parent / "shared" / "reference" / "published_results.md"

# Transcribed by hand from published_results.md, independently of the CSV:
# (model, benchmark, metric) -> (score exactly as written, source).
EXPECTED = {
    ("QwQ-32B", "AIME24", "pass@1"): ("79.5", "QwQ-eval"),
    ("QwQ-32B", "AIME25", "pass@1"): ("69.5", "QwQ-eval"),
    ("QwQ-32B", "LiveCodeBench", "pass@1"): ("63.4", "QwQ-eval"),
    ("QwQ-32B", "LiveBench", "pass@1"): ("73.1", "QwQ-blog"),
    ("QwQ-32B", "IFEval", "pass@1"): ("83.9", "QwQ-eval"),
    ("QwQ-32B", "BFCL", "pass@1"): ("66.4", "QwQ-blog"),
    ("QwQ-32B-Preview", "AIME24", "pass@1"): ("50.0", "QwQ-preview-blog"),
    ("QwQ-32B-Preview", "GPQA-Diamond", "pass@1"): ("65.2", "QwQ-preview-blog"),
    ("QwQ-32B-Preview", "MATH-500", "pass@1"): ("90.6", "QwQ-preview-blog"),
    ("QwQ-32B-Preview", "LiveCodeBench", "pass@1"): ("50.0", "QwQ-preview-blog"),
    ("QwQ-32B-Preview (re-evaluated)", "AIME24", "pass@1"): ("44.0", "R1"),
    ("QwQ-32B-Preview (re-evaluated)", "AIME24", "cons@64"): ("60.0", "R1"),
    ("QwQ-32B-Preview (re-evaluated)", "GPQA-Diamond", "pass@1"): ("54.5", "R1"),
    ("QwQ-32B-Preview (re-evaluated)", "MATH-500", "pass@1"): ("90.6", "R1"),
    ("QwQ-32B-Preview (re-evaluated)", "LiveCodeBench", "pass@1"): ("41.9", "R1"),
    ("DeepSeek-R1", "AIME24", "pass@1"): ("79.8", "R1"),
    ("DeepSeek-R1", "GPQA-Diamond", "pass@1"): ("71.5", "R1"),
    ("DeepSeek-R1", "MATH-500", "pass@1"): ("97.3", "R1"),
    ("DeepSeek-R1", "LiveCodeBench", "pass@1"): ("65.9", "R1"),
    ("DeepSeek-R1", "IFEval", "pass@1"): ("83.3", "R1"),
    ("DeepSeek-R1-Distill-Qwen-32B", "AIME24", "pass@1"): ("72.6", "R1"),
    ("DeepSeek-R1-Distill-Qwen-32B", "AIME24", "cons@64"): ("83.3", "R1"),
    ("DeepSeek-R1-Distill-Qwen-32B", "GPQA-Diamond", "pass@1"): ("62.1", "R1"),
    ("DeepSeek-R1-Distill-Qwen-32B", "MATH-500", "pass@1"): ("94.3", "R1"),
    ("DeepSeek-R1-Distill-Qwen-32B", "LiveCodeBench", "pass@1"): ("57.2", "R1"),
    ("DeepSeek-R1-Distill-Llama-70B", "AIME24", "pass@1"): ("70.0", "R1"),
    ("DeepSeek-R1-Distill-Llama-70B", "AIME24", "cons@64"): ("86.7", "R1"),
    ("DeepSeek-R1-Distill-Llama-70B", "GPQA-Diamond", "pass@1"): ("65.2", "R1"),
    ("DeepSeek-R1-Distill-Llama-70B", "MATH-500", "pass@1"): ("94.5", "R1"),
    ("DeepSeek-R1-Distill-Llama-70B", "LiveCodeBench", "pass@1"): ("57.5", "R1"),
    ("OpenAI o1-mini", "AIME24", "pass@1"): ("63.6", "R1"),
    ("OpenAI o1-mini", "GPQA-Diamond", "pass@1"): ("60.0", "R1"),
    ("OpenAI o1-mini", "MATH-500", "pass@1"): ("90.0", "R1"),
    ("OpenAI o1-mini", "LiveCodeBench", "pass@1"): ("53.8", "R1"),
    ("OpenAI o1-mini", "IFEval", "pass@1"): ("84.8", "R1"),
    ("OpenAI o1-1217", "AIME24", "pass@1"): ("79.2", "R1"),
    ("OpenAI o1-1217", "GPQA-Diamond", "pass@1"): ("75.7", "R1"),
    ("OpenAI o1-1217", "MATH-500", "pass@1"): ("96.4", "R1"),
    ("OpenAI o1-1217", "LiveCodeBench", "pass@1"): ("63.4", "R1"),
}


def raw_csv():
    return pd.read_csv(R.published_path(), dtype=str, keep_default_na=False)


def test_every_published_figure_is_carried_exactly_with_its_source():
    raw = raw_csv()
    pub = raw[raw["status"] == "published"]
    got = {(r.model, r.benchmark, r.metric): (r.score, r.source) for r in pub.itertuples()}
    assert got == EXPECTED
    assert len(pub) == len(got)  # no duplicate rows


def test_every_row_names_a_known_source():
    raw = raw_csv()
    assert raw["source"].map(bool).all()
    assert set(raw["source"]) <= set(R.SOURCES)
    for r in raw.itertuples():
        assert r.source_title == R.SOURCES[r.source]
    assert set(raw["status"]) == {"published", "misattributed"}


def parse_reference(text):
    """The markdown table as {(model, benchmark, metric): (score, source_text)}."""
    lines = [ln for ln in text.splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    out, params = {}, {}
    for ln in lines[2:]:
        cells = [c.strip() for c in ln.strip("|").split("|")]
        row = dict(zip(header, cells))
        params[row["model"]] = row["params (total / active)"]
        for bench in header[2:-1]:
            cell = row[bench]
            if not cell:
                continue
            m = re.fullmatch(r"([\d.]+)(?: \(cons@64 ([\d.]+)\))?", cell)
            assert m, cell
            out[(row["model"], bench, "pass@1")] = m.group(1)
            if m.group(2):
                out[(row["model"], bench, "cons@64")] = m.group(2)
    return out, params


@pytest.mark.skipif(not REFERENCE.exists(), reason="the shared reference notes are not beside this checkout")
def test_csv_matches_the_reference_table_cell_for_cell():
    expected, params = parse_reference(REFERENCE.read_text())
    raw = raw_csv()
    pub = raw[raw["status"] == "published"]
    assert {(r.model, r.benchmark, r.metric): r.score for r in pub.itertuples()} == expected
    for model, text in params.items():
        assert set(raw.loc[raw["model"] == model, "params"]) == {text}


def test_load_published_numbers_and_parameters():
    t = R.load_published()
    assert (t["status"] == "published").all()
    assert t["score"].dtype.kind == "f"
    r1 = t[t["model"] == "DeepSeek-R1"].iloc[0]
    assert (r1["params_total_b"], r1["params_active_b"], r1["architecture"]) == (671, 37, "MoE")
    assert t.loc[t["model"] == "OpenAI o1-mini", "params_total_b"].isna().all()
    assert t.loc[t["model"] == "QwQ-32B", "params_total_b"].iloc[0] == 32.5
    assert t.loc[(t["model"] == "QwQ-32B-Preview") & (t["benchmark"] == "AIME24"), "score_text"].item() == "50.0"
    assert len(R.load_published(include_misattributed=True)) == len(t) + 2


def test_misattributions_against_their_sources():
    m = R.misattributions().set_index("benchmark")
    gpqa, aime = m.loc["GPQA-Diamond"], m.loc["AIME25"]
    assert gpqa["model"] == aime["model"] == "QwQ-32B"
    assert (gpqa["quoted_score"], aime["quoted_score"]) == (65.2, 79.5)
    assert math.isnan(gpqa["sources_say"]) and gpqa["sources_say_source"] == "no source gives a figure"
    assert (gpqa["origin_model"], gpqa["origin_score"], gpqa["origin_source"]) == ("QwQ-32B-Preview", 65.2,
                                                                                   "QwQ-preview-blog")
    assert (aime["sources_say"], aime["sources_say_source"]) == (69.5, "QwQ-eval")
    assert (aime["origin_benchmark"], aime["origin_score"]) == ("AIME24", 79.5)


def test_add_results_appends_own_rows():
    t = R.load_published()
    out = R.add_results(t, [{"model": "mine", "benchmark": "AIME24", "score": 12.5, "params_total_b": 0.5}])
    own = out[out["status"] == "own"]
    assert len(out) == len(t) + 1 and len(own) == 1
    assert own.iloc[0][["metric", "params_active_b", "source"]].tolist() == ["pass@1", 0.5, "own evaluation"]
    with pytest.warns(UserWarning, match="percent"):
        R.add_results(t, {"model": "mine", "benchmark": "AIME24", "score": 0.4})
    with pytest.raises(ValueError, match="score"):
        R.add_results(t, {"model": "mine", "benchmark": "AIME24"})


def test_wide_leaves_empty_cells_empty():
    w = R.wide(R.load_published())
    assert list(w.columns) == list(R.BENCHMARKS)
    assert w.loc["QwQ-32B", "AIME25"] == 69.5
    assert math.isnan(w.loc["QwQ-32B", "GPQA-Diamond"])  # no source gives one: not 65.2
    assert R.wide(R.load_published(), metric="cons@64").loc["DeepSeek-R1-Distill-Qwen-32B", "AIME24"] == 83.3
    sub = R.wide(R.load_published(), models=["OpenAI o1-mini"], benchmarks=["IFEval", "AIME24"])
    assert sub.columns.tolist() == ["IFEval", "AIME24"] and sub.index.tolist() == ["OpenAI o1-mini"]


def test_nano_results_reads_the_model_card_figures(tmp_path):
    assert R.nano_results(tmp_path).empty
    (tmp_path / "measured.json").write_text(json.dumps({"accuracy": 0.4125, "temperature": 1.0, "num_problems": 80}))
    (tmp_path / "training_summary.json").write_text(json.dumps({"parameters": 1_070_000}))
    r = R.nano_results(tmp_path).iloc[0]
    assert r["score"] == pytest.approx(41.25) and r["params_total_b"] == pytest.approx(0.00107)


def test_benchmark_explorer_follows_its_controls():
    from qwqlab.widgets import benchmark_explorer

    box = benchmark_explorer(R.load_published())
    assert set(box.controls) == {"benchmarks", "models", "scatter"}
    box.controls["benchmarks"].value = ("AIME24", "IFEval")
    assert box.table.columns.tolist() == ["AIME24", "IFEval"]
    box.controls["models"].value = ("QwQ-32B", "DeepSeek-R1")
    assert box.table.index.tolist() == ["QwQ-32B", "DeepSeek-R1"]
    box.controls["scatter"].value = "AIME24"
    assert len(box.figures) == 2
    box.controls["models"].value = ()
    assert box.table is None and box.figures == []
