"""Reading a final answer out of text: Unicode maths as LaTeX, and the answer-only rules.

Part of the one grader (``qwqlab.grading``, which imports both): ``unicode_math`` is its
normaliser's first step, and ``answer_only_rules`` is how ``grading.extract_answer`` reads an
output that states its answer without a ``\\boxed{}`` (answer-only chat models).
"""
from __future__ import annotations

import re

__all__ = ["UNICODE_MATH", "MATH_DELIMITERS", "unicode_math", "answer_only_rules"]

#: Maths delimiters and bold markers, which never change an answer's value.
MATH_DELIMITERS = re.compile(r"\\[()\[\]]|\$\$|\*\*")

# ----------------------------------------------------------------------------- Unicode maths

_SUPERSCRIPT = "\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079\u207a\u207b\u207d\u207e\u207f"  # ⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁽⁾ⁿ
_SUBSCRIPT = "\u2080\u2081\u2082\u2083\u2084\u2085\u2086\u2087\u2088\u2089"  # ₀₁₂₃₄₅₆₇₈₉
_SCRIPT_RUN = re.compile(f"[{_SUPERSCRIPT}]+|[{_SUBSCRIPT}]+")
_ROOT = re.compile(r"([\u221a\u221b])\s*(\d+(?:\.\d+)?|[A-Za-z]|\([^()]*\)|\{[^{}]*\})?")  # √ ∛
#: Unicode maths symbol -> its LaTeX (or ASCII) spelling.
UNICODE_MATH = {
    "\u2212": "-", "\u00d7": r"\times", "\u00b7": r"\cdot", "\u22c5": r"\cdot", "\u00f7": r"\div",
    "\u03c0": r"\pi", "\u221e": r"\infty", "\u2264": r"\le", "\u2265": r"\ge", "\u2260": r"\ne",
    "\u00b1": r"\pm", "\u2248": r"\approx", "\u21d2": r"\implies", "\u27f9": r"\implies", "\u2192": r"\to",
    "\u03b8": r"\theta", "\u03b1": r"\alpha", "\u03b2": r"\beta", "\u00bd": r"\frac{1}{2}",
    "\u2153": r"\frac{1}{3}", "\u00bc": r"\frac{1}{4}", "\u00be": r"\frac{3}{4}",
    "\u00a0": " ", "\u2009": " ", "\u202f": " ",
}
_UNICODE_SYMBOL = re.compile("|".join(map(re.escape, UNICODE_MATH)))


def unicode_math(s: str) -> str:
    """Unicode maths written as LaTeX, so Math-Verify and the normaliser read it.

    ``−`` (U+2212) is ``-``; ``×`` ``·`` ``÷`` ``π`` ``∞`` ``≤`` ``≥`` ``≠`` ``±`` ``≈`` ``⇒`` ``→``
    ``θ`` ``½`` ... their LaTeX commands (``UNICODE_MATH``); ``√x``, ``√(x+1)``, ``∛8`` are
    ``\\sqrt{}``; superscript and subscript digits are ``^{}`` and ``_{}``; non-breaking and thin
    spaces are spaces. ``°`` is left to ``normalise`` (which drops degrees).

    >>> unicode_math("6 − 5i"), unicode_math("2π r²"), unicode_math("3√5 ÷ x₁")
    ('6 - 5i', '2\\\\pi r^{2}', '3\\\\sqrt{5} \\\\div x_{1}')
    """
    s = str(s)
    if s.isascii():
        return s
    s = _SCRIPT_RUN.sub(lambda m: ("^{%s}" if m.group()[0] in _SUPERSCRIPT else "_{%s}") % m.group().translate(
        str.maketrans(_SUPERSCRIPT + _SUBSCRIPT, "0123456789+-()n0123456789")), s)
    s = _ROOT.sub(lambda m: ("\\sqrt" if m.group(1) == "\u221a" else "\\sqrt[3]")
                  + ("{%s}" % m.group(2).strip("(){}") if m.group(2) else ""), s)
    # a command is followed by a space only where a letter follows (\pi r, but 2\pi)
    return _UNICODE_SYMBOL.sub(lambda m: UNICODE_MATH[m.group()] + (
        " " if UNICODE_MATH[m.group()][-1].isalpha() and s[m.end():m.end() + 1].isalpha() else ""), s)


# ----------------------------------------------------------------------------- answer-only outputs

#: "the answer is X", "final answer is X", "Answer: X", "Final Answer" on its own line then X.
_STATED = re.compile(r"\b(?:final\s+answer|answer)(?:\s+is\b|\s*[:=])\s*:?|\bfinal\s+answer\s*\n", re.IGNORECASE)
# where a value stated in a sentence ends: a line end, a full stop, "; ", ", so" / "because" ...
_VALUE_END = re.compile(r"\n|\.(?=\s|$)|;\s|,\s+(?:so|which|because|since|as|and)\b|\s(?:because|since|which)\b")
# "the answer is correct / not ... / as follows": a remark about the answer, not one
_VERDICT_WORD = re.compile(r"(?:correct|incorrect|right|wrong|not|consistent|reasonable|valid|verified|indeed"
                           r"|as follows|below|above|that|this|given|found)\b", re.IGNORECASE)
_DISPLAY = re.compile(r"\\\[(.+?)\\\]|\$\$(.+?)\$\$", re.DOTALL)
_INLINE = re.compile(r"\\\((.+?)\\\)|(?<![\\$])\$([^$\n]+?)(?<!\\)\$")
# a number ("-1,234.5", "3/4", "25%"), or maths written in the text: "3\sqrt{2}", "16\pi", "\frac{5}{2}"
_LATEX_TERM = r"\\(?:sqrt|frac|dfrac|tfrac|pi)(?:\[\d+\])?(?:\{[^{}]*\})*"
_NUMBER = re.compile(r"(?<![\w.^_\\])-?(?:\d+(?:,\d{3})*(?:\.\d+)?(?:%s)*|(?:%s)+)(?:\s*/\s*\d+(?![\d.]))?"
                     r"(?:\s*%%|\\%%)?" % (_LATEX_TERM, _LATEX_TERM))
_BOLD = re.compile(r"\*\*([^*\n]+?)\*\*(?!\s*:)")
_CLAUSE = re.compile(r"\\implies|\\Rightarrow|\\Longrightarrow|=>|\\therefore|\\to\b")
_EQUALS_SIGN = re.compile(r"(?<![<>!=\\])=(?!=)|\\approx")
_FILLER = re.compile(r"^(?:(?:approximately|approx\.?|about|around|roughly|exactly|just|only|nearly|so|thus"
                     r"|therefore|hence|then)\b[\s,:]*|\\approx\s*|~\s*)+", re.IGNORECASE)
# plain words after a number or a closing brace: a unit ("200 feet", "4.90 USD/hour", "12 square units")
# (one way to match each text: words need a space between them, a word's parts a "/", "^" or ".")
_UNIT_WORDS = re.compile(r"(?<=[\d}%])(?:\s+[A-Za-z]{2,}(?:[/^.][A-Za-z0-9]+)*)+\s*$")
_PLAIN_WORD = re.compile(r"(?<![\\\w])[A-Za-z]{2,}")
_OR = re.compile(r"\s+or\s+|\s*\\text\{\s*or\s*\}\s*")


def answer_only_rules(text: str) -> tuple[str, str] | None:
    """(rule, answer) for an answer-only output with no ``\\boxed{}``; ``None`` if it states no value.

    The first rule that finds something decides (each is tested in ``tests/test_grader_table.py``):

    1. ``stated``: the last "the answer is X", "final answer is X", "Answer: X" (bold
       ``**Answer:**`` too), or a "Final Answer" line followed by X. X runs to the end of its
       sentence or line, or is the display block (``\\[...\\]``) that follows. A remark about
       the answer ("the answer is correct", "... is as follows") states none.
    2. ``bold``: the last ``**X**`` in the final paragraph that holds a digit or LaTeX, or ends
       the text; not a label (``**Step 3:**``) or emphasis ("the **total cost** is 42").
       Answer-only chat models mark their answer this way ("facing **east**.", "**x = -24**").
    3. ``final equation``: the final sentence ends with an equation ``X = value`` ("θ = 90°.",
       "w = 6 − 5i.", "so y = 2x + 1 = 7."): the value after its last ``=``.
    4. ``last value``: the last number or inline/display maths holding a digit, whichever
       ends last ("... As a percentage, this is 10." gives 10).

    Every X then goes through ``_value``: Unicode maths to LaTeX, maths delimiters and bold
    markers off, the last clause of an implication (``⇒``), the right-hand side of the last
    ``=`` or ``≈``, "approximately"/"about" off, a trailing unit in words off ("200 feet");
    and a sentence that is more than a value ("Jim walks 200 feet less than Martha") gives
    its last value. Several candidates joined by "or" become the list of their values
    ("x = 2 or x = 3" is ``2, 3``): it equals a gold list of both, never one of them.
    These are the fallbacks of Qwen2.5-Math's and QwQ's evaluation ("the answer is",
    "final answer is", the last number), widened to the endings answer-only models write;
    nothing here knows which model wrote the text.

    >>> answer_only_rules("Thus 1 + r = 1.1 ⇒ r = 0.10. As a percentage, this is 10.")
    ('last value', '10')
    >>> answer_only_rules("**x = -24**")
    ('bold', '-24')
    """
    text = unicode_math((text or "")[-3000:]).strip()  # the end of the answer: its last 3,000 characters
    if not text:
        return None
    stated = list(_STATED.finditer(text))
    if stated:
        rest = text[stated[-1].end():].lstrip()
        display = _DISPLAY.match(rest)
        if display:
            value = display.group(1) or display.group(2)
        else:
            stop = _VALUE_END.search(rest)
            value = rest[:stop.start()] if stop else rest
        if _value(value) and not _VERDICT_WORD.match(value.strip(" *:")):
            return "stated", _value(value)
    paragraph = re.split(r"\n\s*\n", text)[-1]
    # a label ("**Step 3:**") is not an answer, nor is emphasis ("the **total cost** is 42"): a bold
    # answer holds a digit or LaTeX, or ends the text ("facing **east**.")
    bold = [m.group(1) for m in _BOLD.finditer(paragraph) if not m.group(1).rstrip().endswith(":") and (
        re.search(r"[\d\\]", m.group(1)) or re.fullmatch(r"[\s.!?)]*", paragraph[m.end():]))]
    if bold and _value(bold[-1]):
        return "bold", _value(bold[-1])
    sentence = MATH_DELIMITERS.sub(" ", _final_sentence(text)).replace("$", " ")
    if (_EQUALS_SIGN.search(sentence) and _value(sentence)
            and not _is_sentence(_bare(_EQUALS_SIGN.split(_CLAUSE.split(sentence)[-1])[-1]))):
        return "final equation", _value(sentence)
    last = _last_value(text)
    return ("last value", last) if last else None


def _final_sentence(text: str) -> str:
    """The last sentence: the display block the text ends with, else the last line's last sentence."""
    text = text.rstrip()
    if text.endswith(("\\]", "$$")):
        blocks = list(_DISPLAY.finditer(text))
        if blocks and blocks[-1].end() == len(text):
            return blocks[-1].group(0)
    line = text.splitlines()[-1] if text else ""
    pieces = [p for p in re.split(r"(?<=[.!?])\s+(?=\S)", line) if p.strip()]
    return pieces[-1] if pieces else ""


def _last_value(text: str) -> str | None:
    """The last number, or the last inline/display maths holding a digit, whichever ends last."""
    best, best_end = None, -1
    masked = text
    for pattern in (_DISPLAY, _INLINE):
        for m in pattern.finditer(text):
            inner = next(g for g in m.groups() if g is not None)
            masked = masked[:m.start()] + " " * (m.end() - m.start()) + masked[m.end():]
            if re.search(r"\d", inner) and m.end() > best_end and _value(inner):
                best, best_end = _value(inner), m.end()
    numbers = list(_NUMBER.finditer(masked))
    if numbers and numbers[-1].end() > best_end:
        best = _value(numbers[-1].group(), whole=True)
    return best


def _value(text: str, whole: bool = False) -> str:
    """A stated answer reduced to its value (see ``answer_only_rules``); ``""`` if nothing is left.
    ``whole``: ``text`` is one number or term already (never searched again for a last value)."""
    v = MATH_DELIMITERS.sub(" ", unicode_math(text)).replace("\\$", "").replace("$", "").replace("`", "")
    v = v.strip().rstrip(".,;:!").strip()
    if _OR.search(v):  # several candidates: the list of their values
        return ", ".join(filter(None, (_value(part) for part in _OR.split(v))))
    v = _CLAUSE.split(v)[-1]
    v = _bare(_EQUALS_SIGN.split(v)[-1])
    if not whole and _is_sentence(v):  # more than a value: its last value
        inner = _last_value(v)
        return inner if inner and inner != v else ("" if re.search(r"\d", v) else v)
    return v


def _bare(v: str) -> str:
    """Without "approximately"/"about" in front, a full stop behind, or a unit in words after it."""
    v = _FILLER.sub("", v.strip()).strip().rstrip(".,;:!").strip()
    return _UNIT_WORDS.sub("", v).strip()


def _is_sentence(v: str) -> bool:
    """Words around a value ("Jim walks 200 ..."), or more than two words: not a bare value.
    One or two words alone ("east", "no solution") are a value."""
    words = _PLAIN_WORD.findall(re.sub(r"\\(?:text|mathrm|textbf|mbox)\s*\{[^{}]*\}", "", v))
    return len(words) > 2 or bool(words and re.search(r"\d", v))
