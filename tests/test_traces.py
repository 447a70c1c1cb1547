"""qwqlab.traces: the bundled MiP-Overthinking traces (issue 11: one call loads them; counts checked
by plain Python), thinking efficiency, and ``load_traces`` on good and bad trace files from elsewhere.

Source: ../shared/data/mip-overthinking/SOURCE.md (Fan et al. 2025, MIT), bundled by
scripts/bundle_mip_traces.py into data/traces/mip_math52.jsonl.gz.
"""
from __future__ import annotations

import gzip
import json
import math
import re

import pandas as pd
import pytest
from tokenizers import Tokenizer

from qwqlab import lengths as L
from qwqlab.paths import data_dir
from qwqlab.trace_files import TraceFileError, grade_answer, load_traces
from qwqlab.traces import MODELS, SPLITS, load_mip_traces, thinking_efficiency


@pytest.fixture(scope="module")
def traces():
    return load_mip_traces()


@pytest.fixture(scope="module")
def raw_rows():
    with gzip.open(data_dir() / "traces" / "mip_math52.jsonl.gz", "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def qwq_bpe():
    """QwQ-32B's tokenizer read straight from the bundled file with the `tokenizers` library."""
    return Tokenizer.from_file(str(data_dir() / "tokenizers" / "qwq-32b" / "tokenizer.json"))


def test_one_call_loads_52_problems_per_model_and_split(traces):
    sizes = traces.groupby(["model", "split"], observed=True).size()
    assert len(traces) == 416 and set(sizes) == {52}
    assert list(traces["model"].cat.categories) == list(MODELS) and list(traces["split"].cat.categories) == list(SPLITS)
    for (model, split), group in traces.groupby(["model", "split"], observed=True):  # the same 52 problems each
        assert sorted(group["problem_index"]) == list(range(52)), (model, split)
    assert set(traces["judge_label"].dropna().unique()) <= {0, 1, 2}


def test_token_lengths_equal_a_plain_count_in_qwq_tokens(traces, raw_rows, qwq_bpe):
    for row in raw_rows[::7]:  # every 7th row: 60 rows, each model and split
        got = traces[(traces["model"] == row["model"]) & (traces["split"] == row["split"])
                     & (traces["problem_index"] == row["problem_index"])].iloc[0]
        assert got["think_tokens"] == len(qwq_bpe.encode(row["thinking"], add_special_tokens=False).ids)
        assert got["answer_tokens"] == len(qwq_bpe.encode(row["answer_text"], add_special_tokens=False).ids)


def test_marker_counts_equal_a_plain_count(traces):
    for word in ("wait", "alternatively", "hmm"):
        plain = [len(re.findall(rf"\b{word}\b", t, flags=re.IGNORECASE)) for t in traces["thinking"]]
        assert traces[word].tolist() == plain, word
    qwq = traces[traces["model"] == "QwQ-32B"]
    by_split = qwq.groupby("split", observed=True)["alternatively"].sum()
    assert by_split["missing_premise"] > 2 * by_split["normal"]  # the "more than doubles"


def test_first_correct_answer_at_a_known_token(qwq_bpe):
    """Hand-checked: the thinking states 47 first at the end of "12+35 = 47"; everything after is reflection."""
    head = "Let me add the columns. 12+35 = 47"
    thinking = head + ". Wait, let me check again: 5+2 is 7 and 1+3 is 4, so 47 indeed."
    row = thinking_efficiency([thinking], ["47"]).iloc[0]
    assert row["first_correct_found"] and row["first_correct_answer"] == "47"
    assert row["first_correct_char"] == len(head)
    n_head = len(qwq_bpe.encode(head, add_special_tokens=False).ids)
    n_all = len(qwq_bpe.encode(thinking, add_special_tokens=False).ids)
    assert (row["first_correct_tokens"], row["reasoning_tokens"]) == (n_head, n_all)
    assert row["reflection_tokens"] == n_all - n_head and row["token_efficiency"] == pytest.approx(n_head / n_all)
    # a wrong value stated first does not count; no correct value at all gives ThinkBench's zeros
    late = thinking_efficiency(["maybe 45? no: 12+35 = 47"], ["47"]).iloc[0]
    assert late["first_correct_char"] == len("maybe 45? no: 12+35 = 47")
    none = thinking_efficiency(["I get 45"], ["47"]).iloc[0]
    assert not none["first_correct_found"] and none["first_correct_tokens"] == 0 and none["token_efficiency"] == 0


# ----------------------------------------------------------------------------- measured efficiency, missing premises

def test_the_measured_efficiency_file_equals_a_recomputation(traces):
    """The bundled efficiency metrics (scripts/measure_thinking_efficiency.py) are what the code
    computes now: a few rows recomputed, one of them without a correct answer in its thinking."""
    from qwqlab.traces import EFFICIENCY_COLUMNS, efficiency_path, efficiency_table, load_efficiency

    assert efficiency_path().exists(), "run scripts/measure_thinking_efficiency.py"
    normal = traces[(traces["split"] == "normal") & traces["model"].isin(["QwQ-32B", "DeepSeek-R1"])]
    stored = load_efficiency(normal)
    assert len(stored) == len(normal) and stored["reasoning_tokens"].notna().all()
    assert (stored["reasoning_tokens"] == normal["think_tokens"]).all()  # the same QwQ-32B token counts
    missing = stored.index[~stored["first_correct_found"]]
    sample = list(stored.sort_values("reasoning_tokens").index[:3]) + list(missing[:1])
    fresh = efficiency_table(normal.loc[sample])
    for col in EFFICIENCY_COLUMNS:
        for a, b in zip(stored.loc[sample, col], fresh[col]):
            assert (a == b) or (isinstance(a, float) and isinstance(b, float) and abs(a - b) < 1e-5) or \
                (a != a and b != b) or (a in (None, "") and b is None), (col, a, b)


def test_load_efficiency_computes_rows_the_file_lacks(traces, tmp_path):
    from qwqlab.traces import efficiency_table, load_efficiency

    rows = traces[(traces["split"] == "normal") & (traces["model"] == "QwQ-32B")].sort_values("think_tokens").head(2)
    got = load_efficiency(rows, path=tmp_path / "absent.csv")
    want = efficiency_table(rows)
    assert list(got.index) == list(rows.index)
    assert list(got["first_correct_tokens"]) == list(want["first_correct_tokens"])


def test_missing_premise_summary_matches_a_plain_count(raw_rows):
    from qwqlab.traces import missing_premise_summary

    table = missing_premise_summary(load_mip_traces(markers=(), grade=False)).set_index("model")
    for model in MODELS:
        normal = [r for r in raw_rows if r["model"] == model and r["split"] == "normal"]
        missing = [r for r in raw_rows if r["model"] == model and r["split"] == "missing_premise"]
        ratio = (sum(r["completion_tokens"] for r in missing) / len(missing)) / \
            (sum(r["completion_tokens"] for r in normal) / len(normal))
        assert table.loc[model, "completion_ratio"] == pytest.approx(ratio)
        assert table.loc[model, "abstain_rate"] == pytest.approx(sum(r["judge_label"] == 0 for r in missing) / 52)
        assert table.loc[model, "answers_anyway_rate"] == pytest.approx(
            sum(r["judge_label"] == 1 for r in missing) / 52)
    # the lesson notebook 05 draws: the RL-trained model thinks longer and abstains less than its sibling
    assert table.loc["QwQ-32B", "completion_ratio"] > 1 > table.loc["Qwen2.5-32B-Instruct", "completion_ratio"]
    assert table.loc["QwQ-32B", "abstain_rate"] < table.loc["Qwen2.5-32B-Instruct", "abstain_rate"]


# ----------------------------------------------------------------------------- the notebook-05 widgets on the traces

def test_length_explorer_filters_models_and_split(traces):
    from qwqlab.widgets import length_explorer

    w = length_explorer(traces, by="model", bins=4, filters={"model": "many", "split": "one"})
    assert set(w.shown["split"].astype(str)) == {"normal"} and w.shown["model"].nunique() == 4
    w.controls["model"].value = ("QwQ-32B", "DeepSeek-R1")
    assert set(w.shown["model"].astype(str)) == {"QwQ-32B", "DeepSeek-R1"}
    assert set(w.report.markers["model"].astype(str)) == {"QwQ-32B", "DeepSeek-R1"}
    normal_wait = w.report.markers.query("model == 'QwQ-32B' and marker == 'wait'")["count"].item()
    w.controls["split"].value = "missing_premise"
    assert set(w.shown["split"].astype(str)) == {"missing_premise"}
    plain = sum(len(re.findall(r"\bwait\b", t, re.I)) for t in
                traces[(traces["model"] == "QwQ-32B") & (traces["split"] == "missing_premise")]["thinking"])
    assert w.report.markers.query("model == 'QwQ-32B' and marker == 'wait'")["count"].item() == plain != normal_wait
    w.controls["model"].value = ()
    assert w.shown.empty and w.report is None  # says so instead of failing
    with pytest.raises(KeyError, match="no column"):
        length_explorer(traces, filters={"modle": "many"})


def test_trace_reader_shows_two_models_on_one_problem(traces):
    from qwqlab.widgets import trace_reader

    r = trace_reader(traces, markers=["wait", "alternatively"])
    left, right = r.rows
    assert (left["model"], right["model"]) == ("QwQ-32B", "DeepSeek-R1")
    assert left["problem_index"] == right["problem_index"] == 0 and left["split"] == "normal"
    waits = len(re.findall("wait|alternatively", left["thinking"], re.I))
    assert r.panels[0].value.count("<mark>") == waits + len(re.findall("wait|alternatively", left["answer_text"], re.I))
    assert f"{int(left['think_tokens']):,} thinking tokens" in r.panels[0].value and "<details>" in r.panels[0].value
    r.controls["problem"].value = 7
    r.controls["split"].value = "missing_premise"
    r.controls["right"].value = "Qwen2.5-32B-Instruct"
    left, right = r.rows
    assert left["problem_index"] == right["problem_index"] == 7 and right["split"] == "missing_premise"
    assert right["model"] == "Qwen2.5-32B-Instruct" and "0 thinking tokens" in r.panels[1].value
    with pytest.raises(ValueError, match="no rows for"):
        trace_reader(traces, models=("QwQ-32B", "GPT-5"))


def _card_table(header: str) -> list[list[str]]:
    """The cells of the data card's table whose header line starts with ``header``."""
    lines = (data_dir() / "traces" / "README.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2:]:  # after the header and its |---| line
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


def test_the_data_card_table_is_what_the_loader_measures(traces):
    """data/traces/README.md's table, row by row, against the bundled file: a grader change must
    show up in the card."""
    rows = _card_table("| model | split | rows | thinking tokens")
    assert len(rows) == len(MODELS) * len(SPLITS)
    for cells in rows:
        model, split, n, mean, median, truncated, judge, ours = (c.strip() for c in cells)
        g = traces[(traces["model"] == model) & (traces["split"] == split)]
        assert int(n) == len(g)
        assert int(mean.replace(",", "")) == round(g["think_tokens"].mean())
        assert int(median.replace(",", "")) == round(g["think_tokens"].median())
        assert int(truncated) == int(g["is_truncated"].sum())
        assert float(judge) == round((g["judge_label"] == 1).mean(), 3)
        assert float(ours) == round(g["correct"].mean(), 3), (model, split)


def test_the_data_card_agreement_with_the_judge_is_what_the_graders_measure(traces):
    """issue 19: the card's agreement table (qwqlab's grader and the QwQ-repo baseline against the
    source's judge, per model and split and per model) is recomputed from the loader, and holds the
    issue's goal: at least 0.95 on every model, none below QwQ's extraction on the same rows."""
    import importlib.util

    script = data_dir().parent / "scripts" / "measure_grader_agreement.py"
    spec = importlib.util.spec_from_file_location("measure_grader_agreement", script)
    measure = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(measure)
    rows = _card_table("| model | split | rows | judge says correct | qwqlab agrees")
    assert len(rows) == len(MODELS) * (len(SPLITS) + 1)
    per_split, per_model = measure.agreement_table(traces), measure.agreement_table(traces, by="model")
    for model, split, n, judge, ours, baseline in rows:
        table = per_model[per_model["model"] == model] if split == "both" else per_split[
            (per_split["model"] == model) & (per_split["split"] == split)]
        assert len(table) == 1, (model, split)
        got = table.iloc[0]
        assert int(n) == got["rows"] and float(judge) == round(got["judge_correct"], 3), (model, split)
        assert float(ours) == round(got["qwqlab"], 3) and float(baseline) == round(got["qwq_repo_baseline"], 3), \
            (model, split)
    for got in per_model.itertuples():
        assert got.qwqlab >= 0.95 and got.qwqlab >= got.qwq_repo_baseline, got
    # judge_agreement by hand on one model: rows where the verdict and the judge's "correct" are equal
    qwen = traces[traces["model"] == "Qwen2.5-32B-Instruct"]
    by_hand = sum((c == 1.0) == (j == 1) for c, j in zip(qwen["correct"], qwen["judge_label"])) / len(qwen)
    assert per_model.set_index("model").loc["Qwen2.5-32B-Instruct", "qwqlab"] == pytest.approx(by_hand)


def test_overview_matches_a_plain_count(traces, raw_rows):
    from statistics import mean, median

    from qwqlab.traces import overview

    table = overview(traces).set_index(["model", "split"])
    assert len(table) == len(MODELS) * len(SPLITS)
    for (model, split), row in table.iterrows():
        mine = [r for r in raw_rows if r["model"] == model and r["split"] == split]
        assert row["rows"] == len(mine)
        assert row["think_tokens_mean"] == pytest.approx(mean(r["think_tokens"] for r in mine))
        assert row["think_tokens_median"] == pytest.approx(median(r["think_tokens"] for r in mine))
        assert row["judge_says_correct"] == pytest.approx(sum(r["judge_label"] == 1 for r in mine) / len(mine))
        graded = traces[(traces["model"] == model) & (traces["split"] == split)]["correct"]
        assert row["qwqlab_correct"] == pytest.approx(graded.mean())


# ----------------------------------------------------------------------------- load_traces: trace files from elsewhere

def write_jsonl(path, records, trailing_newline=True):
    text = "\n".join(json.dumps(r) for r in records) + ("\n" if trailing_newline else "")
    path.write_text(text)
    return path


RESPONSES = [
    {"question": "What is 2+2?", "response": "2+2=4, wait, yes 4\n</think>\n\nThe answer is \\boxed{4}.", "ok": True},
    {"question": "What is 2+2?", "response": "guess\n</think>\n\n\\boxed{5}", "ok": False},
    {"question": "What is 3+3?", "response": "<think>\n3+3 is", "ok": "false"},
]


def test_load_traces_full_response_with_labels(tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", RESPONSES)
    df = load_traces(path, fields={"correct": "ok"})
    assert df["problem_id"].tolist() == ["t-0", "t-0", "t-1"]
    assert df["sample_index"].tolist() == [0, 1, 0]
    assert df["thinking"].tolist() == ["2+2=4, wait, yes 4", "guess", "3+3 is"]
    assert df["extracted_answer"].iloc[:2].tolist() == ["4", "5"] and pd.isna(df["extracted_answer"].iloc[2])
    assert df["correct"].tolist() == [1.0, 0.0, 0.0]
    assert df["is_truncated"].tolist() == [False, False, True]
    assert df["think_tokens"].tolist() == [4, 1, 2]  # whitespace fallback
    for col in ("prompt", "completion", "answer_text", "completion_tokens", "answer_tokens", "finish_reason"):
        assert col in df
    # The analyses accept it unchanged.
    assert L.analyze(df).summary["n"].iloc[0] == 3


def test_load_traces_nested_fields_and_finish_reason(tmp_path):
    recs = [{"prompt": "q1", "outputs": [{"text": "a\n</think>\n\\boxed{1}", "finish_reason": "stop"}]},
            {"prompt": "q2", "outputs": [{"text": "b b b", "finish_reason": "length"}]}]
    df = load_traces(write_jsonl(tmp_path / "vllm.jsonl", recs),
                     fields={"question": "prompt", "response": "outputs.0.text",
                             "finish_reason": "outputs.0.finish_reason"})
    assert df["is_truncated"].tolist() == [False, True]
    assert df["finish_reason"].tolist() == ["stop", "length"]
    assert df["correct"].isna().all()  # neither a label nor a gold answer: not graded


def test_load_traces_separate_fields_gold_answers_and_tokenizer(tmp_path):
    recs = [{"problem": "half?", "reasoning_content": "one over two", "content": "\\boxed{\\frac{1}{2}}",
             "gold": "1/2"},
            {"problem": "seven?", "reasoning_content": "", "content": "It is 007", "gold": "7"},
            {"problem": "x?", "reasoning_content": "hmm", "content": "\\boxed{3}", "gold": "4"},
            {"problem": "y?", "reasoning_content": "hmm", "content": "\\boxed{3}", "gold": ""}]
    df = load_traces(write_jsonl(tmp_path / "sep.jsonl", recs),
                     fields={"question": "problem", "reasoning": "reasoning_content", "answer": "content",
                             "gold_answer": "gold"}, tokenizer=lambda s: list(s))
    # row 2 has no thinking: an answer-only response, read by its last value (grading.answer_only_rules): 007 is 7
    assert df["correct"].iloc[:3].tolist() == [1.0, 1.0, 0.0] and df["extracted_answer"].iloc[1] == "007"
    assert math.isnan(df["correct"].iloc[3])  # empty gold answer: cannot be judged, not 0
    assert df["think_tokens"].tolist() == [len("one over two"), 0, 3, 3]
    assert df["gold_answer"].tolist() == ["1/2", "7", "4", ""]


def test_grade_answer_is_the_one_grader_with_missing_gold_unjudged():
    g = grade_answer
    assert g("007", "7") == 1.0 and g("\\text{7}", "7") == 1.0 and g("0.50", "0.5") == 1.0
    assert g(None, "7") == 0.0
    assert g("7", None) is None and g("7", "  ") is None and g("7", math.nan) is None
    assert g("7", 7) == 1.0  # a gold answer stored as a number

def test_load_traces_lists_of_generations(tmp_path):
    recs = [{"question": "q", "generations": ["a\n</think>\n\\boxed{1}", "b\n</think>\n\\boxed{2}"],
             "labels": [True, False], "answer": "1"}]
    df = load_traces(write_jsonl(tmp_path / "r1.jsonl", recs), fields={"response": "generations", "correct": "labels"})
    assert df["sample_index"].tolist() == [0, 1] and df["correct"].tolist() == [1.0, 0.0]
    bad = [{**recs[0], "labels": [True]}]
    with pytest.raises(TraceFileError, match="line 1: correct has 1 entries for 2 responses"):
        load_traces(write_jsonl(tmp_path / "bad.jsonl", bad), fields={"response": "generations", "correct": "labels"})


def test_load_traces_parquet_and_gzip(tmp_path):
    pd.DataFrame(RESPONSES).astype({"ok": str}).to_parquet(tmp_path / "t.parquet")
    df = load_traces(tmp_path / "t.parquet", fields={"correct": "ok"})
    assert df["correct"].tolist() == [1.0, 0.0, 0.0]
    with gzip.open(tmp_path / "t.jsonl.gz", "wt") as f:
        f.write("\n".join(json.dumps(r) for r in RESPONSES) + "\n")
    assert len(load_traces(tmp_path / "t.jsonl.gz")) == 3


def test_malformed_line_names_file_line_and_problem(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(RESPONSES[0]) + "\n{\"question\": \"x\", \"response\": oops}\n" +
                    json.dumps(RESPONSES[1]) + "\n")
    with pytest.raises(TraceFileError) as e:
        load_traces(path)
    msg = str(e.value)
    assert str(path) in msg and "line 2" in msg and "not valid JSON" in msg


def test_truncated_file_is_refused_not_half_read(tmp_path):
    full = "\n".join(json.dumps(r) for r in RESPONSES) + "\n"
    path = tmp_path / "cut.jsonl"
    path.write_text(full[: len(full) - 25])  # cut in the middle of the last record
    with pytest.raises(TraceFileError, match=r"line 3: .*truncated"):
        load_traces(path)
    # A complete last record without a final newline is fine.
    assert len(load_traces(write_jsonl(tmp_path / "ok.jsonl", RESPONSES, trailing_newline=False))) == 3
    pd.DataFrame(RESPONSES).astype({"ok": str}).to_parquet(tmp_path / "t.parquet")
    data = (tmp_path / "t.parquet").read_bytes()
    (tmp_path / "cut.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(TraceFileError, match="cut.parquet: not a complete parquet file"):
        load_traces(tmp_path / "cut.parquet")


@pytest.mark.parametrize("record, fields, message", [
    ({"question": "q"}, None, r"line 1: no field 'response' for response \(fields present: question\)"),
    ({"question": "q", "response": 5}, None, r"line 1: field 'response' \(response\) should be str or list, got int"),
    ({"question": "q", "response": "r", "ok": "perhaps"}, {"correct": "ok"}, r"line 1: correctness label 'perhaps'"),
    ([1, 2], None, "line 1: expected a JSON object"),
])
def test_bad_records_say_what_is_wrong(tmp_path, record, fields, message):
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps(record) + "\n")
    with pytest.raises(TraceFileError, match=message):
        load_traces(path, fields=fields)


def test_bad_arguments_and_empty_files(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(TraceFileError, match="empty"):
        load_traces(tmp_path / "empty.jsonl")
    with pytest.raises(ValueError, match="unknown trace field"):
        load_traces(tmp_path / "empty.jsonl", fields={"reponse": "x"})
    with pytest.raises(ValueError, match="either a correctness label"):
        load_traces(tmp_path / "empty.jsonl", fields={"correct": "a", "gold_answer": "b"})
    with pytest.raises(FileNotFoundError):
        load_traces(tmp_path / "missing.jsonl")
    (tmp_path / "t.txt").write_text("x")
    with pytest.raises(TraceFileError, match="unsupported"):
        load_traces(tmp_path / "t.txt")


def test_load_traces_reads_json_arrays_chat_messages_and_refuses_empty_response_lists(tmp_path):
    """issue 10: a .json array failed with 'line 1: not valid JSON'; response: [] raised a raw KeyError."""
    import json as _json
    rows = [{"question": "1+1?", "response": "2 is it\n</think>\n\\boxed{2}", "gold_answer": "2"},
            {"question": "2+2?", "response": [{"role": "user", "content": "2+2?"},
                                              {"role": "assistant", "content": "hmm\n</think>\n\\boxed{5}"}],
             "gold_answer": "4"}]
    path = tmp_path / "traces.json"
    path.write_text(_json.dumps(rows))
    df = load_traces(path, fields={"gold_answer": "gold_answer"})
    assert len(df) == 2 and df["correct"].tolist() == [1.0, 0.0]
    assert df["thinking"].tolist() == ["2 is it", "hmm"]
    path.write_text(_json.dumps([{"question": "q", "response": [], "gold_answer": "1"}]))
    with pytest.raises(TraceFileError, match="empty list of responses"):
        load_traces(path, fields={"gold_answer": "gold_answer"})
    path.write_text("[1, 2]")
    with pytest.raises(TraceFileError, match="item 1: expected a JSON object"):
        load_traces(path)


def test_answer_only_and_reasoning_models_load_with_a_field_mapping_at_most(tmp_path):
    """issue 11, item 2: with prompt_opens_think=True an answer-only response (no think tags) was
    read as unfinished thinking: truncated, no answer, graded 0. "auto" decides per model."""
    rows = [{"model": "reasoner", "response": "2+2 is 4, wait, 4\n</think>\n\n\\boxed{4}", "gold": "4"},
            {"model": "reasoner", "response": "so 3+3 is", "gold": "6"},  # cut off while thinking
            {"model": "answerer", "response": "Adding the two gives 4. The answer is 4.", "gold": "4"},
            {"model": "answerer", "response": "We get \\boxed{7}.", "gold": "6"}]
    path = write_jsonl(tmp_path / "two_models.jsonl", rows)
    fields = {"question": None, "model": "model", "gold_answer": "gold"}
    df = load_traces(path, fields=fields)
    assert df["prompt_opens_think"].tolist() == [True, True, False, False]
    assert df["is_truncated"].tolist() == [False, True, False, False]
    answers = df["extracted_answer"]
    assert answers.isna().tolist() == [False, True, False, False]  # nothing answered while cut off
    assert answers[~answers.isna()].tolist() == ["4", "4", "7"]  # the unboxed final answer read for answer-only
    assert df["correct"].tolist() == [1.0, 0.0, 1.0, 0.0]
    assert df["think_tokens"].tolist()[2:] == [0, 0] and df["model"].tolist()[::2] == ["reasoner", "answerer"]
    forced = load_traces(path, fields=fields, prompt_opens_think={"answerer": True})  # the old default
    assert forced["is_truncated"].tolist()[2:] == [True, True] and forced["correct"].tolist()[2:] == [0.0, 0.0]
    single = load_traces(write_jsonl(tmp_path / "answerer.jsonl", rows[2:]), fields={"question": None,
                                                                                       "gold_answer": "gold"})
    assert single["prompt_opens_think"].tolist() == [False, False]  # no model field: decided for the file
    with pytest.raises(ValueError, match="prompt_opens_think must be"):
        load_traces(path, fields=fields, prompt_opens_think="yes")


MIP = data_dir().parent.parent / "shared" / "data" / "mip-overthinking" / "response" / "math" / "normal"


@pytest.mark.skipif(not MIP.is_dir(), reason="../shared/data/mip-overthinking is not beside this checkout")
def test_the_source_files_load_with_a_field_mapping_and_agree_with_the_bundled_grading(traces):
    """Each source file as it is (a JSON array, thinking then </think> for three models, no tags for
    Qwen2.5-32B-Instruct), with one field mapping: the same verdicts as the bundled file's."""
    names = {"QwQ": "QwQ-32B", "DSQ": "DeepSeek-R1-Distill-Qwen-32B", "Qwen32": "Qwen2.5-32B-Instruct"}
    for folder, model in names.items():
        df = load_traces(MIP / folder / "response.json",
                         fields={"question": None, "response": "model_answer", "gold_answer": "answer"})
        bundled = traces[(traces["model"] == model) & (traces["split"] == "normal")].sort_values("problem_index")
        assert len(df) == 52 and df["prompt_opens_think"].all() == (model != "Qwen2.5-32B-Instruct")
        assert df["correct"].tolist() == bundled["correct"].tolist(), model
        assert df["thinking"].tolist() == bundled["thinking"].tolist(), model
