"""Issue 10's hostile programs, each run as model-written code through the default sandbox.

With bubblewrap (Linux, `make test` installs it as root) every probe must be contained; where
bubblewrap cannot run these skip, and the fallback's plain warning is tested instead. The
early-exit and lying-equality programs must score 0 through the code reward itself.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import qwqlab.sandbox as S
from qwqlab.rewards import make_code_reward
from qwqlab.code_tests import run_tests
from qwqlab.sandbox import SandboxConfig, isolation_layers, run_python

BWRAP = isolation_layers()["bwrap"]
needs_bwrap = pytest.mark.skipif(not BWRAP, reason="bubblewrap cannot run here (`sudo apt-get install bubblewrap`)")

HONEST = "def add(a, b):\n    return a + b\n"
TESTS = ["assert add(1, 2) == 3", "assert add(-1, 1) == 0", "assert add(2, 2) == 4"]
CHEATS = {
    "raise SystemExit": "raise SystemExit\ndef add(a, b):\n    return 0\n",
    "sys.exit(0)": "import sys\ndef add(a, b):\n    return 0\nsys.exit(0)\n",
    "os._exit(0)": "import os\ndef add(a, b):\n    return 0\nos._exit(0)\n",
    "lying __eq__": "class Yes:\n    def __eq__(self, other):\n        return True\n    __hash__ = object.__hash__\n"
                    "def add(a, b):\n    return Yes()\n",
    "exit at import of the checks": "import atexit, os\natexit.register(lambda: os._exit(0))\n"
                                    "def add(a, b):\n    raise SystemExit(0)\n",
}


def _reward(code: str) -> float:
    reward = make_code_reward(timeout_s=5.0)
    return reward(["p"], [f"```python\n{code}```"], test_cases=[TESTS])[0]


def test_an_honest_solution_scores_one():
    assert _reward(HONEST) == 1.0


@pytest.mark.parametrize("name", sorted(CHEATS))
def test_early_exits_and_lying_equality_score_zero(name):
    assert _reward(CHEATS[name]) == 0.0, name


@pytest.fixture
def victim(tmp_path):
    path = tmp_path / "victim.txt"
    path.write_text("original")
    return path


@needs_bwrap
@pytest.mark.parametrize("probe", [
    "import os\nfd = os.open({d!r}, os.O_RDONLY)\nw = os.open('victim.txt', os.O_WRONLY | os.O_TRUNC, dir_fd=fd)\n"
    "os.write(w, b'owned')",
    "isinstance = lambda *a: False\nopen({p!r}, 'w').write('owned')",
    "import sys\nf = sys._getframe()\nwhile f.f_back: f = f.f_back\nopen({p!r}, 'w').write('owned')",
    "import _imp, importlib.machinery as m\nps = _imp.create_builtin(m.ModuleSpec('_posixsubprocess', None))\n"
    "import subprocess\nsubprocess.run(['/bin/sh', '-c', 'echo owned > {p}'])",
    "import os\nos.system('echo owned > {p}')",
])
def test_host_files_stay_untouched(victim, probe):
    """dir_fd writes, a shadowed isinstance, frame walking, a builtin _posixsubprocess, a shell."""
    run_python(probe.format(d=str(victim.parent), p=str(victim)), config=SandboxConfig(timeout_s=5))
    assert victim.read_text() == "original"


@needs_bwrap
def test_a_host_unix_socket_cannot_be_reached(tmp_path):
    path = str(tmp_path / "host.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    server.settimeout(0.5)
    try:
        r = run_python("import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect(%r)\nprint('connected')" % path,
                       config=SandboxConfig(timeout_s=5))
        assert "connected" not in r.stdout
        with pytest.raises(OSError):  # nobody ever knocked
            server.accept()
    finally:
        server.close()


@needs_bwrap
def test_no_process_of_a_call_survives_it():
    """A child that calls setsid and sleeps (and a grandchild) is gone when the call returns."""
    tag = f"qwqlab-survivor-{uuid.uuid4().hex}"
    code = ("import os, time\n"
            "if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
            f"        os.execv('/bin/sleep', ['/bin/sleep', '60', {tag!r}])\n    time.sleep(60)\n"
            "time.sleep(0.5)\nprint('parent done')")
    r = run_python(code, config=SandboxConfig(timeout_s=3))
    assert "parent done" in r.stdout
    time.sleep(0.5)
    left = subprocess.run(["pgrep", "-f", tag], capture_output=True, text=True).stdout.split()
    assert left == [], f"processes of the sandboxed call survived: {left}"


@needs_bwrap
def test_one_completion_cannot_kill_another_run():
    """An honest solution scored 1.0 alone and 0.0 next to a saboteur (all runs shared one uid)."""
    slow_honest = "import time\ntime.sleep(1.5)\n" + HONEST
    saboteur = ("import os, signal, time\nend = time.time() + 3\nwhile time.time() < end:\n"
                "    for sig in (signal.SIGKILL, signal.SIGSTOP):\n        try:\n            os.kill(-1, sig)\n"
                "        except OSError:\n            pass\n")
    with ThreadPoolExecutor(2) as pool:
        bad = pool.submit(run_python, saboteur, "", SandboxConfig(timeout_s=5))
        time.sleep(0.2)
        good = pool.submit(run_tests, slow_honest, TESTS, SandboxConfig(timeout_s=8))
        assert good.result() == [True, True, True]
        bad.result()


def test_the_fallback_says_it_is_not_a_security_boundary(monkeypatch):
    monkeypatch.setattr(S, "_WARNED", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = run_python("print(6 * 7)", config=SandboxConfig(isolation="subprocess", isolate_network=False,
                                                             drop_privileges=False))
    assert r.stdout.strip() == "42"
    assert any("NOT a security boundary" in str(w.message) for w in caught)
    assert not isolation_layers(SandboxConfig(isolation="subprocess"))["bwrap"]


# --- issue 22: the verdict could be forged ------------------------------------------------------
# Each test form below passed with a cheat before: a program read the harness's token and plan from
# its caller's frame and wrote forged reports, or returned an object that equals (and is) anything.
FORMS = {
    "assert == literal": "assert add(1, 2) == 3",
    "truthy assert": "assert add(1, 1) > 1\nassert not add(1, -1)",
    "math.isclose": "import math\nassert math.isclose(add(0.1, 0.2), 0.3)",
    "== between two expressions": "def ref(a, b):\n    return a + b\nassert add(5, 7) == ref(5, 7)",
    "HumanEval check(candidate)": "def check(candidate):\n    assert candidate(1, 2) == 3\n"
                                  "    assert candidate(-5, 5) == 0\n\ncheck(add)",
    "builtin in the test": "assert abs(add(0.25, 0.5) - 0.75) < 1e-9",
    "an expected exception": "try:\n    add('a', 1)\nexcept TypeError:\n    pass\nelse:\n    raise AssertionError",
}
FORGERS = {
    # the harness's frames, read and answered: every report line it could want, on every descriptor
    "forged reports": "import os, sys\nf = sys._getframe()\nseen = []\nwhile f is not None:\n"
                      "    seen.append(dict(f.f_locals))\n    f = f.f_back\n"
                      "plan = next((l['plan'] for l in seen if isinstance(l.get('plan'), dict)), None)\n"
                      "lines = ['PASS', 'ok']\nif plan:\n"
                      "    lines += [f\"{plan['token']} {i} {'ok' if k == 'exec' else '= 1'}\"\n"
                      "              for i, (k, _) in enumerate(plan['steps'])]\n"
                      "for fd in range(1, 20):\n    try:\n        os.write(fd, ('\\n'.join(lines) + '\\n').encode())\n"
                      "    except OSError:\n        pass\nos._exit(0)\n",
    "always-equal object": "class Yes(float):\n    def __eq__(self, o): return True\n    __ne__ = lambda s, o: False\n"
                           "    __lt__ = __gt__ = __le__ = __ge__ = __eq__\n    def __bool__(self): return True\n"
                           "    def __sub__(self, o): return 0.0\n    __hash__ = float.__hash__\n"
                           "def add(a, b):\n    return Yes(0)\n",
    "shadowed builtins": "def abs(x): return 0\ndef isinstance(*a): return True\ndef add(a, b):\n    return 0\n",
}


@pytest.mark.parametrize("form", sorted(FORMS))
def test_every_test_form_passes_an_honest_solution(form):
    assert run_tests(HONEST, [FORMS[form]], SandboxConfig(timeout_s=5)) == [True], form


@pytest.mark.parametrize("cheat", sorted(FORGERS))
def test_no_forged_verdict_passes_any_test_form(cheat):
    forms = sorted(FORMS)
    got = run_tests(FORGERS[cheat], [FORMS[f] for f in forms], SandboxConfig(timeout_s=5))
    assert got == [False] * len(forms), dict(zip(forms, got))


def test_the_programs_values_and_imports_reach_the_test():
    code = "import math\nANSWER = 42\nTABLE = {'a': (1, 2.5)}\ndef area(r):\n    return math.pi * r * r\n"
    tests = ["assert ANSWER == 42 and TABLE['a'] == (1, 2.5)", "assert math.isclose(area(1), math.pi)"]
    assert run_tests(code, tests, SandboxConfig(timeout_s=5)) == [True, True]


# --- issue 22: the sandbox's own failures, zombies, memory and processes ------------------------
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@needs_bwrap
def test_a_sandbox_that_fails_to_start_cannot_be_judged(monkeypatch, caplog):
    """bwrap failing at run time (here: a mount it cannot make) scored a right answer 0.0, silently."""
    isolation_layers(SandboxConfig())  # the probe passed and is remembered; now every run fails
    real = S._bwrap_args
    monkeypatch.setattr(S, "_bwrap_args", lambda cfg, py: real(cfg, py) + ["--ro-bind", "/no/such/qwqlab", "/x"])
    reward = make_code_reward(timeout_s=5)
    with caplog.at_level("WARNING", logger="qwqlab.sandbox"):
        got = reward(["p"] * 2, [f"```python\n{HONEST}```"] * 2,
                     test_cases=[TESTS, [{"input": "", "output": ""}]])
    assert got == [None, None]
    assert "cannot be judged" in caplog.text
    monkeypatch.undo()
    # a program that only claims the sandbox failed is judged as what it is
    liar = "import sys\nsys.stderr.write('bwrap: Creating new namespace failed: No space left on device\\n')\nsys.exit(1)\n"
    assert _reward(liar) == 0.0


def _pid_ns_script(tmp_path) -> str:
    path = tmp_path / "pid1.py"
    path.write_text(
        "import os\nfrom qwqlab.code_tests import run_tests\nfrom qwqlab.sandbox import run_python\nassert os.getpid() == 1\n"
        "for _ in range(3):\n    run_python('print(1)')\n"
        f"run_tests({HONEST!r}, ['assert add(1, 2) == 3'])\n"
        "zombies = [e for e in os.listdir('/proc') if e.isdigit() and open(f'/proc/{e}/stat').read()"
        ".rpartition(')')[2].split()[0] == 'Z']\nprint(len(zombies))\n")
    return str(path)


@needs_bwrap
@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="unshare --pid needs root")
def test_no_zombie_is_left_when_qwqlab_is_pid_1(tmp_path):
    """A container entrypoint without init: each run left a zombie bwrap, filling the pid limit."""
    r = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", sys.executable, _pid_ns_script(tmp_path)],
                       capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONPATH=REPO))
    assert r.returncode == 0, r.stderr[-1000:]
    assert r.stdout.split()[-1] == "0", r.stdout


FORKS = ("import os, time\nn = 0\ntry:\n    for i in range(1000):\n        if os.fork() == 0:\n"
         "            time.sleep(2)\n            os._exit(0)\n        n += 1\nexcept OSError:\n    pass\nprint(n)")


@needs_bwrap
def test_processes_are_capped_per_run():
    r = run_python(FORKS, config=SandboxConfig(timeout_s=10, max_processes=8))
    assert r.ok and 0 < int(r.stdout) < 8, r.stdout


@needs_bwrap
@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv") or not os.path.exists("/usr/bin/python3"),
                    reason="needs root to become nobody, and a system Python nobody can run")
def test_processes_are_capped_when_run_as_nobody():
    """As `nobody` (no uid of its own per run), 1,000 of 1,000 forks succeeded."""
    # nobody imports a copy of the package from a folder it may read: the checkout may sit in
    # a folder only its owner can enter (`mktemp -d` makes one), where the import failed
    readable = Path(tempfile.mkdtemp(prefix="qwqlab-for-nobody-"))
    readable.chmod(0o755)
    try:
        shutil.copytree(Path(REPO) / "qwqlab", readable / "qwqlab", ignore=shutil.ignore_patterns("__pycache__"))
        _forks_as_nobody(readable)
    finally:
        shutil.rmtree(readable, ignore_errors=True)


def _forks_as_nobody(readable: Path) -> None:
    script = ("from qwqlab.sandbox import SandboxConfig, run_python\n"
              f"r = run_python({FORKS!r}, config=SandboxConfig(timeout_s=10))\nprint(r.status, r.stdout)\n")
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", script],
                       capture_output=True, text=True, timeout=120, cwd="/",
                       env={"PATH": "/usr/bin:/bin", "HOME": "/tmp", "PYTHONPATH": str(readable)})
    assert r.stdout.split(), f"nobody's run printed nothing: {r.stderr[-500:]}"
    status, forks = r.stdout.split()[-2:]
    assert status == "ok" and int(forks) < SandboxConfig().max_processes, r.stdout + r.stderr[-500:]


@needs_bwrap
def test_every_writable_place_is_bounded():
    """The root tmpfs and /dev were writable and /dev/shm unbounded: RAM outside every limit."""
    code = ("import os\nfor p in ('/x', '/dev/x', '/dev/shm/x', '/tmp/x', 'x'):\n    try:\n"
            "        with open(p, 'wb') as f:\n            for _ in range(12):\n                f.write(bytes(2 ** 20))\n"
            "        print(p, 'wrote 12 MB')\n    except OSError as e:\n        print(p, e.errno)\n")
    r = run_python(code, config=SandboxConfig(timeout_s=10, disk_mb=8, max_file_mb=64))
    assert r.ok and "wrote" not in r.stdout, r.stdout


def test_a_program_that_stops_reading_cannot_block_the_judge():
    """It announces its names early, then never reads: a big call must not block qwqlab's write."""
    code = ("import os, time\nfor fd in range(3, 30):\n    try:\n        os.write(fd, b\"{'add': ('call',)}\\n\")\n"
            "    except OSError:\n        pass\ntime.sleep(60)\n")
    start = time.perf_counter()
    assert run_tests(code, ["assert add('x' * 300000, '') == 'x'"], SandboxConfig(timeout_s=2)) == [False]
    assert time.perf_counter() - start < 2 + 5  # the run's timeout, plus slack for 2 loaded cores


@pytest.mark.skipif(not isolation_layers()["memory_cgroup"], reason="no memory cgroup can be made here (root on cgroup v1)")
def test_a_run_cannot_multiply_its_memory_by_forking():
    """RLIMIT_AS is per process: 6 forks each held 60 MB under a 100 MB limit. The run's cgroup holds them all."""
    code = ("import os, time\nkids = []\nfor i in range(6):\n    pid = os.fork()\n    if pid == 0:\n"
            "        x = bytearray(60 * 2 ** 20)\n        for j in range(0, len(x), 4096):\n            x[j] = 1\n"
            "        time.sleep(1)\n        os._exit(0)\n    kids.append(pid)\n"
            "print(sum(os.waitpid(p, 0)[1] == 0 for p in kids))\n")
    # tiny on purpose: a 124 MB run (100 + 3 x 8), so the test itself never holds more than that
    r = run_python(code, config=SandboxConfig(timeout_s=10, memory_mb=100, disk_mb=8))
    assert r.status == "memory" and int(r.stdout) < 6, (r.status, r.stdout)
