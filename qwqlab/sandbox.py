"""Run model-written Python in a throw-away subprocess, the way a code-execution reward must.

A program runs as ``python -I -S`` (standard library only, no user site, no environment
variables of the host) in a fresh temporary working directory, with a scrubbed environment,
and is removed afterwards. Isolation comes in layers; which ones apply depends on the
machine and is reported by ``isolation_layers()`` and on every ``RunResult``:

1. ``limits`` (always): a wall-clock timeout that kills the program's whole process group,
   ``RLIMIT_CPU`` (CPU seconds), ``RLIMIT_AS`` (address space: a memory bomb gets a
   ``MemoryError``), ``RLIMIT_FSIZE`` (files and captured output), ``RLIMIT_CORE`` 0.
2. ``network_namespace`` (Linux, root or unprivileged user namespaces): the program runs
   in a new, empty network namespace (``unshare(CLONE_NEWNET)``): no interface but a
   downed loopback, so every connection fails in the kernel.
3. ``unprivileged_user`` (when qwqlab runs as root): the program runs as ``nobody``, so the
   kernel refuses writes to anything that is not world-writable (``/tmp``, ``/var/tmp`` and
   ``/dev/shm`` still are: layer 4 covers those) and it cannot signal host processes. The
   interpreter must be reachable by ``nobody``; when ``sys.executable`` is not (a Python
   under ``/root``), the system ``python3`` runs the program instead (with ``-S`` both offer
   the standard library only); if no interpreter is reachable, this layer is skipped.
4. ``audit_hook`` (always, no privileges needed): a PEP 578 audit hook installed before the
   program starts refuses sockets, writes/renames/deletes outside the working directory,
   starting processes, ``fork``, signals and ``ctypes``. Audit hooks are not a security
   boundary against a determined attacker (C extensions bypass them); they make the
   guarantees hold for ordinary Python where layers 2-3 are unavailable.

>>> run_python("print(6 * 7)").stdout  # doctest: +SKIP
'42\\n'
"""
from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

__all__ = ["SandboxConfig", "RunResult", "run_python", "run_tests", "isolation_layers"]

_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000


@dataclass(frozen=True)
class SandboxConfig:
    """Limits and isolation for one sandboxed run."""
    timeout_s: float = 2.0           # wall-clock seconds before the process group is killed
    cpu_s: int | None = None         # RLIMIT_CPU; default: timeout_s rounded up, plus 1
    memory_mb: int = 512             # RLIMIT_AS, address space of the program
    max_file_mb: int = 16            # RLIMIT_FSIZE: largest file (and captured output) it can write
    max_output_chars: int = 100_000  # stdout/stderr kept in the result
    max_processes: int = 64          # RLIMIT_NPROC, applied when running as the unprivileged user
    isolate_network: bool = True     # a new network namespace when the kernel allows it
    drop_privileges: bool = True     # run as `user` when qwqlab runs as root
    user: str = "nobody"
    audit_hook: bool = True          # the in-process guard (layer 4)
    python: str | None = None        # interpreter; default sys.executable (see module docstring)

    def __post_init__(self):
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")
        if self.memory_mb < 32:
            raise ValueError(f"memory_mb={self.memory_mb} is too small for the Python interpreter "
                             "to start; use at least 32 (default 512)")


@dataclass
class RunResult:
    """What a sandboxed program did.

    ``status``: ``"ok"`` (exit 0), ``"error"`` (non-zero exit), ``"timeout"`` (wall or CPU
    limit), ``"memory"`` (hit the address-space limit), ``"output_limit"`` (wrote past
    ``max_file_mb``), ``"killed"`` (another signal).
    """
    status: str
    returncode: int | None
    stdout: str
    stderr: str
    wall_s: float
    layers: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


# The program's first Python: installs the audit hook (layer 4), then runs main.py as
# __main__. Passed with -c so the program cannot edit it before it runs.
_BOOTSTRAP = r'''
import os, sys

def _install(ROOT):
    # State lives in this closure, not in a module the program can import.
    W = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
    realpath, fspath, sep = os.path.realpath, os.fspath, os.sep
    PATH_EVENTS = (("os.remove", (0,)), ("os.rmdir", (0,)), ("os.mkdir", (0,)), ("os.chmod", (0,)),
                   ("os.chown", (0,)), ("os.truncate", (0,)), ("os.utime", (0,)), ("os.rename", (0, 1)),
                   ("os.link", (0, 1)), ("os.symlink", (1,)), ("shutil.rmtree", (0,)), ("os.mkfifo", (0,)),
                   ("os.mknod", (0,)), ("os.setxattr", (0,)), ("os.removexattr", (0,)))
    BLOCKED = ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
               "os.forkpty", "pty.spawn", "os.kill", "os.killpg", "signal.pthread_kill", "ctypes.",
               "socket.", "gc.get_objects", "gc.get_referrers", "gc.get_referents", "webbrowser.open")

    def inside(path):
        if isinstance(path, int):
            return True  # an already open descriptor
        p = fspath(path)
        if isinstance(p, bytes):
            p = p.decode("utf-8", "surrogateescape")
        full = realpath(p)  # relative to the current directory, wherever the program moved
        return full == ROOT or full.startswith(ROOT + sep)

    def refuse(event, detail=""):
        raise PermissionError(("qwqlab sandbox: " + event + " " + detail).strip())

    def hook(event, args):
        if event == "open":
            path, mode, flags = args
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or \
                (isinstance(flags, int) and flags & W)
            if writing and path is not None and not inside(path):
                refuse("write outside the working directory:", repr(path))
        elif event.startswith(BLOCKED) or (event == "import" and args[0] in ("_posixsubprocess", "_ctypes")):
            refuse(event, "is not allowed")
        elif event.startswith(("os.", "shutil.")):
            for name, positions in PATH_EVENTS:
                if event == name:
                    for i in positions:
                        if i < len(args) and args[i] is not None and not inside(args[i]):
                            refuse(event, "outside the working directory: " + repr(args[i]))

    sys.addaudithook(hook)

if sys.argv.pop(1) == "1":
    _install(os.path.realpath(os.getcwd()))
_main = sys.modules["__main__"]
_main.__file__ = os.path.join(os.getcwd(), "main.py")
sys.argv[0] = _main.__file__
with open("main.py", encoding="utf-8", errors="replace") as _f:
    _code = compile(_f.read(), "main.py", "exec")
del _install, _f, _main, os, sys
exec(_code, globals())
'''


def _libc():
    import ctypes
    import ctypes.util

    return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


_LIBC = None
_PROBE_LOCK = threading.Lock()
_PROBES: dict = {}


def _user_ids(name: str) -> tuple[int, int] | None:
    try:
        import pwd

        entry = pwd.getpwnam(name)
        return entry.pw_uid, entry.pw_gid
    except (KeyError, ImportError):
        return None


def _make_preexec(cfg: SandboxConfig, netns: int, ids: tuple[int, int] | None):
    """The function run in the child between fork and exec: limits, namespace, user.

    It only calls pre-resolved C functions (no imports, no allocation-heavy work), as a
    ``preexec_fn`` must when the parent may have other threads.
    """
    mem = cfg.memory_mb * 2 ** 20
    cpu = cfg.cpu_s if cfg.cpu_s is not None else int(cfg.timeout_s) + 1
    fsize = cfg.max_file_mb * 2 ** 20
    unshare = _LIBC.unshare if netns else None  # resolved here, not in the forked child
    setrlimit = resource.setrlimit

    def preexec():
        setrlimit(resource.RLIMIT_AS, (mem, mem))
        setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        setrlimit(resource.RLIMIT_CORE, (0, 0))
        if netns and unshare(netns) != 0:
            os._exit(97)  # asked for a namespace the probe said works: refuse to run without it
        if ids is not None:
            setrlimit(resource.RLIMIT_NPROC, (cfg.max_processes, cfg.max_processes))
            os.setgroups([])
            os.setgid(ids[1])
            os.setuid(ids[0])
    return preexec


def _probe(python: str, netns: int, ids) -> bool:
    """Can ``python`` start in the sandbox with this namespace flag and user? (cached)"""
    key = (python, netns, ids)
    with _PROBE_LOCK:
        if key not in _PROBES:
            global _LIBC
            if netns and _LIBC is None:
                try:
                    _LIBC = _libc()
                except OSError:
                    _PROBES[key] = False
                    return False
            try:
                cfg = SandboxConfig()
                r = subprocess.run([python, "-I", "-S", "-c", "pass"], cwd="/", env={"PATH": "/usr/bin:/bin"},
                                   preexec_fn=_make_preexec(cfg, netns, ids), capture_output=True, timeout=10)
                _PROBES[key] = r.returncode == 0
            except (OSError, subprocess.SubprocessError):
                _PROBES[key] = False
        return _PROBES[key]


def _plan(cfg: SandboxConfig) -> tuple[str, int, tuple[int, int] | None, tuple[str, ...]]:
    """Interpreter, namespace flags and user for this config, and the layer names they give."""
    python = cfg.python or sys.executable
    ids = None
    if cfg.drop_privileges and os.geteuid() == 0:
        wanted = _user_ids(cfg.user)
        if wanted is not None:
            candidates = [python] if cfg.python else [python, "/usr/bin/python3", shutil.which("python3")]
            for cand in dict.fromkeys(c for c in candidates if c):
                if _probe(cand, 0, wanted):
                    python, ids = cand, wanted
                    break
    netns = 0
    if cfg.isolate_network and sys.platform.startswith("linux"):
        options = [_CLONE_NEWNET] if os.geteuid() == 0 else [_CLONE_NEWUSER | _CLONE_NEWNET]
        for flags in options:
            if _probe(python, flags, ids):
                netns = flags
                break
    layers = ["limits"]
    if netns:
        layers.append("network_namespace")
    if ids is not None:
        layers.append("unprivileged_user")
    if cfg.audit_hook:
        layers.append("audit_hook")
    return python, netns, ids, tuple(layers)


def isolation_layers(config: SandboxConfig | None = None) -> dict[str, bool]:
    """Which isolation layers a run gets on this machine (see the module docstring)."""
    layers = _plan(config or SandboxConfig())[3]
    return {name: name in layers for name in ("limits", "network_namespace", "unprivileged_user", "audit_hook")}


def _read(path: str, limit: int) -> str:
    with open(path, "rb") as f:
        data = f.read(limit * 4)
    return data.decode("utf-8", errors="replace")[:limit]


def run_python(code: str, stdin: str = "", config: SandboxConfig | None = None) -> RunResult:
    """Run ``code`` as ``__main__`` in a fresh sandbox and return what happened.

    Args:
        code: the program (model-written, untrusted).
        stdin: text fed to its standard input.
        config: limits and isolation; ``SandboxConfig()`` by default.
    """
    cfg = config or SandboxConfig()
    python, netns, ids, layers = _plan(cfg)
    workdir = tempfile.mkdtemp(prefix="qwqlab-sandbox-")
    capture = tempfile.mkdtemp(prefix="qwqlab-capture-")  # host-only: the program gets file descriptors
    try:
        with open(os.path.join(workdir, "main.py"), "w", encoding="utf-8", errors="replace") as f:
            f.write(code)
        if ids is not None:
            os.chown(workdir, *ids)
            os.chown(os.path.join(workdir, "main.py"), *ids)
        env = {"PATH": "/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8",
               "PYTHONIOENCODING": "utf-8", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
        out_path, err_path = os.path.join(capture, "stdout"), os.path.join(capture, "stderr")
        start = time.perf_counter()
        timed_out = False
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(
                [python, "-I", "-S", "-c", _BOOTSTRAP, "1" if cfg.audit_hook else "0"],
                cwd=workdir, env=env, stdin=subprocess.PIPE, stdout=out, stderr=err,
                preexec_fn=_make_preexec(cfg, netns, ids), start_new_session=True, close_fds=True)
            try:
                proc.communicate(stdin.encode("utf-8", errors="replace"), timeout=cfg.timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
            except (BrokenPipeError, OSError):
                pass
            finally:
                # the whole group: children it started (if any got through) die with it
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                proc.wait()
        wall = time.perf_counter() - start
        stdout, stderr = _read(out_path, cfg.max_output_chars), _read(err_path, cfg.max_output_chars)
        rc = proc.returncode
        # Python ignores SIGXFSZ, so a write past RLIMIT_FSIZE fails with EFBIG instead
        if rc != 0 and ("MemoryError" in stderr or "Cannot allocate memory" in stderr):
            status = "memory"
        elif timed_out or rc == -signal.SIGXCPU:
            status = "timeout"
        elif rc == -signal.SIGXFSZ or (rc != 0 and "File too large" in stderr):
            status = "output_limit"
        elif rc == 0:
            status = "ok"
        elif rc is not None and rc < 0:
            status = "killed"
        else:
            status = "error"
        return RunResult(status, rc, stdout, stderr, wall, layers)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(capture, ignore_errors=True)


def _same_output(got: str, expected: str) -> bool:
    a = [line.rstrip() for line in got.strip().splitlines()]
    b = [line.rstrip() for line in str(expected).strip().splitlines()]
    return a == b


def run_tests(code: str, test_cases: list, config: SandboxConfig | None = None) -> list[bool]:
    """Run ``code`` once per test case, each in its own sandbox; one pass/fail per test.

    A test case is ``{"input": stdin, "output": expected stdout}`` (lines compared, trailing
    whitespace ignored) or a string of Python appended to the program (passes on exit 0).
    """
    results = []
    for case in test_cases:
        if isinstance(case, dict):
            r = run_python(code, stdin=str(case.get("input", "")), config=config)
            results.append(r.ok and _same_output(r.stdout, case.get("output", "")))
        else:
            r = run_python(f"{code}\n\n{case}\n", config=config)
            results.append(r.ok)
    return results
