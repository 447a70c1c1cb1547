"""Reward functions for RL on reasoning models, in the signature TRL's ``GRPOTrainer`` takes.

Every reward is ``reward(prompts, completions, **kwargs) -> list[float | None]``: one value
per completion, ``None`` meaning "cannot be judged" (the gold answer is missing or does not
parse), never a silent 0. Completions may be strings or TRL's conversational form (a list
of message dicts); prompts likewise. Dataset columns arrive as keyword lists, as TRL passes
them: the gold answer as ``answer=[...]``, code tests as ``test_cases=[...]``.

Parameterised rewards are small factories (``make_cosine_reward(max_len=...)``); ``REWARDS``
maps a name to its factory and ``get_reward(name, **params)`` builds one. ``combine``
makes one reward out of several, with weights.

Lengths are counted in tokens: from ``completion_ids`` (TRL passes the policy's token ids),
else with a ``tokenizer`` (factory argument or keyword), and only as a documented fallback
in characters, which over-count by a factor of 3-4 on English and differ across models.

>>> accuracy_reward(["p"], ["12+35=47\\n</think>\\nThe answer is \\\\boxed{47}."], answer=["47"])
[1.0]
"""
from __future__ import annotations

import math
import re
from typing import Callable

from qwqlab.chat import THINK_CLOSE, THINK_OPEN, is_well_formed
from qwqlab.grading import CallBudget, answers_match, grade  # noqa: F401 - answers_match re-exported: the one grader
from qwqlab.reward_sum import (  # noqa: F401 - the one weighted sum of rewards, re-exported
    MAX_ABS_REWARD, combine, finite_reward, reward_name, reward_names, score_rewards, weighted_sum)

RewardFunc = Callable[..., list]

__all__ = [
    "REWARDS", "get_reward", "combine", "completion_text", "completion_lengths",
    "accuracy_reward", "format_reward", "tag_count_reward", "repetition_penalty_reward",
    "make_accuracy_reward", "make_format_reward", "make_tag_count_reward", "make_cosine_reward",
    "make_kimi_length_reward", "make_soft_overlong_reward", "make_repetition_penalty_reward",
    "make_code_reward", "answers_match", "reward_table", "length_curves",
    "task_reward", "reward_name", "reward_names", "score_rewards", "REWARD_SETUPS", "reward_setup",
]

# ---------------------------------------------------------------------------------------
# Reading completions and prompts in either of TRL's forms
# ---------------------------------------------------------------------------------------


def _content_text(content) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # multimodal parts: [{"type": "text", "text": ...}, ...]
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return str(content)


def completion_text(completion) -> str:
    """The text of one completion: a string as is, or the assistant messages of a conversation.

    >>> completion_text([{"role": "assistant", "content": "hi"}])
    'hi'
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, bytes):
        return completion.decode("utf-8", errors="replace")
    if isinstance(completion, dict):
        return _content_text(completion.get("content"))
    if isinstance(completion, (list, tuple)):
        msgs = [m for m in completion if isinstance(m, dict)]
        assistant = [m for m in msgs if m.get("role", "assistant") == "assistant"]
        return "".join(_content_text(m.get("content")) for m in (assistant or msgs))
    return "" if completion is None else str(completion)


def _prompt_opens_think(prompt) -> bool:
    """Did the prompt already open the thinking (QwQ's template ends with ``<think>\\n``)?

    A conversational prompt (a list of messages) has not been through the chat template yet;
    qwqlab assumes QwQ's template, which opens the thinking.
    """
    if isinstance(prompt, str):
        return prompt.rstrip().endswith(THINK_OPEN)
    return True


def _prompt_key(prompt) -> str:
    return prompt if isinstance(prompt, str) else repr(prompt)


def _column(kwargs: dict, name: str, n: int, default=None) -> list:
    """A dataset column from TRL's keyword arguments, one value per completion."""
    value = kwargs.get(name, default)
    if isinstance(value, (list, tuple)) and len(value) == n:
        return list(value)
    if isinstance(value, (list, tuple)):
        if n and len(value) and n % len(value) == 0:
            # one value per prompt given: repeat it for each of the prompt's completions
            k = n // len(value)
            return [v for v in value for _ in range(k)]
        raise ValueError(f"column {name!r} has {len(value)} values for {n} completions; give one per "
                         "completion (as TRL does) or one per prompt")
    return [value] * n


# ---------------------------------------------------------------------------------------
# Lengths
# ---------------------------------------------------------------------------------------


def completion_lengths(completions, tokenizer=None, completion_ids=None) -> tuple[list[int], str]:
    """Length of each completion and the unit it is in: ``"tokens"`` or ``"characters"``.

    Token ids passed by TRL (``completion_ids``) win; otherwise ``tokenizer`` encodes the
    texts; without either, characters are counted (a fallback: a tokenizer-free length
    that is 3-4x the token count on English text and means different things per model).
    """
    n = len(completions)
    if completion_ids is not None and len(completion_ids) == n:
        return [len(ids) for ids in completion_ids], "tokens"
    texts = [completion_text(c) for c in completions]
    if tokenizer is not None:
        enc = tokenizer(texts, add_special_tokens=False)
        ids = enc["input_ids"] if isinstance(enc, dict) or hasattr(enc, "keys") else enc
        return [len(x) for x in ids], "tokens"
    return [len(t) for t in texts], "characters"


# ---------------------------------------------------------------------------------------
# Correctness and format
# ---------------------------------------------------------------------------------------


def _as_problem(problem, answer):
    from qwqlab.tasks.base import Problem

    if problem is not None and hasattr(problem, "answer"):
        return problem
    if isinstance(problem, dict):
        return Problem(id=str(problem.get("id", "")), question=str(problem.get("question", "")),
                       answer=problem.get("answer", answer), meta=problem.get("meta", {}))
    return Problem(id="", question="", answer=None if answer is None else str(answer))


def make_accuracy_reward(task=None) -> RewardFunc:
    """Correctness: 1.0 if the boxed answer after ``</think>`` is right, else 0.0.

    With a ``task`` (factory argument, or keyword: one task or one per completion) and a
    ``problem`` column (``Problem`` objects or dicts) or an ``answer`` column, the task's own
    ``grade`` decides. Without a task, ``answers_match`` compares the last ``\\boxed{}`` of the
    answer section with the gold ``answer``. ``None`` when there is no gold answer.
    """
    def accuracy_reward(prompts, completions, **kwargs):
        n = len(completions)
        answers = _column(kwargs, "answer", n)
        problems = _column(kwargs, "problem", n)
        tasks = _column(kwargs, "task", n, task)
        breaker = CallBudget(n)
        out = []
        for prompt, comp, gold, prob, tsk in zip(_pad(prompts, n), completions, answers, problems, tasks):
            text = completion_text(comp)
            if tsk is not None and hasattr(tsk, "grade") and (prob is not None or gold is not None):
                try:
                    out.append(tsk.grade(text, _as_problem(prob, gold)))
                except Exception:
                    # a completion that crashes the grader is wrong, not unjudgeable: None
                    # would spare it any penalty, and the policy would learn to crash graders
                    out.append(0.0)
                continue
            if gold is None and prob is not None:
                gold = getattr(prob, "answer", None) if not isinstance(prob, dict) else prob.get("answer")
            out.append(grade(text, gold, prompt_opens_think=_prompt_opens_think(prompt), budget=breaker))
        return out

    return accuracy_reward


def make_format_reward() -> RewardFunc:
    """1.0 for a well-formed completion, else 0.0: ``qwqlab.chat.is_well_formed``, the one rule
    (non-empty thinking, one ``</think>``, then an answer with ``\\boxed{}``), which the training
    log's ``format_rate`` counts too. (open-r1's ``format_reward``, adapted to QwQ's format.)
    """
    def format_reward(prompts, completions, **kwargs):
        prompts = prompts if prompts is not None else [None] * len(completions)
        return [float(is_well_formed(completion_text(c), _prompt_opens_think(p) if p is not None else True))
                for p, c in zip(_pad(prompts, len(completions)), completions)]

    return format_reward


def _pad(prompts, n):
    prompts = list(prompts) if prompts is not None else []
    if len(prompts) == n:
        return prompts
    if prompts and n % len(prompts) == 0:
        k = n // len(prompts)
        return [p for p in prompts for _ in range(k)]
    return [None] * n


def make_tag_count_reward() -> RewardFunc:
    """Partial credit for the tags, 0.25 each (open-r1's ``tag_count_reward`` in QwQ's format).

    +0.25 the thinking is opened exactly once (by the prompt or the completion, not both),
    +0.25 exactly one ``</think>``, +0.25 it ends its line (``</think>\\n``),
    +0.25 exactly one ``\\boxed{`` after it. Gives a gradient before the full format is right.
    """
    def tag_count_reward(prompts, completions, **kwargs):
        out = []
        for p, c in zip(_pad(prompts, len(completions)), completions):
            text = completion_text(c)
            opened = (1 if (p is None or _prompt_opens_think(p)) else 0) + text.count(THINK_OPEN)
            n_close = text.count(THINK_CLOSE)
            answer = text.rpartition(THINK_CLOSE)[2] if n_close else ""
            score = 0.25 * (opened == 1) + 0.25 * (n_close == 1)
            score += 0.25 * (n_close == 1 and f"{THINK_CLOSE}\n" in text)
            score += 0.25 * (n_close == 1 and len(re.findall(r"\\boxed\s*\{", answer)) == 1)
            out.append(score)
        return out

    return tag_count_reward


# ---------------------------------------------------------------------------------------
# Length shaping
# ---------------------------------------------------------------------------------------


def _correctness(prompts, completions, kwargs, accuracy: RewardFunc | None):
    acc = accuracy or accuracy_reward
    return acc(prompts, completions, **kwargs)


def make_cosine_reward(min_len: int = 0, max_len: int = 1000, min_value_wrong: float = -1.0,
                       max_value_wrong: float = -0.5, min_value_correct: float = 0.5,
                       max_value_correct: float = 1.0, exceed_penalty: float | None = None,
                       tokenizer=None, accuracy: RewardFunc | None = None) -> RewardFunc:
    """Cosine length-scaled correctness (Yeo et al. 2025, "Demystifying Long Chain-of-Thought").

    With ``t`` the length past ``min_len`` as a share of ``max_len - min_len`` (clipped to
    [0, 1]) and ``CosFn(t, a, b) = b + (a - b) * (1 + cos(pi * t)) / 2`` (``a`` at ``t=0``,
    ``b`` at ``t=1``): a correct answer gets ``CosFn(t, max_value_correct, min_value_correct)``
    (short and right is best), a wrong one ``CosFn(t, min_value_wrong, max_value_wrong)``
    (short and wrong is worst: think longer when unsure). At or past ``max_len`` (the generation
    limit, where a completion is cut), ``exceed_penalty``
    if given (the paper's ``r_exceed``). ``None`` where correctness cannot be judged.

    >>> r = make_cosine_reward(min_len=20, max_len=100)  # both completions are under 20 characters
    >>> r(["p"] * 2, ["</think> \\\\boxed{4}", "</think> \\\\boxed{5}"], answer=["4", "4"])
    [1.0, -1.0]
    """
    if max_len <= min_len:
        raise ValueError(f"need max_len > min_len (got min_len={min_len}, max_len={max_len})")

    def cosine_reward(prompts, completions, **kwargs):
        correct = _correctness(prompts, completions, kwargs, accuracy)
        lengths, _ = completion_lengths(completions, kwargs.get("tokenizer", tokenizer), kwargs.get("completion_ids"))
        out = []
        for ok, n in zip(correct, lengths):
            if ok is None:
                out.append(None)
                continue
            if exceed_penalty is not None and n >= max_len:  # the paper's L_max: a completion cut at the limit
                out.append(float(exceed_penalty))
                continue
            t = min(1.0, max(0.0, (n - min_len) / (max_len - min_len)))
            at_start, at_end = (max_value_correct, min_value_correct) if ok >= 0.5 else (min_value_wrong, max_value_wrong)
            out.append(at_end + (at_start - at_end) * 0.5 * (1.0 + math.cos(math.pi * t)))
        return out

    return cosine_reward


def make_kimi_length_reward(tokenizer=None, num_generations: int | None = None,
                            accuracy: RewardFunc | None = None) -> RewardFunc:
    """Kimi k1.5's length penalty, relative to the other completions of the same prompt.

    Kimi Team 2025 ("Kimi k1.5", section 2.3.3): in a group with shortest length ``min_len``
    and longest ``max_len``, ``lambda_i = 0.5 - (len_i - min_len) / (max_len - min_len)``;
    the reward is ``lambda_i`` for a correct answer and ``min(0, lambda_i)`` for a wrong one
    (a short wrong answer is not rewarded for being short). All 0 when every length is equal.
    Groups are completions with the same prompt, or consecutive runs of ``num_generations``.
    ``None`` where correctness cannot be judged. Add it to the correctness reward with a weight.
    """
    def kimi_length_reward(prompts, completions, **kwargs):
        n = len(completions)
        correct = _correctness(prompts, completions, kwargs, accuracy)
        lengths, _ = completion_lengths(completions, kwargs.get("tokenizer", tokenizer), kwargs.get("completion_ids"))
        if num_generations:
            keys = [i // num_generations for i in range(n)]
        else:
            keys = [_prompt_key(p) for p in _pad(prompts, n)]
        groups: dict = {}
        for i, k in enumerate(keys):
            groups.setdefault(k, []).append(i)
        out: list = [None] * n
        for members in groups.values():
            lo, hi = min(lengths[i] for i in members), max(lengths[i] for i in members)
            for i in members:
                if correct[i] is None:
                    continue
                lam = 0.0 if hi == lo else 0.5 - (lengths[i] - lo) / (hi - lo)
                out[i] = lam if correct[i] >= 0.5 else min(0.0, lam)
        return out

    return kimi_length_reward


def make_soft_overlong_reward(max_completion_len: int = 512, soft_punish_cache: int = 128,
                              tokenizer=None) -> RewardFunc:
    """DAPO's soft overlong punishment (Yu et al. 2025, eq. 13), in tokens.

    ``0`` up to ``max_completion_len - soft_punish_cache``; then falls linearly,
    ``((max_completion_len - soft_punish_cache) - len) / soft_punish_cache``, to ``-1`` at
    ``max_completion_len``; ``-1`` beyond. Set ``max_completion_len`` to the generation limit.

    >>> make_soft_overlong_reward(10, 4)(None, ["x" * 6, "x" * 8, "x" * 12])
    [0.0, -0.5, -1.0]
    """
    if not 0 < soft_punish_cache <= max_completion_len:
        raise ValueError("need 0 < soft_punish_cache <= max_completion_len "
                         f"(got {soft_punish_cache}, {max_completion_len})")
    start = max_completion_len - soft_punish_cache

    def soft_overlong_reward(prompts, completions, **kwargs):
        lengths, _ = completion_lengths(completions, kwargs.get("tokenizer", tokenizer), kwargs.get("completion_ids"))
        return [0.0 if n <= start else (-1.0 if n > max_completion_len else (start - n) / soft_punish_cache)
                for n in lengths]

    return soft_overlong_reward


def make_repetition_penalty_reward(ngram_size: int = 3, max_penalty: float = -1.0,
                                   tokenizer=None) -> RewardFunc:
    """N-gram repetition penalty (Yeo et al. 2025; open-r1's ``repetition_penalty_reward``).

    ``max_penalty * (1 - distinct n-grams / all n-grams)``: 0 when nothing repeats, towards
    ``max_penalty`` for a completion that loops. N-grams are over whitespace-separated words,
    or over tokens when a ``tokenizer`` is given (better for text without spaces, such as
    qwq-nano's ``7+5+1=13`` lines). Completions shorter than ``ngram_size`` get 0.
    """
    if ngram_size < 1:
        raise ValueError(f"ngram_size must be >= 1, got {ngram_size}")
    if max_penalty > 0:
        raise ValueError(f"max_penalty is a penalty and must be <= 0, got {max_penalty}")

    def repetition_penalty_reward(prompts, completions, **kwargs):
        tok = kwargs.get("tokenizer", tokenizer)
        out = []
        for c in completions:
            text = completion_text(c)
            units = tok(text, add_special_tokens=False)["input_ids"] if tok is not None else text.lower().split()
            if len(units) < ngram_size:
                out.append(0.0)
                continue
            total = len(units) - ngram_size + 1
            distinct = len(set(zip(*(units[i:] for i in range(ngram_size)))))  # no list: 10 MB stays cheap
            out.append(max_penalty * (1.0 - distinct / total))
        return out

    return repetition_penalty_reward


# ---------------------------------------------------------------------------------------
# Code execution
# ---------------------------------------------------------------------------------------

_CODE_BLOCK = re.compile(r"```(?:python|py|python3)[ \t]*\r?\n(.*?)```", re.DOTALL | re.IGNORECASE)
#: Longest program the code reward will run; longer ones score 0 without running.
MAX_CODE_CHARS = 20_000


def extract_code(text: str) -> str | None:
    """The last fenced ```python block of the answer (after ``</think>`` if there is one)."""
    answer = text.rpartition(THINK_CLOSE)[2] if THINK_CLOSE in text else text
    blocks = _CODE_BLOCK.findall(answer)
    return blocks[-1] if blocks else None


def make_code_reward(timeout_s: float = 2.0, memory_mb: int = 512, all_or_nothing: bool = False,
                     max_workers: int | None = None, config=None) -> RewardFunc:
    """Runs the answer's last ```python block against its test cases in ``qwqlab.sandbox``.

    Test cases come as the ``test_cases`` column, per completion a list whose items are
    either ``{"input": stdin, "output": expected stdout}`` (compared line by line, trailing
    spaces ignored) or a string of Python run after the program (``"assert f(2) == 4"``),
    passing when the test runs to its end. The reward is the share of tests passed (QwQ's
    code-execution server checked generated code against test cases the same way), or 1/0
    with ``all_or_nothing``. No code block: 0.0. No test cases: ``None``. A sandbox that failed
    before the program started (no user namespaces left, ...): ``None``, logged, never a 0 the
    policy would be blamed for. Verdicts are decided outside the program's sandbox
    (``qwqlab.code_tests``).
    """
    from qwqlab.sandbox import SandboxConfig

    cfg = config or SandboxConfig(timeout_s=timeout_s, memory_mb=memory_mb)

    def code_reward(prompts, completions, **kwargs):
        from concurrent.futures import ThreadPoolExecutor

        from qwqlab.code_tests import run_tests

        n = len(completions)
        tests = _column(kwargs, "test_cases", n)
        out: list = [None] * n
        jobs = []
        for i, (c, tc) in enumerate(zip(completions, tests)):
            if not tc:
                continue
            code = extract_code(completion_text(c))
            if code is None or len(code) > MAX_CODE_CHARS:
                out[i] = 0.0
            else:
                jobs.append((i, code, list(tc)))
        if jobs:
            workers = max_workers or min(4, len(jobs))
            with ThreadPoolExecutor(max_workers=workers) as pool:
                results = list(pool.map(lambda j: run_tests(j[1], j[2], cfg), jobs))
            for (i, _, tc), passed in zip(jobs, results):
                if None in passed:  # the sandbox failed, not the program (logged by qwqlab.sandbox)
                    out[i] = None
                    continue
                share = sum(passed) / len(passed)
                out[i] = float(share == 1.0) if all_or_nothing else share
        return out

    return code_reward


# ---------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------

#: name -> factory; every factory works with no arguments.
REWARDS: dict[str, Callable[..., RewardFunc]] = {
    "accuracy": make_accuracy_reward,
    "format": make_format_reward,
    "tag_count": make_tag_count_reward,
    "cosine": make_cosine_reward,
    "kimi_length": make_kimi_length_reward,
    "soft_overlong": make_soft_overlong_reward,
    "repetition": make_repetition_penalty_reward,
    "code": make_code_reward,
}


def get_reward(name: str, **params) -> RewardFunc:
    """Build the reward registered as ``name`` with ``params``: ``get_reward("cosine", max_len=256)``."""
    if name not in REWARDS:
        raise KeyError(f"unknown reward {name!r}; known: {sorted(REWARDS)}")
    return REWARDS[name](**params)


accuracy_reward = make_accuracy_reward()
format_reward = make_format_reward()
tag_count_reward = make_tag_count_reward()
repetition_penalty_reward = make_repetition_penalty_reward()


# ---------------------------------------------------------------------------------------
# Rewards on a rollouts table, length curves, and how the loss weighs tokens (notebook 03)
# ---------------------------------------------------------------------------------------

#: The rewards notebook 03 and ``qwqlab.widgets.reward_explorer`` show, with default settings.
DEFAULT_TABLE_REWARDS = ("accuracy", "format", "tag_count", "cosine", "kimi_length", "soft_overlong", "repetition")


def reward_table(rollouts, rewards=DEFAULT_TABLE_REWARDS, tokenizer=None):
    """Every reward on every row of a rollouts table (``qwqlab.rollouts.sample``), one column each.

    Args:
        rollouts: a DataFrame with ``prompt`` and ``completion`` columns and, for correctness,
            ``gold_answer`` (passed to the rewards as ``answer``); ``test_cases`` if present.
        rewards: names in ``REWARDS`` (default settings), or a dict name -> reward function.
        tokenizer: counts lengths in tokens (else characters; see ``completion_lengths``).

    Returns a DataFrame with one float column per reward (NaN where a reward returned ``None``),
    on the rollouts' index.
    """
    import numpy as np
    import pandas as pd

    funcs = rewards if isinstance(rewards, dict) else {name: get_reward(name) for name in rewards}
    prompts, completions = list(rollouts["prompt"]), list(rollouts["completion"])
    kwargs = {"tokenizer": tokenizer}
    if "gold_answer" in rollouts:
        kwargs["answer"] = [None if isinstance(a, float) and math.isnan(a) else a for a in rollouts["gold_answer"]]
    for col in ("answer", "test_cases", "problem"):
        if col in rollouts:
            kwargs[col] = list(rollouts[col])
    out = {}
    for name, f in funcs.items():
        values = f(prompts, completions, **kwargs)
        out[name] = [np.nan if v is None else float(v) for v in values]
    return pd.DataFrame(out, index=rollouts.index)


def length_curves(rewards: dict, lengths, gold: str = "1"):
    """Each reward against completion length, for a right and a wrong answer.

    Every length in ``lengths`` gets a right (``\\boxed{gold}``) and a wrong completion, and
    ``completion_ids`` of that many tokens. All completions share one prompt, so group-relative
    rewards (Kimi k1.5) see the whole range of lengths as one group. Returns a long DataFrame:
    ``reward``, ``length``, ``correct``, ``value``.
    """
    import pandas as pd

    lengths = [int(n) for n in lengths]
    rows = []
    for correct in (True, False):
        comps = [f"...\n</think>\n\\boxed{{{gold if correct else gold + '0'}}}"] * len(lengths)
        ids = [[0] * n for n in lengths]
        for name, f in rewards.items():
            values = f(["p"] * len(lengths), comps, answer=[gold] * len(lengths), completion_ids=ids)
            rows += [{"reward": name, "length": n, "correct": correct, "value": v} for n, v in zip(lengths, values)]
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------
# A task's own grader as a reward, the weighted score train_grpo optimises, named set-ups
# ---------------------------------------------------------------------------------------

def task_reward(task):
    """The task's own grader as a reward with TRL's signature (the default correctness reward).

    Reads the gold ``answer`` (and ``question``/``problem_id`` if given) from the keyword
    arguments, as ``train_grpo`` and TRL pass dataset columns. ``None`` when the gold answer
    is missing (cannot be judged).
    """
    from qwqlab.tasks.base import Problem

    def correctness(prompts, completions, answer=None, question=None, problem_id=None, **kwargs):
        n = len(completions)
        answers = answer if answer is not None else [None] * n
        questions = question if question is not None else [""] * n
        ids = problem_id if problem_id is not None else [str(i) for i in range(n)]
        return [task.grade(c, Problem(id=str(i), question=q, answer=a))
                for c, a, q, i in zip(completions, answers, questions, ids)]

    correctness.__name__ = f"{getattr(task, 'name', 'task')}_correctness"
    return correctness


#: The reward set-ups notebook 04 and ``scripts/record_runs.py`` train ``train_grpo`` with (see ``reward_setup``).
REWARD_SETUPS = {
    "correctness": "correctness only: 1 for the right boxed answer, 0 otherwise (qwqlab.rewards accuracy)",
    "length_penalty": "correctness plus Kimi k1.5's length penalty at weight 2: the longest correct "
                      "completion of a group scores no more than a wrong one",
    "format": "format only: thinking, </think>, then a boxed answer; the answer itself is never checked",
}


def reward_setup(name: str, num_generations: int = 8, length_weight: float = 2.0):
    """The reward functions and weights of a named set-up in ``REWARD_SETUPS``.

    Returns ``(reward_funcs, weights)`` for ``train_grpo(..., reward_funcs, GRPOConfig(
    reward_weights=weights))``; each function is qwqlab.rewards' own, unchanged.
    ``length_weight`` scales the Kimi length penalty (in [-0.5, 0.5] per completion): at 2
    qwq-nano still learns to reason but less; from about 3 it learns to stop answering at all.
    """
    if name == "correctness":
        return [get_reward("accuracy")], [1.0]
    if name == "length_penalty":
        return [get_reward("accuracy"), get_reward("kimi_length", num_generations=num_generations)], \
            [1.0, float(length_weight)]
    if name == "format":
        return [get_reward("format")], [1.0]
    raise ValueError(f"unknown reward set-up {name!r}; known: {sorted(REWARD_SETUPS)}")
