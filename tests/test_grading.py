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


# A busy machine is not an expensive answer. CI once graded \boxed{(3, \pi/2)} against
# (3, \frac{\pi}{2}) as a timeout (None): sympy's first tuple-with-pi imports a dozen modules,
# and on a loaded machine that took over MATH_VERIFY_TIMEOUT_S of wall time.

def _in_sympy(source: str):
    """A function whose frames look like sympy's to the timer (it raises only there)."""
    namespace: dict = {}
    exec(compile(source, "site-packages/sympy/fake_slow.py", "exec"), namespace)
    return namespace["work"]


def test_the_timer_counts_cpu_time_not_waiting():
    waits = _in_sympy("import time\ndef work():\n    time.sleep(0.4)\n    return 'done'\n")
    with grading._time_limit(0.05):  # a wall-clock timer raised here (0.05 s < 0.4 s of sleep)
        assert waits() == "done"
    burns = _in_sympy("def work():\n    n = 0\n    while True:\n        n += 1\n")
    start = time.process_time()
    with pytest.raises(grading._Timeout):
        with grading._time_limit(0.1):
            burns()
    assert time.process_time() - start < 1.0  # stopped near its 0.1 s of CPU, not left running


def test_the_garbage_collector_waits_for_the_judgement():
    import gc

    assert gc.isenabled()
    with grading._time_limit(0.5):
        assert not gc.isenabled()  # a full collection of a big heap took 0.16-0.72 s here
    assert gc.isenabled()


def test_sympy_imports_what_it_needs_before_any_timer(tmp_path):
    """The warm-up leaves nothing for sympy to import lazily under the timer, on the answer
    kinds that did (a tuple with pi, a trigonometric value); checked in a fresh process."""
    import subprocess
    import sys

    script = tmp_path / "lazy.py"
    script.write_text(
        "import sys\nfrom qwqlab import grading\ngrading._math_verify()\nbefore = set(sys.modules)\n"
        "verdicts = [grading.answers_match(p, g) for p, g in [('(3, \\\\pi/2)', '\\\\left( 3, \\\\frac{\\\\pi}{2} \\\\right)'),"
        " ('\\\\cos 30', '\\\\frac{\\\\sqrt{3}}{2}'), ('\\\\{1,2\\\\}', '\\\\{2,1\\\\}'), ('2x+1', '1+2x')]]\n"
        "print(verdicts, sorted(set(sys.modules) - before))\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[1.0, 0.0, 1.0, 1.0] []", out
