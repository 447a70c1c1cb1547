"""Judging a model-written program against its tests, with the verdict decided outside its reach.

Each test case runs as two sandboxes (``qwqlab.sandbox``) that never share a process:

- the **candidate** runs the program, then serves its top-level names: each call comes in as
  plain data, and the return value goes back as plain data (numbers, strings, booleans, None,
  and lists, tuples, dicts and sets of them) or as the name of the exception it raised;
- the **judge** runs the test code and nothing of the program's: each of the program's
  functions is a stand-in that sends the call to the candidate and returns the plain value
  that comes back (a value that is not plain data fails the test). The test's own
  ``assert``, ``==``, ``math.isclose`` or ``check(candidate)`` runs here, on plain values;
  a test passes when the judge finishes it.

qwqlab relays every message, and parses each reply with ``_plain_value`` (an AST walk that
accepts literals only) before the judge sees it. So no forged report counts (the judge's
verdict is its own exit, which the program cannot reach), no ``__eq__`` that always says yes
survives (an object is not plain data), and no frame of the judge can be read (it is another
process in another sandbox). A program that exits early, or never replies, fails.

What is judged: every test whose values cross the boundary as plain data: ``assert f(x) == y``,
truthy asserts (``assert is_prime(7)``, ``assert not f(8)``), ``math.isclose(f(x), y)``,
``f(x) == g(x)`` with ``g`` from the test, HumanEval's ``check(candidate)``, a test that
expects an exception (``ValueError`` raised by the program is raised in the judge), the
program's plain top-level values (``ANSWER = 42``) and the standard modules it imported by
their own name. What fails although the program may be right (the price of the boundary):
a function whose result is not plain data (an instance of its own class, a generator), a
method call on the program's objects, a function or lambda passed as an argument, and an
argument the program changes in place (it gets a copy). One form stays forgeable by design:
``assert f(x) == f(y)`` compares two answers of the program's, which it controls both of.

A test case can also be ``{"input": stdin, "output": expected stdout}``: the program runs
once (``run_python``) and qwqlab compares its output, which the program never sees.
"""
from __future__ import annotations

import ast
import builtins
import keyword
import os
import select
import sys
import time

from qwqlab.sandbox import SandboxConfig, Sandboxed, infrastructure_failure, run_python

__all__ = ["run_tests"]

#: Longest message (one call or one reply) relayed between the sandboxes, in characters.
MAX_MESSAGE_CHARS = 1_000_000

# Both modes' shared part: a serialiser of plain values and their reader.
_PLAIN = r'''
def _qwqlab_plain(type=type, repr=repr, int=int, float=float, complex=complex, bool=bool, str=str,
                  bytes=bytes, list=list, tuple=tuple, dict=dict, set=set, frozenset=frozenset):
    atoms = (int, float, complex, bool, str, bytes, type(None))

    def lit(v, depth=0):
        t = type(v)
        if depth > 100:
            raise TypeError("nested too deeply")
        for a in atoms:
            if t is a:
                return repr(v)
        if t is list or t is tuple:
            body = ", ".join([lit(x, depth + 1) for x in v])
            return "[" + body + "]" if t is list else "(" + body + ("," if len(v) == 1 else "") + ")"
        if t is set or t is frozenset:
            return ("set(" if t is set else "frozenset(") + "[" + ", ".join([lit(x, depth + 1) for x in v]) + "])"
        if t is dict:
            return "{" + ", ".join([lit(k, depth + 1) + ": " + lit(x, depth + 1) for k, x in v.items()]) + "}"
        raise TypeError("a " + t.__name__ + " is not plain data (numbers, strings, lists, tuples, dicts, sets)")
    env = {"__builtins__": {}, "nan": float("nan"), "inf": float("inf"), "set": set, "frozenset": frozenset}
    return lit, lambda text: eval(text, dict(env))  # text the parent has checked is a plain literal
'''

# The candidate: the program, then one reply per call, on a descriptor of its own (the
# program's prints go to stderr). Everything here is the program's to tamper with, and that
# buys it nothing: what it sends is parsed as plain data outside.
_SERVE = _PLAIN + r'''
def _qwqlab_serve(sys, os):
    lit, load = _qwqlab_plain()
    reply_fd = os.dup(1)
    os.dup2(2, 1)
    main = _qwqlab_main(sys, os)
    exports = {}
    for name, value in list(vars(main).items()):
        if name.startswith("__"):
            continue
        if isinstance(value, type(os)):
            exports[name] = ("module", getattr(value, "__name__", ""))
        elif callable(value):
            exports[name] = ("call",)
        else:
            try:
                lit(value)
                exports[name] = ("value", value)
            except TypeError:
                pass
    os.write(reply_fd, (lit(exports) + "\n").encode("utf-8", "backslashreplace"))
    for line in sys.stdin.buffer:
        try:
            name, args, kwargs = load(line.decode("utf-8"))
            value = vars(main)[name](*args, **kwargs)
        except BaseException as e:
            reply = "! " + lit((type(e).__name__, str(e)[:300]))
        else:
            try:
                reply = "= " + lit(value)
            except BaseException:
                reply = "?"  # not plain data: the test fails (it is no exception the test could expect)
        os.write(reply_fd, (reply + "\n").encode("utf-8", "backslashreplace"))

_qwqlab_serve(sys, os)
'''

# The judge: the test code, with the program's names standing in for calls to the candidate.
# Its last line "PASS" (after the whole test ran) is the verdict.
_JUDGE = _PLAIN + r'''
def _qwqlab_judge(sys, os):
    import builtins
    lit, load = _qwqlab_plain()
    out = os.dup(1)
    os.dup2(2, 1)
    stdin = sys.stdin.buffer

    def remote(name):
        def call(*args, **kwargs):
            os.write(out, ("CALL " + lit((name, args, kwargs)) + "\n").encode("utf-8", "backslashreplace"))
            reply = stdin.readline().decode("utf-8")
            if reply.startswith("= "):
                return load(reply[2:])
            kind, message = load(reply[2:]) if reply.startswith("! ") else ("RuntimeError", "no reply")
            exc = getattr(builtins, kind, None)
            if not (isinstance(exc, type) and issubclass(exc, Exception)):
                exc = RuntimeError
            raise exc(message)
        call.__name__ = call.__qualname__ = name
        return call

    scope = {"__name__": "__main__", "__builtins__": builtins}
    for name, spec in load(stdin.readline().decode("utf-8")).items():
        if spec[0] == "call":
            scope[name] = remote(name)
        elif spec[0] == "value":
            scope[name] = spec[1]
        else:
            scope[name] = __import__(spec[1])
    with open("test.py", encoding="utf-8") as f:
        exec(compile(f.read(), "test.py", "exec"), scope)
    os.write(out, b"PASS\n")

_qwqlab_judge(sys, os)
'''


def _plain_value(node: ast.AST):
    """The value of a plain literal (what the sandboxes' serialiser writes), or ValueError."""
    if isinstance(node, ast.Expression):
        return _plain_value(node.body)
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name) and node.id in ("nan", "inf"):
        return float(node.id)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _plain_value(node.operand)
        if type(v) not in (int, float, complex):
            raise ValueError("sign of a non-number")
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):  # complex: 1+2j
        a, b = _plain_value(node.left), _plain_value(node.right)
        if type(a) not in (int, float) or type(b) is not complex:
            raise ValueError("only complex literals add")
        return a + b if isinstance(node.op, ast.Add) else a - b
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_plain_value(e) for e in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.Set):
        return {_plain_value(e) for e in node.elts}
    if isinstance(node, ast.Dict) and None not in node.keys:
        return {_plain_value(k): _plain_value(v) for k, v in zip(node.keys, node.values)}
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("set", "frozenset")
            and not node.keywords and len(node.args) <= 1):
        return (set if node.func.id == "set" else frozenset)(_plain_value(node.args[0]) if node.args else ())
    raise ValueError(f"not a plain literal: {type(node).__name__}")


def _parse(text: str):
    """A plain value from a message, or ``ValueError``: the one gate between the two sandboxes."""
    if len(text) > MAX_MESSAGE_CHARS:
        raise ValueError("message too long")
    try:
        return _plain_value(ast.parse(text.strip(), mode="eval"))
    except (SyntaxError, TypeError, RecursionError, MemoryError) as e:
        raise ValueError(f"not plain data: {type(e).__name__}") from None


def _plain_text(value) -> str:
    """``value`` (checked plain) as the literal both sandboxes read; repr of plain builtins is one."""
    return repr(value)


def _ready(fd: int, event: int, seconds: float) -> bool:
    """Is ``fd`` ready (``select.POLLIN``/``POLLOUT``) within ``seconds``? (poll: no 1024-descriptor limit)"""
    poller = select.poll()
    poller.register(fd, event | select.POLLHUP | select.POLLERR)
    return bool(poller.poll(max(0, int(seconds * 1000)) + 1))


class _Lines:
    """Lines from a process's pipe, each read before a deadline and at most ``MAX_MESSAGE_CHARS`` long."""

    def __init__(self, proc):
        self.fd, self.buf = proc.stdout.fileno(), b""

    def read(self, deadline: float) -> str | None:
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or len(self.buf) > 4 * MAX_MESSAGE_CHARS or not _ready(self.fd, select.POLLIN, left):
                return None
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                return None
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode("utf-8", errors="replace")


def _send(proc, text: str, deadline: float) -> bool:
    """Write one line to a process before the deadline (a program that stops reading cannot block qwqlab)."""
    data, fd = (text + "\n").encode("utf-8", errors="backslashreplace"), proc.stdin.fileno()
    os.set_blocking(fd, False)
    while data:
        left = deadline - time.monotonic()
        if left <= 0 or not _ready(fd, select.POLLOUT, left):
            return False
        try:
            data = data[os.write(fd, data):]
        except BlockingIOError:
            continue
        except OSError:  # BrokenPipeError: it has gone
            return False
    return True


def _exports(header: str) -> dict | None:
    """The candidate's names the judge may use, checked: identifiers that shadow no builtin."""
    try:
        raw = _parse(header)
    except ValueError:
        return None
    if not isinstance(raw, dict):
        return None
    out = {}
    for name, spec in raw.items():
        if (not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name)
                or hasattr(builtins, name) or not isinstance(spec, tuple) or not spec):
            continue  # a program's `len` or `abs` must not answer the test's own calls
        if spec == ("call",) or (spec[0] == "value" and len(spec) == 2):
            out[name] = spec
        elif spec[0] == "module" and len(spec) == 2 and spec[1] == name and name in sys.stdlib_module_names:
            out[name] = spec
    return out


def _judge_case(code: str, test: str, cfg: SandboxConfig) -> bool | None:
    """One assert-style test case: True/False, or None when a sandbox failed to start."""
    with Sandboxed(cfg, {"main.py": code}, _SERVE, pipes=True) as cand, \
            Sandboxed(cfg, {"test.py": test}, _JUDGE, pipes=True) as judge:
        deadline = time.monotonic() + cfg.timeout_s
        from_cand, from_judge = _Lines(cand.proc), _Lines(judge.proc)
        passed = False
        header = from_cand.read(deadline)
        exports = None if header is None else _exports(header)
        if exports is not None and _send(judge.proc, _plain_text(exports), deadline):
            while (line := from_judge.read(deadline)) is not None:
                if line == "PASS":
                    passed = True
                    continue
                if not line.startswith("CALL "):
                    break
                try:
                    call = _parse(line[5:])
                except ValueError:
                    break
                reply = from_cand.read(deadline) if _send(cand.proc, _plain_text(call), deadline) else None
                if reply is None:
                    break  # the program died, left or hung: the test fails
                try:
                    value = _parse(reply[2:])
                    ok = reply.startswith("= ") or (reply.startswith("! ") and isinstance(value, tuple)
                                                     and len(value) == 2 and all(isinstance(v, str) for v in value))
                except ValueError:
                    ok = False
                if not ok or not _send(judge.proc, reply[:2] + _plain_text(value), deadline):
                    break
            if passed:
                try:
                    judge.proc.wait(max(0.0, deadline - time.monotonic()))
                except Exception:  # noqa: BLE001 - still running at the deadline: ended below
                    pass
        cand.end()
        judge.end()
        # Could not be judged only when a sandbox that was needed never came up: the candidate
        # always; the judge once the candidate had answered (else it was not waited for).
        needed = [cand] + ([judge] if exports is not None else [])
        for run in needed:
            if not run.started():
                infrastructure_failure(run, run.output()[1])
                return None
        return passed and judge.returncode() == 0


def _same_output(got: str, expected: str) -> bool:
    a = [line.rstrip() for line in got.strip().splitlines()]
    b = [line.rstrip() for line in str(expected).strip().splitlines()]
    return a == b


def run_tests(code: str, test_cases: list, config: SandboxConfig | None = None) -> list[bool | None]:
    """Run ``code`` against each test case in fresh sandboxes; one verdict per test.

    A test case is ``{"input": stdin, "output": expected stdout}`` (lines compared, trailing
    whitespace ignored, exit status 0 required) or a string of Python (asserts, a
    ``check(candidate)`` ...), judged as the module docstring says. ``None`` means the test
    cannot be judged: the sandbox itself failed before the program started (logged).
    The code reward (``rewards.make_code_reward``) goes through here.
    """
    cfg = config or SandboxConfig()
    results: list[bool | None] = []
    for case in test_cases:
        if isinstance(case, dict):
            r = run_python(code, str(case.get("input", "")), cfg)
            results.append(None if r.status == "infrastructure" else r.ok and _same_output(r.stdout, case.get("output", "")))
            continue
        try:
            compile(str(case), "test.py", "exec")
        except SyntaxError:
            results.append(False)  # a broken test cannot pass
            continue
        results.append(_judge_case(code, str(case), cfg))
    return results
