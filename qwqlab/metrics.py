"""Scores over k samples per problem: pass@k, maj@k, avg@k, each with a bootstrap interval.

* **pass@k**: the chance that at least one of k samples is correct, estimated without bias
  from n >= k samples with c correct (Chen et al. 2021, "Evaluating Large Language Models
  Trained on Code", eq. 1): ``1 - C(n-c, k) / C(n, k)``.
* **maj@k**: the chance that the most common answer among k samples is correct
  (self-consistency, Wang et al. 2023).
* **avg@k**: the mean accuracy over k samples, QwQ-32B's reported metric (AIME: avg@64 at
  temperature 0.6). Its expected value does not depend on k; k says how many samples were
  averaged, so how noisy it is.

Intervals are percentile bootstraps over problems (the problems are the random sample; the
k completions of one problem are not independent draws of the benchmark).
"""
from __future__ import annotations

import math
import warnings
from itertools import combinations
from typing import NamedTuple

import numpy as np


def _check_nck(n, c, k) -> None:
    if n < 1 or c < 0 or c > n:
        raise ValueError(f"need n >= 1 samples and 0 <= c <= n correct, got n={n}, c={c}.")
    if k < 1 or k > n:
        raise ValueError(f"k must be between 1 and n={n} (the samples drawn), got k={k}.")


def pass_at_k(n, c, k):
    """Unbiased pass@k from ``n`` samples of which ``c`` are correct (Chen et al. 2021).

    ``1 - C(n-c, k) / C(n, k)``, computed as ``1 - prod_{i=n-c+1}^{n} (1 - k/i)`` so large n
    does not overflow. Arrays broadcast.

    >>> round(pass_at_k(10, 3, 1), 12)
    0.3
    >>> round(pass_at_k(4, 1, 2), 4)   # 1 - C(3,2)/C(4,2) = 1 - 3/6
    0.5
    """
    if np.ndim(n) or np.ndim(c) or np.ndim(k):
        n, c, k = np.broadcast_arrays(np.asarray(n), np.asarray(c), np.asarray(k))
        return np.array([pass_at_k(int(a), int(b), int(d)) for a, b, d in zip(n.ravel(), c.ravel(), k.ravel())]
                        ).reshape(n.shape)
    n, c, k = int(n), int(c), int(k)
    _check_nck(n, c, k)
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def _answer_codes(answers) -> tuple[np.ndarray, list[str]]:
    """Integer codes for answers (``-1`` for "no answer"), and the distinct answers."""
    from qwqlab.grading import answers_equal

    codes, distinct = [], []
    for a in answers:
        if a is None or (isinstance(a, float) and math.isnan(a)) or not str(a).strip():
            codes.append(-1)  # no answer casts no vote
            continue
        a = str(a).strip()
        # answers vote together when the grader says they are equal (\frac{1}{2}, 0.5, \dfrac{1}{2}),
        # as Qwen's and lighteval's evaluations cluster them; the first answer names the cluster
        code = next((i for i, d in enumerate(distinct) if d == a or answers_equal(a, d)), None)
        if code is None:
            code = len(distinct)
            distinct.append(a)
        codes.append(code)
    return np.array(codes, dtype=int), distinct


def _votes(codes: np.ndarray, accuracy: np.ndarray, subsets: np.ndarray) -> np.ndarray:
    """Majority-vote accuracy of each row of ``subsets`` (sample indices); ties broken at random."""
    picked = codes[subsets]                                              # (draws, k)
    counts = (picked[..., None] == np.arange(len(accuracy))).sum(axis=1)  # (draws, answers)
    top = counts.max(axis=1, initial=0)
    tied = (counts == top[:, None]) & (counts > 0)
    n_tied = tied.sum(axis=1)
    return np.where(n_tied > 0, (tied * accuracy).sum(axis=1) / np.maximum(n_tied, 1), 0.0)


def maj_at_k(answers, correct, k: int, max_subsets: int = 2000, num_draws: int = 500, seed: int = 0) -> float:
    """Expected majority-vote accuracy of ``k`` samples drawn from one problem's ``n`` samples.

    Averaged over every k-subset when there are at most ``max_subsets`` of them, else over
    ``num_draws`` random subsets (seeded). Samples without an answer do not vote; a vote with
    no answers at all scores 0; a tie is broken at random (so it scores the tied answers' mean).

    >>> maj_at_k(["5", "5", "7"], [1, 1, 0], k=3)
    1.0
    """
    answers, correct = list(answers), np.asarray([float(x) for x in correct])
    n = len(answers)
    if len(correct) != n:
        raise ValueError("answers and correct must have the same length")
    _check_nck(n, 0, k)
    codes, distinct = _answer_codes(answers)
    # An answer's correctness: the share of its samples graded correct (1 or 0 for a consistent grader).
    accuracy = np.array([correct[codes == j].mean() for j in range(len(distinct))])
    if not distinct:
        return 0.0
    if math.comb(n, k) <= max_subsets:
        subsets = np.array(list(combinations(range(n), k)), dtype=int)
    else:
        rng = np.random.default_rng(seed)
        subsets = np.argsort(rng.random((num_draws, n)), axis=1)[:, :k]
    return float(_votes(codes, accuracy, subsets).mean())


def avg_at_k(correct, k: int) -> float:
    """Mean accuracy of the first ``k`` samples (QwQ's avg@k: "mean over 64 samples").

    >>> avg_at_k([1, 0, 1, 1], k=2)
    0.5
    """
    correct = [float(x) for x in correct]
    _check_nck(len(correct), 0, k)
    return float(np.mean(correct[:k]))


def bootstrap_ci(values, confidence: float = 0.95, num_resamples: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval for the mean of per-problem ``values`` (NaNs dropped).

    >>> bootstrap_ci([1.0, 1.0, 1.0])
    (1.0, 1.0)
    """
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return (float("nan"), float("nan"))
    if x.size == 1:
        return (float(x[0]), float(x[0]))
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(num_resamples, x.size))].mean(axis=1)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return (float(low), float(high))


def default_ks(n: int) -> list[int]:
    """1, 2, 4, ... up to ``n``, and ``n`` itself."""
    ks, k = [], 1
    while k < n:
        ks.append(k)
        k *= 2
    return ks + [n] if n >= 1 else []


class Evaluation(NamedTuple):
    """What ``evaluate`` returns: unpack it (``per_problem, summary = evaluate(...)``) or use the fields."""
    per_problem: "object"  # pandas.DataFrame
    summary: "object"      # pandas.DataFrame


def _regrade(df, task):
    from qwqlab.tasks.base import Problem

    scores, notes = [], []
    for row in df.itertuples(index=False):
        gold = getattr(row, "gold_answer", None)
        gold = None if gold is None or (isinstance(gold, float) and math.isnan(gold)) else str(gold)
        problem = Problem(str(row.problem_id), str(getattr(row, "question", "")), gold)
        s, note = task.judge(row.completion, problem)
        scores.append(np.nan if s is None else float(s))
        notes.append(note)
    df = df.copy()
    df["correct"], df["grade_note"] = scores, notes
    return df


def evaluate(rollouts, task=None, ks: list[int] | None = None, confidence: float = 0.95,
             num_resamples: int = 1000, seed: int = 0, regrade: bool = False) -> Evaluation:
    """Score a rollout table (from ``qwqlab.rollouts.sample``): per problem, and summarised.

    Args:
        rollouts: one row per completion with ``problem_id``, ``sample_index`` and ``correct``
            (NaN = cannot be judged), plus ``extracted_answer`` for maj@k.
        task: grades the completions when there is no ``correct`` column yet, or when
            ``regrade=True`` (e.g. to score with another grader).
        ks: the k values (default 1, 2, 4, ... up to the smallest number of samples).
        confidence, num_resamples, seed: the bootstrap interval.

    Returns:
        ``Evaluation(per_problem, summary)``. ``per_problem``: one row per problem with
        ``num_samples``, ``num_graded``, ``num_correct``, ``accuracy``, ``pass@k``/``maj@k``/
        ``avg@k`` for each k, ``majority_answer``, ``mean_completion_tokens``,
        ``truncation_rate``. ``summary``: one row per (metric, k) with ``value`` (mean over
        problems), ``ci_low``, ``ci_high`` and ``num_problems``. A problem none of whose
        samples could be graded is left out of the summary, with a warning saying why; a
        problem with fewer than k graded samples has no score at that k.
    """
    import pandas as pd

    df = rollouts.copy()
    if len(df) == 0:
        raise ValueError("evaluate() got an empty rollout table.")
    if task is not None and (regrade or "correct" not in df.columns):
        df = _regrade(df, task)
    if "correct" not in df.columns:
        raise ValueError("The rollouts have no `correct` column: pass task= to grade them "
                         "(e.g. evaluate(rollouts, ArithmeticTask())).")
    df = df.sort_values(["problem_id", "sample_index"], kind="stable")
    order = list(dict.fromkeys(rollouts["problem_id"]))
    groups = {pid: g for pid, g in df.groupby("problem_id", sort=False)}
    graded_counts = [int(g["correct"].notna().sum()) for g in groups.values()]
    usable = [n for n in graded_counts if n > 0]
    if ks is None:
        ks = default_ks(min(usable)) if usable else [1]
    ks = sorted({int(k) for k in ks})
    if ks and ks[0] < 1:
        raise ValueError(f"every k must be >= 1, got {ks}")

    rows, excluded = [], []
    for pid in order:
        g = groups[pid]
        graded = g[g["correct"].notna()]
        n, c = len(graded), int(graded["correct"].sum())
        answers = list(graded["extracted_answer"]) if "extracted_answer" in graded.columns else [None] * n
        row = {"problem_id": pid, "num_samples": len(g), "num_graded": n, "num_correct": c,
               "accuracy": c / n if n else np.nan}
        for k in ks:
            ok = n >= k
            row[f"pass@{k}"] = pass_at_k(n, c, k) if ok else np.nan
            row[f"maj@{k}"] = maj_at_k(answers, graded["correct"], k, seed=seed) if ok else np.nan
            row[f"avg@{k}"] = avg_at_k(graded["correct"], k) if ok else np.nan
        codes, distinct = _answer_codes(answers)  # the same clusters of equal answers maj@k votes with
        voted = codes[codes >= 0]
        row["majority_answer"] = distinct[int(np.bincount(voted).argmax())] if len(voted) else None
        if "completion_tokens" in g.columns:
            row["mean_completion_tokens"] = float(g["completion_tokens"].mean())
        if "is_truncated" in g.columns:
            row["truncation_rate"] = float(g["is_truncated"].astype(float).mean())
        if n == 0:
            notes = sorted(set(g["grade_note"].dropna().astype(str))) if "grade_note" in g.columns else []
            excluded.append((pid, "; ".join(n_ for n_ in notes if n_) or "no sample could be graded"))
        rows.append(row)
    per_problem = pd.DataFrame(rows)
    if excluded:
        warnings.warn(f"{len(excluded)} of {len(order)} problems could not be graded and are left out of the "
                      f"summary (e.g. {excluded[0][0]!r}: {excluded[0][1]}).", UserWarning, stacklevel=2)

    summary = []
    for metric in ("pass", "maj", "avg"):
        for k in ks:
            vals = per_problem[f"{metric}@{k}"].to_numpy(dtype=float)
            vals = vals[~np.isnan(vals)]
            low, high = bootstrap_ci(vals, confidence, num_resamples, seed)
            summary.append({"metric": f"{metric}@k", "k": k, "value": float(vals.mean()) if vals.size else np.nan,
                            "ci_low": low, "ci_high": high, "num_problems": int(vals.size)})
    summary = pd.DataFrame(summary)
    summary.attrs["excluded_problems"] = dict(excluded)
    summary.attrs["confidence"] = confidence
    return Evaluation(per_problem, summary)


def run_summary(rollouts) -> dict:
    """One sampling run in a few numbers: accuracy, truncation rate, answer rate and mean lengths.

    ``accuracy`` is the mean of ``correct`` over the samples that could be graded (NaN when
    none could); ``answer_rate`` the share with an extracted answer.
    """
    correct = rollouts["correct"].astype(float) if "correct" in rollouts.columns else None
    answered = rollouts["extracted_answer"].map(lambda a: a is not None and a == a) \
        if "extracted_answer" in rollouts.columns else None
    return {
        "num_samples": int(len(rollouts)),
        "accuracy": float(correct.mean()) if correct is not None and correct.notna().any() else float("nan"),
        "truncation_rate": float(rollouts["is_truncated"].astype(float).mean()),
        "answer_rate": float(answered.mean()) if answered is not None else float("nan"),
        "mean_completion_tokens": float(rollouts["completion_tokens"].mean()),
        "mean_think_tokens": float(rollouts["think_tokens"].mean()) if "think_tokens" in rollouts.columns
        else float("nan"),
    }
