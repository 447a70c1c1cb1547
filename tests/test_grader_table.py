"""The grader on the endings real models write (issue 19, item 4): one verdict per ending, with its reason.

Each row is an ending of a response, the gold answer, the one verdict ``grading.grade`` must give,
the rule of ``grading.answer_only_rules`` that reads it (``box`` for a ``\\boxed{}``, ``-`` when no
answer is read), and why. The first four are the endings quoted in issue 19 (answer-only models
on MATH, from the MiP-Overthinking traces); the rest are endings of the same kinds collected from
answer-only chat models (Qwen2.5-Instruct, GPT-4o-style markdown) and reasoning models. Unless a
row says ``think``, the output is answer-only (no thinking tags, ``prompt_opens_think=False``).
"""
from __future__ import annotations

import pytest

from qwqlab import grading

THINK = "think"  # the prompt opened the thinking: a reasoning model's output

# (ending, gold, verdict, rule, reason[, THINK])
TABLE = [
    # --- the endings quoted in issue 19
    ("so the angle between the lines is\n\nθ = 90°.", "90^\\circ", 1.0, "final equation",
     "the final sentence is an equation: its right-hand side; degrees (° and ^\\circ) do not change the value"),
    ("Thus 1 + r = 1.1 ⇒ r = 0.10. As a percentage, this is 10.", "10", 1.0, "last value",
     "the final sentence states 10; the earlier r = 0.10 is an intermediate value, not the last one"),
    ("Solving for w gives\n\nw = 6 − 5i.", "6-5i", 1.0, "final equation",
     "U+2212 (−) is a minus sign: 6 − 5i is 6-5i"),
    ("Therefore the solution is\n\n**x = -24**", "-24", 1.0, "bold",
     "a bold answer in the final paragraph; its right-hand side"),
    # --- bold and labelled answers
    ("Adding the two parts gives the total.\n\n**Answer:** 42", "42", 1.0, "stated",
     "a bold 'Answer:' label states the answer that follows it"),
    ("Since she spins 2250° = 6 turns + 90°, she ends up facing **east**.", "\\text{east}", 1.0, "bold",
     "a bold word is the answer; \\text{east} and east are the same text"),
    ("## Final Answer\n\nThe number of integer solutions is **7**.", "7", 1.0, "stated",
     "a 'Final Answer' heading states what follows: the sentence's value, bold markers off"),
    ("We check both cases.\n\nThe number of integer solutions is **7**.", "7", 1.0, "bold",
     "the bold value in the final paragraph"),
    ("Adding the parts, the **total cost** is \\$42.", "42", 1.0, "last value",
     "a bold phrase that is not a value and does not end the text is emphasis, not the answer"),
    ("### Step 2: Count the cases\n\n**Conclusion**: there are 12 cases in all.", "12", 1.0, "last value",
     "a bold label (followed by ':') is not an answer; the sentence's last value is"),
    ("Final Answer\n\\[ 42 \\]", "42", 1.0, "stated",
     "a 'Final Answer' line followed by a display block: the block is the answer"),
    # --- boxes (any model): the last box wins
    ("Therefore, the answer is \\(\\boxed{17}\\).", "17", 1.0, "box",
     "a box inside \\(...\\) is a box"),
    ("My first guess was \\(\\boxed{12}\\), but rechecking, it is \\(\\boxed{13}\\).", "12", 0.0, "box",
     "the last box wins, not the first"),
    ("It is either \\boxed{2} or \\boxed{3}.", "2", 0.0, "box",
     "two boxed candidates: the last box (3) is the answer, so 2 is not it"),
    # --- stated answers
    ("The final answer is $\\frac{3}{4}$. I hope it is correct.", "\\frac{3}{4}", 1.0, "stated",
     "'final answer is' states it (Minerva's ending); the closing remark is not part of it"),
    ("The answer is 5 because 2 + 3 = 5.", "5", 1.0, "stated",
     "a stated answer runs to 'because'; the reason after it is not the answer"),
    ("Converting, the answer is 0.5.", "\\frac{1}{2}", 1.0, "stated",
     "0.5 and 1/2 are equal (Math-Verify)"),
    ("The answer is approximately 3.14.", "3.14", 1.0, "stated",
     "'approximately' is not part of the value"),
    ("The answer is approximately 0.33.", "\\frac{1}{3}", 0.0, "stated",
     "a decimal approximation is not the exact answer 1/3"),
    ("Thus the final answer is: **5 apples**.", "5", 1.0, "stated",
     "bold markers and a unit in words are not part of the value"),
    ("So x = 5.\n\nSubstituting back, we see that the answer is correct.", "5", 1.0, "last value",
     "'the answer is correct' is a remark about the answer, not a stated value"),
    ("The answer cannot be determined from the information given.", "5", 0.0, "-",
     "no value is stated (an abstention), so there is no answer"),
    # --- a value in the final sentence: units, percentages, currency, Unicode, LaTeX
    ("The area of the garden is 12 square units.", "12", 1.0, "last value",
     "a unit in words after the number is not part of the value"),
    ("The angle is 45 degrees.", "45^\\circ", 1.0, "last value",
     "45 degrees is 45 degrees: the unit word and ^\\circ do not change the value"),
    ("The price went up by 25%.", "25\\%", 1.0, "last value",
     "a percent sign on either side does not change the value"),
    ("Therefore, after 3 years, the amount is \\$1157.63.", "1157.63", 1.0, "last value",
     "the last number, not the first (3 years); the dollar sign is not part of it"),
    ("Adding them up, the sum is 1,234.", "1234", 1.0, "last value",
     "a thousands separator does not change the value"),
    ("Hence the value is −7.", "-7", 1.0, "last value",
     "U+2212 before a number is a minus sign"),
    ("So the side length is 3√2.", "3\\sqrt{2}", 1.0, "last value",
     "√2 is \\sqrt{2}, and 3√2 is one value, not the numbers 3 and 2"),
    ("The area is 16π square units.", "16\\pi", 1.0, "last value",
     "π is \\pi; the unit is dropped"),
    ("Since r² = 25, the radius is 5.", "5", 1.0, "last value",
     "r² is r^{2} (a superscript is not a number); the last value is 5"),
    ("So the probability is \\(\\frac{1}{4}\\).", "\\frac{1}{4}", 1.0, "last value",
     "inline maths \\(...\\) is one value, not the numbers 1 and 4"),
    ("\\[ x = -\\frac{b}{2a} = \\frac{5}{2} \\]\nSo the vertex is at \\(x = \\frac{5}{2}\\).", "\\frac{5}{2}", 1.0,
     "final equation", "the final sentence ends with an equation (in inline maths): its right-hand side"),
    ("So $k = \\dfrac{7}{3}$.", "\\frac{7}{3}", 1.0, "final equation",
     "\\dfrac is \\frac; the right-hand side of the final equation"),
    ("Then x = 3, so y = 2x + 1 = 7.", "7", 1.0, "final equation",
     "in a chain of equations the value is after the last '='"),
    ("The intersection point is (x, y) = (2, −1).", "(2,-1)", 1.0, "final equation",
     "a point is a value; U+2212 is a minus sign"),
    ("The result is approximately 2.718.", "e", 0.0, "last value",
     "a decimal approximation of e is not e"),
    # --- several candidates
    ("The solutions are x = 2 or x = 3.", "2, 3", 1.0, "final equation",
     "'x = 2 or x = 3' lists both solutions, which is the gold answer"),
    ("The solutions are x = 2 or x = 3.", "3", 0.0, "final equation",
     "a hedged pair of candidates is not the single answer 3"),
    # --- reasoning models: the policy that does not change
    ("Let me check once more.\n</think>\n\nThe answer is 5.", "5", 0.0, "-",
     "a reasoning model's answer section must box its answer (the format it is taught)", THINK),
    ("Let me check once more.\n</think>\n\nSo $x = \\boxed{5}$.", "5", 1.0, "box",
     "the box after the thinking", THINK),
    ("so the answer is \\boxed{5}, but wait, let me", "5", 0.0, "-",
     "truncated inside the thinking: no answer, whatever it boxed on the way", THINK),
]
IDS = [f"{i:02d}-{row[0][-24:]!r}" for i, row in enumerate(TABLE)]


@pytest.mark.parametrize("row", TABLE, ids=IDS)
def test_each_ending_gets_one_verdict_for_its_reason(row):
    ending, gold, verdict, rule, reason = row[:5]
    opens = len(row) > 5 and row[5] == THINK
    assert reason  # every row says why
    assert grading.grade(ending, gold, prompt_opens_think=opens) == verdict, reason
    answer = grading.extract_answer(ending, prompt_opens_think=opens)
    if rule == "-":
        assert answer is None, reason
    elif rule == "box":
        assert answer == grading.extract_boxed(ending.rpartition("</think>")[2]), reason
    else:
        assert grading.answer_only_rules(ending) == (rule, answer), reason


def test_the_table_covers_the_issues_endings_and_twenty_more():
    endings = [row[0] for row in TABLE]
    for quoted in ("θ = 90°.", "1 + r = 1.1 ⇒ r = 0.10. As a percentage, this is 10.", "w = 6 − 5i.", "**x = -24**"):
        assert any(e.endswith(quoted) for e in endings), quoted
    assert len(TABLE) - 4 >= 20
    for kind in ("**", "**Answer:**", "\\(\\boxed", "−", "approximately", "square units", "%", " or "):
        assert any(kind in e for e in endings), kind


def test_unicode_maths_is_written_as_latex():
    assert grading.unicode_math("6 − 5i") == "6 - 5i"
    assert grading.unicode_math("x² + y³ = z⁻¹") == "x^{2} + y^{3} = z^{-1}"
    assert grading.unicode_math("√(x+1) ÷ 2 × π") == "\\sqrt{x+1} \\div 2 \\times \\pi"
    assert grading.unicode_math("a ⇒ b, ∛8 ≈ 2, 2πr") == "a \\implies b, \\sqrt[3]{8} \\approx 2, 2\\pi r"
    assert grading.unicode_math("plain ASCII is untouched: 1/2") == "plain ASCII is untouched: 1/2"
    assert grading.normalise("**\\(6 − 5i\\)**") == grading.normalise("6-5i") == "6-5i"
    assert grading.answers_match("6 − 5i", "6-5i") == 1.0  # through the normaliser, no Math-Verify needed


def test_the_rules_apply_only_to_answer_only_outputs():
    """A reasoning model's unboxed answer section stays unanswered, and so does a cut-off thinking:
    the fallbacks never change what a model trained to box is graded on."""
    assert grading.extract_answer("ok</think>The answer is 5.", prompt_opens_think=True) is None
    assert grading.extract_answer("The answer is 5.", prompt_opens_think=True) is None  # truncated thinking
    assert grading.extract_answer("The answer is 5.", prompt_opens_think=False) == "5"
    assert grading.answer_only_rules("") is None and grading.answer_only_rules("No numbers here.") is None


PATHOLOGICAL = [
    "5 " + "ab" * 3000 + "#",                   # a long word after a number (a unit regex could backtrack)
    "5 " + "ab " * 1500 + "#",
    "\\(" * 1500, "\\[" * 1500, "$1 " * 1000, "**a" * 1000, "the answer is " * 250,
    "= " * 1500, "\\frac{" * 600, " or " * 700, "1," * 1500, "\\frac{ab}{cd} " * 200,
]


def test_hostile_endings_are_read_fast_and_never_raise():
    """The rules are regexes over the last 3,000 characters: each ending, and 200 random ones built
    from the tokens the rules look for, is read in well under a second (tiny: the whole set runs in
    about a second on 2 cores)."""
    import random
    import time

    tokens = ["5", " ", "ab", "=", "\\(", "\\)", "\\[", "\\]", "$", "**", ".", ",", " or ", "the answer is ", "\n",
              "\n\n", "\\frac{", "}", "{", "−", "²", "√", "π", "feet", "%", "/", "^", "Final Answer\n", "⇒", ":",
              "-", "1.5", "x", "\\text{", "approximately "]
    rng = random.Random(0)
    texts = PATHOLOGICAL + ["".join(rng.choice(tokens) for _ in range(rng.randint(10, 1500))) for _ in range(200)]
    for text in texts:
        start = time.perf_counter()
        found = grading.answer_only_rules(text)
        assert time.perf_counter() - start < 2.0, text[:80]  # backtracking takes seconds; a GC pause of a big heap 0.16-0.72 s
        assert found is None or (found[0] in ("stated", "bold", "final equation", "last value") and found[1])
