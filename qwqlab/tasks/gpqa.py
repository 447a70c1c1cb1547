"""GPQA-Diamond: 198 graduate-level multiple-choice questions, graded by letter.

The dataset is gated on the Hub (``Idavidrein/gpqa``): accept its terms there, download
``gpqa_diamond.csv`` and pass its path (or put it at ``data/tasks/gpqa_diamond.csv``).
qwqlab never ships or fetches it unasked. Rows have GPQA's columns: ``Question``,
``Correct Answer``, ``Incorrect Answer 1`` to ``3`` and ``Record ID``.

The four choices are shuffled per question with a seed, so the correct letter is spread
evenly over A-D (a model that always answers "A" scores about 25%), and the same seed
always gives the same letters.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from qwqlab.chat import build_prompt, extract_boxed, split_think
from qwqlab.tasks.base import Problem
from qwqlab.tasks.math import read_records

LETTERS = "ABCD"
GPQA_INSTRUCTION = ("Please reason step by step, and put the letter of the correct choice (A, B, C or D) "
                    "within \\boxed{}.")
HUB_SOURCE = ("Idavidrein/gpqa", "gpqa_diamond", "train")
_COLUMNS = {"question": ("Question", "question"),
            "correct": ("Correct Answer", "correct_answer"),
            "incorrect": (("Incorrect Answer 1", "incorrect_answer_1"), ("Incorrect Answer 2", "incorrect_answer_2"),
                          ("Incorrect Answer 3", "incorrect_answer_3")),
            "id": ("Record ID", "record_id", "id")}
_LETTER_IN_BOX = re.compile(r"^\s*(?:\\text\{)?\s*\(?\s*([A-Da-d])\s*\)?\s*\}?\s*(?:[.):]|$)")
# Only capital letters outside a box: "the answer is a prime" must not read as choice A.
_LETTER_IN_TEXT = re.compile(r"(?i:answer|choice|option)\s*(?i:is)?\s*[:\s]*\(?\**([A-D])\b")


def _get(record: dict, names):
    for n in names:
        if n in record and record[n] is not None and str(record[n]).strip() and str(record[n]) != "nan":
            return str(record[n]).strip()
    return None


def extract_letter(completion: str) -> str | None:
    """The chosen letter: from the last ``\\boxed{}`` after the thinking, else "the answer is (X)".

    >>> extract_letter("...</think> The answer is \\\\boxed{C}.")
    'C'
    >>> extract_letter("</think> Answer: (b)") is None   # lower-case outside a box is too ambiguous
    True
    """
    answer = split_think(completion).answer
    boxed = extract_boxed(answer)
    if boxed is not None:
        m = _LETTER_IN_BOX.match(boxed)
        return m.group(1).upper() if m else None
    hits = _LETTER_IN_TEXT.findall(answer)
    return hits[-1].upper() if hits else None


@dataclass
class GPQATask:
    """GPQA-Diamond from a local file, choices shuffled with ``seed``, graded by letter."""
    path: str | Path | None = None
    seed: int = 0
    name: str = "gpqa_diamond"
    download: bool = False
    _problems: list[Problem] | None = field(default=None, init=False, repr=False, compare=False)

    def _records(self) -> list[dict]:
        if self.path is not None:
            return read_records(self.path)
        from qwqlab.paths import data_dir

        for suffix in (".csv", ".jsonl", ".parquet"):
            p = data_dir() / "tasks" / f"gpqa_diamond{suffix}"
            if p.exists():
                return read_records(p)
        how = ("GPQA is gated on the Hugging Face Hub (Idavidrein/gpqa): accept its terms there, download "
               "gpqa_diamond.csv, and pass GPQATask(path='gpqa_diamond.csv') (or put it at "
               "data/tasks/gpqa_diamond.csv).")
        if not self.download:
            raise FileNotFoundError(f"No GPQA file given. {how}")
        try:
            from datasets import load_dataset

            repo, config, split = HUB_SOURCE
            return [dict(r) for r in load_dataset(repo, config, split=split)]
        except Exception as e:  # noqa: BLE001 - gated, offline or no token: same advice
            raise FileNotFoundError(f"Could not load GPQA from the Hub ({type(e).__name__}: {e}). {how}") from e

    def records_to_problems(self, records: list[dict]) -> list[Problem]:
        out = []
        for i, r in enumerate(records):
            question, correct = _get(r, _COLUMNS["question"]), _get(r, _COLUMNS["correct"])
            wrong = [_get(r, names) for names in _COLUMNS["incorrect"]]
            if question is None or correct is None or any(w is None for w in wrong):
                raise ValueError(f"GPQA row {i} lacks a question, its correct answer or three incorrect ones "
                                 f"(columns 'Question', 'Correct Answer', 'Incorrect Answer 1-3'); it has {sorted(r)}.")
            rid = _get(r, _COLUMNS["id"]) or str(i)
            choices = [correct] + wrong
            order = list(range(4))
            random.Random(f"gpqa-{self.seed}-{rid}").shuffle(order)
            shuffled = [choices[j] for j in order]
            letter = LETTERS[order.index(0)]
            text = question + "\n\n" + "\n".join(f"{LETTERS[k]}) {c}" for k, c in enumerate(shuffled))
            out.append(Problem(id=f"gpqa-{rid}", question=text, answer=letter,
                               meta={"choices": shuffled, "correct_answer": correct, "raw_question": question}))
        return out

    def problems(self, n: int | None = None) -> list[Problem]:
        """The first ``n`` questions (all when ``None``), choices shuffled with ``seed``."""
        if self._problems is None:
            self._problems = self.records_to_problems(self._records())
        return list(self._problems if n is None else self._problems[:n])

    def prompt(self, tokenizer, problem: Problem) -> str:
        return build_prompt(tokenizer, problem.question, instruction=GPQA_INSTRUCTION)

    def extract_answer(self, completion: str) -> str | None:
        return extract_letter(completion)

    def judge(self, completion: str, problem: Problem) -> tuple[float | None, str]:
        if problem.answer is None:
            return None, "no gold answer"
        letter = extract_letter(completion)
        if letter is None:
            return 0.0, "no answer letter found"
        return float(letter == problem.answer.strip().upper()), ""

    def grade(self, completion: str, problem: Problem) -> float | None:
        """1.0 if the chosen letter is the correct one, 0.0 otherwise, ``None`` without a gold letter."""
        return self.judge(completion, problem)[0]
