"""qwqlab.lengths: each analysis against a hand-computed case (trace files: test_traces.py)."""
import math
import re

import numpy as np
import pandas as pd
import pytest

from qwqlab import lengths as L
from synthetic import synthetic_rollouts


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
    df = synthetic_rollouts(3000, seed=1)
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
    df = synthetic_rollouts(400)
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
    a, b = synthetic_rollouts(300, seed=3), synthetic_rollouts(300, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert 0 < a["correct"].mean() < 1


# ----------------------------------------------------------------------------- the widget


# ----------------------------------------------------------------------------- recorded runs and sampling


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


