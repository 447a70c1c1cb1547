"""qwqlab.lengths: each analysis against a hand-computed case, load_traces against good and bad files."""
import gzip
import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from qwqlab import lengths as L
from qwqlab.lengths import TraceFileError, load_traces
from qwqlab.paths import nano_dir


def table(**cols):
    """A tiny rollouts table; missing glossary columns get harmless defaults."""
    n = len(next(iter(cols.values())))
    base = {"problem_id": [f"p{i}" for i in range(n)], "sample_index": [0] * n, "thinking": [""] * n,
            "think_tokens": [0] * n, "answer_tokens": [5] * n, "is_truncated": [False] * n, "correct": [1.0] * n}
    base.update(cols)
    df = pd.DataFrame(base)
    if "completion_tokens" not in cols:
        df["completion_tokens"] = df["think_tokens"] + df["answer_tokens"]
    return df


# ----------------------------------------------------------------------------- lengths

def test_length_summary_hand_computed():
    df = table(think_tokens=[0, 10, 20, 30], answer_tokens=[4, 4, 6, 6], is_truncated=[False, False, False, True],
               correct=[1.0, 0.0, np.nan, 1.0])
    s = L.length_summary(df).iloc[0]
    assert s["n"] == 4
    assert s["think_tokens_mean"] == 15
    assert s["answer_tokens_mean"] == 5
    assert s["completion_tokens_mean"] == 20
    assert s["think_tokens_median"] == 15
    assert s["truncation_rate"] == 0.25
    assert s["no_thinking_share"] == 0.25
    assert s["accuracy"] == pytest.approx(2 / 3)  # the ungraded completion is left out


def test_length_summary_by_group_keeps_group_order():
    df = table(think_tokens=[0, 10, 20, 30], run=["before", "before", "after", "after"])
    s = L.length_summary(df, by="run")
    assert s["run"].tolist() == ["before", "after"]
    assert s["think_tokens_mean"].tolist() == [5, 25]


def test_missing_columns_say_how_to_fix():
    with pytest.raises(KeyError, match="add_lengths"):
        L.length_summary(pd.DataFrame({"completion": ["x"]}))


# ----------------------------------------------------------------------------- markers

TEXT = "Wait, let me  check. But wait, hmm... it was awaited. Hmm"


def test_marker_counts_hand_computed():
    df = table(thinking=[TEXT, "", "alternatively, so"], think_tokens=[50, 0, 4])
    c = L.marker_counts(df)
    row = c.iloc[0]
    assert row["wait"] == 2            # "Wait" and the "wait" in "But wait"; not "awaited"
    assert row["but wait"] == 1
    assert row["let me check"] == 1    # any whitespace between the words
    assert row["hmm"] == 2             # case-insensitive
    assert row["alternatively"] == 0
    assert row["reflections"] == 5     # Wait, let me check, But wait, hmm, Hmm: each once
    assert row["reflections_per_1k"] == pytest.approx(5 / 50 * 1000)
    assert c.iloc[1]["reflections"] == 0 and math.isnan(c.iloc[1]["reflections_per_1k"])
    assert c.iloc[2]["alternatively"] == 1


def test_marker_counts_user_list_and_case():
    s = pd.Series(["So, wait. so?", "WAIT"])
    c = L.marker_counts(s, markers=["wait"], extra=["so"])
    assert c["so"].tolist() == [2, 0]
    assert c["wait"].tolist() == [1, 1]
    assert "reflections_per_1k" not in c  # no token counts in a bare Series
    assert L.marker_counts(s, markers=["wait"], case_sensitive=True)["wait"].tolist() == [1, 0]
    assert L.marker_counts(pd.Series(["a?! b"]), markers=["?!"])["?!"].tolist() == [1]


def test_marker_summary_is_pooled_per_1k_tokens():
    df = table(thinking=["wait wait", "wait", ""], think_tokens=[100, 900, 0])
    m = L.marker_summary(df, markers=["wait"]).set_index("marker")
    assert m.loc["wait", "count"] == 3
    assert m.loc["wait", "per_1k_think_tokens"] == pytest.approx(3 / 1000 * 1000)  # pooled: 3 per 1,000
    assert m.loc["wait", "share_of_completions"] == pytest.approx(2 / 3)


def reference_marker_count(text, marker):
    """Written independently of the package: Python's re, word boundaries, ASCII, ignore case."""
    words = [re.escape(w) for w in marker.split()]
    return len(re.findall(r"\b" + r"\s+".join(words) + r"\b", text, flags=re.I | re.A))


def test_marker_counts_match_a_row_by_row_reference():
    df = L.synthetic_rollouts(3000, seed=1)
    c = L.marker_counts(df)
    for m in L.DEFAULT_MARKERS:
        ref = [reference_marker_count(t, m) for t in df["thinking"]]
        assert c[m].tolist() == ref, m
    assert c["wait"].sum() > 0 and c["hmm"].sum() > 0  # the fake traces do reflect


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

PIECES = ["wait", "Wait", "but", "hmm", "let", "me", "check", "alternatively", "awaited", "x", "12", ",", ".", " ",
          "  ", "\n", "!"]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(st.sampled_from(PIECES), max_size=30).map("".join), min_size=1, max_size=8))
def test_marker_counts_match_the_reference_on_arbitrary_text(texts):
    c = L.marker_counts(pd.Series(texts, dtype=object))
    for m in L.DEFAULT_MARKERS:
        assert c[m].tolist() == [reference_marker_count(t, m) for t in texts], m


# ----------------------------------------------------------------------------- accuracy, correctness, difficulty

def test_accuracy_by_length_hand_computed():
    df = table(think_tokens=[0, 0, 10, 20, 30, 40], correct=[0, 0, 1, 0, 1, 1])
    b = L.accuracy_by_length(df, bins=2)
    assert b["n"].tolist() == [3, 3]
    assert b["accuracy"].tolist() == pytest.approx([1 / 3, 2 / 3])
    assert b["length_max"].tolist() == [10, 40]


def test_accuracy_by_length_ties_merge_buckets_and_ungraded_are_left_out():
    df = table(think_tokens=[0, 0, 0, 0, 8, 9], correct=[0, 0, 0, np.nan, 1, 1])
    b = L.accuracy_by_length(df, bins=5)
    assert len(b) < 5 and b["n"].sum() == 6
    one = L.accuracy_by_length(table(think_tokens=[3, 3, 3], correct=[1, 0, 1]), bins=4)
    assert len(one) == 1 and one["accuracy"].iloc[0] == pytest.approx(2 / 3)
    assert L.accuracy_by_length(df, bins=5)["n_graded"].sum() == 5
    with pytest.raises(ValueError):
        L.accuracy_by_length(df, bins=0)


def test_length_by_correctness_hand_computed():
    df = table(think_tokens=[10, 20, 2, 4, 7], correct=[1, 1, 0, 0, np.nan])
    d = L.length_by_correctness(df).set_index("outcome")
    assert d.loc["correct", "mean"] == 15 and d.loc["incorrect", "mean"] == 3
    assert d.loc["ungraded", "n"] == 1


def test_length_vs_pass_rate_hand_computed():
    df = table(problem_id=["a", "a", "b", "b"], think_tokens=[10, 30, 4, 6], correct=[1, 0, 1, 1])
    per = L.length_vs_pass_rate(df).set_index("problem_id")
    assert per.loc["a", "pass_rate"] == 0.5 and per.loc["a", "mean_length"] == 20
    assert per.loc["b", "pass_rate"] == 1.0 and per.loc["b", "mean_length"] == 5
    binned = L.length_vs_pass_rate(df, bins=2)
    assert binned["problems"].tolist() == [1, 1]
    assert binned["mean_length"].tolist() == [20, 5]


# ----------------------------------------------------------------------------- overthinking

def test_overthinking_hand_computed():
    thinking = "7+5=12\nso 12\nwait, check again"  # the answer first ends at character 6
    df = table(thinking=[thinking, "147 and 4.75", "no answer here", ""], think_tokens=[30, 10, 10, 0],
               extracted_answer=["12", "47", "9", "3"])
    o = L.overthinking(df)
    assert o["answer_in_thinking"].tolist() == [True, False, False, False]
    assert o["overthinking_tokens"].iloc[0] == pytest.approx(30 * (len(thinking) - 6) / len(thinking))
    assert o["overthinking_share"].iloc[0] == pytest.approx((len(thinking) - 6) / len(thinking))
    assert o["overthinking_tokens"].iloc[1:].isna().all()


def test_overthinking_boundaries():
    end = L._first_answer_end
    assert end("x=47.", "47") == 4          # a full stop after the number is fine
    assert end("147, then 47", "47") == 12  # skips the 47 inside 147
    assert end("4.75", "4") == -1           # 4 is not 4.75
    assert end("x = 1/2 ok", "1/2") == 7
    assert end("the answer (a) then", "(a)") == 14
    assert end("", "1") == -1


def test_overthinking_with_a_tokenizer_counts_the_tail_exactly():
    df = table(thinking=["so 12 then more words here"], think_tokens=[6], extracted_answer=["12"])
    o = L.overthinking(df, tokenizer=lambda s: s.split())
    assert o["overthinking_tokens"].iloc[0] == 4  # "then more words here"


def test_overthinking_summary():
    df = table(thinking=["a 5 b c", "x", ""], think_tokens=[4, 1, 0], extracted_answer=["5", "7", "1"])
    s = L.overthinking_summary(df).iloc[0]
    assert s["answer_in_thinking_share"] == 0.5  # of the two completions with thinking
    assert s["wasted_share"] == pytest.approx(4 * (4 / 7) / 4)


# ----------------------------------------------------------------------------- over RL steps

def test_length_over_steps_default_and_custom_columns(tmp_path):
    log = pd.DataFrame({"step": [2, 1, 3], "completion_tokens_mean": [20, 10, 30], "think_tokens_mean": [8, 4, 12],
                        "reward_mean": [0.2, 0.1, 0.3], "accuracy": [0.5, 0.4, 0.6], "kl": [0, 0, 0]})
    out = L.length_over_steps(log)
    assert out.columns.tolist() == ["step", "completion_tokens", "think_tokens", "reward", "accuracy"]
    assert out["step"].tolist() == [1, 2, 3] and out["think_tokens"].tolist() == [4, 8, 12]
    smooth = L.length_over_steps(log, window=3)
    assert smooth["think_tokens"].tolist() == pytest.approx([6, 8, 10])
    other = log.rename(columns={"step": "iteration", "think_tokens_mean": "thinking_len"})
    mapped = L.length_over_steps(other, columns={"step": "iteration", "think_tokens": "thinking_len"})
    assert mapped["think_tokens"].tolist() == [4, 8, 12]
    path = tmp_path / "log.csv"
    log.to_csv(path, index=False)
    assert L.length_over_steps(path)["reward"].tolist() == [0.1, 0.2, 0.3]
    both = L.length_over_steps({"a": log, "b": log})
    assert both["run"].tolist() == ["a"] * 3 + ["b"] * 3
    with pytest.raises(KeyError, match="step"):
        L.length_over_steps(log.drop(columns="step"))
    with pytest.raises(KeyError, match="length column"):
        L.length_over_steps(log[["step", "reward_mean"]])


# ----------------------------------------------------------------------------- analyze, add_lengths, tokens

def test_analyze_runs_everything_and_reports_what_it_skipped():
    df = L.synthetic_rollouts(400)
    report = L.analyze(df)
    assert set(report.tables()) == {"summary", "markers", "by_bucket", "by_correctness", "by_problem", "overthinking"}
    assert not report.skipped
    partial = L.analyze(df.drop(columns=["problem_id"]))
    assert "by_problem" in partial.skipped and partial.by_problem.empty
    wrong = L.analyze(df, correctness="incorrect")
    assert wrong.summary["accuracy"].iloc[0] == 0
    with pytest.raises(ValueError):
        L.analyze(df, correctness="maybe")


def test_count_tokens_fallback_and_tokenizers():
    assert L.count_tokens(["a b  c\n d", "", None]).tolist() == [4, 0, 0]
    assert L.count_tokens(["abc"], tokenizer=lambda s: len(s)).tolist() == [3]
    from qwqlab.nano import build_tokenizer  # a real fast tokenizer, trained in a fraction of a second
    tok = build_tokenizer(["What is 12+35? so 12+35=47"] * 20, vocab_size=300)
    n = L.count_tokens(["12+35=47"], tokenizer=tok)
    assert n.tolist() == [len(tok("12+35=47", add_special_tokens=False)["input_ids"])]


def test_add_lengths_fills_the_glossary_columns():
    df = pd.DataFrame({"completion": ["7+5=12\n</think>\n\nThe answer is \\boxed{12}.", "still thinking 1 2"],
                       "correct": [1.0, 0.0]})
    out = L.add_lengths(df)
    assert out["thinking"].tolist() == ["7+5=12", "still thinking 1 2"]
    assert out["extracted_answer"].iloc[0] == "12" and pd.isna(out["extracted_answer"].iloc[1])
    assert out["is_truncated"].tolist() == [False, True]  # unclosed thinking, no finish reason
    assert out["think_tokens"].tolist() == [1, 4]
    assert "thinking" not in df  # the input is left alone


def test_synthetic_rollouts_are_deterministic():
    a, b = L.synthetic_rollouts(300, seed=3), L.synthetic_rollouts(300, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert 0 < a["correct"].mean() < 1


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
    assert df["correct"].iloc[:3].tolist() == [1.0, 0.0, 0.0]
    assert math.isnan(df["correct"].iloc[3])  # empty gold answer: cannot be judged, not 0
    assert df["think_tokens"].tolist() == [len("one over two"), 0, 3, 3]
    assert df["gold_answer"].tolist() == ["1/2", "7", "4", ""]


def test_default_grader():
    g = L.default_grader
    assert g("007", "7") == 1.0 and g("\\text{7}", "7") == 1.0 and g("0.50", "0.5") == 1.0
    assert g(None, "7") == 0.0
    assert g("7", None) is None and g("7", "  ") is None


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


# ----------------------------------------------------------------------------- the widget

def test_length_explorer_follows_its_controls():
    from qwqlab.widgets import length_explorer

    df = L.synthetic_rollouts(300)
    box = length_explorer(df, bins=4)
    assert set(box.controls) == {"markers", "bins", "correctness"}
    assert "wait" in box.report.markers["marker"].tolist()
    box.controls["markers"].value = "so, hmm"
    assert box.report.markers["marker"].tolist() == ["so", "hmm", "reflections"]
    box.controls["bins"].value = 2
    assert len(box.report.by_bucket) <= 2
    box.controls["correctness"].value = "correct"
    assert box.report.summary["accuracy"].iloc[0] == 1.0
    assert (box.shown["correct"] == 1.0).all()
    assert len(box.figures) == 2


# ----------------------------------------------------------------------------- recorded runs and sampling

def test_find_recorded_runs_sorts_what_it_finds(tmp_path):
    assert L.find_recorded_runs(tmp_path / "missing").describe().startswith("no recorded runs")
    (tmp_path / "exp").mkdir()
    L.synthetic_rollouts(20).to_parquet(tmp_path / "exp" / "after_rollouts.parquet")
    pd.DataFrame({"step": [1, 2], "think_tokens_mean": [3, 4]}).to_csv(tmp_path / "exp" / "log.csv", index=False)
    (tmp_path / "exp" / "half.jsonl").write_text('{"step": 1, "think')
    ckpt = tmp_path / "exp" / "ckpts" / "step-000010"
    ckpt.mkdir(parents=True)
    (ckpt / "state.pt").write_bytes(b"")
    (ckpt / "history.jsonl").write_text('{"step": 1, "think_tokens_mean": 3}\n')
    found = L.find_recorded_runs(tmp_path)
    assert list(found.rollouts) == ["exp/after_rollouts"]
    assert list(found.logs) == ["exp/log"]  # the checkpoint's own history is not a separate run
    assert found.checkpoints == {"exp/ckpts": ckpt}
    assert "exp/half" in found.unreadable
    assert "skipped" in found.describe()


def test_collect_rollouts_prefers_recorded_tables_before_first(tmp_path):
    L.synthetic_rollouts(30, seed=1).to_parquet(tmp_path / "z_after.parquet")
    L.synthetic_rollouts(20, seed=2).to_parquet(tmp_path / "before.parquet")
    df = L.collect_rollouts(L.find_recorded_runs(tmp_path))
    assert df["run"].unique().tolist() == ["before", "z_after"]
    assert len(df) == 50


needs_nano = pytest.mark.skipif(not (nano_dir() / "config.json").exists(),
                                reason="the qwq-nano checkpoint is not in data/models")


@needs_nano
def test_sample_rollouts_from_qwq_nano_is_deterministic(nano):
    from qwqlab.tasks import ArithmeticTask

    model, tokenizer = nano
    task = ArithmeticTask(split="test")
    kw = dict(num_problems=4, num_generations=3, max_new_tokens=48, seed=5, progress=False)  # tiny: ~1 s
    a = L.sample_rollouts(model, tokenizer, task, **kw)
    b = L.sample_rollouts(model, tokenizer, task, **kw)
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == 12 and set(a["sample_index"]) == {0, 1, 2}
    assert (a["think_tokens"] + a["answer_tokens"] <= a["completion_tokens"] + 2).all()
    assert a["is_truncated"].eq(a["finish_reason"].eq("length")).all()
    L.analyze(a)  # the analyses accept the sampled table as it is


def test_benchmark_script_runs_small():
    """The benchmark's --help and a tiny run (the real 1M-row run is `make benchmarks`, never a timed test)."""
    import subprocess
    import sys

    from qwqlab.paths import REPO_ROOT

    script = REPO_ROOT / "benchmarks" / "bench_lengths.py"
    assert subprocess.run([sys.executable, str(script), "--help"], capture_output=True, timeout=60).returncode == 0
    out = subprocess.run([sys.executable, str(script), "--rows", "3000", "--baseline-rows", "300"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "extrapolated" in out.stdout and "speed-up" in out.stdout and "agree" in out.stdout


def test_marker_summary_ignores_the_index():
    df = table(thinking=["wait", "wait wait", "hmm"], think_tokens=[10, 10, 10], run=["a", "b", "b"])
    df.index = [0, 0, 0]  # e.g. tables concatenated without ignore_index
    m = L.marker_summary(df, markers=["wait"], by="run")
    assert m[m["marker"] == "wait"]["count"].tolist() == [1, 2]


def test_load_traces_reads_json_arrays_chat_messages_and_refuses_empty_response_lists(tmp_path):
    """issue 10: a .json array failed with 'line 1: not valid JSON'; response: [] raised a raw KeyError."""
    import json as _json
    rows = [{"question": "1+1?", "response": "2 is it\n</think>\n\\boxed{2}", "gold_answer": "2"},
            {"question": "2+2?", "response": [{"role": "user", "content": "2+2?"},
                                              {"role": "assistant", "content": "hmm\n</think>\n\\boxed{5}"}],
             "gold_answer": "4"}]
    path = tmp_path / "traces.json"
    path.write_text(_json.dumps(rows))
    df = L.load_traces(path, fields={"gold_answer": "gold_answer"})
    assert len(df) == 2 and df["correct"].tolist() == [1.0, 0.0]
    assert df["thinking"].tolist() == ["2 is it", "hmm"]
    path.write_text(_json.dumps([{"question": "q", "response": [], "gold_answer": "1"}]))
    with pytest.raises(L.TraceFileError, match="empty list of responses"):
        L.load_traces(path, fields={"gold_answer": "gold_answer"})
    path.write_text("[1, 2]")
    with pytest.raises(L.TraceFileError, match="item 1: expected a JSON object"):
        L.load_traces(path)
