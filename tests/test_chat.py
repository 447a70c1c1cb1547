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
