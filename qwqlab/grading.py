"""The one grader: how qwqlab reads an answer and decides whether it equals the gold answer.

Every path that grades maths goes through ``answers_match`` here: the accuracy and
length-aware rewards (``qwqlab.rewards``), ``MathTask.grade``, ``load_traces`` and the traces
module, and maj@k's clustering of equivalent answers (``answers_equal``). One extraction policy
(``extract_answer``: the last ``\\boxed{}`` of the answer wins, truncated thinking has no answer;
an answer-only output without a box is read by ``answer_only_rules``, in ``qwqlab.answer_text``:
a stated answer, a bold answer, a final equation, the last value), one normaliser (``normalise``: Unicode maths via
``unicode_math``, thin spaces, ``\\left``/``\\right``, degrees, ``\\$``, ``\\text{}``/``\\mbox{}``
units, thousands separators), and one timeout policy.

Timeout policy (never hangs, in the main thread or any other): answers shaped like a sympy
trap (towers of powers, huge numbers, deep nesting, longer than ``MAX_MATH_VERIFY_CHARS``)
never reach Math-Verify and are compared as normalised strings, so ``9^{9^{9^{9^{9}}}}``
costs microseconds from any thread; in the main thread each Math-Verify parse and comparison
also has a ``MATH_VERIFY_TIMEOUT_S`` interval timer; from any other thread the judgement runs in a
forked child process killed after ``CHILD_DEADLINE_S`` (a thread cannot be interrupted, and a
C-level power holds the GIL: see ``_verify_killably``); and one call stops using Math-Verify after
``MAX_TIMEOUTS_PER_CALL`` timeouts or ``MATH_VERIFY_BUDGET_S`` (+10 ms per completion).
"""
from __future__ import annotations

import ast
import gc
import logging
import os
import re
import select
import signal
import threading
import time
import warnings
from contextlib import contextmanager

from qwqlab.answer_text import MATH_DELIMITERS, UNICODE_MATH, answer_only_rules, unicode_math  # noqa: F401
from qwqlab.chat import extract_boxed, split_think

# ---------------------------------------------------------------------------------------

_INT = re.compile(r"[+-]?\d{1,60}")
#: Longest boxed answer handed to Math-Verify; longer ones are compared as strings.
MAX_MATH_VERIFY_CHARS = 120
#: Wall-clock limit (seconds) on each Math-Verify parse or comparison, in the main thread.
MATH_VERIFY_TIMEOUT_S = 1.0
#: After this many timeouts in one reward call, the rest of the call compares strings only.
MAX_TIMEOUTS_PER_CALL = 2
#: Math-Verify time one reward call may spend: this many seconds plus 10 ms per completion
#: (a real check takes 2-5 ms, so only adversarial batches reach it).
MATH_VERIFY_BUDGET_S = 3.0
_RISKY = re.compile(r"\d{16,}|\^\s*\{?\s*[+-]?\s*\d{4,}|\d[eE][+-]?\d{3,}|\\binom|\\prod|\\sum|\\int|\\lim|\\Gamma")
_SMALL_FACTORIAL = re.compile(r"(?<![\d.])\d{1,3}\s*!")


class _Timeout(BaseException):
    """Math-Verify ran out of time. A BaseException, so sympy's broad ``except Exception``
    clauses cannot swallow it."""


#: Where a timer signal may raise: inside Math-Verify and the libraries it calls.
_INTERRUPTIBLE = ("sympy", "math_verify", "latex2sympy", "mpmath", "antlr4", "lark")


@contextmanager
def _time_limit(seconds: float):
    """Raise ``_Timeout`` after ``seconds`` of CPU time (main thread only; else no limit).

    Math-Verify's own timeouts use ``signal.alarm`` (whole seconds, and an error outside the
    main thread), so qwqlab turns them off and uses a sub-second interval timer instead.
    The timer counts the process's CPU time (``ITIMER_PROF``), not the wall clock: the
    limit is on what an answer costs to judge, so a machine busy with other work (CI's
    parallel jobs, a notebook's training run) does not turn a correct answer into a timeout.
    For the same reason the cyclic garbage collector waits until the judgement ends: a full
    collection of a large process's heap (0.16-0.72 s measured) is not the answer's cost.
    The timer repeats every 20 ms and raises only when it interrupts Math-Verify's own code
    (not, say, a garbage-collector callback, where Python would print and drop the
    exception), or after half a second of trying. A profiling timer that was already
    running is re-armed afterwards.
    """
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return
    fired = [0]

    def _raise(signum, frame):
        fired[0] += 1
        where = frame.f_code.co_filename if frame is not None else ""
        if fired[0] > 25 or any(part in where for part in _INTERRUPTIBLE):
            raise _Timeout()

    old_handler = signal.signal(signal.SIGPROF, _raise)
    collecting = gc.isenabled()
    gc.disable()
    start = time.process_time()
    old_delay, _ = signal.setitimer(signal.ITIMER_PROF, seconds, 0.02)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, old_handler)
        if collecting:
            gc.enable()
        if old_delay > 0:
            signal.setitimer(signal.ITIMER_PROF, max(1e-3, old_delay - (time.process_time() - start)))


def _is_risky(latex: str) -> bool:
    """Answers that can make sympy hang: too long, deeply nested, towers of powers, huge numbers.

    ``9^{9^{9^9}}`` or ``100000!`` are evaluated exactly by sympy (minutes, gigabytes), and
    a C-level big-integer power cannot be interrupted by a signal, so they never reach it.
    """
    if len(latex) > MAX_MATH_VERIFY_CHARS or latex.count("^") > 1 or "**" in latex:
        return True  # a second power can be an exponent of the first: 9^{9^9} has 370M digits
    depth = best = 0
    for ch in latex:
        if ch in "{([":
            depth += 1
            best = max(best, depth)
        elif ch in "})]":
            depth -= 1
    factorial = "!" in latex.replace("\\!", "")
    if factorial and latex.count("!") > len(_SMALL_FACTORIAL.findall(latex)):
        return True  # only factorials of 1-3 digit numbers: (10^{100})! never finishes
    if factorial and "^" in latex:
        return True  # 2^{99!}, {999!}^{9!}: a small factorial as (or raised to) a power is astronomically big
    return best > 5 or bool(_RISKY.search(latex))


_UNIT_TEXT = re.compile(r"(?<=[\d}])\s*\\(?:text|mbox|mathrm)\s*\{\s*[A-Za-z][A-Za-z .\^\d]*\}\s*$")
_TEXT = re.compile(r"\\(?:text|mbox|textbf|mathrm)\s*\{([^{}]*)\}")
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°|\\degree")
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")


def normalise(s: str) -> str:
    """The one normaliser: the answer as text, with what never changes its value removed.

    Unicode maths (``unicode_math``), maths delimiters (``\\(...\\)``, ``\\[...\\]``, ``$$``) and
    bold markers (``**``), thin and other LaTeX spaces (``\\,``, ``\\;``, ``\\!``, ``~``), ``\\left``/``\\right``,
    degrees (``°``, ``^\\circ``), dollar signs (``\\$``, ``$``), ``\\%``, a trailing unit in
    ``\\text{}``/``\\mbox{}`` after a number (other ``\\text{...}`` keeps its content),
    ``\\dfrac``/``\\tfrac``, thousands separators in a plain number, whitespace, a final period.

    >>> normalise(r"1\\,000"), normalise("90°"), normalise(r"\\$18.90"), normalise(r"5\\text{ cm}")
    ('1000', '90', '18.90', '5')
    """
    s = MATH_DELIMITERS.sub("", unicode_math(s)).strip()
    s = _UNIT_TEXT.sub("", s)
    s = _TEXT.sub(r"\1", s)
    s = _DEGREES.sub("", s)
    s = re.sub(r"\\(left|right|,|;|:|!|\s)", "", s).replace("~", "")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("\\$", "").replace("$", "")
    s = s.replace("\\%", "").replace("%", "").replace("{,}", ",")
    s = re.sub(r"\s+", "", s).rstrip(".")
    if _THOUSANDS.match(s):
        s = s.replace(",", "")
    return s



_MV = None
#: Answers judged once when Math-Verify is first used, so that sympy's lazy imports happen then.
WARM_UP_PAIRS = [("\\frac{1}{2}", "0.5"), ("(3, \\pi/2)", "\\left( 3, \\frac{\\pi}{2} \\right)"),
                 ("\\cos 30", "\\frac{\\sqrt{3}}{2}"), ("\\{1,2\\}", "\\{2,1\\}"), ("y=2x+3", "y = 3+2x")]


def _math_verify():
    """Math-Verify, imported and warmed up once (its first parse imports half of sympy)."""
    global _MV
    if _MV is None:
        import math_verify
        from math_verify import grader, parser

        # qwqlab disables Math-Verify's signal.alarm timeouts on purpose (see _time_limit);
        # without this, Math-Verify warns about it on first use.
        grader.TIMEOUT_WARNING_SHOWN = parser.TIMEOUT_WARNING_SHOWN = True
        logging.getLogger("math_verify").setLevel(logging.ERROR)
        configs = [math_verify.LatexExtractionConfig(boxed_match_priority=0), math_verify.ExprExtractionConfig()]
        # Each pair makes sympy import what it imports lazily (a tuple with pi: combinatorics;
        # a trigonometric value: physics.units), here and untimed: an import interrupted by
        # the timer could leave sympy half-imported, and on a busy machine its first use
        # came to more than MATH_VERIFY_TIMEOUT_S (CI graded (3, pi/2) as a timeout).
        for a, b in WARM_UP_PAIRS:
            math_verify.verify(math_verify.parse(f"${a}$", configs, parsing_timeout=None),
                               math_verify.parse(f"${b}$", configs, parsing_timeout=None), timeout_seconds=None)
        _MV = (math_verify, configs)
    return _MV


def _limited(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` within ``MATH_VERIFY_TIMEOUT_S``, in any thread; ``_Timeout`` if longer.

    In the main thread the interval timer of ``_time_limit`` interrupts the work. Elsewhere
    (a thread pool, a reward server, a notebook widget's callback) signals cannot be used, so
    the call runs in a daemon helper thread and the caller stops waiting at the deadline: the
    abandoned helper may keep one core busy until sympy finishes, but the caller never hangs.
    """
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
        with _time_limit(MATH_VERIFY_TIMEOUT_S):
            return fn(*args, **kwargs)
    box: dict = {}

    def work():
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as e:  # noqa: BLE001 - handed back to the caller's thread
            box["error"] = e

    helper = threading.Thread(target=work, daemon=True, name="qwqlab-math-verify")
    helper.start()
    helper.join(MATH_VERIFY_TIMEOUT_S * 2)  # threads share the GIL with the caller: a looser deadline
    if helper.is_alive():
        raise _Timeout()
    if "error" in box:
        raise box["error"]
    return box["value"]


def _mv_parse(latex: str):
    mv, configs = _math_verify()
    return _limited(mv.parse, f"${latex}$", extraction_config=configs, parsing_timeout=None)


_GOLD_CACHE: dict = {}


def _parse_gold(gold: str):
    """Parsed gold answer, or ``None`` if it does not parse (then it cannot be judged).

    Raises ``_Timeout`` (not cached) when parsing ran out of time.
    """
    if gold not in _GOLD_CACHE:
        parsed = None
        if not _is_risky(gold):
            try:
                parsed = _mv_parse(gold)
            except _Timeout:
                raise
            except Exception:
                parsed = None
        # Math-Verify falls back to the raw string when it finds no expression: not judgeable
        if parsed is not None and not any(not isinstance(p, str) for p in parsed):
            parsed = None
        if len(_GOLD_CACHE) > 4096:
            _GOLD_CACHE.clear()
        _GOLD_CACHE[gold] = parsed
    return _GOLD_CACHE[gold]


class CallBudget:
    """Math-Verify's allowance within one reward call: trips after ``MAX_TIMEOUTS_PER_CALL``
    timeouts or once the call has spent its time budget on Math-Verify."""

    def __init__(self, n: int = 1):
        self.timeouts, self.spent, self.budget = 0, 0.0, MATH_VERIFY_BUDGET_S + 0.01 * n

    @property
    def open(self) -> bool:
        return self.timeouts >= MAX_TIMEOUTS_PER_CALL or self.spent >= self.budget


def answers_match(predicted: str | None, gold: str | None, _breaker: CallBudget | None = None) -> float | None:
    """1.0 if a boxed answer equals the gold answer, 0.0 if not, ``None`` if gold cannot be judged.

    Plain integers are compared as integers (no sympy: 1 us instead of ~2 ms). Otherwise
    Math-Verify (Hugging Face) decides, guarded so that an adversarial answer cannot stall
    training: answers over ``MAX_MATH_VERIFY_CHARS`` characters or shaped like a sympy trap
    (``_is_risky``: towers of powers, huge numbers, deep nesting) are compared as normalised
    strings only; each parse and comparison gets ``MATH_VERIFY_TIMEOUT_S`` seconds (in the
    main thread; elsewhere only the shape checks apply) and counts as a mismatch when it runs
    out; after ``MAX_TIMEOUTS_PER_CALL`` timeouts in one reward call the rest of that call is
    compared as strings, as is the rest of a call that spent ``MATH_VERIFY_BUDGET_S`` plus
    10 ms per completion in Math-Verify. A gold answer in which Math-Verify finds no expression
    (``"\\frac{1}{"``) cannot be judged: ``None``, unless the prediction equals it as a
    normalised string.

    >>> answers_match("047", "47"), answers_match(r"\\frac{1}{2}", "0.5"), answers_match("1", None)
    (1.0, 1.0, None)
    """
    if gold is None:
        return None
    gold = str(gold).strip()
    if not gold:
        return None
    gold_is_int = bool(_INT.fullmatch(gold))
    if predicted is None:  # no answer is wrong, if the gold answer can be judged at all
        if gold_is_int or gold in _GOLD_CACHE:
            return 0.0 if gold_is_int or _GOLD_CACHE[gold] is not None else None
        predicted = ""
    pred = predicted.strip()
    if gold_is_int:
        plain = pred.replace(",", "").replace("{", "").replace("}", "").replace(" ", "")
        if _INT.fullmatch(plain):
            return float(int(plain) == int(gold))
    if pred and normalise(pred) == normalise(gold):
        return 1.0
    breaker = _breaker or CallBudget()
    if breaker.open:
        return None if gold in _GOLD_CACHE and _GOLD_CACHE[gold] is None and not gold_is_int else 0.0
    start = time.process_time()
    try:
        return _verify_killably(pred, gold, gold_is_int, breaker)
    finally:
        breaker.spent += time.process_time() - start


def _verify(pred: str, gold: str, gold_is_int: bool, breaker: CallBudget) -> float | None:
    try:
        gold_parsed = _parse_gold(gold)
    except _Timeout:
        breaker.timeouts += 1
        return 0.0 if gold_is_int else None
    if gold_parsed is None:
        # a gold integer never needs Math-Verify to be judged; anything else must parse
        return 0.0 if gold_is_int else None
    if not pred or _is_risky(pred):
        return 0.0
    mv, _ = _math_verify()
    try:
        pred_parsed = _mv_parse(pred)
        if not pred_parsed:
            return 0.0
        return float(bool(_limited(mv.verify, gold_parsed, pred_parsed, timeout_seconds=None)))
    except _Timeout:  # the comparison ran out of time: it cannot be judged (documented policy)
        breaker.timeouts += 1
        return None
    except Exception:
        return 0.0


#: From a thread other than the main one, a forked child judging one answer is killed after
#: this many seconds (its own timer gives each of its three Math-Verify steps MATH_VERIFY_TIMEOUT_S).
CHILD_DEADLINE_S = 3 * MATH_VERIFY_TIMEOUT_S + 1.0
#: Address space a judging child may add to what it inherits (bytes).
CHILD_EXTRA_MEMORY = 2 << 30


def _ready(fd: int, event: int, seconds: float) -> bool:
    """Is ``fd`` ready (``select.POLLIN``/``POLLOUT``) within ``seconds``? (poll: no 1024-descriptor limit)"""
    poller = select.poll()
    poller.register(fd, event | select.POLLHUP | select.POLLERR)
    return bool(poller.poll(max(0, int(seconds * 1000)) + 1))


def _verify_killably(pred: str, gold: str, gold_is_int: bool, breaker: CallBudget) -> float | None:
    """``_verify`` where a runaway computation can always be stopped.

    In the main thread, ``_time_limit``'s interval timer interrupts Math-Verify. From any other
    thread (a thread pool, a reward server, a widget callback) no signal can reach it, and a
    helper thread is no answer: ``2^{99!}`` makes sympy run a C-level power that holds the GIL,
    so no other thread (not the caller, not a watchdog) runs again. So the judgement runs in a
    forked child process (it inherits the imported Math-Verify, and there it is the main thread,
    with the timer), which is killed at ``CHILD_DEADLINE_S``: a timeout, ``None``. Without
    ``os.fork`` (Windows) the helper thread of ``_limited`` is all there is.
    """
    if threading.current_thread() is threading.main_thread() or not hasattr(os, "fork"):
        return _verify(pred, gold, gold_is_int, breaker)
    _math_verify()  # imported and warmed here, so the child imports nothing
    r, w = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Python 3.12: fork with threads running
        pid = os.fork()
    if pid == 0:  # the child: judge, write the verdict, leave without running the parent's exit code
        code = 1
        try:
            os.close(r)
            import resource

            with open("/proc/self/statm") as f:
                have = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
            resource.setrlimit(resource.RLIMIT_AS, (have + CHILD_EXTRA_MEMORY, have + CHILD_EXTRA_MEMORY))
            child_budget = CallBudget()
            value = _verify(pred, gold, gold_is_int, child_budget)
            os.write(w, repr((value, child_budget.timeouts)).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    data, deadline = b"", time.monotonic() + CHILD_DEADLINE_S
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not _ready(r, select.POLLIN, left):
                break  # out of time
            chunk = os.read(r, 4096)
            if not chunk:
                break  # the child is done (or died)
            data += chunk
    finally:
        os.close(r)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        usage = os.wait4(pid, 0)[2]
        breaker.spent += usage.ru_utime + usage.ru_stime  # the child's CPU time counts against the call
    try:
        value, timeouts = ast.literal_eval(data.decode())
    except (ValueError, SyntaxError, UnicodeDecodeError):
        logging.getLogger(__name__).warning("qwqlab.grading: judging %r against %r ran out of time or memory "
                                            "in its child process; cannot be judged", pred[:60], gold[:60])
        breaker.timeouts += 1
        return None
    breaker.timeouts += timeouts
    return value


# ----------------------------------------------------------------------------- reading an answer

def extract_answer(completion: str, prompt_opens_think: bool = True) -> str | None:
    """The answer a completion gives, by qwqlab's one extraction policy; ``None`` if it gives none.

    The answer section is what follows ``</think>`` (``chat.split_think``). When the prompt
    opened the thinking and the completion never closed it, it was cut off while thinking:
    no answer, whatever it boxed on the way. In the answer section the last ``\\boxed{}``
    wins; a reasoning model's answer section must box its answer (the format it is taught and
    rewarded for). An answer-only output (no thinking tags and ``prompt_opens_think=False``:
    o1, GPT-4o, Qwen2.5-Instruct) without a box is read by ``answer_only_rules``, the rules a
    real evaluation uses for such text. The answer comes back with Unicode maths written as
    LaTeX (``unicode_math``).

    >>> extract_answer("12+35\\n</think>\\nThe answer is \\\\boxed{47}.")
    '47'
    >>> extract_answer("so maybe \\\\boxed{5} ... let me", prompt_opens_think=True) is None
    True
    >>> extract_answer("The answer is 5.", prompt_opens_think=False)
    '5'
    >>> extract_answer("so the angle between the lines is\\n\\nθ = 90°.", prompt_opens_think=False)
    '90°'
    """
    parts = split_think(completion or "", prompt_opens_think)
    if parts.case == "unclosed":
        return None
    boxed = extract_boxed(parts.answer)
    if boxed is not None or parts.case != "no_tags":
        return None if boxed is None else unicode_math(boxed)
    found = answer_only_rules(parts.answer)
    return found[1] if found else None


def grade(completion: str, gold, prompt_opens_think: bool = True, budget: CallBudget | None = None) -> float | None:
    """1.0 / 0.0 for ``completion`` against ``gold``, ``None`` when gold cannot be judged.

    ``extract_answer`` then ``answers_match``: a truncated completion has no answer (0.0).
    """
    return answers_match(extract_answer(completion, prompt_opens_think), gold, budget)


def answers_equal(a: str | None, b: str | None) -> bool:
    """Whether two extracted answers are the same answer (maj@k's vote clustering); no answer equals nothing."""
    if a is None or b is None or not str(a).strip() or not str(b).strip():
        return False
    return answers_match(str(a), str(b)) == 1.0 or answers_match(str(b), str(a)) == 1.0
