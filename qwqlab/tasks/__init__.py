"""Tasks: each one has the same small surface (``problems``, ``prompt``, ``grade``)."""
from qwqlab.tasks.base import Problem, Task
from qwqlab.tasks.arithmetic import ArithmeticTask
from qwqlab.tasks.gpqa import GPQATask
from qwqlab.tasks.math import MathTask, aime24, aime25, math500

#: Task name -> factory; ``get_task("aime24", path="aime_2024.jsonl")``.
TASKS = {"arithmetic": ArithmeticTask, "aime24": aime24, "aime25": aime25, "math500": math500,
         "gpqa_diamond": GPQATask}


def get_task(name: str, **kwargs):
    """A task by name (see ``TASKS``), e.g. ``get_task("math500", path="math500.jsonl")``."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known: {sorted(TASKS)}")
    return TASKS[name](**kwargs)


__all__ = ["Problem", "Task", "ArithmeticTask", "MathTask", "GPQATask", "TASKS", "get_task"]
