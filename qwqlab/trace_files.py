"""Reading reasoning traces from elsewhere into a rollouts table: ``load_traces``.

A vLLM dump, another harness's output, a public dataset: jsonl (optionally .gz), a JSON array
or parquet, with a field mapping at most, graded with the lab's one grader (``grade_answer``,
which is ``grading.answers_match`` on the answer ``grading.extract_answer`` reads). The bundled
MiP-Overthinking traces and the thinking-efficiency metrics are in ``qwqlab.traces``, which
re-exports the names here (``from qwqlab.traces import load_traces`` keeps working).
"""
from __future__ import annotations

import gzip
import json
import math
from functools import lru_cache
from pathlib import Path
from typing import Callable, Mapping

import pandas as pd

from qwqlab.chat import THINK_CLOSE, THINK_OPEN, split_think
from qwqlab.grading import answers_match, extract_answer
from qwqlab.lengths import count_tokens

# ----------------------------------------------------------------------------- grading

def grade_answer(predicted: str | None, gold) -> float | None:
    """qwqlab's grader on one answer: 1.0 equal, 0.0 not, ``None`` if gold cannot be judged
    (missing, NaN, or unparseable).

    The only place the traces modules grade: everything (``correct`` of ``load_traces`` and of the
    bundled traces, ``qwqlab.traces``' first-correct search) goes through it, so a change of the package's
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


def as_completion(thinking: str | None, answer: str | None) -> str:
    """A response given as separate thinking and answer, as one completion (``</think>`` between them)."""
    thinking, answer = (thinking or "").strip(), (answer or "").strip()
    return f"{thinking}\n{THINK_CLOSE}\n\n{answer}" if thinking else answer


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
            opened, completion = bool(thinking), as_completion(thinking, answer_text)
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
