"""qwqlab.results and data/published_results.csv: every figure as published, with its source."""
import json
import math
import re

import pandas as pd
import pytest

from qwqlab import results as R
from qwqlab.paths import REPO_ROOT

REFERENCE = REPO_ROOT.parent / "shared" / "reference" / "published_results.md"

# Transcribed by hand from the sources (published_results.md, checked against the QwQ eval README,
# the DeepSeek-R1 README and paper, and the two Qwen blog posts), independently of the CSV:
# (model, benchmark, metric) as the source labels them -> (score exactly as written, source).
EXPECTED = {
    ("QwQ-32B", "AIME24", "pass@1"): ("79.5", "QwQ-eval"),
    ("QwQ-32B", "AIME25", "pass@1"): ("69.5", "QwQ-eval"),     # the eval README, not the blog
    ("QwQ-32B", "LiveCodeBench 2408-2502", "pass@1"): ("63.4", "QwQ-eval"),
    ("QwQ-32B", "LiveBench", "not stated"): ("73.1", "QwQ-blog"),   # only in the blog's chart image
    ("QwQ-32B", "IFEval", "prompt-strict accuracy"): ("83.9", "QwQ-eval"),
    ("QwQ-32B", "BFCL", "not stated"): ("66.4", "QwQ-blog"),
    ("QwQ-32B-Preview", "AIME", "not stated"): ("50.0", "QwQ-preview-blog"),   # the blog: "AIME", no metric
    ("QwQ-32B-Preview", "GPQA", "not stated"): ("65.2", "QwQ-preview-blog"),
    ("QwQ-32B-Preview", "MATH-500", "not stated"): ("90.6", "QwQ-preview-blog"),
    ("QwQ-32B-Preview", "LiveCodeBench", "not stated"): ("50.0", "QwQ-preview-blog"),
    ("QwQ-32B-Preview (re-evaluated)", "AIME24", "cons@64"): ("60.0", "R1"),
    ("QwQ-32B-Preview (re-evaluated)", "GPQA-Diamond", "pass@1"): ("54.5", "R1"),
    ("QwQ-32B-Preview (re-evaluated)", "MATH-500", "pass@1"): ("90.6", "R1"),
    ("QwQ-32B-Preview (re-evaluated)", "LiveCodeBench 2408-2501", "pass@1"): ("41.9", "R1"),
    ("DeepSeek-R1", "AIME24", "pass@1"): ("79.8", "R1"),
    ("DeepSeek-R1", "GPQA-Diamond", "pass@1"): ("71.5", "R1"),
    ("DeepSeek-R1", "MATH-500", "pass@1"): ("97.3", "R1"),
    ("DeepSeek-R1", "LiveCodeBench 2408-2501", "pass@1"): ("65.9", "R1"),
    ("DeepSeek-R1", "IFEval", "prompt-strict accuracy"): ("83.3", "R1"),
    ("DeepSeek-R1-Distill-Qwen-32B", "AIME24", "pass@1"): ("72.6", "R1"),
    ("DeepSeek-R1-Distill-Qwen-32B", "AIME24", "cons@64"): ("83.3", "R1"),
    ("DeepSeek-R1-Distill-Qwen-32B", "GPQA-Diamond", "pass@1"): ("62.1", "R1"),
    ("DeepSeek-R1-Distill-Qwen-32B", "MATH-500", "pass@1"): ("94.3", "R1"),
    ("DeepSeek-R1-Distill-Qwen-32B", "LiveCodeBench 2408-2501", "pass@1"): ("57.2", "R1"),
    ("DeepSeek-R1-Distill-Llama-70B", "AIME24", "pass@1"): ("70.0", "R1"),
    ("DeepSeek-R1-Distill-Llama-70B", "AIME24", "cons@64"): ("86.7", "R1"),
    ("DeepSeek-R1-Distill-Llama-70B", "GPQA-Diamond", "pass@1"): ("65.2", "R1"),
    ("DeepSeek-R1-Distill-Llama-70B", "MATH-500", "pass@1"): ("94.5", "R1"),
    ("DeepSeek-R1-Distill-Llama-70B", "LiveCodeBench 2408-2501", "pass@1"): ("57.5", "R1"),
    ("OpenAI o1-mini", "AIME24", "pass@1"): ("63.6", "R1"),
    ("OpenAI o1-mini", "GPQA-Diamond", "pass@1"): ("60.0", "R1"),
    ("OpenAI o1-mini", "MATH-500", "pass@1"): ("90.0", "R1"),
    ("OpenAI o1-mini", "LiveCodeBench 2408-2501", "pass@1"): ("53.8", "R1"),
    ("OpenAI o1-mini", "IFEval", "prompt-strict accuracy"): ("84.8", "R1"),
    ("OpenAI o1-1217", "AIME24", "pass@1"): ("79.2", "R1"),
    ("OpenAI o1-1217", "GPQA-Diamond", "pass@1"): ("75.7", "R1"),
    ("OpenAI o1-1217", "MATH-500", "pass@1"): ("96.4", "R1"),
    ("OpenAI o1-1217", "LiveCodeBench 2408-2501", "pass@1"): ("63.4", "R1"),
}

# Where two sources disagree on one figure: every source's number, none of them "the" figure.
DISPUTED = {
    ("QwQ-32B-Preview (re-evaluated)", "AIME24", "pass@1"): {"R1-README": "44.0", "R1-paper": "50.0"},
}

# How published_results.md labels a figure -> how its source labels it (the reference table
# uses one name per benchmark; the sources do not).
RELABEL = {("QwQ-32B", "LiveCodeBench"): "LiveCodeBench 2408-2502", ("QwQ-32B-Preview", "AIME24"): "AIME",
           ("QwQ-32B-Preview", "GPQA-Diamond"): "GPQA"}


def raw_csv():
    return pd.read_csv(R.published_path(), dtype=str, keep_default_na=False)


def source_key(model, benchmark, metric):
    """A reference-table cell's key in the CSV's own labels."""
    bench = RELABEL.get((model, benchmark), benchmark)
    if bench == "LiveCodeBench" and model != "QwQ-32B-Preview":
        bench = "LiveCodeBench 2408-2501"   # R1's tables; the window is in the paper's set-up
    if model == "QwQ-32B-Preview" or (model == "QwQ-32B" and bench in ("LiveBench", "BFCL")):
        metric = "not stated"
    if bench == "IFEval":
        metric = "prompt-strict accuracy"
    return model, bench, metric


def test_every_published_figure_is_carried_exactly_with_its_source():
    raw = raw_csv()
    pub = raw[raw["status"] == "published"]
    got = {(r.model, r.benchmark, r.metric): (r.score, r.source) for r in pub.itertuples()}
    assert got == EXPECTED
    assert len(pub) == len(got)  # no duplicate rows


def test_every_row_cites_a_known_source():
    raw = raw_csv()
    assert raw["source"].map(bool).all() and raw["source_title"].map(bool).all()
    assert set(raw["source"]) <= set(R.SOURCES)
    for r in raw.itertuples():
        assert r.source_title == R.SOURCES[r.source]
    assert set(raw["status"]) == {"published", "disputed", "misattributed"}
    assert set(raw["status"]) <= set(R.STATUSES)
    assert "image" in R.SOURCES["QwQ-blog"]   # LiveBench and BFCL are read from a chart, not text


def test_disputed_figures_are_never_shown_as_one_fact():
    raw = raw_csv()
    disputed = raw[raw["status"] == "disputed"]
    got = {}
    for r in disputed.itertuples():
        got.setdefault((r.model, r.benchmark, r.metric), {})[r.source] = r.score
    assert got == DISPUTED
    for key, by_source in DISPUTED.items():
        rows = raw[(raw["model"] == key[0]) & (raw["benchmark"] == key[1]) & (raw["metric"] == key[2])]
        assert set(rows["status"]) == {"disputed"}              # no published row picks one of them
        assert len(set(by_source.values())) == len(by_source) >= 2
        for r in rows.itertuples():                             # each row names every source's number
            assert all(score in r.note for score in by_source.values()), r.note
    w = R.wide(R.load_published())
    assert w.loc["QwQ-32B-Preview (re-evaluated)", "AIME24"] == "44.0 (R1-README) / 50.0 (R1-paper), disputed"
    assert w.loc["QwQ-32B", "AIME24"] == 79.5                   # undisputed cells stay numbers


def test_labels_say_what_the_sources_say():
    raw = raw_csv()
    by = raw.set_index(["model", "benchmark", "metric"])
    assert "IFeval(Strict Prompt Acc)" in by.loc[("QwQ-32B", "IFEval", "prompt-strict accuracy"), "note"]
    assert "IF-Eval (Prompt Strict)" in by.loc[("DeepSeek-R1", "IFEval", "prompt-strict accuracy"), "note"]
    assert not ((raw["benchmark"] == "IFEval") & (raw["metric"] == "pass@1")).any()
    preview = raw[raw["source"] == "QwQ-preview-blog"]
    assert set(preview["metric"]) == {"not stated"} and {"AIME", "GPQA"} <= set(preview["benchmark"])
    lcb = raw[raw["benchmark"].str.startswith("LiveCodeBench")]
    assert set(lcb.loc[lcb["source"] == "QwQ-eval", "benchmark"]) == {"LiveCodeBench 2408-2502"}
    assert set(lcb.loc[lcb["source"] == "R1", "benchmark"]) == {"LiveCodeBench 2408-2501"}


# Qwen2 decoder, written out by hand: per layer q, k, v, o (with q/k/v biases), gate/up/down,
# two RMSNorm weights; then embeddings, an untied output head and the final norm.
def qwen2_parameters(hidden, inter, layers, heads, kv_heads, vocab):
    head_dim = hidden // heads
    attention = hidden * heads * head_dim * 2 + hidden * kv_heads * head_dim * 2   # q, o; k, v
    biases = heads * head_dim + 2 * kv_heads * head_dim
    per_layer = attention + biases + 3 * hidden * inter + 2 * hidden
    return layers * per_layer + 2 * vocab * hidden + hidden


SHAPE = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
         "vocab_size", "tie_word_embeddings", "model_type")


def test_parameter_counts_are_computed_from_the_configs():
    from qwqlab.models import count_parameters, known_configs

    qwq, distill = (json.loads(known_configs()[n].read_text()) for n in
                    ("Qwen/QwQ-32B", "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B"))
    assert {k: qwq[k] for k in SHAPE} == {k: distill[k] for k in SHAPE}   # the same shape...
    hand = qwen2_parameters(5120, 27648, 64, 40, 8, 152064)
    assert count_parameters("Qwen/QwQ-32B") == count_parameters("deepseek-ai/DeepSeek-R1-Distill-Qwen-32B") == hand
    raw = raw_csv()
    by_model = raw.drop_duplicates("model").set_index("model")
    assert by_model.loc["QwQ-32B", "params_total_b"] == by_model.loc["DeepSeek-R1-Distill-Qwen-32B", "params_total_b"]
    counts = R.parameter_counts()                                         # ...so the same count
    assert set(counts["model"]) == {"QwQ-32B", "DeepSeek-R1-Distill-Qwen-32B"} and counts["agrees"].all()
    for r in raw[raw["config"] != ""].itertuples():
        assert float(r.params_total_b) == round(count_parameters(r.config) / 1e9, 1)
        assert r.params.startswith(f"{float(r.params_total_b):g}B")
        assert f"{count_parameters(r.config):,}" in r.params_source
    for r in raw[raw["config"] == ""].itertuples():                     # no config: the count is cited
        assert r.params_source, r.model
    assert (raw.groupby("model")["params_total_b"].nunique() == 1).all()


@pytest.mark.skipif(not REFERENCE.exists(), reason="the shared reference notes are not beside this checkout")
def test_csv_matches_the_reference_table_cell_for_cell():
    expected, params = parse_reference(REFERENCE.read_text())
    raw = raw_csv()
    shown = raw[raw["status"] != "misattributed"]
    got = {}
    for r in shown.itertuples():
        got.setdefault((r.model, r.benchmark, r.metric), set()).add(r.score)
    for (model, bench, metric), score in expected.items():
        assert score in got.pop(source_key(model, bench, metric)), (model, bench, metric)
    assert got == {}                                                  # nothing the reference lacks
    for model, text in params.items():
        assert model in set(raw["model"]), model


def parse_reference(text):
    """The markdown table as {(model, benchmark, metric): score} and {model: params text}."""
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


def test_load_published_numbers_and_parameters():
    t = R.load_published()
    assert set(t["status"]) == {"published", "disputed"}
    assert t["score"].dtype.kind == "f"
    r1 = t[t["model"] == "DeepSeek-R1"].iloc[0]
    assert (r1["params_total_b"], r1["params_active_b"], r1["architecture"]) == (671, 37, "MoE")
    assert t.loc[t["model"] == "OpenAI o1-mini", "params_total_b"].isna().all()
    assert t.loc[t["model"] == "QwQ-32B", "params_total_b"].iloc[0] == 32.8
    assert t.loc[(t["model"] == "QwQ-32B-Preview") & (t["benchmark"] == "AIME"), "score_text"].item() == "50.0"
    assert (t["status"] == "disputed").sum() == 2
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
    w = R.wide(R.load_published(), metric=R.HEADLINE_METRICS)
    assert list(w.columns) == list(R.BENCHMARKS)
    assert w.loc["QwQ-32B", "AIME25"] == 69.5
    assert math.isnan(w.loc["QwQ-32B", "GPQA-Diamond"])  # no source gives one: not 65.2
    assert R.wide(R.load_published(), metric="cons@64").loc["DeepSeek-R1-Distill-Qwen-32B", "AIME24"] == 83.3
    sub = R.wide(R.load_published(), metric=R.HEADLINE_METRICS, models=["OpenAI o1-mini"],
                 benchmarks=["IFEval", "AIME24"])
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


def test_trace_results_score_the_lab_s_own_grading_with_an_interval():
    from qwqlab.metrics import bootstrap_ci

    # A small fake of load_mip_traces' output: model A right on 3 of 4 problems, B on 1 of 4.
    fake = pd.DataFrame({"model": ["A"] * 4 + ["B"] * 4 + ["A"], "split": ["normal"] * 8 + ["missing_premise"],
                         "correct": [1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0],
                         "judge_label": [1, 1, 1, 1, 2, 2, 1, 2, 0]})
    rows = R.trace_results(fake).set_index("model")
    assert rows.index.tolist() == ["A (this lab)", "B (this lab)"]    # never a published model's name
    assert rows["score"].tolist() == [75.0, 25.0] and rows["n"].tolist() == [4, 4]
    low, high = bootstrap_ci([1.0, 1.0, 0.0, 1.0])
    assert (rows.loc["A (this lab)", "ci_low"], rows.loc["A (this lab)", "ci_high"]) == (100 * low, 100 * high)
    assert set(rows["benchmark"]) == {R.TRACES_BENCHMARK} and "52-problem" in R.TRACES_BENCHMARK
    assert "judge says 100.0%" in rows.loc["A (this lab)", "note"]

    table = R.add_results(R.load_published(), rows.reset_index())
    own = table[table["model"].str.endswith("(this lab)")]
    assert set(own["status"]) == {"own"} and set(own["source"]) == {rows["source"].iloc[0]}
    assert not R.load_published()["model"].str.contains("this lab").any()  # the published table holds none
    assert set(table.loc[table["status"] != "own", "benchmark"]).isdisjoint({R.TRACES_BENCHMARK})


def test_own_results_include_the_bundled_traces():
    from qwqlab.traces import MODELS, load_mip_traces

    rows = R.own_results(nano=False, evals=False)
    assert rows["model"].tolist() == [f"{m} (this lab)" for m in MODELS]
    normal = load_mip_traces(markers=()).query("split == 'normal'")
    for m, r in zip(MODELS, rows.itertuples()):
        graded = normal.loc[normal["model"] == m, "correct"].dropna()
        assert r.n == len(graded) == 52
        assert r.score == pytest.approx(100 * graded.sum() / len(graded))
        assert r.ci_low <= r.score <= r.ci_high
