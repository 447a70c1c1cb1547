"""Competition maths: AIME 2024, AIME 2025 and MATH-500, graded with Math-Verify.

QwQ-32B reports AIME as the mean over 64 samples per problem (see ``qwqlab.metrics``).
Problems come from a local ``.jsonl``/``.json``/``.parquet`` file with ``problem`` and
``answer`` fields (as on the Hub), from ``data/tasks/NAME.jsonl`` if present, or, when the
machine is online, from the Hub through ``datasets``:

>>> task = MathTask("aime24", path="aime_2024.jsonl")           # doctest: +SKIP
>>> task = MathTask("math500")   # data/tasks/math500.jsonl, else downloads HuggingFaceH4/MATH-500  # doctest: +SKIP

Answers are compared by Math-Verify (Hugging Face's grader, used by open-r1), never by a
hand-written comparator, so ``\\frac{1}{2}``, ``0.5`` and ``1/2`` agree. Its timeouts use
``signal.alarm``, which only works in the main thread; elsewhere (a thread pool, a reward
server) qwqlab runs the check in a helper thread and stops waiting after the same timeout,
so a pathological expression can never hang the caller. A gold answer Math-Verify cannot
parse, and a check that times out, give ``None`` ("cannot be judged"), never a silent 0.
"""
from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path

from qwqlab.chat import build_prompt, extract_boxed, split_think
from qwqlab.tasks.base import Problem

#: Hub datasets behind each named benchmark: (repo id, config, split).
SOURCES = {
    "aime24": ("HuggingFaceH4/aime_2024", None, "train"),
    "aime25": ("yentinglin/aime_2025", None, "train"),
    "math500": ("HuggingFaceH4/MATH-500", None, "test"),
}
TITLES = {"aime24": "AIME 2024", "aime25": "AIME 2025", "math500": "MATH-500"}
QUESTION_FIELDS = ("problem", "question", "Problem", "Question")
ANSWER_FIELDS = ("answer", "Answer", "final_answer", "expected_answer")
ID_FIELDS = ("id", "unique_id", "ID", "problem_id", "problem_idx", "idx")


class _MathVerifyTimeout(Exception):
    pass


class _QuietTimeoutNotice(logging.Filter):
    # With parsing_timeout=None Math-Verify warns that nothing guards against hangs; here
    # the helper thread does, so that notice would only mislead.
    def filter(self, record):
        return "Timeout is disabled" not in record.getMessage()


for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).addFilter(_QuietTimeoutNotice())


def _guarded(fn, timeout_seconds: int, *args, **kwargs):
    """Run a Math-Verify call with a timeout that works in any thread.

    In the main thread Math-Verify's own ``signal.alarm`` timeout interrupts the work. In any
    other thread signals are unavailable, so the call runs with Math-Verify's timeout off in a
    daemon helper thread, and we stop waiting after ``timeout_seconds`` (the helper is
    abandoned; sympy cannot be interrupted from outside).
    """
    from math_verify.errors import TimeoutException

    main = threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGALRM")
    if main:
        try:
            return fn(*args, timeout=timeout_seconds, **kwargs)
        except TimeoutException as e:
            raise _MathVerifyTimeout(str(e)) from None
    box: dict = {}

    def work():
        try:
            box["value"] = fn(*args, timeout=None, **kwargs)
        except BaseException as e:  # noqa: BLE001 - handed back to the caller's thread
            box["error"] = e

    helper = threading.Thread(target=work, daemon=True, name="qwqlab-math-verify")
    helper.start()
    helper.join(timeout_seconds)
    if helper.is_alive():
        raise _MathVerifyTimeout(f"Math-Verify took longer than {timeout_seconds} s")
    if "error" in box:
        if isinstance(box["error"], TimeoutException):
            raise _MathVerifyTimeout(str(box["error"]))
        raise box["error"]
    return box["value"]


def _parse(text: str, timeout=None):
    from math_verify import parse

    try:
        return parse(text, parsing_timeout=timeout, raise_on_error=True)
    except Exception:  # noqa: BLE001 - a parse error means "nothing parseable"; timeouts are BaseException
        return []


def _verify(gold, pred, timeout=None) -> bool:
    from math_verify import verify

    try:
        return bool(verify(gold, pred, timeout_seconds=timeout, raise_on_error=True))
    except Exception:  # noqa: BLE001 - as Math-Verify's own default: a failed comparison is "not equal"
        return False


def math_verify_equal(gold: str, answer: str, timeout_seconds: int = 5) -> bool | None:
    """Whether ``answer`` (text, ``\\boxed{}`` preferred) equals the ``gold`` answer; ``None`` if undecidable.

    >>> math_verify_equal("1/2", "so \\\\boxed{0.5}")
    True
    """
    verdict, _ = _check(gold, answer, timeout_seconds, {})
    return None if verdict is None else verdict == 1.0


def _gold_text(gold: str) -> str:
    gold = str(gold).strip()
    return gold if ("$" in gold or "\\boxed" in gold) else f"${gold}$"


def _check(gold: str, answer_text: str, timeout_seconds: int, cache: dict) -> tuple[float | None, str]:
    try:
        if gold not in cache:
            cache[gold] = _guarded(_parse, timeout_seconds, _gold_text(gold))
        gold_parsed = cache[gold]
        # Math-Verify falls back to the raw string when it cannot parse; a gold answer that
        # is only that fallback (e.g. "\\frac{") is not something to compare against.
        if not any(not isinstance(g, str) for g in gold_parsed):
            return None, f"Math-Verify cannot parse the gold answer {gold!r}"
        pred = _guarded(_parse, timeout_seconds, answer_text)
        if not pred:
            return 0.0, "no parseable answer"
        return float(_guarded(_verify, timeout_seconds, gold_parsed, pred)), ""
    except _MathVerifyTimeout:
        return None, f"Math-Verify timed out (> {timeout_seconds} s)"


def _first(record: dict, names: tuple[str, ...]):
    for n in names:
        if n in record and record[n] is not None and str(record[n]) != "nan":
            return record[n]
    return None


def read_records(path: str | Path) -> list[dict]:
    """Rows of a ``.jsonl``, ``.json``, ``.parquet`` or ``.csv`` file as dicts."""
    import json

    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist.")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, list) else data.get("data", data.get("rows", []))
    if suffix == ".parquet":
        df = pd.read_parquet(path)
    elif suffix == ".csv":
        df = pd.read_csv(path)
    else:
        raise ValueError(f"{path}: expected a .jsonl, .json, .parquet or .csv file, not {suffix!r}.")
    return df.astype(object).where(df.notna(), None).to_dict("records")


@dataclass
class MathTask:
    """A maths benchmark with numeric or LaTeX answers: ``aime24``, ``aime25``, ``math500`` or your own file.

    Args:
        name: one of ``SOURCES`` (then ``path`` is optional) or any name for a file of yours.
        path: a local ``.jsonl``/``.json``/``.parquet`` file with ``problem``/``answer`` fields.
        download: allow fetching ``SOURCES[name]`` through ``datasets`` when no local file is found.
        timeout_seconds: the most one Math-Verify parse or comparison may take.
    """
    name: str = "math500"
    path: str | Path | None = None
    download: bool = True
    timeout_seconds: int = 5
    _problems: list[Problem] | None = field(default=None, init=False, repr=False, compare=False)
    _gold_cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.path is None and self.name not in SOURCES:
            raise ValueError(f"MathTask({self.name!r}) needs path=: a .jsonl/.parquet file with problem/answer "
                             f"fields. Known benchmarks (path optional): {sorted(SOURCES)}.")
        if not isinstance(self.timeout_seconds, int) or self.timeout_seconds < 1:
            raise ValueError("timeout_seconds must be a whole number of seconds >= 1 (signal.alarm needs one).")

    # -- data
    def _local_file(self) -> Path | None:
        if self.path is not None:
            return Path(self.path)
        from qwqlab.paths import data_dir

        for suffix in (".jsonl", ".parquet", ".json"):
            p = data_dir() / "tasks" / f"{self.name}{suffix}"
            if p.exists():
                return p
        return None

    def _download(self) -> list[dict]:
        repo, config, split = SOURCES[self.name]
        hint = (f"Download it where there is internet (e.g. `datasets.load_dataset({repo!r}, split={split!r})"
                f".to_json('{self.name}.jsonl')`) and pass path=, or put it at data/tasks/{self.name}.jsonl.")
        if not self.download:
            raise FileNotFoundError(f"No local file for {TITLES[self.name]} and download=False. {hint}")
        try:
            from datasets import load_dataset

            ds = load_dataset(repo, config, split=split)
        except Exception as e:  # noqa: BLE001 - offline, gated, renamed: all get the same advice
            raise FileNotFoundError(f"{TITLES[self.name]} is not available: no local file, and loading "
                                    f"{repo!r} from the Hub failed ({type(e).__name__}: {e}). {hint}") from e
        return [dict(r) for r in ds]

    def records_to_problems(self, records: list[dict]) -> list[Problem]:
        """Map file or Hub rows (``problem``/``answer``/``id`` and their usual variants) to ``Problem``s."""
        out = []
        for i, r in enumerate(records):
            question = _first(r, QUESTION_FIELDS)
            if question is None:
                raise ValueError(f"{self.name}: row {i} has no problem text (looked for {QUESTION_FIELDS}; "
                                 f"it has {sorted(r)}).")
            answer = _first(r, ANSWER_FIELDS)
            pid = _first(r, ID_FIELDS)
            meta = {k: v for k, v in r.items() if k not in QUESTION_FIELDS + ANSWER_FIELDS}
            out.append(Problem(id=f"{self.name}-{pid if pid is not None else i}", question=str(question),
                               answer=None if answer is None else str(answer).strip(), meta=meta))
        ids = [p.id for p in out]
        if len(set(ids)) != len(ids):  # ids in the file repeat: number the rows instead
            out = [Problem(f"{self.name}-{i}", p.question, p.answer, p.meta) for i, p in enumerate(out)]
        return out

    def problems(self, n: int | None = None) -> list[Problem]:
        """The first ``n`` problems (all when ``None``), in file order."""
        if self._problems is None:
            local = self._local_file()
            records = read_records(local) if local is not None else self._download()
            self._problems = self.records_to_problems(records)
        return list(self._problems if n is None else self._problems[:n])

    # -- the task surface
    def prompt(self, tokenizer, problem: Problem) -> str:
        return build_prompt(tokenizer, problem.question)

    def extract_answer(self, completion: str) -> str | None:
        """The last ``\\boxed{}`` after the thinking; ``None`` if there is none."""
        return extract_boxed(split_think(completion).answer)

    def judge(self, completion: str, problem: Problem) -> tuple[float | None, str]:
        """``(score, note)``: 1.0/0.0, or ``None`` with the reason it cannot be judged."""
        if problem.answer is None or not str(problem.answer).strip():
            return None, "no gold answer"
        answer = split_think(completion).answer
        if not answer.strip():
            return 0.0, "no answer after the thinking (truncated?)"
        return _check(problem.answer, answer, self.timeout_seconds, self._gold_cache)

    def grade(self, completion: str, problem: Problem) -> float | None:
        """1.0 correct, 0.0 wrong, ``None`` when it cannot be judged (see ``judge`` for why)."""
        return self.judge(completion, problem)[0]


def aime24(path: str | Path | None = None, **kwargs) -> MathTask:
    return MathTask("aime24", path, **kwargs)


def aime25(path: str | Path | None = None, **kwargs) -> MathTask:
    return MathTask("aime25", path, **kwargs)


def math500(path: str | Path | None = None, **kwargs) -> MathTask:
    return MathTask("math500", path, **kwargs)
