"""Reasoning-length analysis: how long a model thinks, on what, and whether it pays.

Everything here reads a *rollouts table*: one row per completion, with the columns of the
glossary in CONTRIBUTING.md (``problem_id``, ``sample_index``, ``completion``,
``thinking``, ``answer_text``, ``extracted_answer``, ``completion_tokens``,
``think_tokens``, ``answer_tokens``, ``is_truncated``, ``correct``). qwqlab's own sampler
writes such a table; ``qwqlab.traces.load_traces`` turns a jsonl/parquet file from elsewhere
(vLLM, another harness, a public trace dataset) into one; ``add_lengths`` fills in the columns a
table lacks.

The analyses (all vectorised: a million rollouts take seconds, see
``benchmarks/bench_lengths.py``):

- ``length_summary``: thinking, answer and total tokens; truncation rate; share of
  completions with no thinking.
- ``marker_counts`` / ``marker_summary``: reflection markers ("wait", "hmm", ...) per
  completion and per 1,000 thinking tokens.
- ``accuracy_by_length``: accuracy in quantile buckets of length.
- ``length_by_correctness``: length distributions of correct against incorrect completions.
- ``length_vs_pass_rate``: length against problem difficulty (per-problem pass rate).
- ``overthinking``: thinking tokens spent after the final answer first appears in the
  thinking (the "overthinking" of Chen et al. 2024, "Do NOT Think That Much for 2+3=?").
- ``length_over_steps``: length (and reward, accuracy) over RL steps from a GRPO log.
- ``analyze``: all of the above in one call.

>>> report = analyze(rollouts)                        # doctest: +SKIP
>>> report.summary, report.by_bucket                  # doctest: +SKIP
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from qwqlab.chat import count_tokens, think_answer_tokens  # noqa: F401  (count_tokens: re-exported)

#: Reflection markers counted by default: the words long-CoT models say when they
#: second-guess themselves. "but wait" is also counted as a "wait"; the ``reflections``
#: total counts each occurrence once.
DEFAULT_MARKERS = ("wait", "alternatively", "hmm", "let me check", "but wait")

#: The columns ``length_over_steps`` reads from ``train_grpo``'s log, canonical name ->
#: log column. Pass ``columns=`` to map a log with other names.
DEFAULT_LOG_COLUMNS = {
    "step": "step",
    "completion_tokens": "completion_tokens_mean",
    "think_tokens": "think_tokens_mean",
    "reward": "reward_mean",
    "accuracy": "accuracy",
}

LENGTH_COLUMNS = ("think_tokens", "answer_tokens", "completion_tokens")


# ----------------------------------------------------------------------------- helpers

def _require(df: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise KeyError(
            f"{what} needs the column(s) {missing}, which this table lacks (it has {list(df.columns)}). "
            "Fill them with qwqlab.lengths.add_lengths(table, tokenizer) or rename yours to the "
            "glossary names in CONTRIBUTING.md.")


def _correct(df: pd.DataFrame) -> pd.Series:
    """``correct`` as float: 1.0, 0.0, or NaN for completions that could not be graded."""
    return pd.to_numeric(df["correct"], errors="coerce").astype(float)


def _text(series: pd.Series):
    """A string column as a pyarrow array (missing values become empty strings)."""
    import pyarrow as pa

    s = series.fillna("")
    arr = pa.array(s, type=pa.large_string()) if s.dtype == object else pa.array(s.astype("str"))
    return arr


def marker_regex(marker: str) -> str:
    """The pattern a marker is matched with: whole words, any run of whitespace between them.

    >>> marker_regex("let me check")
    '\\\\blet\\\\s+me\\\\s+check\\\\b'
    """
    words = marker.strip().split()
    if not words:
        raise ValueError("a reflection marker cannot be empty")
    body = r"\s+".join(re.escape(w) for w in words)
    # \b only makes sense next to a word character ("hmm," is fine, "?!" is not).
    left = r"\b" if re.match(r"\w", words[0]) else ""
    right = r"\b" if re.search(r"\w$", words[-1]) else ""
    return f"{left}{body}{right}"


def add_lengths(rollouts: pd.DataFrame, tokenizer=None, prompt_opens_think: bool = True,
                overwrite: bool = False) -> pd.DataFrame:
    """Fill in the glossary columns a rollouts table lacks, from its ``completion`` text.

    Splits thinking from answer (``qwqlab.chat.split_think``), extracts the boxed answer,
    counts tokens (``count_tokens``: the tokenizer, or the whitespace fallback), and marks
    a completion truncated when its ``finish_reason`` is ``"length"`` or, with no finish
    reason, when its thinking never closed. Columns already present are kept unless
    ``overwrite``. Returns a new table.
    """
    from qwqlab.chat import extract_boxed, split_think

    df = rollouts.copy()
    need = lambda c: overwrite or c not in df.columns  # noqa: E731
    if need("thinking") or need("answer_text"):
        _require(df, ["completion"], "splitting thinking from answer")
        parts = [split_think(t or "", prompt_opens_think) for t in df["completion"].fillna("")]
        if need("thinking"):
            df["thinking"] = [p.thinking for p in parts]
        if need("answer_text"):
            df["answer_text"] = [p.answer for p in parts]
        if need("is_truncated") and "finish_reason" not in df.columns:
            df["is_truncated"] = [p.case == "unclosed" for p in parts]
    if need("extracted_answer"):
        df["extracted_answer"] = [extract_boxed(a) if isinstance(a, str) else None for a in df["answer_text"]]
    if need("think_tokens") or need("answer_tokens"):
        if "completion" in df.columns:  # the one counter (qwqlab.chat.think_answer_tokens)
            think, answer = think_answer_tokens(df["completion"].fillna(""), tokenizer, prompt_opens_think)
        else:
            think, answer = count_tokens(df["thinking"], tokenizer), count_tokens(df["answer_text"], tokenizer)
        if need("think_tokens"):
            df["think_tokens"] = think
        if need("answer_tokens"):
            df["answer_tokens"] = answer
    if need("completion_tokens"):
        if "completion" in df.columns:
            df["completion_tokens"] = count_tokens(df["completion"], tokenizer)
        else:
            df["completion_tokens"] = df["think_tokens"] + df["answer_tokens"]
    if need("is_truncated"):
        if "finish_reason" in df.columns:
            df["is_truncated"] = df["finish_reason"].eq("length")
        else:
            df["is_truncated"] = df["thinking"].fillna("").str.len().gt(0) & df["answer_text"].fillna("").eq("")
    return df


# ----------------------------------------------------------------------------- lengths

def length_summary(rollouts: pd.DataFrame, by: str | list[str] | None = None) -> pd.DataFrame:
    """Thinking, answer and total tokens, truncation rate and share with no thinking.

    One row per group of ``by`` (e.g. ``"run"`` to put before/after RL side by side), or one
    row for the whole table. ``no_thinking_share`` counts completions whose thinking is
    empty (``think_tokens == 0``); ``accuracy`` ignores ungraded completions.
    """
    _require(rollouts, [*LENGTH_COLUMNS, "is_truncated"], "length_summary")
    df = pd.DataFrame({c: rollouts[c].astype(float) for c in LENGTH_COLUMNS})
    df["is_truncated"] = rollouts["is_truncated"].astype(float)
    df["no_thinking"] = (rollouts["think_tokens"] == 0).astype(float)
    aggs = {"n": ("completion_tokens", "size")}
    for c in LENGTH_COLUMNS:
        aggs[f"{c}_mean"] = (c, "mean")
        aggs[f"{c}_median"] = (c, "median")
        aggs[f"{c}_p90"] = (c, lambda s: s.quantile(0.9))
    aggs["truncation_rate"] = ("is_truncated", "mean")
    aggs["no_thinking_share"] = ("no_thinking", "mean")
    if "correct" in rollouts.columns:
        df["correct"] = _correct(rollouts)
        aggs["accuracy"] = ("correct", "mean")
    keys = [by] if isinstance(by, str) else list(by or [])
    if keys:
        for k in keys:
            df[k] = rollouts[k].values
        return df.groupby(keys, sort=False).agg(**aggs).reset_index()
    df["_all"] = "all"
    return df.groupby("_all").agg(**aggs).reset_index(drop=True)


# ----------------------------------------------------------------------------- reflection markers

def marker_counts(rollouts: pd.DataFrame | pd.Series, markers: Iterable[str] | None = None,
                  extra: Iterable[str] = (), case_sensitive: bool = False) -> pd.DataFrame:
    """Occurrences of each reflection marker in each completion's thinking.

    Args:
        rollouts: a rollouts table (its ``thinking`` and, if present, ``think_tokens``) or a
            Series of thinking texts.
        markers: the markers to count (default ``DEFAULT_MARKERS``); ``extra`` adds to them.
            Matching is on whole words, case-insensitive unless ``case_sensitive``, with any
            whitespace between the words of a phrase.

    Returns:
        One row per completion, a column per marker, ``reflections`` (every marker
        occurrence counted once: "but wait" is one reflection, though it also shows in the
        "wait" column) and, when token counts are known, ``reflections_per_1k`` (per 1,000
        thinking tokens; NaN when there is no thinking).
    """
    import pyarrow.compute as pc

    markers = list(dict.fromkeys([*(DEFAULT_MARKERS if markers is None else markers), *extra]))
    if isinstance(rollouts, pd.Series):
        thinking, tokens, index = rollouts, None, rollouts.index
    else:
        _require(rollouts, ["thinking"], "marker_counts")
        thinking, index = rollouts["thinking"], rollouts.index
        tokens = rollouts["think_tokens"] if "think_tokens" in rollouts.columns else None
    arr = _text(thinking)
    ignore_case = not case_sensitive

    def count(values, pattern):
        return pc.count_substring_regex(values, pattern, ignore_case=ignore_case).to_numpy(
            zero_copy_only=False).astype(np.int64)

    if markers:
        # Longest first, so "but wait" wins over "wait" at the same place (leftmost-first).
        total = count(arr, "|".join(f"(?:{marker_regex(m)})" for m in sorted(markers, key=len, reverse=True)))
    else:
        total = np.zeros(len(arr), dtype=np.int64)
    # Per-marker counts only where some marker occurs: often a small share of the rows.
    hit = np.flatnonzero(total)
    some = arr.take(hit) if len(hit) < len(arr) else arr
    out = {}
    for m in markers:
        col = np.zeros(len(arr), dtype=np.int64)
        if len(hit):
            col[hit] = count(some, marker_regex(m))
        out[m] = col
    out["reflections"] = total
    df = pd.DataFrame(out, index=index)
    if tokens is not None:
        t = tokens.to_numpy(dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            df["reflections_per_1k"] = np.where(t > 0, total / t * 1000.0, np.nan)
    return df


def marker_summary(rollouts: pd.DataFrame, markers: Iterable[str] | None = None, extra: Iterable[str] = (),
                   by: str | None = None, counts: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per marker: total count, share of completions using it, and rate per 1,000 thinking tokens.

    The rate is pooled: all occurrences over all thinking tokens (x 1,000), so long
    completions weigh more than in a mean of per-completion rates. The ``reflections`` row
    counts every marker occurrence once. Pass ``counts`` (from ``marker_counts``) to reuse them.
    """
    _require(rollouts, ["thinking", "think_tokens"], "marker_summary")
    counts = marker_counts(rollouts, markers, extra) if counts is None else counts
    cols = [c for c in counts.columns if c != "reflections_per_1k"]
    values = counts[cols].to_numpy()
    tokens = rollouts["think_tokens"].to_numpy(dtype=float)
    keys = rollouts[by].to_numpy() if by else np.zeros(len(rollouts), dtype=int)
    rows = []
    for key in pd.unique(keys):
        mask = keys == key
        total_tokens = tokens[mask].sum()
        for j, m in enumerate(cols):
            total = int(values[mask, j].sum())
            rows.append({**({by: key} if by else {}), "marker": m, "count": total,
                         "share_of_completions": float((values[mask, j] > 0).mean()) if mask.any() else math.nan,
                         "per_1k_think_tokens": total / total_tokens * 1000.0 if total_tokens else math.nan})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- accuracy and length

def length_buckets(lengths: pd.Series, bins: int = 5) -> pd.Series:
    """Quantile buckets of ``lengths`` (``pd.qcut``); fewer than ``bins`` when lengths tie.

    Many completions with no thinking at all all have length 0, so the lower quantiles can
    coincide; those buckets merge rather than split equal lengths arbitrarily.
    """
    if bins < 1:
        raise ValueError(f"bins must be at least 1, not {bins}")
    lengths = lengths.astype(float)
    if lengths.nunique() <= 1:
        return pd.Series(pd.Categorical([f"[{lengths.min():g}, {lengths.max():g}]"] * len(lengths)),
                         index=lengths.index)
    return pd.qcut(lengths, bins, duplicates="drop")


def accuracy_by_length(rollouts: pd.DataFrame, bins: int = 5, length: str = "think_tokens",
                       by: str | None = None) -> pd.DataFrame:
    """Accuracy in quantile buckets of ``length`` (thinking tokens by default).

    Returns one row per bucket: its bounds, ``n``, ``mean_length``, ``accuracy`` (graded
    completions only) and ``n_graded``. Buckets are quantiles of the whole table, so with
    ``by`` (e.g. before/after RL) both groups share the same bounds.
    """
    _require(rollouts, [length, "correct"], "accuracy_by_length")
    df = pd.DataFrame({"length": rollouts[length].astype(float), "correct": _correct(rollouts)})
    df["bucket"] = length_buckets(df["length"], bins)
    keys = ([by] if by else []) + ["bucket"]
    if by:
        df[by] = rollouts[by].values
    out = df.groupby(keys, observed=True, sort=True).agg(
        n=("length", "size"), length_min=("length", "min"), length_max=("length", "max"),
        mean_length=("length", "mean"), accuracy=("correct", "mean"), n_graded=("correct", "count"))
    out = out.reset_index()
    out["bucket"] = out["bucket"].astype(str)
    return out


def correctness_label(rollouts: pd.DataFrame) -> pd.Series:
    """``"correct"``, ``"incorrect"`` or ``"ungraded"`` per completion."""
    c = _correct(rollouts)
    return pd.Series(np.where(c.isna(), "ungraded", np.where(c > 0.5, "correct", "incorrect")),
                     index=rollouts.index)


def length_by_correctness(rollouts: pd.DataFrame, length: str = "think_tokens",
                          by: str | None = None) -> pd.DataFrame:
    """The distribution of ``length`` for correct against incorrect completions.

    One row per outcome (``correct``, ``incorrect``, and ``ungraded`` if any): ``n``,
    mean, std, quartiles, 90th percentile and max.
    """
    _require(rollouts, [length, "correct"], "length_by_correctness")
    df = pd.DataFrame({"length": rollouts[length].astype(float), "outcome": correctness_label(rollouts)})
    keys = ([by] if by else []) + ["outcome"]
    if by:
        df[by] = rollouts[by].values
    g = df.groupby(keys, sort=True)["length"]
    out = g.agg(n="size", mean="mean", std="std", min="min", max="max")
    for q, name in ((0.25, "p25"), (0.5, "median"), (0.75, "p75"), (0.9, "p90")):
        out[name] = g.quantile(q)
    return out[["n", "mean", "std", "min", "p25", "median", "p75", "p90", "max"]].reset_index()


def length_vs_pass_rate(rollouts: pd.DataFrame, length: str = "think_tokens", by: str | None = None,
                        bins: int | None = None) -> pd.DataFrame:
    """Length against problem difficulty: per problem, its pass rate and mean length.

    With ``bins``, problems are grouped instead into equal-width pass-rate bins (0 to 1)
    with the mean length of their completions. A model that "thinks harder on harder
    problems" shows longer thinking at lower pass rates.
    """
    _require(rollouts, ["problem_id", length, "correct"], "length_vs_pass_rate")
    df = pd.DataFrame({"problem_id": rollouts["problem_id"].values, "length": rollouts[length].astype(float).values,
                       "correct": _correct(rollouts).values})
    keys = ([by] if by else []) + ["problem_id"]
    if by:
        df[by] = rollouts[by].values
    per = df.groupby(keys, sort=False).agg(n=("length", "size"), pass_rate=("correct", "mean"),
                                           mean_length=("length", "mean")).reset_index()
    if not bins:
        return per
    edges = np.linspace(0, 1, bins + 1)
    per["pass_rate_bin"] = pd.cut(per["pass_rate"], edges, include_lowest=True)
    keys = ([by] if by else []) + ["pass_rate_bin"]
    out = per.groupby(keys, observed=True).agg(problems=("problem_id", "size"),
                                               mean_length=("mean_length", "mean")).reset_index()
    out["pass_rate_bin"] = out["pass_rate_bin"].astype(str)
    return out


# ----------------------------------------------------------------------------- overthinking

def _glued(text: str, start: int, end: int, answer: str) -> bool:
    """Whether ``text[start:end]`` (== answer) runs into a neighbouring letter or digit."""
    if start and answer[0].isalnum() and (text[start - 1].isalnum() or text[start - 1] == "_"):
        return True
    if end < len(text) and answer[-1].isalnum():
        after = text[end]
        if after.isalnum() or after == "_":
            return True
        # "47" is not the answer in "4.75" nor in "47.5", but is in "... = 47."
        if after == "." and answer[-1].isdigit() and end + 1 < len(text) and text[end + 1].isdigit():
            return True
    return False


def _first_answer_end(text: str, answer: str) -> int:
    """End position of the first standalone occurrence of ``answer`` in ``text``, or -1.

    Standalone: not glued to a letter or digit on either side, so "47" is not found in
    "147" or "4.75", but is in "12+35=47." and "= 47\\n".
    """
    start = text.find(answer)
    while start != -1:
        if not _glued(text, start, start + len(answer), answer):
            return start + len(answer)
        start = text.find(answer, start + 1)
    return -1


def overthinking(rollouts: pd.DataFrame, answer: str = "extracted_answer", tokenizer=None) -> pd.DataFrame:
    """Thinking tokens spent after the final answer first appears in the thinking.

    The final answer is ``answer`` (the boxed answer by default). Its first standalone
    occurrence in the thinking marks where the model *had* its answer; what follows is
    checking, second-guessing or restating: the overthinking of Chen et al. 2024 ("Do NOT
    Think That Much for 2+3=? On the Overthinking of o1-like LLMs").

    Tokens after that point are counted with ``tokenizer`` when given; otherwise they are
    estimated as ``think_tokens x (characters after) / (characters of thinking)``, which
    assumes tokens spread evenly over the characters (exact for averages over many
    completions of similar text, rough for one).

    Returns one row per completion: ``answer_in_thinking`` (bool), ``overthinking_tokens``
    and ``overthinking_share`` (of the thinking), both NaN when the answer never appears
    in the thinking or there is no answer.
    """
    _require(rollouts, ["thinking", "think_tokens"], "overthinking")
    if answer not in rollouts.columns:
        if answer == "extracted_answer" and "answer_text" in rollouts.columns:
            from qwqlab.chat import extract_boxed
            answers = [extract_boxed(a) if isinstance(a, str) else None for a in rollouts["answer_text"]]
        else:
            _require(rollouts, [answer], "overthinking")
    else:
        answers = rollouts[answer].tolist()
    answers = [a.strip() if isinstance(a, str) else None for a in answers]
    thinking = rollouts["thinking"].tolist()
    n = len(thinking)
    ends = np.full(n, -1, dtype=np.int64)
    lens = np.zeros(n, dtype=np.int64)
    # One str.find per row (C speed); the boundary check runs only where something was found.
    for i, (t, a) in enumerate(zip(thinking, answers)):
        if t.__class__ is not str or not t:
            continue
        lens[i] = len(t)
        if a.__class__ is not str or not a:
            continue
        start = t.find(a)
        if start < 0:
            continue
        end = start + len(a)
        if _glued(t, start, end, a):
            end = _first_answer_end(t, a)
        ends[i] = end
    found = ends >= 0
    think_tokens = rollouts["think_tokens"].to_numpy(dtype=float)
    tokens = np.full(n, np.nan)
    if tokenizer is not None:
        tails = [thinking[i][ends[i]:] for i in np.flatnonzero(found)]
        tokens[found] = count_tokens(tails, tokenizer)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            tokens[found] = think_tokens[found] * (lens[found] - ends[found]) / lens[found]
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(found & (think_tokens > 0), tokens / think_tokens, np.nan)
    return pd.DataFrame({"answer_in_thinking": found, "overthinking_tokens": tokens,
                         "overthinking_share": share}, index=rollouts.index)


def overthinking_summary(rollouts: pd.DataFrame, per_row: pd.DataFrame | None = None,
                         by: str | None = None) -> pd.DataFrame:
    """How often the answer appears before the thinking ends, and how many tokens follow it.

    ``answer_in_thinking_share`` is over completions with thinking; token means are over
    completions where the answer appears in the thinking; ``wasted_share`` is the share of
    all their thinking tokens spent after the answer.
    """
    per_row = overthinking(rollouts) if per_row is None else per_row
    df = per_row.copy()
    df["has_thinking"] = rollouts["think_tokens"].to_numpy() > 0
    df["think_tokens_found"] = np.where(df["answer_in_thinking"], rollouts["think_tokens"].to_numpy(float), np.nan)
    df["_key"] = rollouts[by].values if by else "all"
    rows = []
    for key, g in df.groupby("_key", sort=False):
        with_thinking = g[g["has_thinking"]]
        tot = g["think_tokens_found"].sum()
        rows.append({**({by: key} if by else {}), "n": len(g),
                     "answer_in_thinking_share": float(with_thinking["answer_in_thinking"].mean())
                     if len(with_thinking) else math.nan,
                     "overthinking_tokens_mean": float(g["overthinking_tokens"].mean()),
                     "overthinking_tokens_median": float(g["overthinking_tokens"].median()),
                     "wasted_share": float(g["overthinking_tokens"].sum() / tot) if tot else math.nan})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- over RL steps

def read_table(path: str | Path) -> pd.DataFrame:
    """A table from a .csv, .jsonl (optionally .gz), .json or .parquet file."""
    path = Path(path)
    suffixes = "".join(path.suffixes[-2:])
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".csv":
        return pd.read_csv(path)
    if path.suffix in (".jsonl", ".json") or suffixes == ".jsonl.gz":
        return pd.read_json(path, lines=path.suffix != ".json")
    raise ValueError(f"{path}: cannot read a {path.suffix or 'suffix-less'} file; use .csv, .jsonl or .parquet")


def length_over_steps(log, columns: Mapping[str, str] | None = None, window: int = 1) -> pd.DataFrame:
    """Length, reward and accuracy over RL steps, from ``train_grpo``'s log table.

    Args:
        log: the log as a DataFrame, a list of per-step dicts, or a path (.csv, .jsonl,
            .parquet); or a dict ``{run name: log}`` to stack several runs (adds ``run``).
        columns: canonical name -> log column, overriding ``DEFAULT_LOG_COLUMNS`` (e.g.
            ``{"think_tokens": "thinking_length"}``). ``step`` is required and at least one
            length column; other canonical columns are kept when the log has them.
        window: a centred rolling mean over this many steps (per-step reward is noisy,
            about +-0.08 on qwq-nano); 1 keeps raw values.

    Returns:
        A table with ``step`` and the canonical columns found, sorted by step.
    """
    if isinstance(log, Mapping) and not {"step"} & set(log):
        parts = [length_over_steps(v, columns, window).assign(run=k) for k, v in log.items()]
        out = pd.concat(parts, ignore_index=True)
        return out[["run", *[c for c in out.columns if c != "run"]]]
    if isinstance(log, (str, Path)):
        log = read_table(log)
    df = pd.DataFrame(log)
    mapping = {**DEFAULT_LOG_COLUMNS, **(columns or {})}
    step_col = mapping["step"]
    if step_col not in df.columns:
        raise KeyError(f"the log has no step column {step_col!r} (it has {list(df.columns)}); "
                       "map yours with columns={'step': 'your_name'}")
    keep = {canon: col for canon, col in mapping.items() if col in df.columns}
    if not {"completion_tokens", "think_tokens"} & set(keep):
        raise KeyError(f"the log has no length column: looked for {mapping['completion_tokens']!r} and "
                       f"{mapping['think_tokens']!r} in {list(df.columns)}; map yours with "
                       "columns={'think_tokens': ..., 'completion_tokens': ...}")
    out = pd.DataFrame({canon: df[col].values for canon, col in keep.items()})
    out = out.sort_values("step", kind="stable").reset_index(drop=True)
    if window > 1:
        value_cols = [c for c in out.columns if c != "step"]
        out[value_cols] = out[value_cols].astype(float).rolling(window, center=True, min_periods=1).mean()
    return out


# ----------------------------------------------------------------------------- all at once

@dataclass
class LengthReport:
    """Every length analysis of one rollouts table (see ``analyze``)."""
    summary: pd.DataFrame
    markers: pd.DataFrame
    by_bucket: pd.DataFrame
    by_correctness: pd.DataFrame
    by_problem: pd.DataFrame
    overthinking: pd.DataFrame
    skipped: dict = field(default_factory=dict)

    def tables(self) -> dict[str, pd.DataFrame]:
        return {k: v for k, v in vars(self).items() if isinstance(v, pd.DataFrame)}


def analyze(rollouts: pd.DataFrame, markers: Iterable[str] | None = None, extra_markers: Iterable[str] = (),
            bins: int = 5, length: str = "think_tokens", by: str | None = None,
            correctness: str = "all", include_overthinking: bool = True) -> LengthReport:
    """Run every analysis on one rollouts table.

    Args:
        markers, extra_markers: reflection markers (``DEFAULT_MARKERS`` plus extras).
        bins: quantile buckets for accuracy by length.
        length: the length column the distribution analyses use.
        by: a column to split every table by (e.g. ``"run"``: before/after RL).
        correctness: ``"all"``, ``"correct"`` or ``"incorrect"``: which completions the
            summary, marker and overthinking tables describe (accuracy tables use all).
    Returns:
        A ``LengthReport``; an analysis whose columns are missing is left empty and its
        reason put in ``report.skipped``.
    """
    if correctness not in ("all", "correct", "incorrect"):
        raise ValueError(f"correctness must be 'all', 'correct' or 'incorrect', not {correctness!r}")
    skipped = {}
    sub = rollouts
    if correctness != "all":
        _require(rollouts, ["correct"], f"correctness={correctness!r}")
        sub = rollouts[correctness_label(rollouts).eq(correctness)]

    def attempt(name, fn):
        try:
            return fn()
        except KeyError as e:
            skipped[name] = str(e.args[0]) if e.args else str(e)
            return pd.DataFrame()

    counts = attempt("markers", lambda: marker_counts(sub, markers, extra_markers))
    return LengthReport(
        summary=attempt("summary", lambda: length_summary(sub, by)),
        markers=attempt("markers", lambda: marker_summary(sub, by=by, counts=counts)) if len(counts.columns) else
        pd.DataFrame(),
        by_bucket=attempt("by_bucket", lambda: accuracy_by_length(rollouts, bins, length, by)),
        by_correctness=attempt("by_correctness", lambda: length_by_correctness(rollouts, length, by)),
        by_problem=attempt("by_problem", lambda: length_vs_pass_rate(rollouts, length, by)),
        overthinking=attempt("overthinking", lambda: overthinking_summary(sub, by=by))
        if include_overthinking else pd.DataFrame(),
        skipped=skipped)
