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
        if prompt_opens_think and text:
            # The prompt opened the thinking and the completion never closed it: it was cut
            # (max_new_tokens) inside the thinking, so a \\boxed{} there is not an answer.
            # Outputs of answer-only models (no tags at all) need prompt_opens_think=False.
            return ThinkSplit(text.strip(), "", "unclosed", False)
        return ThinkSplit("", text.strip(), "no_tags", False)
    head, _, answer = text.rpartition(THINK_CLOSE)
    parts = [p.replace(THINK_OPEN, "").strip() for p in head.split(THINK_CLOSE)]
    thinking = "\n".join(p for p in parts if p)
    case = "multiple" if n_close > 1 or text.count(THINK_OPEN) > 1 else "closed"
    return ThinkSplit(thinking, answer.strip(), case, opened)


_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BRACE_OR_ESCAPE = re.compile(r"\\[{}\\]|[{}]")  # an escaped brace or backslash, or a brace


def boxed_spans(text: str) -> list[tuple[int, int]]:
    """``(content start, index of the closing brace)`` of every closed ``\\boxed{...}``, by start.

    One pass, linear in ``len(text)`` (a completion of 8,000 unclosed ``\\boxed{`` must not
    cost seconds): a stack of open braces, each marked with where its box's content starts
    (or -1 for a plain brace). Escaped braces (``\\{``) do not count.

    >>> boxed_spans(r"\\boxed{1} \\boxed{\\frac{a}{b}}")
    [(7, 8), (17, 28)]
    """
    if not text:
        return []
    openers = {m.end() - 1: m.end() for m in _BOXED.finditer(text)}  # "{" position -> content start
    stack: list[int] = []
    spans = []
    for m in _BRACE_OR_ESCAPE.finditer(text):  # only braces and escapes cost Python time
        ch, i = m.group(), m.start()
        if ch == "{":
            stack.append(openers.get(i, -1))
        elif ch == "}" and stack:
            content = stack.pop()
            if content >= 0:
                spans.append((content, i))
    return sorted(spans)


def extract_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` in ``text``, nested braces kept; ``None`` if none.

    "Last" is the closed box that starts last (``boxed_spans``).

    >>> extract_boxed(r"so \\boxed{\\frac{1}{2}} and \\boxed{42}")
    '42'
    >>> extract_boxed(r"\\boxed{\\frac{1}{2}}")
    '\\\\frac{1}{2}'
    >>> extract_boxed("no answer") is None
    True
    """
    spans = boxed_spans(text)
    if not spans:
        return None
    start, end = spans[-1]
    return text[start:end].strip()


def format_answer(answer: str) -> str:
    """The answer section qwq-nano writes after ``</think>``."""
    return f"The answer is \\boxed{{{answer}}}."


# ----------------------------------------------------------------------------- one rule each

def is_well_formed(text: str, prompt_opens_think: bool = True) -> bool:
    """The one rule for a well-formed completion: non-empty thinking, one ``</think>``, then an
    answer with a ``\\boxed{}``. The format reward (``rewards.make_format_reward``) and the
    training log's ``format_rate`` both use it.

    QwQ's prompt already opens ``<think>``, so the completion must not open it again; after a
    prompt that did not open it, the completion must start with ``<think>``.

    >>> is_well_formed("12+35=47\\n</think>\\n\\nThe answer is \\\\boxed{47}.")
    True
    >>> is_well_formed("</think>\\n\\n\\\\boxed{579}")  # no thinking
    False
    """
    n_open, n_close = text.count(THINK_OPEN), text.count(THINK_CLOSE)
    if n_close != 1 or n_open > 1:
        return False
    head, _, answer = text.partition(THINK_CLOSE)
    if n_open == 1:
        if prompt_opens_think or head.strip()[:len(THINK_OPEN)] != THINK_OPEN:
            return False  # a second opening tag, or text before the opening tag
        head = head.strip()[len(THINK_OPEN):]
    elif not prompt_opens_think:
        return False
    return bool(head.strip()) and extract_boxed(answer) is not None


def count_tokens(texts, tokenizer=None):
    """Token counts of ``texts`` (a numpy array), with ``tokenizer`` or the whitespace fallback.

    Args:
        texts: a sequence of strings (``None`` counts as empty).
        tokenizer: a Hugging Face tokenizer (called on the whole batch, no special
            tokens), or any callable ``str -> list of ids | int``. ``None`` uses the
            **whitespace fallback**: the number of whitespace-separated pieces. That is
            not a token count: subword tokenizers give more tokens than words (roughly
            1.3 per English word, and one per digit for digit-splitting tokenizers such as
            Qwen's and qwq-nano's), so use it to compare traces with each other, not with
            figures measured in real tokens.

    >>> count_tokens(["so 12+35=47", "", None]).tolist()
    [2, 0, 0]
    """
    import numpy as np
    import pandas as pd

    texts = pd.Series(list(texts) if not isinstance(texts, pd.Series) else texts, dtype=object)
    values = texts.fillna("").astype(str).tolist()
    if tokenizer is None:
        import pyarrow as pa
        import pyarrow.compute as pc

        counts = pc.count_substring_regex(pa.array(values, type=pa.large_string()), r"\S+")
        return np.asarray(counts.to_numpy(zero_copy_only=False), dtype=np.int64)
    if any(c.__name__ == "PreTrainedTokenizerBase" for c in type(tokenizer).__mro__) \
            or hasattr(tokenizer, "backend_tokenizer"):  # a Hugging Face tokenizer: one batched call
        ids = tokenizer(values, add_special_tokens=False)["input_ids"] if values else []
        return np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(values))
    out = np.empty(len(values), dtype=np.int64)
    for i, v in enumerate(values):
        n = tokenizer(v)
        out[i] = n if isinstance(n, (int, np.integer)) else len(n)
    return out


def think_answer_tokens(completions, tokenizer=None, prompt_opens_think: bool = True):
    """The one thinking-token counter: ``(think_tokens, answer_tokens)``, numpy arrays, one per completion.

    A completion's thinking tokens are the tokens of its thinking text, its answer tokens those
    of its answer text, both as ``split_think`` cuts them (the tags and the whitespace around
    them count in neither), counted by ``count_tokens``. ``rollouts.sample``'s table, the
    training log's ``think_tokens_mean`` and ``lengths.add_lengths`` all count with it.
    """
    parts = [split_think(c or "", prompt_opens_think) for c in completions]
    return (count_tokens([p.thinking for p in parts], tokenizer),
            count_tokens([p.answer for p in parts], tokenizer))
