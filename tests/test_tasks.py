"""Tasks: AIME/MATH-500 (Math-Verify) and GPQA on small fixture files, plus the shared surface."""
from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import re
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from qwqlab.chat import MATH_INSTRUCTION, build_prompt
from qwqlab.paths import data_dir
from qwqlab.tasks import TASKS, ArithmeticTask, GPQATask, MathTask, Problem, get_task
from qwqlab.tasks.gpqa import GPQA_INSTRUCTION, LETTERS, extract_letter

FIXTURES = Path(__file__).parent / "fixtures"
sys.path.insert(0, str(FIXTURES))


@pytest.fixture(scope="module")
def tok():
    from fake_lm import fake_tokenizer
    return fake_tokenizer()


@pytest.fixture
def math500():
    return MathTask("math500", path=FIXTURES / "math500_sample.jsonl")


# ----------------------------------------------------------------------------- loading

def test_aime_and_math500_fixtures_load_with_hub_fields():
    aime = get_task("aime24", path=FIXTURES / "aime24_sample.jsonl")
    probs = aime.problems()
    assert len(probs) == 4 and len(aime.problems(2)) == 2
    assert probs[0].id == "aime24-60" and probs[0].answer == "001"
    assert "solution" in probs[0].meta and "answer" not in probs[0].meta
    aime25 = get_task("aime25", path=FIXTURES / "aime25_sample.jsonl").problems()
    assert [p.id for p in aime25] == ["aime25-I-1", "aime25-I-2", "aime25-I-3"]
    m = get_task("math500", path=FIXTURES / "math500_sample.jsonl").problems()
    assert m[0].answer == "\\frac{1}{2}" and m[-1].answer is None
    assert len({p.id for p in m}) == len(m)


def test_parquet_and_data_dir_files(tmp_path, monkeypatch):
    records = pd.read_json(FIXTURES / "aime25_sample.jsonl", lines=True)
    records.to_parquet(tmp_path / "aime25.parquet")
    from_parquet = MathTask("aime25", path=tmp_path / "aime25.parquet").problems()
    assert [p.answer for p in from_parquet] == ["19", "210", "5"]
    # without path=, data/tasks/NAME.* is used ($QWQLAB_DATA points data/ elsewhere)
    (tmp_path / "tasks").mkdir()
    records.to_parquet(tmp_path / "tasks" / "aime25.parquet")
    monkeypatch.setenv("QWQLAB_DATA", str(tmp_path))
    assert [p.id for p in MathTask("aime25").problems()] == [p.id for p in from_parquet]


QWQ_EVAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "qwq-eval"


@pytest.mark.parametrize("name", ["aime24", "aime25"])
def test_qwq_aime_files_are_bundled_and_load_offline(name, tok, monkeypatch):
    """issue 19, item 1: QwQ's own AIME files (data/tasks, Apache-2.0) load with no network, 30
    integer-answer problems each, prompted like every other task (the instruction once, at the end)."""
    import datasets

    def offline(*a, **k):
        raise AssertionError("a bundled benchmark must not reach the Hub")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    task = MathTask(name, download=False)
    probs = task.problems()
    assert len(probs) == 30 and len({p.id for p in probs}) == 30
    assert all(re.fullmatch(r"\d{1,3}", p.answer) and 0 <= int(p.answer) <= 999 for p in probs)  # AIME: 000-999
    raw = [json.loads(line) for line in (data_dir() / "tasks" / f"{name}.jsonl").read_text().splitlines()]
    assert [p.answer for p in probs] == [str(r["answer"]) for r in raw]
    for p, r in zip(probs, raw):  # the question is the file's prompt without QwQ's instruction
        assert r["prompt"] == f"{p.question}\n{MATH_INSTRUCTION}" and MATH_INSTRUCTION not in p.question
    prompt = task.prompt(tok, probs[0])
    assert prompt == build_prompt(tok, probs[0].question) == get_task("math500", path=FIXTURES / "math500_sample.jsonl"
                                                                      ).prompt(tok, Problem("x", probs[0].question, "1"))
    assert prompt.count(MATH_INSTRUCTION) == 1
    assert task.grade(f"</think>\n\\boxed{{{probs[0].answer}}}", probs[0]) == 1.0
    card = (data_dir() / "tasks" / "README.md").read_text()
    assert "620a5eadc89ff464d339367dd9c9973a93215c81" in card and "Apache" in (data_dir() / "tasks" / "LICENSE").read_text()
    digest = hashlib.sha256((data_dir() / "tasks" / f"{name}.jsonl").read_bytes()).hexdigest()
    assert digest in card  # the card names each file's sha256
    if QWQ_EVAL.is_dir():  # copied unchanged from ../shared/data/qwq-eval (the lab's copy of the QwQ repository)
        assert hashlib.sha256((QWQ_EVAL / f"{name}.jsonl").read_bytes()).hexdigest() == digest


def test_hub_loading_through_datasets_is_mapped(monkeypatch, tmp_path):
    import datasets

    calls = []

    def fake_load_dataset(repo, config=None, split=None):
        calls.append((repo, split))
        return [{"problem": "What is $1+1$?", "answer": 2, "unique_id": "test/a/1.json"}]

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    monkeypatch.setenv("QWQLAB_DATA", str(tmp_path))       # no local copy
    probs = MathTask("math500").problems()
    assert calls == [("HuggingFaceH4/MATH-500", "test")]
    assert probs == [Problem("math500-test/a/1.json", "What is $1+1$?", "2")]


def test_offline_and_missing_files_say_what_to_do(monkeypatch, tmp_path):
    import datasets

    def offline(*a, **k):
        raise ConnectionError("no internet")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    monkeypatch.setenv("QWQLAB_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="(?s)AIME 2024.*no internet.*path="):
        MathTask("aime24").problems()
    with pytest.raises(FileNotFoundError, match="download=False"):
        MathTask("aime24", download=False).problems()
    with pytest.raises(ValueError, match="needs path="):
        MathTask("my_olympiad")
    with pytest.raises(FileNotFoundError, match="gated"):
        GPQATask().problems()
    with pytest.raises(FileNotFoundError):
        MathTask("aime24", path=tmp_path / "nope.jsonl").problems()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question_text": "?", "answer": 1}\n')
    with pytest.raises(ValueError, match="no problem text"):
        MathTask("mine", path=bad).problems()


def test_registry():
    assert set(TASKS) >= {"arithmetic", "aime24", "aime25", "math500", "gpqa_diamond"}
    assert isinstance(get_task("arithmetic"), ArithmeticTask)
    with pytest.raises(ValueError, match="known"):
        get_task("mmlu")


# ----------------------------------------------------------------------------- Math-Verify grading

@pytest.mark.parametrize("completion,index,expected", [
    ("1/2 it is.\n</think>\n\nThe answer is \\boxed{0.5}.", 0, 1.0),         # 0.5 == \frac{1}{2}
    ("</think>\n\\boxed{\\dfrac{2}{4}}", 0, 1.0),
    ("</think>\n\\boxed{\\frac{1}{3}}", 0, 0.0),
    ("</think>\n\\boxed{(3, \\pi/2)}", 1, 1.0),
    ("</think>\n\\boxed{3, 2}", 2, 1.0),                                         # sets compare unordered
    ("</think>\n\\boxed{\\sqrt{50}}", 3, 1.0),
    ("</think>\n\\boxed{\\text{Sunday}}", 4, 1.0),
    ("</think>\n\\boxed{\\text{Monday}}", 4, 0.0),
])
def test_math_verify_grades_equivalent_forms(math500, completion, index, expected):
    assert math500.grade(completion, math500.problems()[index]) == expected


def test_unjudgeable_is_none_with_a_reason_and_no_answer_is_wrong(math500):
    probs = math500.problems()
    assert math500.judge("</think>\\boxed{1}", probs[5]) == (None, "no gold answer")
    broken = Problem("b", "?", "\\frac{")
    score, note = math500.judge("</think>\\boxed{3}", broken)
    assert score is None and "cannot parse the gold answer" in note
    score, note = math500.judge("1+1=2\n1+2=3", probs[0])            # truncated inside the thinking
    assert score == 0.0 and "no answer" in note
    assert math500.extract_answer("think</think> so \\boxed{\\frac{1}{2}}.") == "\\frac{1}{2}"
    aime = MathTask("aime24", path=FIXTURES / "aime24_sample.jsonl")
    assert aime.grade("</think>\\boxed{1}", aime.problems()[0]) == 1.0     # gold "001"


def test_grading_works_in_threads(math500):
    probs = math500.problems()
    cases = [("</think>\\boxed{0.5}", probs[0]), ("</think>\\boxed{7}", probs[0]),
             ("</think>\\boxed{5\\sqrt{2}}", probs[3]), ("</think>\\boxed{1}", probs[5])] * 3
    in_main = [math500.grade(c, p) for c, p in cases]
    with cf.ThreadPoolExecutor(4) as pool:  # signal.alarm would raise ValueError here
        in_threads = list(pool.map(lambda cp: math500.grade(*cp), cases))
    assert in_threads == in_main == [1.0, 0.0, 1.0, None] * 3


def _slow(*args, **kwargs):
    """A runaway sympy computation: busy for 10 s (the timer counts CPU time, so it must burn it)."""
    end = time.monotonic() + 10
    while time.monotonic() < end:
        pass
    return True


@pytest.mark.parametrize("where", ["main thread", "worker thread"])
def test_a_hanging_comparison_times_out_as_unjudgeable(monkeypatch, where):
    import math_verify.grader

    from qwqlab import grading

    grading._math_verify()  # its warm-up runs the real comparison, as it does before any grading
    monkeypatch.setattr(math_verify.grader, "sympy_expr_eq", _slow)
    task = MathTask("t", path=FIXTURES / "aime24_sample.jsonl")
    p = Problem("h", "?", "\\frac{14}{3}")  # not an integer: Math-Verify must compare
    start = time.perf_counter()
    if where == "main thread":
        verdict = task.judge("</think>\\boxed{\\frac{28}{6}}", p)
    else:
        with cf.ThreadPoolExecutor(1) as pool:
            verdict = pool.submit(task.judge, "</think>\\boxed{\\frac{28}{6}}", p).result()
    assert time.perf_counter() - start < 5
    assert verdict[0] is None and "timed out" in verdict[1]


def test_a_hanging_parse_times_out(monkeypatch):
    import math_verify.parser

    from qwqlab import grading

    grading._math_verify()
    task = MathTask("t", path=FIXTURES / "aime24_sample.jsonl")
    p = Problem("h", "?", "\\frac{14}{3}")
    monkeypatch.setattr(math_verify.parser, "extract_target_from_pred", _slow)
    start = time.perf_counter()
    assert task.judge("</think>\\boxed{\\frac{28}{6}}", p)[0] is None
    assert time.perf_counter() - start < 5


# ----------------------------------------------------------------------------- GPQA

def test_gpqa_shuffles_with_a_seed_and_keeps_the_right_answer():
    path = FIXTURES / "gpqa_diamond_sample.csv"
    a, b = GPQATask(path, seed=0).problems(), GPQATask(path, seed=0).problems()
    assert a == b and [p.meta["choices"] for p in a] == [p.meta["choices"] for p in b]
    other = GPQATask(path, seed=1).problems()
    assert [p.answer for p in a] != [p.answer for p in other]   # 5 questions: the letters move
    for p in a:
        assert p.meta["choices"][LETTERS.index(p.answer)] == p.meta["correct_answer"]
        assert sorted(p.meta["choices"]) == sorted(set(p.meta["choices"]))
        assert all(f"{L}) " in p.question for L in LETTERS)
    assert a[0].id == "gpqa-recQWQ001"


def test_gpqa_prompt_and_letter_grading(tok):
    task = GPQATask(FIXTURES / "gpqa_diamond_sample.csv")
    p = task.problems()[0]
    prompt = task.prompt(tok, p)
    assert GPQA_INSTRUCTION in prompt and prompt.endswith("<think>\n")
    wrong = next(L for L in LETTERS if L != p.answer)
    assert task.grade(f"hmm\n</think>\nThe answer is \\boxed{{{p.answer}}}.", p) == 1.0
    assert task.grade(f"</think>\n\\boxed{{\\text{{({p.answer})}}}}", p) == 1.0
    assert task.grade(f"</think>\n\\boxed{{{wrong}}}", p) == 0.0
    assert task.judge("</think>\nI am not sure.", p) == (0.0, "no answer letter found")
    assert task.grade(f"</think>\nThe answer is ({p.answer}).", p) == 1.0


def test_extract_letter_is_conservative():
    assert extract_letter("</think> \\boxed{B}") == "B"
    assert extract_letter("</think> \\boxed{(d)}") == "D"
    assert extract_letter("</think> \\boxed{42}") is None
    assert extract_letter("</think> The answer is a prime number.") is None
    assert extract_letter("the answer is (C), let me check") is None   # still thinking: no answer section


def test_gpqa_rejects_rows_without_choices(tmp_path):
    bad = tmp_path / "g.csv"
    bad.write_text("Question,Correct Answer\nWhy?,Because\n")
    with pytest.raises(ValueError, match="three incorrect"):
        GPQATask(bad).problems()


# ----------------------------------------------------------------------------- the shared surface

@pytest.mark.parametrize("task", [
    ArithmeticTask(), MathTask("aime24", path=FIXTURES / "aime24_sample.jsonl"),
    MathTask("math500", path=FIXTURES / "math500_sample.jsonl"), GPQATask(FIXTURES / "gpqa_diamond_sample.csv")],
    ids=lambda t: t.name)
def test_every_task_has_the_same_surface(task, tok):
    probs = task.problems(3)
    assert len(probs) == 3 and all(isinstance(p, Problem) for p in probs)
    assert task.prompt(tok, probs[0]).endswith("<think>\n")
    assert task.grade("</think>\nno idea", probs[0]) in (0.0, None)
    gold = f"</think>\nThe answer is \\boxed{{{probs[0].answer}}}."
    assert task.grade(gold, probs[0]) == 1.0
