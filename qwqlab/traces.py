"""Reasoning traces: QwQ-32B's own traces bundled, and thinking efficiency.

Reading trace files from elsewhere (``load_traces``, ``TraceFileError``, ``DEFAULT_TRACE_FIELDS``)
is ``qwqlab.trace_files``; those names are re-exported here. This module holds the bundled
traces and the thinking-efficiency metrics, computed without an LLM judge.

The traces: ``data/traces/mip_math52.jsonl.gz`` (built by ``scripts/bundle_mip_traces.py``
from the MIT-licensed MiP-Overthinking release, Fan et al. 2025, arXiv 2504.06514; data card
in ``data/traces/README.md``): QwQ-32B, DeepSeek-R1 (671B), DeepSeek-R1-Distill-Qwen-32B and
Qwen2.5-32B-Instruct on the same 52 MATH problems, as posed (``normal``) and with a premise
removed (``missing_premise``). ``load_mip_traces()`` returns them as a rollouts table (the
glossary's ``thinking``, ``answer_text``, ``think_tokens``, ...), lengths in QwQ-32B tokens.

The metrics are those EvalScope's ThinkBench reports (``evalscope/third_party/thinkbench``):

- ``reasoning_tokens``: tokens of the thinking.
- ``first_correct_tokens``: tokens of the thinking up to the end of the first place where the
  correct answer is stated.
- ``reflection_tokens``: ``reasoning_tokens - first_correct_tokens``, the thinking spent after
  the model first had the right answer (checking, doubting, restating).
- ``token_efficiency``: ``first_correct_tokens / reasoning_tokens``.
- ``thought_switches``: occurrences of ThinkBench's switch phrases (``THOUGHT_SWITCH_MARKERS``,
  "alternatively", "another approach", ...).

How "the first place where the correct answer is stated" is found here, and how it differs
from ThinkBench: ThinkBench has an LLM (Qwen2.5-72B-Instruct in its example) rewrite the
thinking into paragraphs and a judge LLM name the first paragraph that reaches the correct
answer; first-correct tokens are the tokens of the paragraphs before it. Here
``candidate_answers`` scans the raw thinking for stated answers (``\\boxed{...}``, "the answer
is X", and the right-hand side of "= X"), and the lab's grader (``grade_answer``) compares each,
in order, with the gold answer; the count runs to the end of the first match. So:

- it is deterministic, free and offline, and exact to the token rather than to a paragraph;
- it misses a correct answer stated in words or in a shape the patterns do not catch ("so
  the angle is ninety degrees"), which puts the first correct later or nowhere, where a
  judge would see it;
- it takes any candidate that equals the gold answer, even an intermediate result that
  happens to (gold ``2`` and an early "x = 2" for another quantity), which puts the first
  correct earlier than a judge would; small integer answers are the most exposed;
- a judge can also be wrong or inconsistent, and ThinkBench's paragraphing by an LLM can
  drop or merge text; nothing here rewrites the thinking.

When no candidate matches, the numbers follow ThinkBench (first-correct 0, every thinking
token a reflection token, efficiency 0) and ``first_correct_found`` is False, so averages
are comparable with ThinkBench's and can still be filtered.
"""
from __future__ import annotations

import gzip
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from qwqlab.chat import boxed_spans
from qwqlab.grading import extract_answer
from qwqlab.lengths import count_tokens, marker_counts
from qwqlab.paths import data_dir
# the reader of trace files, and the one grading line both modules use, re-exported
from qwqlab.trace_files import (DEFAULT_TRACE_FIELDS, TraceFileError, as_completion, grade_answer,  # noqa: F401
                                load_traces)

#: ThinkBench's thought-switch phrases (EvalScope ``EvalThink.switch_tokens``).
THOUGHT_SWITCH_MARKERS = ("alternatively", "but wait", "let me reconsider", "another way",
                          "another approach", "another method", "another angle")

#: The order the four models are shown in, and which of them think before answering.
MODELS = ("QwQ-32B", "DeepSeek-R1", "DeepSeek-R1-Distill-Qwen-32B", "Qwen2.5-32B-Instruct")
REASONING_MODELS = MODELS[:3]
SPLITS = ("normal", "missing_premise")


def mip_traces_path() -> Path:
    """The bundled MiP-Overthinking traces file."""
    return data_dir() / "traces" / "mip_math52.jsonl.gz"


def efficiency_path() -> Path:
    """The thinking-efficiency metrics of the bundled traces' ``normal`` split, measured by
    ``scripts/measure_thinking_efficiency.py`` (``efficiency_table`` on every row: about a
    minute of sympy on 2 cores, too slow to redo in a notebook)."""
    return data_dir() / "traces" / "mip_math52_efficiency.csv"


# ----------------------------------------------------------------------------- loading

def load_mip_traces(path: str | Path | None = None, markers: Iterable[str] | None = None,
                    grade: bool = True) -> pd.DataFrame:
    """The bundled traces as one DataFrame, one row per (model, split, problem): 416 rows.

    Args:
        path: another file in the same format (default ``mip_traces_path()``).
        markers: reflection markers to count in the thinking (default
            ``qwqlab.lengths.DEFAULT_MARKERS``); adds a column per marker, ``reflections`` and
            ``reflections_per_1k`` (per 1,000 thinking tokens; NaN without thinking), as
            ``qwqlab.lengths.marker_counts`` computes them. ``()`` adds none.
        grade: add ``extracted_answer`` and ``correct`` (qwqlab's grader against
            ``gold_answer``), next to the source's ``judge_label``. The answer is read as
            ``load_traces`` reads one (``grading.extract_answer``): the last ``\\boxed{}`` after
            the thinking; for a model that writes no thinking (Qwen2.5-32B-Instruct), an
            unboxed answer too (``grading.answer_only_rules``). ``judge_agreement`` measures
            how often that agrees with the judge.

    Returns:
        The file's columns (see ``data/traces/README.md``) plus the ones above; ``model`` and
        ``split`` are ordered categoricals (``MODELS``, ``SPLITS``).
    """
    with gzip.open(path or mip_traces_path(), "rt", encoding="utf-8") as f:
        df = pd.DataFrame([json.loads(line) for line in f])
    df["model"] = pd.Categorical(df["model"], categories=[m for m in MODELS if m in set(df["model"])]
                                 + sorted(set(df["model"]) - set(MODELS)), ordered=True)
    df["split"] = pd.Categorical(df["split"], categories=list(SPLITS), ordered=True)
    if markers is None or list(markers):
        df = df.join(marker_counts(df, markers=markers))
    if grade:
        extracted = [extract_answer(as_completion(t, a), bool(t)) for t, a in zip(df["thinking"], df["answer_text"])]
        df["extracted_answer"] = pd.Series(extracted, index=df.index, dtype=object)
        df["correct"] = [grade_answer(p, g) for p, g in zip(extracted, df["gold_answer"])]
    return df


def overview(traces: pd.DataFrame) -> pd.DataFrame:
    """Per model and split: rows, mean and median thinking tokens, qwqlab's grader's accuracy and
    the share the source's judge labels correct (the table of ``data/traces/README.md``)."""
    return traces.groupby(["model", "split"], observed=True).agg(
        rows=("think_tokens", "size"), think_tokens_mean=("think_tokens", "mean"),
        think_tokens_median=("think_tokens", "median"), qwqlab_correct=("correct", "mean"),
        judge_says_correct=("judge_label", lambda s: (s == 1).mean())).reset_index()


def judge_agreement(traces: pd.DataFrame, verdicts=None, by=("model", "split")) -> pd.DataFrame:
    """How often a grader agrees with the source's judge, per group (the data card's agreement table).

    A row agrees when the grader says correct (1.0) exactly where the judge says correct
    (``judge_label == 1``); a grader's 0.0, and a ``None``/NaN (cannot be judged), agree with the
    judge's 2 (wrong) and 0 (says the question lacks information).

    Args:
        traces: ``load_mip_traces()`` (or the rows of it to measure).
        verdicts: one grader's verdicts, aligned with ``traces`` (default its ``correct``:
            qwqlab's grader); ``scripts/measure_grader_agreement.py`` passes another grader's.
        by: the grouping columns (``"model"`` alone: all of a model's rows).

    Returns:
        One row per group: ``rows``, ``agreement`` (share of rows that agree), ``grader_correct``
        and ``judge_correct`` (shares each says correct).
    """
    v = traces["correct"] if verdicts is None else pd.Series(list(verdicts), index=traces.index, dtype=float)
    df = traces[list([by] if isinstance(by, str) else by)].copy()
    df["grader_correct"] = (v == 1.0).astype(float)
    df["judge_correct"] = (traces["judge_label"] == 1).astype(float)
    df["agreement"] = (df["grader_correct"] == df["judge_correct"]).astype(float)
    return df.groupby(list([by] if isinstance(by, str) else by), observed=True).agg(
        rows=("agreement", "size"), agreement=("agreement", "mean"), grader_correct=("grader_correct", "mean"),
        judge_correct=("judge_correct", "mean")).reset_index()


# ----------------------------------------------------------------------------- candidate answers

_ANSWER_IS = re.compile(r"\banswer\s+(?:is|should\s+be|would\s+be|must\s+be|=|:)\s*:?\s*", re.IGNORECASE)
# an "=" that states a value: not "==", "<=", ">=", "!=", nor the arrow "=>"
_EQUALS = re.compile(r"(?<![<>!=\\])=(?![=>])\s*")
# where a stated answer ends: end of line, sentence end, a closing math delimiter, ", ", a
# linking word, an implication arrow, or another "=" (then the value is what follows it)
_STOP = re.compile(r"\n|\$|\\\]|\\\)|[.;!?](?:\s|$)|,\s|\s(?:so|and|which|because|since|but|then)\b"
                   r"|=>|->|\u21d2|\u2192|\\implies|\\Rightarrow|\\to\b|(?<![<>!=])=(?!=)", re.IGNORECASE)
_MAX_CANDIDATE_CHARS = 40
# unevaluated arithmetic is not a stated answer: a product, a bracket combined with an
# operator, or a sum/difference of plain numbers ("(1/2)*(64/17)", "(-3) + 2 + 12", "12 + 4")
_UNEVALUATED = re.compile(r"[*\u00d7\u00b7]|\\times|\\cdot|\)\s*[-+/^]|[-+/]\s*\(|^-?\d+(?:\.\d+)?(?:\s*[-+]\s*\d+(?:\.\d+)?)+$")


def candidate_answers(thinking: str) -> list[tuple[int, str]]:
    """Answers stated in ``thinking``, as (end position, answer text), in order of their end.

    Three shapes: ``\\boxed{X}`` (nested braces kept), "answer is X" (also "should be",
    "would be", "answer: X"), and the value after an ``=`` (not ``==``, ``<=``, ``>=``,
    ``!=`` or ``=>``). A plain answer runs to the end of its line or sentence, a closing math
    delimiter, ", ", a linking word ("so", "and", "which", ...) or an implication arrow; in a
    chain ``a = b = c`` only ``c`` is a stated value (``b`` is followed by another ``=``). One
    longer than 40 characters is skipped, and so is unevaluated arithmetic (a product, a
    bracket combined with an operator, a sum of plain numbers: "(1/2)*(64/17)", "12 + 4"),
    which Math-Verify would evaluate and find equal before the model has computed it.
    The end position is where the answer text ends.

    >>> candidate_answers("so 12+35 = 47. Then 2*3 = 5+1 = 6, and the answer is 47.")
    [(13, '47'), (33, '6'), (55, '47')]
    """
    found: list[tuple[int, str]] = []
    for start, close in boxed_spans(thinking):  # the package's one reader of boxes
        found.append((close, thinking[start:close].strip()))
    limit = _MAX_CANDIDATE_CHARS + 1
    for pattern in (_ANSWER_IS, _EQUALS):
        for m in pattern.finditer(thinking):
            start = m.end()
            if thinking.startswith(("\\boxed", "\\fbox"), start):
                continue  # counted as a box
            stop = _STOP.search(thinking, start, start + limit)
            if stop is None and start + limit < len(thinking):
                continue  # too long to be a stated answer
            if stop is not None and stop.group(0) == "=":
                continue  # a chain goes on: the value is after the next "="
            end = stop.start() if stop else len(thinking)
            raw = thinking[start:end].rstrip()
            text = raw.strip().strip("$").strip().rstrip(".,:").strip()
            if text and not _UNEVALUATED.search(text):
                found.append((start + len(raw), text))
    return sorted(found, key=lambda x: x[0])


def first_correct_position(thinking: str, gold: str) -> tuple[int, str] | None:
    """(end position, answer) of the first candidate answer in ``thinking`` that equals ``gold``.

    Candidates come from ``candidate_answers``, are compared with ``grade_answer`` in order
    of position (each distinct text graded once), and ``None`` means none matched.
    """
    seen: dict[str, float | None] = {}
    for end, text in candidate_answers(thinking):
        if text not in seen:
            seen[text] = grade_answer(text, gold)
        if seen[text] == 1.0:
            return end, text
    return None


# ----------------------------------------------------------------------------- efficiency

@lru_cache(maxsize=1)
def _default_tokenizer():
    from qwqlab.tokenizer import qwq_tokenizer

    return qwq_tokenizer()


def _count(texts, tokenizer) -> np.ndarray:
    return count_tokens(texts, tokenizer=tokenizer if tokenizer is not None else _default_tokenizer())


def thought_switches(thinking) -> np.ndarray:
    """ThinkBench's number of thought switches: ``THOUGHT_SWITCH_MARKERS`` occurrences per text.

    Whole words, case-insensitive, via ``qwqlab.lengths.marker_counts`` (ThinkBench counts
    raw substrings, so it would also count "another wayward"; the phrases do not overlap).
    """
    texts = pd.Series([thinking] if isinstance(thinking, str) else list(thinking), dtype=object)
    return marker_counts(texts, markers=THOUGHT_SWITCH_MARKERS)["reflections"].to_numpy()


def thinking_efficiency(thinking, gold, tokenizer=None) -> pd.DataFrame:
    """ThinkBench's thinking-efficiency metrics for each (thinking, gold answer) pair.

    Args:
        thinking: one thinking text or a sequence of them.
        gold: the gold answer(s), one per thinking text.
        tokenizer: what tokens are counted with (default QwQ-32B's, ``qwqlab.tokenizer``);
            any tokenizer ``qwqlab.lengths.count_tokens`` takes.

    Returns:
        One row per text: ``reasoning_tokens``, ``first_correct_tokens`` (tokens of
        ``thinking[:end]`` where ``end`` closes the first correct candidate),
        ``reflection_tokens``, ``token_efficiency``, ``thought_switches``,
        ``first_correct_found``, ``first_correct_answer`` (the candidate's text) and
        ``first_correct_char`` (``end``; -1 when none). With no correct candidate:
        first-correct 0, reflection = reasoning tokens, efficiency 0 (ThinkBench's numbers).

    >>> thinking_efficiency("12+35=47. Wait, check: 47.", "47")  # doctest: +SKIP
    """
    texts = [thinking] if isinstance(thinking, str) else ["" if t is None else str(t) for t in thinking]
    golds = [gold] if isinstance(gold, str) or gold is None else list(gold)
    if len(golds) != len(texts):
        raise ValueError(f"{len(texts)} thinking texts but {len(golds)} gold answers; give one gold per text")
    hits = [first_correct_position(t, g) for t, g in zip(texts, golds)]
    reasoning = _count(texts, tokenizer)
    prefixes = [t[:h[0]] if h else "" for t, h in zip(texts, hits)]
    first = _count(prefixes, tokenizer)
    with np.errstate(divide="ignore", invalid="ignore"):
        efficiency = np.where(reasoning > 0, first / np.maximum(reasoning, 1), np.nan)
    return pd.DataFrame({
        "reasoning_tokens": reasoning,
        "first_correct_tokens": first,
        "reflection_tokens": reasoning - first,
        "token_efficiency": efficiency,
        "thought_switches": thought_switches(texts),
        "first_correct_found": [h is not None for h in hits],
        "first_correct_answer": [h[1] if h else None for h in hits],
        "first_correct_char": [h[0] if h else -1 for h in hits],
    })


def efficiency_table(traces: pd.DataFrame, tokenizer=None) -> pd.DataFrame:
    """``thinking_efficiency`` for every row of a traces table (``thinking``, ``gold_answer``).

    Returns the metrics with ``traces``' index, ready to join: ``traces.join(efficiency_table(traces))``.
    """
    out = thinking_efficiency(traces["thinking"].tolist(), traces["gold_answer"].tolist(), tokenizer=tokenizer)
    out.index = traces.index
    return out


#: The columns ``efficiency_table`` returns, in order.
EFFICIENCY_COLUMNS = ("reasoning_tokens", "first_correct_tokens", "reflection_tokens", "token_efficiency",
                      "thought_switches", "first_correct_found", "first_correct_answer", "first_correct_char")
_KEYS = ["model", "split", "problem_index"]


def load_efficiency(traces: pd.DataFrame, path: str | Path | None = None) -> pd.DataFrame:
    """``efficiency_table(traces)``, read from the measured file (``efficiency_path()``) for the
    rows it holds and computed for the others; indexed like ``traces``."""
    file = Path(path) if path else efficiency_path()
    known = pd.read_csv(file, keep_default_na=False, na_values=[""]) if file.exists() else pd.DataFrame(columns=_KEYS)
    keys = traces[_KEYS].astype({"model": str, "split": str}).reset_index()
    merged = keys.merge(known.astype({"model": str, "split": str}), on=_KEYS, how="left").set_index("index")
    todo = merged["reasoning_tokens"].isna() if "reasoning_tokens" in merged else pd.Series(True, index=merged.index)
    out = merged.reindex(columns=list(EFFICIENCY_COLUMNS))
    if todo.any():
        fresh = efficiency_table(traces.loc[todo.index[todo]]).reindex(columns=list(EFFICIENCY_COLUMNS))
        out = pd.concat([out[~todo], fresh]).loc[merged.index] if (~todo).any() else fresh.loc[merged.index]
    out["first_correct_found"] = out["first_correct_found"].astype(bool)
    out.index.name = traces.index.name
    return out.loc[traces.index]


def efficiency_summary(traces: pd.DataFrame, by=("model", "level"), per_row: pd.DataFrame | None = None) -> pd.DataFrame:
    """Mean thinking-efficiency metrics per group (ThinkBench averages per subset, here per
    ``by``), with ``n`` and the share of rows where a correct answer was found in the thinking.

    ThinkBench's ``token_efficiency`` for a subset is the mean of per-row efficiencies; so is this.
    """
    per_row = efficiency_table(traces) if per_row is None else per_row
    df = per_row.copy()
    keys = [by] if isinstance(by, str) else list(by)
    for k in keys:
        df[k] = traces[k].values
    return df.groupby(keys, observed=True, sort=True).agg(
        n=("reasoning_tokens", "size"),
        reasoning_tokens=("reasoning_tokens", "mean"),
        first_correct_tokens=("first_correct_tokens", "mean"),
        reflection_tokens=("reflection_tokens", "mean"),
        token_efficiency=("token_efficiency", "mean"),
        thought_switches=("thought_switches", "mean"),
        first_correct_found=("first_correct_found", "mean"),
    ).reset_index()


def missing_premise_summary(traces: pd.DataFrame) -> pd.DataFrame:
    """Per model: how much longer it thinks when a premise is missing, and how often it says so.

    For each model with both splits: the mean thinking (and whole-response) tokens on the
    problems as posed and with a premise removed, their ratio, and on the missing-premise
    problems the share the source's judge labels 0 (the model says the question lacks
    information: abstains) and 1 (it still gives the original problem's answer, which it
    cannot know). Fan et al. 2025 ("Missing Premise exacerbates Overthinking") report these
    from the same files.
    """
    rows = []
    for model, g in traces.groupby("model", sort=False):
        normal, missing = g[g["split"] == "normal"], g[g["split"] == "missing_premise"]
        if normal.empty or missing.empty:
            continue
        think_n, think_m = normal["think_tokens"].mean(), missing["think_tokens"].mean()
        rows.append({
            "model": model, "n": len(missing),
            "think_tokens_normal": think_n, "think_tokens_missing": think_m,
            "think_ratio": think_m / think_n if think_n else np.nan,
            "completion_tokens_normal": normal["completion_tokens"].mean(),
            "completion_tokens_missing": missing["completion_tokens"].mean(),
            "completion_ratio": missing["completion_tokens"].mean() / normal["completion_tokens"].mean(),
            "abstain_rate": float((missing["judge_label"] == 0).mean()),
            "answers_anyway_rate": float((missing["judge_label"] == 1).mean()),
        })
    return pd.DataFrame(rows)
