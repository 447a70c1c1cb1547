"""The code sandbox: limits hold, nothing escapes, the host is untouched.

Each escape is tried against the default sandbox (bubblewrap where it runs, else the
fallback) and against the fallback's single layers, so a test says which layer stopped it.
Layers that need privileges (network namespace, unprivileged user) are skipped where the
machine does not give them. The hostile probes of issue 10 are in test_sandbox_hostile.py.
"""
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import uuid

import pytest

from qwqlab.code_tests import run_tests
from qwqlab.sandbox import RunResult, SandboxConfig, isolation_layers, run_python

LAYERS = isolation_layers()
# the fallback with only its audit hook: needs no privileges (and warns it is no boundary)
HOOK_ONLY = SandboxConfig(isolation="subprocess", isolate_network=False, drop_privileges=False)
pytestmark = pytest.mark.filterwarnings("ignore::qwqlab.sandbox.SandboxWarning")
needs_netns = pytest.mark.skipif(not LAYERS["network_namespace"], reason="no network namespace here")
needs_user = pytest.mark.skipif(not LAYERS["unprivileged_user"], reason="not root, or no usable interpreter")
SLACK_S = 3.0  # 2 shared CPU cores: process start and kill can lag under load


def test_runs_code_with_stdin_and_reports_layers():
    r = run_python("print(int(input()) * 2)", stdin="21\n")
    assert isinstance(r, RunResult) and r.ok and r.stdout == "42\n"
    assert "limits" in r.layers and set(r.layers) == {k for k, v in LAYERS.items() if v}


def test_errors_are_reported_not_raised():
    r = run_python("raise ValueError('boom')")
    assert r.status == "error" and "ValueError: boom" in r.stderr
    assert run_python("def f(:\n").status == "error"


def test_standard_library_works_under_the_guard():
    code = ("import collections, json, math, re, itertools, functools, heapq, tempfile\n"
            "P = collections.namedtuple('P', 'x y')\n"
            "with tempfile.NamedTemporaryFile('w') as f: f.write('ok')\n"
            "print(json.dumps([P(1, 2).x, math.isqrt(10)]))")
    r = run_python(code)
    assert r.ok, r.stderr
    assert r.stdout.strip() == "[1, 3]"


def test_infinite_loop_is_killed_at_the_wall_limit():
    r = run_python("while True:\n    pass", config=SandboxConfig(timeout_s=1.0))
    assert r.status == "timeout"
    assert 1.0 <= r.wall_s < 1.0 + SLACK_S


def test_sleeping_program_is_killed_at_the_wall_limit():
    r = run_python("import time\ntime.sleep(60)", config=SandboxConfig(timeout_s=0.5))
    assert r.status == "timeout" and r.wall_s < 0.5 + SLACK_S


def test_cpu_limit_kills_a_busy_loop_before_the_wall_limit():
    r = run_python("while True:\n    pass", config=SandboxConfig(timeout_s=30, cpu_s=1))
    assert r.status == "timeout" and r.returncode == -signal.SIGXCPU
    assert r.wall_s < 30


@pytest.mark.parametrize("code", [
    "x = bytearray(10 ** 10)",                                   # one huge allocation
    "chunks = []\nwhile True:\n    chunks.append(b'x' * 2 ** 20)",  # a growing one
])
def test_memory_bomb_is_stopped(code):
    r = run_python(code, config=SandboxConfig(timeout_s=20, memory_mb=128))
    assert r.status == "memory", (r.status, r.stderr[-300:])


def test_output_flood_is_capped():
    cfg = SandboxConfig(timeout_s=10, max_file_mb=1, max_output_chars=1000)
    r = run_python("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)", config=cfg)
    assert r.status == "output_limit"
    assert len(r.stdout) == 1000


@pytest.fixture()
def listener():
    """A TCP server on the host's loopback that the sandbox must not reach."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    yield srv.getsockname()[1]
    srv.close()


CONNECT = "import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\nprint('connected')"


@pytest.mark.parametrize("config", [None, HOOK_ONLY], ids=["default", "audit_hook_only"])
def test_network_connection_fails(listener, config):
    r = run_python(CONNECT.format(port=listener), config=config)
    assert r.status == "error" and "connected" not in r.stdout
    r = run_python("import urllib.request\nurllib.request.urlopen('http://example.com', timeout=2)",
                   config=config)
    assert r.status in ("error", "timeout") and r.returncode != 0


@needs_netns
def test_network_namespace_alone_blocks_connections(listener):
    r = run_python(CONNECT.format(port=listener), config=SandboxConfig(isolation="subprocess", audit_hook=False))
    assert r.status == "error" and "connected" not in r.stdout
    assert "network_namespace" in r.layers


def test_the_host_can_reach_its_own_listener(listener):
    """Control for the tests above: without a sandbox the same connection works."""
    socket.create_connection(("127.0.0.1", listener), timeout=2).close()


WRITE = "open({path!r}, 'w').write('escaped')"


@pytest.mark.parametrize("config", [None, HOOK_ONLY], ids=["default", "audit_hook_only"])
def test_write_outside_the_working_directory_fails(tmp_path, config):
    targets = [str(tmp_path / "host.txt"), f"/tmp/qwqlab-escape-{uuid.uuid4().hex}.txt", "../escape.txt"]
    for path in targets:
        r = run_python(WRITE.format(path=path), config=config)
        # the host never sees the file; the hook refuses it, bwrap writes (if at all) to its own tmpfs
        assert not os.path.exists(path if path.startswith("/") else os.path.join("/tmp", "escape.txt"))
        if config is HOOK_ONLY:
            assert r.status == "error" and "PermissionError" in r.stderr, (path, r.stderr[-300:])


@pytest.mark.parametrize("config", [None, HOOK_ONLY], ids=["default", "audit_hook_only"])
@pytest.mark.parametrize("code", [
    "import os\nos.symlink({host!r}, 'link')\nopen('link', 'w').write('escaped')",
    "import os\nos.remove({host!r})",
    "import os\nos.rename({host!r}, 'stolen.txt')",
    "import shutil\nshutil.rmtree({hostdir!r})",
    "import os\nos.chdir('/tmp')\nopen('relative-escape.txt', 'w').write('x')",
])
def test_other_ways_out_are_refused(tmp_path, code, config):
    host = tmp_path / "keep.txt"
    host.write_text("original")
    r = run_python(code.format(host=str(host), hostdir=str(tmp_path)), config=config)
    assert host.read_text() == "original"
    assert not os.path.exists("/tmp/relative-escape.txt")
    if config is HOOK_ONLY or "chdir" not in code:  # under bwrap /tmp is the run's own
        assert r.status == "error", r.stderr[-300:]


@needs_user
def test_unprivileged_user_alone_blocks_writes_to_host_files(tmp_path):
    host = tmp_path / "keep.txt"
    host.write_text("original")
    cfg = SandboxConfig(isolation="subprocess", audit_hook=False, isolate_network=False)
    r = run_python(WRITE.format(path=str(host)), config=cfg)
    assert r.status == "error" and "Permission denied" in r.stderr
    assert host.read_text() == "original"
    assert "unprivileged_user" in r.layers


def test_writes_inside_the_working_directory_work_and_are_thrown_away():
    r = run_python("import os\nopen('out.txt', 'w').write('x')\nos.mkdir('d')\nprint(os.getcwd())")
    assert r.ok, r.stderr
    assert not os.path.exists(r.stdout.strip())  # removed after the run


def test_processes_cannot_be_started():
    for code in ["import subprocess\nsubprocess.run(['true'])", "import os\nos.system('true')",
                 "import os\nos.fork()", "import ctypes\nctypes.CDLL(None)"]:
        r = run_python(code, config=HOOK_ONLY)  # the fallback's hook; under bwrap they run, contained
        assert r.status == "error" and "PermissionError" in r.stderr, (code, r.stderr[-200:])


def test_environment_is_scrubbed(monkeypatch):
    monkeypatch.setenv("QWQLAB_SECRET_TOKEN", "hunter2")
    r = run_python("import os\nprint(sorted(os.environ))")
    assert r.ok and "QWQLAB_SECRET_TOKEN" not in r.stdout and "hunter2" not in r.stdout


def test_host_process_is_unaffected(tmp_path):
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        before = (resource.getrlimit(resource.RLIMIT_AS), resource.getrlimit(resource.RLIMIT_CPU),
                  os.getcwd(), dict(os.environ), os.getuid())
        for code in ["x = bytearray(10 ** 10)", "while True:\n    pass",
                     f"import os, signal\nos.kill({victim.pid}, signal.SIGKILL)",
                     f"import os, signal\nos.kill({os.getpid()}, signal.SIGKILL)",
                     "import os\nos.chdir('/')\nos.environ['PATH'] = ''"]:
            run_python(code, config=SandboxConfig(timeout_s=1.0, memory_mb=128))
        after = (resource.getrlimit(resource.RLIMIT_AS), resource.getrlimit(resource.RLIMIT_CPU),
                 os.getcwd(), dict(os.environ), os.getuid())
        assert before == after
        time.sleep(0.1)
        assert victim.poll() is None  # the sandbox could not kill a host process
    finally:
        victim.kill()
        victim.wait()


def test_run_tests_scores_each_case():
    code = "n = int(input())\nprint(n * n)"
    cases = [{"input": "3", "output": "9"}, {"input": "4", "output": "16\n"}, {"input": "5", "output": "24"}]
    assert run_tests(code, cases) == [True, True, False]
    assert run_tests("def f(x):\n    return x + 1", ["assert f(1) == 2", "assert f(1) == 3"]) == [True, False]


def test_config_rejects_impossible_settings():
    with pytest.raises(ValueError, match="timeout_s"):
        SandboxConfig(timeout_s=0)
    with pytest.raises(ValueError, match="at least 32"):
        SandboxConfig(memory_mb=8)
