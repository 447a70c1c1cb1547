"""The one grader (issue 9): each case gets one verdict, the same through every path that grades.

Paths: ``grading.grade``, the accuracy reward, ``MathTask.grade``, ``load_traces`` and maj@k's
vote (a single sample's majority is right exactly when the grader says it is).
"""
from __future__ import annotations

import concurrent.futures as cf
import json
import time

import pytest

from qwqlab import grading
from qwqlab.traces import load_traces
from qwqlab.metrics import maj_at_k
from qwqlab.rewards import make_accuracy_reward
from qwqlab.tasks import MathTask
from qwqlab.tasks.base import Problem

PROMPT = "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n<think>\n"  # the prompt opens the thinking
TOWER = "9^{9^{9^{9^{9}}}}"
CASES = {  # name: (completion, gold, verdict)
    "thin space": ("ok</think>\\boxed{1\\,000}", "1000", 1.0),
    "degrees": ("ok</think>\\boxed{90°}", "90", 1.0),
    "degrees in LaTeX": ("ok</think>\\boxed{90^\\circ}", "90", 1.0),
    "two boxes, the last wins": ("ok</think>\\boxed{3} or rather \\boxed{5}", "5", 1.0),
    "two boxes, not the first": ("ok</think>\\boxed{3} or rather \\boxed{5}", "3", 0.0),
    "escaped dollar in gold": ("ok</think>\\boxed{18.90}", "\\$18.90", 1.0),
    "unit in \\text": ("ok</think>\\boxed{5\\text{ cm}}", "5", 1.0),
    "unparseable gold": ("ok</think>\\boxed{3}", "\\frac{", None),
    "unboxed final answer, answer-only model": ("The answer is 5.", "5", 1.0),
    "unboxed answer after thinking": ("ok</think>The answer is 5.", "5", 0.0),
    "truncated thinking with a box": ("so \\boxed{5} is it? let me", "5", 0.0),
    "equivalent forms": ("ok</think>\\boxed{\\dfrac{1}{2}}", "0.5", 1.0),
    "power tower": (f"ok</think>\\boxed{{{TOWER}}}", "1", 0.0),
}


def _through_every_path(completion: str, gold: str, tmp_path, opens: bool = True) -> dict:
    verdicts = {"grading.grade": grading.grade(completion, gold, prompt_opens_think=opens)}
    prompt = PROMPT if opens else PROMPT.replace("<think>\n", "")
    verdicts["accuracy reward"] = make_accuracy_reward()([prompt], [completion], answer=[gold])[0]
    task = MathTask("t", path=tmp_path / "unused.jsonl", prompt_opens_think=opens)
    verdicts["MathTask.grade"] = task.grade(completion, Problem("x", "q", gold))
    path = tmp_path / "trace.jsonl"
    path.write_text(json.dumps({"question": "q", "response": completion, "gold_answer": gold}) + "\n")
    label = load_traces(path, fields={"gold_answer": "gold_answer"}, prompt_opens_think=opens)["correct"].iloc[0]
    verdicts["load_traces"] = None if label != label else float(label)  # NaN: cannot be judged
    answer = grading.extract_answer(completion, prompt_opens_think=opens)
    if verdicts["grading.grade"] is not None:
        verdicts["maj@1"] = maj_at_k([answer], [verdicts["grading.grade"]], k=1)
    return verdicts


@pytest.mark.parametrize("name", sorted(CASES))
def test_one_verdict_through_every_path(name, tmp_path):
    completion, gold, expected = CASES[name]
    start = time.perf_counter()
    got = _through_every_path(completion, gold, tmp_path, opens="answer-only" not in name)
    assert set(got.values()) == {expected}, got
    assert time.perf_counter() - start < 10  # every path together, on a loaded 2-core machine


def test_the_power_tower_from_a_worker_thread_returns_fast():
    """MathTask on \\boxed{9^{9^{9^{9^{9}}}}} from a worker thread hung for 400 s before."""
    completion, gold, expected = CASES["power tower"]
    task = MathTask("t", path="unused.jsonl")
    start = time.perf_counter()
    with cf.ThreadPoolExecutor(2) as pool:
        verdicts = [pool.submit(task.grade, completion, Problem("x", "q", gold)).result(),
                    pool.submit(grading.grade, completion, gold).result()]
    assert verdicts == [expected, expected] and time.perf_counter() - start < 2.0


def test_normalise_and_answers_equal():
    assert grading.normalise("1,000,000") == "1000000" and grading.normalise("(1,2)") == "(1,2)"
    assert grading.answers_equal("\\frac{1}{2}", "0.5") and not grading.answers_equal("", "")
    assert not grading.answers_equal(None, "1") and not grading.answers_equal("1/3", "0.5")
