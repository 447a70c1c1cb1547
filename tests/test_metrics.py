"""pass@k, maj@k, avg@k, bootstrap intervals and evaluate(), each against hand-computed cases."""
from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pandas as pd
import pytest

from qwqlab.metrics import avg_at_k, bootstrap_ci, default_ks, evaluate, maj_at_k, pass_at_k
from qwqlab.tasks import ArithmeticTask, Problem


def brute_force_pass_at_k(n: int, c: int, k: int) -> float:
    """The definition, enumerated: the share of k-subsets of the n samples holding a correct one."""
    samples = [1] * c + [0] * (n - c)
    subsets = list(combinations(range(n), k))
    return sum(any(samples[i] for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", range(1, 9))
def test_pass_at_k_matches_enumeration(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(brute_force_pass_at_k(n, c, k), abs=1e-12), (n, c, k)


def test_pass_at_k_hand_cases_and_formula():
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)            # pass@1 is the plain accuracy
    assert pass_at_k(4, 1, 2) == pytest.approx(1 - 3 / 6)       # 1 - C(3,2)/C(4,2)
    assert pass_at_k(5, 0, 3) == 0.0
    assert pass_at_k(5, 3, 3) == 1.0                            # n - c < k: every 3-subset has a correct one
    # Chen et al.'s closed form, written independently, on a size where enumeration is slow.
    n, c, k = 64, 5, 16
    assert pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k), rel=1e-12)
    assert 0 < pass_at_k(10_000, 1, 1) < 1e-3                   # no overflow for large n


def test_pass_at_k_broadcasts_and_rejects_bad_input():
    got = pass_at_k(np.array([4, 4, 4]), np.array([0, 1, 4]), 2)
    assert got == pytest.approx([0.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="k must be"):
        pass_at_k(3, 1, 4)
    with pytest.raises(ValueError, match="0 <= c <= n"):
        pass_at_k(3, 4, 1)


def test_maj_at_k_hand_cases():
    answers, correct = ["5", "5", "7"], [1, 1, 0]
    assert maj_at_k(answers, correct, 3) == 1.0
    # k=2: {5,5} votes 5 (right); {5,7} twice is a tie broken at random (1/2): (1 + .5 + .5) / 3
    assert maj_at_k(answers, correct, 2) == pytest.approx(2 / 3)
    assert maj_at_k(answers, correct, 1) == pytest.approx(2 / 3)   # maj@1 is accuracy
    # samples without an answer cast no vote; no votes at all scores 0
    assert maj_at_k([None, None, "7"], [0, 0, 1], 3) == 1.0
    assert maj_at_k([None, None], [0, 0], 2) == 0.0


def test_maj_at_k_sampled_subsets_approximate_the_exact_mean():
    rng = np.random.default_rng(0)
    answers = [str(x) for x in rng.choice([1, 2, 3], size=14, p=[0.5, 0.3, 0.2])]
    correct = [float(a == "1") for a in answers]
    exact = maj_at_k(answers, correct, 5, max_subsets=10**6)   # C(14,5) = 2002 subsets
    sampled = maj_at_k(answers, correct, 5, max_subsets=10, num_draws=2000, seed=1)
    assert sampled == pytest.approx(exact, abs=0.03)


def test_avg_at_k_uses_the_first_k_samples():
    assert avg_at_k([1, 0, 1, 1], 2) == 0.5
    assert avg_at_k([1, 0, 1, 1], 4) == 0.75
    with pytest.raises(ValueError):
        avg_at_k([1, 0], 3)


def test_bootstrap_ci_properties():
    x = np.r_[np.ones(30), np.zeros(70)]
    low, high = bootstrap_ci(x, seed=0)
    assert low < 0.3 < high
    assert (low, high) == bootstrap_ci(x, seed=0)                  # seeded
    wide = bootstrap_ci(x[::10], seed=0)
    assert (wide[1] - wide[0]) > (high - low)                      # fewer problems, wider interval
    assert bootstrap_ci([0.5]) == (0.5, 0.5)
    assert all(math.isnan(v) for v in bootstrap_ci([np.nan]))
    # close to the normal-approximation interval for a mean of 100 Bernoulli(0.3)
    half = 1.96 * math.sqrt(0.3 * 0.7 / 100)
    assert (high - low) / 2 == pytest.approx(half, rel=0.2)


def test_default_ks():
    assert default_ks(1) == [1]
    assert default_ks(8) == [1, 2, 4, 8]
    assert default_ks(6) == [1, 2, 4, 6]


def _table(rows):
    return pd.DataFrame(rows, columns=["problem_id", "sample_index", "extracted_answer", "correct",
                                       "completion_tokens", "is_truncated", "grade_note"])


def test_evaluate_per_problem_and_summary():
    rows = []
    for i, (a, ok) in enumerate([("3", 1), ("4", 0), ("4", 0), ("3", 1)]):
        rows.append(("p1", i, a, ok, 10 + i, False, ""))
    for i in range(4):
        rows.append(("p2", i, "9", 0.0, 20, i == 3, ""))
    for i in range(4):  # no gold answer: cannot be graded
        rows.append(("p3", i, "1", np.nan, 30, False, "no gold answer"))
    with pytest.warns(UserWarning, match="p3.*no gold answer"):
        per_problem, summary = evaluate(_table(rows), ks=[1, 2, 4])
    p1 = per_problem.set_index("problem_id").loc["p1"]
    assert p1["num_correct"] == 2 and p1["num_graded"] == 4
    assert p1["pass@1"] == pytest.approx(0.5)
    assert p1["pass@2"] == pytest.approx(1 - math.comb(2, 2) / math.comb(4, 2))
    assert p1["maj@4"] == pytest.approx(0.5)          # "3" and "4" tie 2-2
    assert p1["avg@2"] == pytest.approx(0.5)
    p2 = per_problem.set_index("problem_id").loc["p2"]
    assert p2["truncation_rate"] == 0.25 and p2["majority_answer"] == "9"
    s = summary.set_index(["metric", "k"])
    assert s.loc[("pass@k", 1), "value"] == pytest.approx(0.25)     # mean of p1 and p2
    assert s.loc[("pass@k", 1), "num_problems"] == 2                 # p3 left out
    assert s.loc[("pass@k", 4), "value"] == pytest.approx(0.5)
    assert (s["ci_low"] <= s["value"] + 1e-12).all() and (s["value"] <= s["ci_high"] + 1e-12).all()
    assert list(summary.attrs["excluded_problems"]) == ["p3"]


def test_evaluate_grades_with_a_task_and_explains_missing_correct():
    task = ArithmeticTask()
    p = Problem("x", "What is 12+35?", "47")
    table = pd.DataFrame({
        "problem_id": ["x", "x", "x"], "sample_index": [0, 1, 2], "question": [p.question] * 3,
        "gold_answer": ["47"] * 3, "extracted_answer": ["47", "48", None],
        "completion": ["</think>\n\nThe answer is \\boxed{47}.", "</think>\n\nThe answer is \\boxed{48}.", "2+5+0=7"]})
    with pytest.raises(ValueError, match="pass task="):
        evaluate(table)
    per_problem, summary = evaluate(table, task, ks=[1, 3])
    assert per_problem.loc[0, "num_correct"] == 1
    assert summary.set_index(["metric", "k"]).loc[("pass@k", 3), "value"] == 1.0
    with pytest.raises(ValueError, match="empty"):
        evaluate(table.iloc[:0], task)


def test_maj_at_k_votes_by_equivalence_and_empty_answers_do_not_vote():
    """issue 9: \\frac{1}{2}, 0.5 and \\dfrac{1}{2} (all right) lost to two votes of 1/3 when grouped by string."""
    from qwqlab.metrics import maj_at_k
    answers = ["\\frac{1}{2}", "0.5", "\\dfrac{1}{2}", "1/3", "1/3"]
    assert maj_at_k(answers, [1, 1, 1, 0, 0], k=5) == 1.0
    assert maj_at_k(["", None, "7", "7", "5"], [0, 0, 0, 0, 1], k=5) == 0.0  # "" casts no vote: 7 wins
