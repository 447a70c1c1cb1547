"""The surface every task shares, so a new benchmark is one new file."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Problem:
    """One problem: an id, the question text, the gold answer (``None`` if unknown)."""
    id: str
    question: str
    answer: str | None
    meta: dict[str, Any] = field(default_factory=dict, compare=False)


class Task(Protocol):
    """What ``rollouts.sample``, ``metrics.evaluate``, the rewards and ``train_grpo`` call on a task.

    Every task in ``qwqlab.tasks`` has all five; a new one is one new file with them.
    """
    name: str

    def problems(self, n: int | None = None) -> list[Problem]:
        """The task's problems (the first ``n`` when given)."""

    def prompt(self, tokenizer, problem: Problem) -> str:
        """The full prompt text for ``problem``."""

    def extract_answer(self, completion: str) -> str | None:
        """The answer the completion gives (the rollout table's ``extracted_answer``), ``None`` if none."""

    def judge(self, completion: str, problem: Problem) -> tuple[float | None, str]:
        """``(score, note)``: the grade, and when it is ``None`` (or the answer is missing) why."""

    def grade(self, completion: str, problem: Problem) -> float | None:
        """1.0 correct, 0.0 wrong, ``None`` when it cannot be judged (no gold answer)."""
