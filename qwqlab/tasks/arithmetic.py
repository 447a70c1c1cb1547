"""Multi-digit addition: qwq-nano's synthetic task, generated offline from a seed.

A problem is ``What is a+b?``. Careful reasoning adds column by column, least significant
digit first, one line per column (``7+5+1=13``), then states the sum. The traces that teach
qwq-nano mix careful reasoning with the habits of a base model that RL can improve on:
skipping the thinking and guessing, cutting it short, slipping on a step, and sometimes
noticing the slip ("wait, ...") and fixing it. A guess forgets the carries, so thinking
really does pay.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass

from qwqlab.chat import THINK_CLOSE, build_prompt, format_answer
from qwqlab.grading import extract_answer, grade
from qwqlab.tasks.base import Problem

#: How often each reasoning habit appears in qwq-nano's training traces.
DEFAULT_MIX = {"careful": 0.50, "reflect": 0.10, "slip": 0.10, "rush": 0.10, "skip": 0.20}
REFLECTIONS = ("wait, ", "hmm, let me check: ", "but wait, ")


def is_held_out(a: int, b: int) -> bool:
    """One pair in ten is reserved for evaluation and never appears in training data."""
    return (a * 7919 + b * 104729) % 10 == 0


def careless_sum(a: int, b: int) -> int:
    """The sum written without carrying: what a guess produces."""
    out, place = 0, 1
    while a or b:
        out += ((a % 10 + b % 10) % 10) * place
        a, b, place = a // 10, b // 10, place * 10
    return out


def _columns(a: int, b: int) -> list[tuple[int, int]]:
    da, db = str(a)[::-1], str(b)[::-1]
    n = max(len(da), len(db))
    return [(int(da[i]) if i < len(da) else 0, int(db[i]) if i < len(db) else 0) for i in range(n)]


def _wrong(s: int, rng: random.Random) -> int:
    return max(0, s + rng.choice([-2, -1, 1, 2]))


def reasoning_trace(a: int, b: int, mode: str = "careful", rng: random.Random | None = None) -> str:
    """A completion for ``a+b`` in one reasoning habit (see ``DEFAULT_MIX``), answer included."""
    rng = rng or random.Random(0)
    cols = _columns(a, b)
    lines: list[str] = []
    if mode == "skip":
        return f"{THINK_CLOSE}\n\n{format_answer(str(careless_sum(a, b)))}"
    if mode == "rush":
        k = rng.randrange(1, len(cols))
        carry = 0
        for x, y in cols[:k]:
            s = x + y + carry
            lines.append(f"{x}+{y}+{carry}={s}")
            carry = s // 10
        answer = careless_sum(a, b)
    else:
        bad_step = rng.randrange(len(cols)) if mode in ("reflect", "slip") else -1
        carry, digits = 0, []
        for i, (x, y) in enumerate(cols):
            s = x + y + carry
            if i == bad_step:
                wrong = _wrong(s, rng)
                lines.append(f"{x}+{y}+{carry}={wrong}")
                if mode == "reflect":
                    lines.append(f"{rng.choice(REFLECTIONS)}{x}+{y}+{carry}={s}")
                else:
                    s = wrong
            else:
                lines.append(f"{x}+{y}+{carry}={s}")
            digits.append(s % 10)
            carry = s // 10
        answer = int(("1" if carry else "") + "".join(str(d) for d in reversed(digits)))
    lines.append(f"so {a}+{b}={answer}")
    return "\n".join(lines) + f"\n{THINK_CLOSE}\n\n{format_answer(str(answer))}"


@dataclass
class ArithmeticTask:
    """Addition of two numbers of ``min_digits`` to ``max_digits`` digits.

    ``split="test"`` draws only held-out pairs, ``"train"`` never does.
    """
    split: str = "test"
    seed: int = 0
    min_digits: int = 2
    max_digits: int = 3
    name: str = "arithmetic"

    def __post_init__(self):
        if self.split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', not {self.split!r}")
        if not 1 <= self.min_digits <= self.max_digits:
            raise ValueError("need 1 <= min_digits <= max_digits "
                             f"(got {self.min_digits}, {self.max_digits})")

    def sample_pair(self, rng: random.Random) -> tuple[int, int]:
        while True:
            a, b = (rng.randrange(10 ** (d - 1) if d > 1 else 0, 10 ** d) for d in
                    (rng.randint(self.min_digits, self.max_digits),
                     rng.randint(self.min_digits, self.max_digits)))
            if is_held_out(a, b) == (self.split == "test"):
                return a, b

    def problems(self, n: int | None = 200) -> list[Problem]:
        rng = random.Random(f"{self.name}-{self.split}-{self.seed}")
        out = []
        for i in range(n if n is not None else 200):
            a, b = self.sample_pair(rng)
            out.append(Problem(id=f"add-{self.split}-{self.seed}-{i}", question=f"What is {a}+{b}?",
                               answer=str(a + b), meta={"a": a, "b": b}))
        return out

    def problem_for(self, question: str) -> Problem | None:
        """The problem a question in this task's words asks ("What is 25+17?"), or ``None``.

        Lets a chat box grade a typed question as training does (``grade``).
        """
        m = re.fullmatch(r"\s*What is (\d+)\s*\+\s*(\d+)\s*\?\s*", question)
        if m is None:
            return None
        a, b = int(m.group(1)), int(m.group(2))
        return Problem(id=f"add-typed-{a}-{b}", question=f"What is {a}+{b}?", answer=str(a + b), meta={"a": a, "b": b})

    def prompt(self, tokenizer, problem: Problem) -> str:
        return build_prompt(tokenizer, problem.question)

    def extract_answer(self, completion: str) -> str | None:
        """The last ``\\boxed{}`` after the thinking (``grading.extract_answer``); ``None`` if truncated."""
        return extract_answer(completion)

    def judge(self, completion: str, problem: Problem) -> tuple[float | None, str]:
        """``(score, note)``: the grade, and a note when there is no gold answer or no answer."""
        if problem.answer is None:
            return None, "no gold answer"
        score = self.grade(completion, problem)
        return score, "" if self.extract_answer(completion) is not None else "no answer after the thinking (truncated?)"

    def grade(self, completion: str, problem: Problem) -> float | None:
        if problem.answer is None:
            return None
        return grade(completion, problem.answer)  # qwqlab's one grader: integers take its exact fast path
