"""Reasoning traces: reading trace files, QwQ-32B's own traces bundled, and thinking efficiency.

``load_traces`` reads traces from elsewhere (a vLLM dump, another harness, a public dataset:
jsonl, a JSON array or parquet, with a field mapping at most) into a rollouts table, graded
with the lab's one grader. Below: the bundled traces and the thinking-efficiency metrics,
computed without an LLM judge.

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
import math
import re
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np
import pandas as pd

from qwqlab.chat import THINK_CLOSE, THINK_OPEN, boxed_spans, split_think
from qwqlab.grading import answers_match, extract_answer
from qwqlab.lengths import count_tokens, marker_counts
from qwqlab.paths import data_dir

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


# ----------------------------------------------------------------------------- grading

def grade_answer(predicted: str | None, gold) -> float | None:
    """qwqlab's grader on one answer: 1.0 equal, 0.0 not, ``None`` if gold cannot be judged
    (missing, NaN, or unparseable).

    The only place this module grades: everything here (``correct`` of the bundled traces and of
    ``load_traces``, the first-correct search) goes through it, so a change of the package's
    grader (``grading.answers_match``) is a change of this one line.
    """
    if gold is None or (isinstance(gold, float) and math.isnan(gold)):
        return None
    return _grade(predicted, str(gold))


@lru_cache(maxsize=1 << 16)
def _grade(predicted: str | None, gold: str) -> float | None:
    # Memoised: a thinking states the same candidate many times, and each Math-Verify
    # comparison costs tens of milliseconds of sympy.
    return answers_match(predicted, gold)


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
            unboxed final "the answer is X" too.

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
        extracted = [extract_answer(_completion(t, a), bool(t)) for t, a in zip(df["thinking"], df["answer_text"])]
        df["extracted_answer"] = pd.Series(extracted, index=df.index, dtype=object)
        df["correct"] = [grade_answer(p, g) for p, g in zip(extracted, df["gold_answer"])]
    return df


def _completion(thinking: str | None, answer: str | None) -> str:
    """A response given as separate thinking and answer, as one completion (``</think>`` between them)."""
    thinking, answer = (thinking or "").strip(), (answer or "").strip()
    return f"{thinking}\n{THINK_CLOSE}\n\n{answer}" if thinking else answer


def overview(traces: pd.DataFrame) -> pd.DataFrame:
    """Per model and split: rows, mean and median thinking tokens, qwqlab's grader's accuracy and
    the share the source's judge labels correct (the table of ``data/traces/README.md``)."""
    return traces.groupby(["model", "split"], observed=True).agg(
        rows=("think_tokens", "size"), think_tokens_mean=("think_tokens", "mean"),
        think_tokens_median=("think_tokens", "median"), qwqlab_correct=("correct", "mean"),
        judge_says_correct=("judge_label", lambda s: (s == 1).mean())).reset_index()


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


# ----------------------------------------------------------------------------- reading trace files

class TraceFileError(ValueError):
    """A traces file could not be read; the message names the file, the line and the problem."""


#: What ``load_traces`` looks for, canonical name -> field name in the file (``None``: absent).
#: Either ``response`` (the full completion, thinking included) or ``reasoning`` and/or
#: ``answer`` (separate fields) must be present; ``correct`` (a label) or ``gold_answer``
#: (graded here) gives correctness. Dotted names reach into nested records
#: (``"outputs.0.text"`` for vLLM's ``RequestOutput`` dumps).
DEFAULT_TRACE_FIELDS = {
    "question": "question",
    "response": "response",
    "reasoning": None,
    "answer": None,
    "correct": None,
    "gold_answer": None,
    "problem_id": None,
    "sample_index": None,
    "finish_reason": None,
    "model": None,
}

_TRUE = {"true", "1", "yes", "correct", "1.0", "t", "y"}
_FALSE = {"false", "0", "no", "incorrect", "wrong", "0.0", "f", "n"}
_MISSING = object()


def _lookup(record, dotted: str):
    cur = record
    for part in dotted.split("."):
        if isinstance(cur, Mapping) and part in cur:
            cur = cur[part]
        elif isinstance(cur, Mapping) and dotted in cur:  # a flat key that contains dots
            return cur[dotted]
        elif isinstance(cur, (list, tuple)) and part.lstrip("-").isdigit() and -len(cur) <= int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return _MISSING
    return cur


def _as_label(value, where: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value in (0, 1) or (isinstance(value, float) and math.isnan(value)):
            return float(value)
        raise TraceFileError(f"{where}: correctness label {value!r} is not 0/1 or true/false")
    if isinstance(value, str):
        v = value.strip().lower()
        if v in _TRUE:
            return 1.0
        if v in _FALSE:
            return 0.0
        if v in ("", "none", "null", "nan"):
            return math.nan
    raise TraceFileError(f"{where}: correctness label {value!r} is not 0/1 or true/false")


def _prompt_opens_think(rows: list[dict], setting) -> dict:
    """``load_traces``' ``prompt_opens_think`` per model name (``None``: the file's rows without one)."""
    settings = setting if isinstance(setting, Mapping) else {}
    default = "auto" if isinstance(setting, Mapping) else setting
    if default not in (True, False, "auto") or any(v not in (True, False, "auto") for v in settings.values()):
        raise ValueError(f"prompt_opens_think must be True, False, 'auto' or a dict of those by model; got {setting!r}")
    tagged = {}
    for row in rows:
        has_tag = row["response"] is not None and (THINK_CLOSE in row["response"] or THINK_OPEN in row["response"])
        tagged[row["model"]] = tagged.get(row["model"], False) or has_tag
    out = {}
    for model, any_tag in tagged.items():
        choice = settings.get(model, default)
        out[model] = any_tag if choice == "auto" else choice
    return out


def _iter_jsonl(path: Path):
    """(line number, record) for each non-blank line; raises TraceFileError on bad input."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise TraceFileError(f"{path}: could not be read ({e}); a truncated .gz file also fails here") from e
    if not data.strip():
        raise TraceFileError(f"{path}: the file is empty (no traces)")
    if path.suffix == ".json" and data.lstrip()[:1] == b"[":  # a .json file holding one JSON array of traces
        try:
            records = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise TraceFileError(f"{path}: starts like a JSON array but is not valid JSON ({e})") from e
        for number, record in enumerate(records, start=1):
            if not isinstance(record, dict):
                raise TraceFileError(f"{path}, item {number}: expected a JSON object per trace, "
                                     f"got {type(record).__name__}")
            yield f"{path}, item {number}", record
        return
    lines = data.split(b"\n")
    ends_with_newline = data.endswith(b"\n")
    last = len(lines) - (1 if ends_with_newline else 0)
    for number, raw in enumerate(lines[:last], start=1):
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise TraceFileError(f"{path}, line {number}: not valid UTF-8 (byte {e.start})") from e
        try:
            record = json.loads(text)
        except json.JSONDecodeError as e:
            if number == last and not ends_with_newline:
                raise TraceFileError(
                    f"{path}, line {number}: the file ends in the middle of a record ({e.msg} at "
                    f"column {e.colno}); it looks truncated (partly written or cut off). Nothing "
                    "was loaded: re-export or finish writing it.") from e
            raise TraceFileError(f"{path}, line {number}: not valid JSON ({e.msg} at column {e.colno})") from e
        if not isinstance(record, dict):
            raise TraceFileError(f"{path}, line {number}: expected a JSON object (one trace per line), "
                                 f"got {type(record).__name__}")
        yield f"{path}, line {number}", record


def _from_chat(value):
    """A list of chat messages (``{"role", "content"}`` dicts) becomes the assistant's text; else unchanged."""
    if isinstance(value, list) and value and all(isinstance(m, Mapping) and "content" in m for m in value):
        said = [m["content"] for m in value if m.get("role", "assistant") == "assistant"]
        return said[-1] if said else ""
    return value


def _iter_parquet(path: Path):
    try:
        import pyarrow.parquet as pq
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises ArrowInvalid/OSError on a cut-off or corrupt file
        raise TraceFileError(f"{path}: not a complete parquet file ({e}); it may be truncated or "
                             "still being written. Nothing was loaded.") from e
    if table.num_rows == 0:
        raise TraceFileError(f"{path}: the file holds no rows (no traces)")
    for number, record in enumerate(table.to_pylist(), start=1):
        yield f"{path}, row {number}", record


def load_traces(path: str | Path, fields: Mapping[str, str | None] | None = None, tokenizer=None,
                grader: Callable[[str | None, str], float | None] | None = None,
                prompt_opens_think: bool | str | Mapping[str, bool | str] = "auto") -> pd.DataFrame:
    """Read reasoning traces from a jsonl (optionally .gz) or parquet file into a rollouts table.

    Args:
        path: the file. Every line (jsonl) or row (parquet) is one trace, or one question
            with a list of responses (``response`` holding a list; ``correct`` then a list of
            the same length or one value for all).
        fields: canonical name -> the file's field name, over ``DEFAULT_TRACE_FIELDS``.
            For example a vLLM dump: ``{"question": "prompt", "response": "outputs.0.text",
            "finish_reason": "outputs.0.finish_reason"}``; a dataset with separate fields:
            ``{"question": "problem", "response": None, "reasoning": "reasoning_content",
            "answer": "content", "gold_answer": "answer"}``. Set ``question`` to ``None``
            if the file has none (each line is then its own problem).
        tokenizer: counts tokens (see ``qwqlab.lengths.count_tokens``); ``None`` uses the whitespace
            fallback, which counts words, not tokens.
        grader: ``(extracted_answer, gold) -> 1.0 | 0.0 | None`` when grading against
            ``gold_answer``; default ``grade_answer`` (qwqlab's one grader).
        prompt_opens_think: whether a response starts inside the thinking (QwQ's and R1's
            templates add ``<think>`` to the prompt, so a response has ``</think>`` and no
            ``<think>``; see ``qwqlab.chat.split_think``). ``True``: a response without
            ``</think>`` was cut off while thinking (truncated, no answer). ``False``: a
            response without tags is all answer (an answer-only model: Qwen2.5-Instruct, o1).
            ``"auto"`` (default) decides per model (``fields={"model": ...}``; without it, per
            file): ``True`` if any of its responses has a think tag, else ``False``. So a file
            of a reasoning model and one of an answer-only model both load with a field
            mapping at most; only a reasoning model none of whose responses ever closes its
            thinking needs ``True`` said. A dict sets it per model name (``"auto"`` for the
            rest: ``{"QwQ-32B": True}``).

    Returns:
        The rollouts table (glossary columns; ``prompt`` holds the question; ``model`` when
        mapped; ``prompt_opens_think`` as decided), one row per response, in file order.
        ``correct`` is NaN where the file gives neither a label nor a gradable gold answer;
        ``finish_reason`` is None unless mapped.

    Raises:
        TraceFileError: naming the file, the line (or row) and what was wrong: invalid
            JSON, a missing or mistyped field, an unreadable label; a file that ends in the
            middle of a record is reported as truncated, and nothing is returned. (A file
            cut exactly between two lines cannot be told from a shorter complete file;
            compare the row count with the producer's when that matters.)
    """
    path = Path(path)
    unknown = set(fields or {}) - set(DEFAULT_TRACE_FIELDS)
    if unknown:
        raise ValueError(f"unknown trace field(s) {sorted(unknown)}; known: {sorted(DEFAULT_TRACE_FIELDS)}")
    f = {**DEFAULT_TRACE_FIELDS, **(fields or {})}
    if fields and ("reasoning" in fields or "answer" in fields) and "response" not in fields:
        f["response"] = None  # separate fields given: do not also look for a full response
    if not (f["response"] or f["reasoning"] or f["answer"]):
        raise ValueError("map the completion: fields={'response': ...} (full text) or "
                         "{'reasoning': ..., 'answer': ...} (separate fields)")
    if f["correct"] and f["gold_answer"]:
        raise ValueError("give either a correctness label ('correct') or a gold answer ('gold_answer'), not both")
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such traces file")
    name = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
    if name in (".jsonl", ".jsonl.gz", ".json", ".ndjson"):
        records = _iter_jsonl(path)
    elif name == ".parquet":
        records = _iter_parquet(path)
    else:
        raise TraceFileError(f"{path}: unsupported file type {name!r}; use .jsonl, .jsonl.gz or .parquet")
    grader = grader or grade_answer

    def get(record, key, where, required=True, kinds=(str,)):
        col = f[key]
        if not col:
            return None
        value = _lookup(record, col)
        if value is _MISSING:
            if not required:
                return None
            present = ", ".join(sorted(record)) if isinstance(record, Mapping) else "?"
            raise TraceFileError(f"{where}: no field {col!r} for {key} (fields present: {present}). "
                                 f"Map yours with fields={{{key!r}: 'your_field'}}.")
        if value is not None and kinds and not isinstance(value, kinds):
            raise TraceFileError(f"{where}: field {col!r} ({key}) should be "
                                 f"{' or '.join(k.__name__ for k in kinds)}, got {type(value).__name__}")
        return value

    rows, question_ids = [], {}
    for where, record in records:
        question = get(record, "question", where)
        given_pid = get(record, "problem_id", where, kinds=(str, int))
        if given_pid is not None:
            pid = str(given_pid)
        elif question is not None:
            pid = question_ids.setdefault(question, f"{path.stem}-{len(question_ids)}")
        else:
            pid = f"{path.stem}-{where.rsplit(' ', 1)[-1]}"
        response = get(record, "response", where, kinds=(str, list))
        reasoning = get(record, "reasoning", where, kinds=(str, list))
        answer = get(record, "answer", where, kinds=(str, list))
        label = get(record, "correct", where, kinds=())
        gold = get(record, "gold_answer", where, kinds=())
        finish = get(record, "finish_reason", where, required=False, kinds=(str, list))
        sidx = get(record, "sample_index", where, kinds=(int,))
        response, reasoning, answer = (_from_chat(v) for v in (response, reasoning, answer))
        multi = [v for v in (response, reasoning, answer) if isinstance(v, list)]
        n = len(multi[0]) if multi else 1
        if multi and n == 0:
            raise TraceFileError(f"{where}: an empty list of responses; drop the record or give at least one response")
        if multi and any(len(m) != n for m in multi):
            raise TraceFileError(f"{where}: response lists of different lengths")

        def pick(v, i, what):
            if isinstance(v, list):
                if len(v) != n:
                    raise TraceFileError(f"{where}: {what} has {len(v)} entries for {n} responses")
                v = v[i]
            return v

        model = get(record, "model", where, kinds=(str,))
        for i in range(n):
            r, th, an = pick(response, i, "response"), pick(reasoning, i, "reasoning"), pick(answer, i, "answer")
            for v, what in ((r, "response"), (th, "reasoning"), (an, "answer")):
                if v is not None and not isinstance(v, str):
                    raise TraceFileError(f"{where}: {what} #{i} should be text, got {type(v).__name__}")
            fr = pick(finish, i, "finish_reason") if isinstance(finish, list) else finish
            g = None if gold is None else (pick(gold, i, "gold_answer") if isinstance(gold, list) else gold)
            rows.append({"problem_id": pid, "sample_index": sidx if sidx is not None and n == 1 else None,
                         "model": model, "prompt": question, "response": r, "reasoning": th, "answer": an,
                         "finish_reason": fr, "gold": g,
                         "label": (_as_label(pick(label, i, "correct") if isinstance(label, list) else label, where)
                                   if f["correct"] else math.nan)})
    opens = _prompt_opens_think(rows, prompt_opens_think)
    for row in rows:
        r, th, an = row.pop("response"), row.pop("reasoning"), row.pop("answer")
        if r is not None:
            opened = opens[row["model"]]
            parts = split_think(r, opened)
            thinking, answer_text, completion = parts.thinking, parts.answer, r
            unclosed = parts.case == "unclosed"
        else:  # separate fields: thinking, if any, came first
            thinking, answer_text = (th or "").strip(), (an or "").strip()
            opened, completion = bool(thinking), _completion(thinking, answer_text)
            unclosed = bool(thinking) and not answer_text
        row["prompt_opens_think"] = opened
        # qwqlab's one extraction policy (grading.extract_answer): last box; unboxed only for answer-only outputs
        extracted = extract_answer(completion, opened)
        label, g, fr = row.pop("label"), row.pop("gold"), row["finish_reason"]
        if f["gold_answer"]:
            grade = grader(extracted, g)
            label = math.nan if grade is None else float(grade)
        row.update(completion=completion, thinking=thinking, answer_text=answer_text, extracted_answer=extracted,
                   is_truncated=(fr == "length") if fr is not None else unclosed, correct=label,
                   gold_answer=None if g is None else str(g))
    columns = ["problem_id", "sample_index", "model", "prompt", "completion", "thinking", "answer_text",
               "extracted_answer", "finish_reason", "is_truncated", "correct", "gold_answer", "prompt_opens_think"]
    df = pd.DataFrame(rows)[columns]
    if not f["model"]:
        df = df.drop(columns="model")
    if df["sample_index"].isna().any():
        df["sample_index"] = df.groupby("problem_id", sort=False).cumcount()
    df["sample_index"] = df["sample_index"].astype(int)
    df["think_tokens"] = count_tokens(df["thinking"], tokenizer)
    df["answer_tokens"] = count_tokens(df["answer_text"], tokenizer)
    df["completion_tokens"] = count_tokens(df["completion"], tokenizer)
    df["is_truncated"] = df["is_truncated"].astype(bool)
    if not f["gold_answer"]:
        df = df.drop(columns="gold_answer")
    return df
