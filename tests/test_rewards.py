"""Reward functions: each formula against a hand-computed case, both completion forms, TRL's call."""
import math
import time

import pytest

from qwqlab import rewards as R
from qwqlab.rewards import score_rewards, task_reward
from qwqlab.tasks import ArithmeticTask, Problem

PROMPT = "<|im_start|>user\nWhat is 12+35?<|im_end|>\n<|im_start|>assistant\n<think>\n"
RIGHT = "2+5+0=7\n1+3+0=4\nso 12+35=47\n</think>\n\nThe answer is \\boxed{47}."
WRONG = "2+5+0=7\n</think>\n\nThe answer is \\boxed{46}."
NO_BOX = "2+5+0=7\n</think>\n\nThe answer is 47."
TRUNCATED = "2+5+0=7\n1+3+0="


class CharTokenizer:
    """A tiny fake tokenizer: one token per two characters (so tokens != characters)."""

    def __call__(self, texts, add_special_tokens=False):
        if isinstance(texts, str):
            return {"input_ids": list(range((len(texts) + 1) // 2))}
        return {"input_ids": [list(range((len(t) + 1) // 2)) for t in texts]}


# --- reading completions ---------------------------------------------------------------

def test_completion_text_handles_strings_and_conversations():
    assert R.completion_text(RIGHT) == RIGHT
    assert R.completion_text([{"role": "assistant", "content": RIGHT}]) == RIGHT
    assert R.completion_text([{"role": "assistant", "content": [{"type": "text", "text": "a"}]}]) == "a"
    assert R.completion_text(None) == ""


def test_lengths_prefer_token_ids_then_tokenizer_then_characters():
    assert R.completion_lengths(["abcd", "ab"], completion_ids=[[1, 2, 3], [1]]) == ([3, 1], "tokens")
    assert R.completion_lengths(["abcd", "ab"], tokenizer=CharTokenizer()) == ([2, 1], "tokens")
    assert R.completion_lengths(["abcd", "ab"]) == ([4, 2], "characters")


# --- accuracy --------------------------------------------------------------------------

def test_accuracy_against_gold_answer_column():
    out = R.accuracy_reward([PROMPT] * 4, [RIGHT, WRONG, NO_BOX, TRUNCATED], answer=["47"] * 4)
    assert out == [1.0, 0.0, 0.0, 0.0]


def test_accuracy_is_none_when_gold_cannot_be_judged():
    out = R.accuracy_reward([PROMPT] * 3, [RIGHT] * 3, answer=[None, "", "\\frac{1}{"])
    assert out == [None, None, None]


def test_accuracy_uses_math_verify_for_non_integers():
    comps = ["x</think>\\boxed{\\frac{1}{2}}", "x</think>\\boxed{0.5}", "x</think>\\boxed{\\frac{2}{3}}"]
    assert R.accuracy_reward([PROMPT] * 3, comps, answer=["1/2"] * 3) == [1.0, 1.0, 0.0]


def test_accuracy_only_reads_the_answer_after_thinking():
    boxed_in_thinking = "maybe \\boxed{47}? no\n</think>\n\nThe answer is \\boxed{46}."
    assert R.accuracy_reward([PROMPT], [boxed_in_thinking], answer=["47"]) == [0.0]


def test_accuracy_uses_the_task_grader_when_given():
    task = ArithmeticTask()
    problem = Problem(id="p", question="What is 12+35?", answer="47")
    graded = []

    class SpyTask:
        def grade(self, completion, problem):
            graded.append(problem.answer)
            return task.grade(completion, problem)

    reward = R.make_accuracy_reward(task=SpyTask())
    assert reward([PROMPT] * 2, [RIGHT, WRONG], problem=[problem] * 2) == [1.0, 0.0]
    assert reward([PROMPT], [RIGHT], answer=["47"]) == [1.0]
    assert graded == ["47", "47", "47"]


def test_adversarial_latex_is_judged_fast():
    tower = "x</think>\\boxed{9^{9^{9^{9}}}}"
    nested = "x</think>\\boxed{" + "\\frac{1}{" * 60 + "2" + "}" * 60 + "}"
    for gold in ["47", "\\frac{1}{2}"]:
        start = time.perf_counter()
        out = R.accuracy_reward([PROMPT] * 2, [tower, nested], answer=[gold, gold])
        assert out == [0.0, 0.0]
        assert time.perf_counter() - start < 3.0  # microseconds when right; a hang is minutes (slack: GC pauses, 2 loaded cores)


def test_answers_match_integer_fast_path():
    assert R.answers_match("1,047", "1047") == 1.0
    assert R.answers_match("-3", "-3") == 1.0
    assert R.answers_match("48", "47") == 0.0
    assert R.answers_match(None, "47") == 0.0


# --- format and tags -------------------------------------------------------------------

@pytest.mark.parametrize("completion,prompt,expected", [
    (RIGHT, PROMPT, 1.0),
    (NO_BOX, PROMPT, 0.0),                                    # no boxed answer
    (TRUNCATED, PROMPT, 0.0),                                 # never closed the thinking
    ("</think>\n\\boxed{47}", PROMPT, 0.0),                   # empty thinking
    ("<think>\n" + RIGHT, PROMPT, 0.0),                       # opened twice (prompt + completion)
    ("<think>\n" + RIGHT, "user: What is 12+35?\n", 1.0),     # prompt without <think>: completion opens it
    (RIGHT, "user: What is 12+35?\n", 0.0),                   # ... and must
    (RIGHT + "\n</think>", PROMPT, 0.0),                      # two closing tags
])
def test_format_reward(completion, prompt, expected):
    assert R.format_reward([prompt], [completion]) == [expected]


def test_format_reward_conversational_assumes_qwq_template():
    prompt = [{"role": "user", "content": "What is 12+35?"}]
    assert R.format_reward([prompt], [[{"role": "assistant", "content": RIGHT}]]) == [1.0]


def test_tag_count_partial_credit():
    out = R.tag_count_reward([PROMPT] * 4, [RIGHT, TRUNCATED, "a</think>b \\boxed{1}", "<think>" + RIGHT])
    # RIGHT: all four; TRUNCATED: only "opened once"; no newline after </think>: 0.75;
    # opened twice: loses the first 0.25
    assert out == [1.0, 0.25, 0.75, 0.75]


# --- length shaping --------------------------------------------------------------------

def _cos(t, at_start, at_end):
    return at_end + (at_start - at_end) * 0.5 * (1 + math.cos(math.pi * t))


def test_cosine_reward_matches_yeo_formula():
    reward = R.make_cosine_reward(min_len=0, max_len=10)
    comps = [RIGHT, WRONG, RIGHT, WRONG]
    ids = [[0] * 0, [0] * 0, [0] * 5, [0] * 10]
    out = reward([PROMPT] * 4, comps, answer=["47"] * 4, completion_ids=ids)
    # correct: 1.0 at length 0 falling to 0.5 at max_len; wrong: -1.0 rising to -0.5
    assert out == pytest.approx([1.0, -1.0, _cos(0.5, 1.0, 0.5), -0.5])
    assert out[2] == pytest.approx(0.75)


def test_cosine_reward_min_len_exceed_penalty_and_none():
    reward = R.make_cosine_reward(min_len=4, max_len=8, exceed_penalty=-10.0)
    out = reward([PROMPT] * 4, [RIGHT, RIGHT, WRONG, RIGHT], answer=["47", "47", "47", None],
                 completion_ids=[[0] * 2, [0] * 6, [0] * 9, [0] * 2])
    assert out == pytest.approx([1.0, 0.75, -10.0, None])
    # at the generation limit itself (len == max_len, a truncated completion) the penalty applies
    # too: the paper's L_max; before, a wrong cut-off completion got -0.5, the best a wrong one can
    at_limit = reward([PROMPT] * 2, [WRONG, RIGHT], answer=["47", "47"], completion_ids=[[0] * 8, [0] * 7])
    assert at_limit[0] == -10.0 and at_limit[1] > -10.0


def test_cosine_counts_tokens_with_a_tokenizer():
    reward = R.make_cosine_reward(max_len=len(RIGHT), tokenizer=CharTokenizer())
    by_tokens = reward([PROMPT], [RIGHT], answer=["47"])[0]
    by_chars = R.make_cosine_reward(max_len=len(RIGHT))([PROMPT], [RIGHT], answer=["47"])[0]
    assert by_chars == pytest.approx(0.5)   # at max_len in characters
    tokens = (len(RIGHT) + 1) // 2  # about half-way in tokens
    assert by_tokens == pytest.approx(_cos(tokens / len(RIGHT), 1.0, 0.5))


def test_kimi_length_reward_matches_paper():
    reward = R.make_kimi_length_reward()
    # one group of four: lengths 10, 20, 30, 30; right, right, wrong, right
    comps = [RIGHT, RIGHT, WRONG, RIGHT]
    ids = [[0] * 10, [0] * 20, [0] * 30, [0] * 30]
    out = reward([PROMPT] * 4, comps, answer=["47"] * 4, completion_ids=ids)
    lam = [0.5 - (n - 10) / 20 for n in (10, 20, 30, 30)]  # 0.5, 0.0, -0.5, -0.5
    assert out == pytest.approx([lam[0], lam[1], min(0.0, lam[2]), lam[3]])


def test_kimi_length_reward_is_relative_per_prompt():
    reward = R.make_kimi_length_reward()
    ids = [[0] * 10, [0] * 20, [0] * 100, [0] * 100]
    out = reward(["a", "a", "b", "b"], [RIGHT] * 4, answer=["47"] * 4, completion_ids=ids)
    assert out == pytest.approx([0.5, -0.5, 0.0, 0.0])  # equal lengths in group b: all 0
    grouped = R.make_kimi_length_reward(num_generations=2)
    assert grouped(["a"] * 4, [RIGHT] * 4, answer=["47"] * 4, completion_ids=ids) == pytest.approx(out)


def test_kimi_short_wrong_answer_is_not_rewarded():
    out = R.make_kimi_length_reward()([PROMPT] * 2, [WRONG, RIGHT], answer=["47"] * 2,
                                      completion_ids=[[0] * 5, [0] * 50])
    assert out == pytest.approx([0.0, -0.5])


def test_soft_overlong_matches_dapo():
    reward = R.make_soft_overlong_reward(max_completion_len=100, soft_punish_cache=20)
    ids = [[0] * n for n in (50, 80, 90, 100, 101)]
    out = reward(None, ["x"] * 5, completion_ids=ids)
    assert out == pytest.approx([0.0, 0.0, -0.5, -1.0, -1.0])


def test_soft_overlong_rejects_impossible_settings():
    with pytest.raises(ValueError, match="soft_punish_cache"):
        R.make_soft_overlong_reward(max_completion_len=10, soft_punish_cache=20)


def test_repetition_penalty():
    reward = R.make_repetition_penalty_reward(ngram_size=2, max_penalty=-1.0)
    out = reward(None, ["a b a b a b", "a b c d", "a", ""])
    # "a b a b a b": bigrams ab ba ab ba ab -> 2 distinct of 5 -> -(1 - 2/5)
    assert out == pytest.approx([-0.6, 0.0, 0.0, 0.0])


def test_repetition_penalty_over_tokens():
    class Tok:
        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": list(text)}  # one token per character

    reward = R.make_repetition_penalty_reward(ngram_size=2, tokenizer=Tok())
    assert reward(None, ["ababab"]) == pytest.approx([-0.6])


# --- code execution --------------------------------------------------------------------

CODE_OK = "think\n</think>\n```python\nn = int(input())\nprint(n * 2)\n```"
CODE_BAD = "think\n</think>\n```python\nn = int(input())\nprint(n + 2)\n```"


def test_code_reward_runs_tests_in_the_sandbox():
    reward = R.make_code_reward(timeout_s=5)
    tests = [{"input": "2\n", "output": "4"}, {"input": "3\n", "output": "6\n"}]
    out = reward([PROMPT] * 4, [CODE_OK, CODE_BAD, "no code</think> 4", CODE_OK],
                 test_cases=[tests, tests, tests, None])
    assert out == [1.0, 0.5, 0.0, None]  # 2+2 == 2*2, so the wrong program passes one test
    assert R.make_code_reward(all_or_nothing=True, timeout_s=5)([PROMPT], [CODE_BAD], test_cases=[tests]) == [0.0]


def test_code_reward_with_assert_tests():
    comp = "</think>\n```python\ndef sq(x):\n    return x * x\n```"
    out = R.make_code_reward(timeout_s=5)([PROMPT], [comp], test_cases=[["assert sq(3) == 9", "assert sq(2) == 5"]])
    assert out == [0.5]


def test_extract_code_takes_the_last_block_of_the_answer():
    text = "```python\nprint(1)\n```\n</think>\n```python\nprint(2)\n```\n```py\nprint(3)\n```"
    assert R.extract_code(text) == "print(3)\n"
    assert R.extract_code("</think> no code") is None


# --- combine and registry --------------------------------------------------------------

def test_combine_weights_and_none_handling():
    def a(prompts, completions, **kw):
        return [1.0, None, None]

    def b(prompts, completions, **kw):
        return [0.5, 2.0, None]

    comps = ["x"] * 3
    assert R.combine([a, b], [2.0, 1.0])(None, comps) == [2.5, 2.0, None]
    assert R.combine([a, b], [2.0, 1.0], none="zero")(None, comps) == [2.5, 2.0, 0.0]
    assert R.combine([a, b], [2.0, 1.0], none="propagate")(None, comps) == [2.5, None, None]
    with pytest.raises(ValueError, match="one weight per reward"):
        R.combine([a, b], [1.0])


def test_two_rewards_with_one_name_combine_by_position():
    """Issue 22: two make_cosine_reward (or two lambdas) were one column, then "1 rewards but 2 weights"."""
    short, long = R.make_cosine_reward(max_len=100), R.make_cosine_reward(max_len=400)
    comp, kw = ["x" * 90 + "</think> \\boxed{4}"], {"answer": ["4"]}
    one, other = short(None, comp, **kw)[0], long(None, comp, **kw)[0]
    assert one != other  # the two settings disagree, so a collapsed column would show
    assert R.combine([short, long], [1.0, 2.0])(None, comp, **kw) == [pytest.approx(one + 2 * other)]
    assert R.combine([lambda p, c, **k: [1.0], lambda p, c, **k: [3.0]], [1.0, 10.0])(None, ["x"]) == [31.0]
    total, per_func = R.score_rewards([short, long], None, comp, [1.0, 2.0], **kw)
    assert list(per_func) == ["cosine_reward", "cosine_reward_1"] and total == [pytest.approx(one + 2 * other)]


def test_registry_builds_every_reward():
    assert set(R.REWARDS) == {"accuracy", "format", "tag_count", "cosine", "kimi_length",
                              "soft_overlong", "repetition", "code"}
    for name in R.REWARDS:
        f = R.get_reward(name)
        out = f([PROMPT], [RIGHT], answer=["47"])
        assert len(out) == 1 and (out[0] is None or math.isfinite(out[0])), name
    assert R.get_reward("cosine", max_len=256)([PROMPT], [RIGHT], answer=["47"])[0] > 0.5
    with pytest.raises(KeyError, match="known"):
        R.get_reward("nope")


def test_rewards_take_trls_keyword_arguments():
    """The keywords TRL 1.x passes (see the slow test below, which runs TRL's own code)."""
    kwargs = dict(completion_ids=[[1] * 10, [1] * 20], answer=["47", "47"], problem_id=["p", "p"],
                  trainer_state=object(), log_extra=lambda column, values: None,
                  log_metric=lambda name, value: None)
    for name in R.REWARDS:
        out = R.get_reward(name)(prompts=[PROMPT] * 2, completions=[RIGHT, WRONG], **kwargs)
        assert len(out) == 2, name


@pytest.mark.slow  # importing TRL takes 10-25 s on 2 CPU cores
def test_rewards_are_called_the_way_trl_calls_them():
    """Run TRL's own ``GRPOTrainer._calculate_rewards`` on qwqlab rewards, with a stub trainer.

    TRL passes ``prompts``, ``completions`` (strings, or ``[{"role": "assistant", ...}]``),
    ``completion_ids``, every dataset column but prompt/completion as a keyword list, and
    ``trainer_state``, ``log_extra``, ``log_metric``; ``None`` becomes NaN.
    """
    from types import SimpleNamespace

    import torch
    from transformers import TrainerState
    from trl import GRPOTrainer

    funcs = [R.accuracy_reward, R.format_reward, R.make_cosine_reward(max_len=64),
             R.make_kimi_length_reward(), R.make_soft_overlong_reward(64, 16), R.tag_count_reward]
    stub = SimpleNamespace(
        accelerator=SimpleNamespace(device=torch.device("cpu"), is_main_process=True),
        args=SimpleNamespace(report_to=[]), state=TrainerState(), reward_funcs=funcs,
        reward_processing_classes=[None] * len(funcs),
        reward_func_names=[getattr(f, "__name__", "r") for f in funcs], environments=None,
        _log_completion_extra=lambda column, values: None, _log_metric=lambda name, value: None)
    calculate = getattr(GRPOTrainer._calculate_rewards, "__wrapped__", GRPOTrainer._calculate_rewards)
    inputs = [{"prompt": PROMPT, "answer": "47", "problem_id": "p1"},
              {"prompt": PROMPT, "answer": "47", "problem_id": "p1"},
              {"prompt": PROMPT, "answer": None, "problem_id": "p1"}]
    for completions in ([RIGHT, WRONG, RIGHT],
                        [[{"role": "assistant", "content": c}] for c in (RIGHT, WRONG, RIGHT)]):
        ids = [[1] * 10, [1] * 20, [1] * 30]
        out = calculate(stub, inputs, [PROMPT] * 3, completions, ids)
        assert out.shape == (3, len(funcs))
        assert out[:, 0].tolist()[:2] == [1.0, 0.0] and math.isnan(out[2, 0])  # accuracy; None -> NaN
        assert out[:, 1].tolist() == [1.0, 1.0, 1.0]                           # format
        assert out[0, 2].item() == pytest.approx(_cos(10 / 64, 1.0, 0.5))      # cosine, in tokens
        assert out[:, 3].tolist()[:2] == pytest.approx([0.5, 0.0])             # Kimi, in tokens


# --- helpers for notebook 03 -----------------------------------------------------------

def test_reward_table_scores_every_row():
    import pandas as pd

    rollouts = pd.DataFrame({"prompt": [PROMPT] * 3, "completion": [RIGHT, WRONG, RIGHT],
                             "gold_answer": ["47", "47", None]})
    table = R.reward_table(rollouts, ["accuracy", "format"])
    assert list(table.columns) == ["accuracy", "format"]
    assert table["accuracy"].tolist()[:2] == [1.0, 0.0] and math.isnan(table["accuracy"][2])
    assert table["format"].tolist() == [1.0, 1.0, 1.0]


def test_length_curves_cover_right_and_wrong():
    curves = R.length_curves({"cosine": R.make_cosine_reward(max_len=10)}, [0, 5, 10])
    right = curves[curves["correct"]].set_index("length")["value"]
    wrong = curves[~curves["correct"]].set_index("length")["value"]
    assert right.tolist() == pytest.approx([1.0, 0.75, 0.5])
    assert wrong.tolist() == pytest.approx([-1.0, -0.75, -0.5])


def test_columns_one_per_prompt_are_repeated_and_ragged_ones_rejected():
    assert R.accuracy_reward([PROMPT] * 4, [RIGHT, WRONG, RIGHT, WRONG], answer=["47", "48"]) == [1.0, 0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="3 completions"):
        R.accuracy_reward([PROMPT] * 3, [RIGHT] * 3, answer=["47", "47"])


# ----------------------------------------------------------------------------- one weighted sum (issues 9, 10)

def test_weighted_sum_skips_none_and_refuses_non_finite_values_with_a_warning():
    assert R.weighted_sum([[1.0, None, 2.0], [0.5, None, None]], [1.0, 2.0]) == [2.0, None, 2.0]
    assert R.weighted_sum([[1.0, None]], [1.0], none="zero") == [1.0, 0.0]
    assert R.weighted_sum([[1.0, 1.0], [None, 1.0]], [1.0, 1.0], none="propagate") == [None, 2.0]
    for bad in (float("inf"), -float("inf"), 1e300, 1e39):
        with pytest.warns(RuntimeWarning, match="cannot be judged"):
            assert R.weighted_sum([[bad, 1.0], [1.0, 1.0]], [1.0, 1.0], names=["hostile", "ok"]) == [1.0, 2.0]
    with pytest.warns(RuntimeWarning, match="weighted sum"):  # each term fine, the sum absurd
        assert R.weighted_sum([[9e5], [9e5]], [1.0, 1.0]) == [None]
    with pytest.raises(ValueError, match="one weight per reward"):
        R.weighted_sum([[1.0]], [1.0, 2.0])
    with pytest.raises(TypeError, match="must be a number or None"):
        R.weighted_sum([["yes"]], [1.0])


def test_combine_and_the_widget_use_the_same_sum():
    """rewards.combine and rewards.score_rewards agree, inf included (one path per job)."""

    def a(prompts, completions, **kw):
        return [1.0, None, float("inf")]

    def b(prompts, completions, **kw):
        return [0.5, None, 1.0]

    with pytest.warns(RuntimeWarning):
        combined = R.combine([a, b], [1.0, 2.0])(["p"] * 3, ["c"] * 3)
    with pytest.warns(RuntimeWarning):
        total, _ = score_rewards([a, b], ["p"] * 3, ["c"] * 3, [1.0, 2.0])
    assert combined == total == [2.0, None, 2.0]


# ----------------------------------------------------------------------------- task_reward, score_rewards, reward set-ups

def test_score_rewards_sums_with_weights_and_skips_none():
    def a(prompts, completions, **kw):
        return [1.0, None, None]

    def b(prompts, completions, **kw):
        return [0.5, 0.5, None]

    total, per = score_rewards([a, b], ["p"] * 3, ["x", "y", "z"], weights=[2.0, 1.0])
    assert total == [2.5, 0.5, None]
    assert list(per) == ["a", "b"]


def test_task_reward_grades_with_the_task():
    r = task_reward(ArithmeticTask())
    good = "7+5+0=12\n</think>\n\nThe answer is \\boxed{12}."
    assert r(["p", "p", "p"], [good, good.replace("{12}", "{13}"), good], answer=["12", "12", None]) == [1.0, 0.0, None]


def test_reward_setups_use_qwqlab_rewards_unchanged():
    from qwqlab.rewards import REWARD_SETUPS, reward_setup
    from qwqlab import rewards
    good = "7+5+0=12\n</think>\n\nThe answer is \\boxed{12}."
    for name in REWARD_SETUPS:
        funcs, weights = reward_setup(name, num_generations=2)
        assert len(funcs) == len(weights)
        assert all(f.__module__ == rewards.__name__ for f in funcs)
        total, _ = score_rewards(funcs, ["<think>\n"] * 2, [good, "</think>\n\\boxed{13}"], weights, answer=["12", "12"])
        assert total[0] > total[1] or name == "length_penalty"
    with pytest.raises(ValueError, match="known"):
        reward_setup("vibes")
