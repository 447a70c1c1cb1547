"""Every reward survives arbitrary completions: no exception, finite or None, under 1 s a call.

Hypothesis draws groups of ``GROUP`` completions (like one GRPO group) from a mix of
arbitrary text, binary-like bytes, huge repeated strings, tag and brace soup, adversarial
LaTeX (towers of powers, deep nesting, huge factorials) and hostile code blocks, in both
string and conversational form, and sends each group through every registered reward.
``EXAMPLES * GROUP`` is at least 10,000 completions; the run takes about 30-60 s on 2 cores.
"""
import math
import time

import pytest

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qwqlab import rewards as R

GROUP = 8           # completions per reward call, as in a GRPO group
EXAMPLES = 1260     # 1260 * 8 = 10,080 completions
CALL_LIMIT_S = 1.0

FRAGMENTS = ["<think>", "</think>", "\\boxed{", "\\fbox{", "{", "}", "\\", "$", "\n", " ", "^", "_",
             "\\frac{", "\\sqrt{", "\\left(", "\\right)", "```python\n", "```", "47", "-3", "0.5",
             "9", "!", "\\infty", "\\text{", "\x00", "\ufffd", "<|im_end|>", "wait, ", "=", "+"]

ADVERSARIAL_LATEX = st.one_of(
    st.integers(1, 12).map(lambda k: "9^{" * k + "9" + "}" * k),                      # power tower
    st.integers(1, 6).map(lambda k: "^".join(["9"] * (k + 1))),                       # 9^9^9^9
    st.integers(1, 300).map(lambda k: "\\frac{1}{" * k + "2" + "}" * k),               # deep nesting
    st.integers(1, 500).map(lambda k: "(" * k + "1" + ")" * k),
    st.integers(1, 200).map(lambda k: "\\sqrt{" * k + "2" + "}" * k),
    st.integers(1, 400).map(lambda k: "{" * k),                                          # unbalanced
    st.integers(1, 400).map(lambda k: "}" * k + "{"),
    st.integers(3, 9).map(lambda k: "1" + "0" * k + "!"),                               # huge factorial
    st.integers(20, 5000).map(lambda k: "9" * k),                                       # huge number
    st.sampled_from(["10^{10^{10}}", "2^{2^{30}}", "x^{99999999}", "\\binom{10^9}{5\\cdot 10^8}",
                     "\\int_0^\\infty e^{-x^2} dx", "\\sum_{n=1}^{10^{12}} n", "\\lim_{x\\to 0} 1/x",
                     "0.\\overline{9}", "\\frac{0}{0}", "1/0", "\\sqrt{-1}", "e^{i\\pi}",
                     "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", "x = y = z", "\\{1,2,3\\}"]),
)

HOSTILE_CODE = st.sampled_from([
    "print(int(input()) * 2)", "while True:\n    pass", "x = bytearray(10 ** 10)",
    "import os\nos.fork()", "import socket\nsocket.create_connection(('1.1.1.1', 80))",
    "open('/tmp/fuzz-escape', 'w')", "def f(:", "import sys\nsys.exit(3)", "print('x' * 10 ** 7)",
    "raise SystemExit(0)", "import time\ntime.sleep(5)",
])

TEXT = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=200),
    st.binary(max_size=400).map(lambda b: b.decode("latin-1")),
    st.lists(st.sampled_from(FRAGMENTS), max_size=80).map("".join),
    st.tuples(st.text(min_size=1, max_size=12), st.integers(1_000, 40_000)).map(lambda t: t[0] * t[1]),  # huge
    st.tuples(st.text(max_size=40), ADVERSARIAL_LATEX).map(lambda t: f"{t[0]}\n</think>\n\\boxed{{{t[1]}}}"),
    ADVERSARIAL_LATEX.map(lambda s: f"$${s}$$ so \\boxed{{{s}"),
    st.builds(lambda a, b: f"{a}</think>\\boxed{{{b}}}", st.text(max_size=50), st.text(max_size=60)),
)

# A code block in about 1 group in 20 (each run costs a process start, up to the 0.3 s limit).
MAYBE_CODE = st.integers(0, 19).flatmap(
    lambda k: HOSTILE_CODE.map(lambda c: [f"ok\n</think>\n```python\n{c}\n```"]) if k == 7 else st.just([]))

COMPLETION = st.one_of(TEXT, TEXT.map(lambda t: [{"role": "assistant", "content": t}]))
GOLD = st.sampled_from(["47", "-3", "\\frac{1}{2}", "0.5", None, "", "x^2+1", "\\frac{1}{", "9^{9^{9}}",
                        "1,000", "\\sqrt{2}", "\\text{yes}", "{" * 50])


def _rewards():
    code = R.make_code_reward(timeout_s=0.3, memory_mb=128, max_workers=1)
    out = {name: R.get_reward(name) for name in R.REWARDS if name != "code"}
    out["code"] = code
    out["cosine_tight"] = R.make_cosine_reward(min_len=10, max_len=50, exceed_penalty=-10)
    out["kimi_by_group"] = R.make_kimi_length_reward(num_generations=GROUP)
    out["soft_overlong_small"] = R.make_soft_overlong_reward(64, 16)
    out["repetition_1gram"] = R.make_repetition_penalty_reward(ngram_size=1)
    out["combined"] = R.combine([out["accuracy"], out["format"], out["cosine"]], [1.0, 0.2, 0.5])
    return out


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # see below
def test_every_reward_survives_arbitrary_completions():
    # Math-Verify's timer raises only inside Math-Verify's own code, but after half a second
    # of trying it raises wherever it is, possibly in one of hypothesis's gc callbacks,
    # where Python reports the exception as unraisable and drops it (see rewards._time_limit).
    rewards = _rewards()
    R.answers_match("\\frac{1}{2}", "0.5")  # import sympy once, outside the timed calls
    seen = {"completions": 0, "slowest": 0.0, "slowest_reward": ""}

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.lists(COMPLETION, min_size=GROUP, max_size=GROUP), MAYBE_CODE, GOLD, st.text(max_size=30),
           st.booleans())
    def check(completions, code, gold, prompt, with_ids):
        completions = (code + completions)[:GROUP]
        prompts = [prompt + "<think>\n"] * GROUP
        kwargs = {"answer": [gold] * GROUP, "test_cases": [[{"input": "2", "output": "4"}]] * GROUP}
        if with_ids:  # TRL passes token ids; stand in roughly one token per 3 characters
            kwargs["completion_ids"] = [[0] * (len(R.completion_text(c)) // 3) for c in completions]
        for name, reward in rewards.items():
            start = time.perf_counter()
            out = reward(prompts, completions, **kwargs)
            took = time.perf_counter() - start
            if took > seen["slowest"]:
                seen["slowest"], seen["slowest_reward"] = took, name
            assert took < CALL_LIMIT_S, f"{name} took {took:.2f} s on {[str(c)[:80] for c in completions]}"
            assert len(out) == GROUP, name
            for v in out:
                assert v is None or (isinstance(v, (int, float)) and math.isfinite(v)), (name, v)
        seen["completions"] += GROUP

    check()
    assert seen["completions"] >= 10_000
    print(f"{seen['completions']} completions; slowest reward call {seen['slowest']:.3f} s "
          f"({seen['slowest_reward']})")
