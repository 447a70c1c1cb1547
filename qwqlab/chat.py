"""Prompts in QwQ's chat format, and parsing of what a reasoning model writes back.

QwQ-32B's chat template ends the generation prompt with ``<think>\\n``, so a completion
starts *inside* the thinking and closes it with ``</think>`` before the final answer.
qwq-nano's template does the same, so every parser here works on both.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


def build_prompt(tokenizer, question: str, instruction: str | None = MATH_INSTRUCTION,
                 system: str | None = None) -> str:
    """The text a reasoning model is prompted with: chat template, generation prompt included.

    >>> build_prompt(tok, "What is 12+35?")  # doctest: +SKIP
    '<|im_start|>user\\nWhat is 12+35? Please reason step by step, ...<|im_end|>\\n<|im_start|>assistant\\n<think>\\n'
    """
    content = question if not instruction else f"{question} {instruction}"
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": content}]
    if getattr(tokenizer, "chat_template", None) is None:
        raise ValueError(
            "This tokenizer has no chat template, so qwqlab cannot build a prompt for it. "
            "Load a chat/instruct model (QwQ-32B, an R1 distill, qwq-nano) or set "
            "tokenizer.chat_template yourself.")
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    # Some templates (R1 distills) open the thinking themselves and some do not: make the
    # completion always start inside the thinking, as QwQ's does.
    if not text.rstrip().endswith(THINK_OPEN):
        text = text + THINK_OPEN + "\n"
    return text


@dataclass(frozen=True)
class ThinkSplit:
    """A completion cut into its thinking and its answer.

    ``case`` says what was seen: ``"closed"`` (thinking then ``</think>``), ``"unclosed"``
    (an opening tag and no ``</think>``: a truncated completion, all thinking),
    ``"no_tags"`` (neither tag: all answer), ``"multiple"`` (several thinking blocks; the
    thinking is all of them joined, the answer what follows the last ``</think>``).
    ``opened`` says whether an explicit ``<think>`` appeared (QwQ-style prompts open it).
    """
    thinking: str
    answer: str
    case: str
    opened: bool

    @property
    def has_thinking(self) -> bool:
        return bool(self.thinking.strip())


def split_think(text: str, prompt_opens_think: bool = True) -> ThinkSplit:
    """Split a completion into thinking and answer, whatever shape it came back in.

    Args:
        text: the completion (or a full transcript with the ``<think>`` in it).
        prompt_opens_think: the prompt ended with ``<think>`` (QwQ's template), so a
            completion with ``</think>`` and no opening tag is still well formed, and one
            with neither tag is a truncated thinking block rather than a bare answer.
    """
    opened = THINK_OPEN in text
    n_close = text.count(THINK_CLOSE)
    if n_close == 0:
        if opened:
            return ThinkSplit(text.split(THINK_OPEN, 1)[1].strip(), "", "unclosed", True)
        if prompt_opens_think and text and "\\boxed" not in text:
            return ThinkSplit(text.strip(), "", "unclosed", False)
        return ThinkSplit("", text.strip(), "no_tags", False)
    head, _, answer = text.rpartition(THINK_CLOSE)
    parts = [p.replace(THINK_OPEN, "").strip() for p in head.split(THINK_CLOSE)]
    thinking = "\n".join(p for p in parts if p)
    case = "multiple" if n_close > 1 or text.count(THINK_OPEN) > 1 else "closed"
    return ThinkSplit(thinking, answer.strip(), case, opened)


_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")


def extract_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` in ``text``, nested braces kept; ``None`` if none.

    >>> extract_boxed(r"so \\boxed{\\frac{1}{2}} and \\boxed{42}")
    '42'
    >>> extract_boxed(r"\\boxed{\\frac{1}{2}}")
    '\\\\frac{1}{2}'
    >>> extract_boxed("no answer") is None
    True
    """
    if not text:
        return None
    starts = [m.end() for m in _BOXED.finditer(text)]
    for start in reversed(starts):
        depth, i = 1, start
        while i < len(text):
            ch = text[i]
            if ch == "\\" and i + 1 < len(text):
                i += 2
                continue
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    return text[start:i].strip()
            i += 1
    return None


def format_answer(answer: str) -> str:
    """The answer section qwq-nano writes after ``</think>``."""
    return f"The answer is \\boxed{{{answer}}}."
