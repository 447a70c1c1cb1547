import pytest

from qwqlab.chat import MATH_INSTRUCTION, build_prompt, extract_boxed, split_think


def test_extract_boxed_last_and_nested():
    assert extract_boxed(r"first \boxed{1} then \boxed{\frac{a}{b}}") == r"\frac{a}{b}"
    assert extract_boxed(r"\boxed{ {x} + {y} }") == "{x} + {y}"
    assert extract_boxed(r"\fbox{7}") == "7"


@pytest.mark.parametrize("text", ["", "no box", r"\boxed{unclosed", r"\boxed"])
def test_extract_boxed_absent(text):
    assert extract_boxed(text) is None


def test_extract_boxed_unclosed_last_falls_back_to_earlier():
    assert extract_boxed(r"\boxed{5} and \boxed{6") == "5"


def test_split_think_closed_without_opening_tag():
    s = split_think("1+2+0=3\n</think>\n\nThe answer is \\boxed{3}.")
    assert (s.case, s.thinking, s.answer, s.opened) == ("closed", "1+2+0=3", "The answer is \\boxed{3}.", False)


def test_split_think_explicit_tags():
    s = split_think("<think>\nhmm\n</think>\nok")
    assert (s.case, s.thinking, s.answer, s.opened) == ("closed", "hmm", "ok", True)


def test_split_think_unclosed_is_all_thinking():
    s = split_think("<think>\nstep one\nstep two")
    assert s.case == "unclosed" and s.thinking == "step one\nstep two" and s.answer == ""
    # A truncated completion after a QwQ prompt has no tags at all but is still thinking.
    s = split_think("7+5+0=12\n8+4+1=")
    assert s.case == "unclosed" and s.answer == ""


def test_split_think_no_tags_is_answer_only_when_the_prompt_did_not_open_the_thinking():
    # issue 9: the prompt opened <think> and the completion never closed it (cut at
    # max_new_tokens): a box inside the unfinished thinking is not an answer
    s = split_think(r"so maybe \boxed{4}, let me check")
    assert s.case == "unclosed" and s.answer == "" and "boxed" in s.thinking
    s = split_think(r"The answer is \boxed{4}.", prompt_opens_think=False)
    assert s.case == "no_tags" and s.thinking == "" and "boxed" in s.answer
    s = split_think("plain text", prompt_opens_think=False)
    assert s.case == "no_tags" and s.answer == "plain text"


def test_split_think_multiple_blocks():
    s = split_think("a\n</think>\n<think>\nb\n</think>\nfinal")
    assert s.case == "multiple" and s.thinking == "a\nb" and s.answer == "final"


def test_split_think_empty_thinking():
    s = split_think("</think>\n\n\\boxed{1}")
    assert s.case == "closed" and not s.has_thinking


def test_build_prompt_opens_thinking(nano):
    _, tok = nano
    text = build_prompt(tok, "What is 1+2?")
    assert text.endswith("<|im_start|>assistant\n<think>\n")
    assert f"What is 1+2? {MATH_INSTRUCTION}<|im_end|>\n" in text


def test_build_prompt_adds_think_when_template_does_not():
    class Tok:
        chat_template = "x"

        def apply_chat_template(self, messages, tokenize, add_generation_prompt):
            return "<user>" + messages[-1]["content"] + "<assistant>"
    assert build_prompt(Tok(), "q").endswith("<assistant><think>\n")


def test_build_prompt_without_template_says_how_to_fix():
    class Tok:
        chat_template = None
    with pytest.raises(ValueError, match="chat template"):
        build_prompt(Tok(), "q")


def test_chat_template_drops_earlier_thinking(nano):
    _, tok = nano
    text = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "secret\n</think>\n\nhello"},
         {"role": "user", "content": "again"}], tokenize=False, add_generation_prompt=True)
    assert "secret" not in text and "<|im_start|>assistant\nhello<|im_end|>\n" in text


@pytest.mark.parametrize("text, boxed", [
    ("\\boxed{" * 8000, None),                       # 55 KB of unclosed boxes: was quadratic (31-38 s)
    ("\\boxed{" * 8000 + "7}", "7"),
    ("\\boxed{\\boxed{3}}", "3"), ("\\boxed{a} \\boxed{b", "a"), ("\\boxed{\\{1,2\\}}", "\\{1,2\\}"),
    ("\\boxed{x}}}", "x"), ("{\\boxed{5}", "5"), ("\\fbox {7}", "7"), ("\\boxed{1}\\", "1"),
])
def test_extract_boxed_hostile_shapes(text, boxed):
    """The last closed box wins, nested and escaped braces kept; one linear pass (timing: benchmarks/)."""
    assert extract_boxed(text) == boxed


# ----------------------------------------------------------------------------- one rule each (issue 22)

WELL_FORMED_TABLE = [
    ("12+35=47\n</think>\n\nThe answer is \\boxed{47}.", True),
    ("</think>\n\n\\boxed{579}", False),                        # no thinking: the case that disagreed
    ("   \n</think>\n\\boxed{1}", False),                         # only whitespace before the tag
    ("so 3\n</think>\nThe answer is 3.", False),                 # no box
    ("so 3\n</think>\n\\boxed{3", False),                        # an unclosed box
    ("so 3", False),                                            # truncated inside the thinking
    ("a</think>b</think>\\boxed{2}", False),                     # two closing tags
    ("<think>\nso 3\n</think>\n\\boxed{3}", False),              # opened again after QwQ's prompt opened it
    ("so 3\n</think>\n\\boxed{\\frac{1}{2}}", True),
]


@pytest.mark.parametrize("text,expected", WELL_FORMED_TABLE)
def test_the_format_reward_and_the_logs_format_rate_agree(text, expected, fake):
    """One rule decides "well formed" (chat.is_well_formed): the format reward and train_grpo's
    format_rate (step_log, evaluate_policy) both count with it."""
    import types

    import torch

    from qwqlab.chat import is_well_formed
    from qwqlab.grpo import step_log
    from qwqlab.rewards import make_format_reward
    from qwqlab.tasks import ArithmeticTask

    model, tok = fake
    prompt = build_prompt(tok, "What is 1+2?")
    assert is_well_formed(text) is expected
    assert make_format_reward()([prompt], [text]) == [float(expected)]
    gen = types.SimpleNamespace(text=text, finish_reason="stop", entropy=0.0, num_tokens=4, prompt_index=0,
                                token_ids=[])
    problem = ArithmeticTask().problems(1)[0]
    batch = types.SimpleNamespace(texts=[text], row_problems=[problem], completions=[gen], total=[1.0],
                                  rewards=torch.tensor([1.0, 0.0]), completion_mask=torch.ones(1, 4),
                                  lengths=torch.tensor([4]), per_func={}, generation_seconds=0.0)
    cfg = types.SimpleNamespace(num_generations=2, beta=0.0)
    update = {"kl": 0.0, "clipped": 0.0, "loss": 0.0, "grad_norm": 0.0, "skipped": 0}
    timing = {"learning_rate": 0.0, "seconds": 0.0, "elapsed_seconds": 0.0}
    row = step_log(1, batch, update, 1, timing, tok, ArithmeticTask(), cfg)
    assert row["format_rate"] == float(expected)


def test_one_thinking_token_count_for_every_caller(fake):
    """rollouts' table, train_grpo's log and lengths.add_lengths count thinking tokens with one
    function (chat.think_answer_tokens): the same numbers for the same completions."""
    import types

    import pandas as pd
    import torch

    from qwqlab.chat import think_answer_tokens
    from qwqlab.decoding import Completion
    from qwqlab.grpo import step_log
    from qwqlab.lengths import add_lengths
    from qwqlab.rollouts import _make_row
    from qwqlab.tasks import ArithmeticTask

    model, tok = fake
    texts = ["\n12+35=47 so 47\n</think>\n\nThe answer is \\boxed{47}.", "7+5=12 still", "</think>\\boxed{3}",
             "a\n</think>\nb\n</think>\n\\boxed{9}"]
    think, answer = think_answer_tokens(texts, tok)
    assert think.tolist() == [len(tok(split_think(t).thinking, add_special_tokens=False)["input_ids"]) for t in texts]
    assert think[0] > 0 and think[2] == 0 and answer[1] == 0
    task = ArithmeticTask()
    problem = task.problems(1)[0]
    rows = [_make_row(Completion(tok(t, add_special_tokens=False)["input_ids"], 1, "stop"), problem, 0, "p", tok,
                      task, {}) for t in texts]
    assert [r["think_tokens"] for r in rows] == think.tolist()
    assert [r["answer_tokens"] for r in rows] == answer.tolist()
    table = add_lengths(pd.DataFrame({"completion": texts}), tokenizer=tok)
    assert table["think_tokens"].tolist() == think.tolist()
    gens = [types.SimpleNamespace(text=t, finish_reason="stop", entropy=0.0, num_tokens=4, prompt_index=0)
            for t in texts]
    batch = types.SimpleNamespace(texts=texts, row_problems=[problem] * 4, completions=gens, total=[1.0] * 4,
                                  rewards=torch.ones(4), completion_mask=torch.ones(4, 4),
                                  lengths=torch.full((4,), 4), per_func={}, generation_seconds=0.0)
    row = step_log(1, batch, {"kl": 0.0, "clipped": 0.0, "loss": 0.0, "grad_norm": 0.0, "skipped": 0}, 4,
                   {"learning_rate": 0.0, "seconds": 0.0, "elapsed_seconds": 0.0}, tok, task,
                   types.SimpleNamespace(num_generations=2, beta=0.0))
    assert row["think_tokens_mean"] == pytest.approx(float(think.mean()))
