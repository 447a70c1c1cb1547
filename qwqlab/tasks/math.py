"""Competition maths: AIME 2024, AIME 2025 and MATH-500, graded with Math-Verify.

QwQ-32B reports AIME as the mean over 64 samples per problem (see ``qwqlab.metrics``).
Problems come from a local ``.jsonl``/``.json``/``.parquet`` file with ``problem`` and
``answer`` fields (as on the Hub), from ``data/tasks/NAME.jsonl`` if present, or, when the
machine is online, from the Hub through ``datasets``. AIME 2024 and AIME 2025 are bundled,
so they load offline: ``data/tasks/aime24.jsonl`` and ``aime25.jsonl`` are the Qwen team's
own evaluation files for QwQ-32B (github:QwenLM/QwQ, Apache-2.0; data card in
``data/tasks/README.md``), 30 problems each. Their rows hold ``prompt`` (the problem followed
by QwQ's instruction) and ``answer``; the instruction is taken off the question, so the
prompt is built exactly as for every other task (``chat.build_prompt`` adds it back).

>>> len(MathTask("aime24").problems()), MathTask("aime25").problems()[0].answer
(30, '70')
>>> task = MathTask("aime24", path="aime_2024.jsonl")           # your own copy  # doctest: +SKIP
>>> task = MathTask("math500")   # data/tasks/math500.jsonl, else downloads HuggingFaceH4/MATH-500  # doctest: +SKIP

Answers are graded by qwqlab's one grader (``qwqlab.grading``: Math-Verify behind one
normaliser, one extraction policy and one timeout policy that never hangs, in any thread), so
``\\frac{1}{2}``, ``0.5`` and ``1/2`` agree. A gold answer Math-Verify cannot parse, and a check
that times out, give ``None`` ("cannot be judged"), never a silent 0.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from qwqlab.chat import MATH_INSTRUCTION, build_prompt
from qwqlab.grading import answers_match, extract_answer
from qwqlab.tasks.base import Problem

#: Hub datasets behind each named benchmark: (repo id, config, split).
SOURCES = {
    "aime24": ("HuggingFaceH4/aime_2024", None, "train"),
    "aime25": ("yentinglin/aime_2025", None, "train"),
    "math500": ("HuggingFaceH4/MATH-500", None, "test"),
}
TITLES = {"aime24": "AIME 2024", "aime25": "AIME 2025", "math500": "MATH-500"}
#: Where a row's question is, in order; ``prompt`` is how QwQ's evaluation files name it.
QUESTION_FIELDS = ("problem", "question", "Problem", "Question", "prompt")
ANSWER_FIELDS = ("answer", "Answer", "final_answer", "expected_answer")
ID_FIELDS = ("id", "unique_id", "ID", "problem_id", "problem_idx", "idx")


def _first(record: dict, names: tuple[str, ...]):
    for n in names:
        if n in record and record[n] is not None and str(record[n]) != "nan":
            return record[n]
    return None


def _question_text(text: str) -> str:
    """The question without a trailing copy of the lab's maths instruction (QwQ's files end
    each prompt with it), so that ``build_prompt`` does not say it twice."""
    text = text.strip()
    if text.endswith(MATH_INSTRUCTION):
        text = text[: -len(MATH_INSTRUCTION)].rstrip()
    return text


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

    ``aime24`` and ``aime25`` are bundled (``data/tasks``, QwQ's evaluation files) and load offline.

    Args:
        name: one of ``SOURCES`` (then ``path`` is optional) or any name for a file of yours.
        path: a local ``.jsonl``/``.json``/``.parquet`` file with ``problem``/``answer`` fields.
        download: allow fetching ``SOURCES[name]`` through ``datasets`` when no local file is found.
        prompt_opens_think: the model's prompt opens the thinking (QwQ, R1 distills, qwq-nano);
            False for answer-only models, whose unboxed answers are then read too
            (``grading.answer_only_rules``: "the answer is X", a bold answer, a final equation,
            the last value).
    """
    name: str = "math500"
    path: str | Path | None = None
    download: bool = True
    prompt_opens_think: bool = True
    _problems: list[Problem] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.path is None and self.name not in SOURCES:
            raise ValueError(f"MathTask({self.name!r}) needs path=: a .jsonl/.parquet file with problem/answer "
                             f"fields. Known benchmarks (path optional): {sorted(SOURCES)}.")

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
        """Map file or Hub rows (``problem``/``answer``/``id`` and their usual variants) to ``Problem``s.

        A question that ends with ``chat.MATH_INSTRUCTION`` (QwQ's evaluation files) loses it
        here: ``prompt`` adds it, as for every task. Rows without an id are numbered from 0.
        """
        out = []
        for i, r in enumerate(records):
            question = _first(r, QUESTION_FIELDS)
            if question is None:
                raise ValueError(f"{self.name}: row {i} has no problem text (looked for {QUESTION_FIELDS}; "
                                 f"it has {sorted(r)}).")
            answer = _first(r, ANSWER_FIELDS)
            pid = _first(r, ID_FIELDS)
            meta = {k: v for k, v in r.items() if k not in QUESTION_FIELDS + ANSWER_FIELDS}
            out.append(Problem(id=f"{self.name}-{pid if pid is not None else i}",
                               question=_question_text(str(question)),
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
        """The answer by qwqlab's one policy (``grading.extract_answer``): the last ``\\boxed{}``
        after the thinking; for an answer-only output, ``grading.answer_only_rules`` without a
        box; ``None`` if truncated or none."""
        return extract_answer(completion, self.prompt_opens_think)

    def judge(self, completion: str, problem: Problem) -> tuple[float | None, str]:
        """``(score, note)``: 1.0/0.0, or ``None`` with the reason it cannot be judged."""
        if problem.answer is None or not str(problem.answer).strip():
            return None, "no gold answer"
        answer = self.extract_answer(completion)
        score = answers_match(answer, str(problem.answer))
        if score is None:
            return None, (f"cannot be judged: Math-Verify cannot parse the gold answer {problem.answer!r}, "
                          "or the check timed out (qwqlab.grading's timeout policy)")
        if answer is None:
            return score, "no answer after the thinking (truncated?)"
        return score, ""

    def grade(self, completion: str, problem: Problem) -> float | None:
        """1.0 correct, 0.0 wrong, ``None`` when it cannot be judged (see ``judge`` for why)."""
        return self.judge(completion, problem)[0]


def aime24(path: str | Path | None = None, **kwargs) -> MathTask:
    return MathTask("aime24", path, **kwargs)


def aime25(path: str | Path | None = None, **kwargs) -> MathTask:
    return MathTask("aime25", path, **kwargs)


def math500(path: str | Path | None = None, **kwargs) -> MathTask:
    return MathTask("math500", path, **kwargs)
