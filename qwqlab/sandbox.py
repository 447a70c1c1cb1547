"""Run model-written Python in a throw-away process, the way a code-execution reward must.

Where the machine allows it, every call gets its own **bubblewrap** sandbox (``bwrap``,
Debian's ``bubblewrap`` package; ``make test`` installs it when run as root). That is the
security boundary; what the tests in ``tests/test_sandbox*.py`` check it does:

- own user, pid, network, ipc, uts and mount namespaces (``--unshare-all``): the program
  sees only its own processes, has no network at all (not even the host's loopback or
  abstract unix sockets), and a filesystem made of read-only system folders (``/usr``,
  the interpreter's prefix), a fresh ``/proc`` and ``/dev``, and two small private tmpfs
  folders: the working directory ``/sandbox`` (``main.py`` is copied in) and ``/tmp``.
  No host file, socket or process of another run is even visible.
- when qwqlab runs as root, bwrap itself runs as a fresh unprivileged uid per call, so
  each run has its own ``RLIMIT_NPROC`` budget and no privilege on the host;
- limits: a wall-clock timeout, ``RLIMIT_CPU``, ``RLIMIT_AS`` (memory), ``RLIMIT_FSIZE``,
  ``RLIMIT_NPROC`` (processes), ``RLIMIT_CORE`` 0, and a size cap on both tmpfs folders;
- when the call returns, its whole pid namespace is gone: a child that called ``setsid``
  or forked dies with the run.

Where bwrap is missing or fails its probe (macOS, no user namespaces), the **fallback**
runs the program as a plain subprocess with the same rlimits, plus, where possible, a new
network namespace, the ``nobody`` user (when root) and a PEP 578 audit hook. **That is not
a security boundary**: a program can get around the audit hook, see the host filesystem,
and, under one shared user, signal other runs. qwqlab says so once with a
``SandboxWarning``. ``isolation_layers()`` and every ``RunResult.layers`` say which layers
a run had.

Test results are judged **outside** the sandbox (see ``run_tests``): exiting early, or
returning an object whose ``__eq__`` always says yes, does not pass a check.

>>> run_python("print(6 * 7)").stdout  # doctest: +SKIP
'42\\n'
"""
from __future__ import annotations

import ast
import json
import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field

__all__ = ["SandboxConfig", "RunResult", "SandboxWarning", "run_python", "run_tests", "isolation_layers"]

_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
#: Every layer a run can have; ``isolation_layers()`` answers for each.
LAYERS = ("bwrap", "limits", "network_namespace", "pid_namespace", "mount_namespace",
          "unprivileged_user", "audit_hook")
_ISOLATION = ("auto", "bwrap", "subprocess")


class SandboxWarning(UserWarning):
    """Model-written code runs without a security boundary on this machine."""


@dataclass(frozen=True)
class SandboxConfig:
    """Limits and isolation for one sandboxed run."""
    timeout_s: float = 2.0           # wall-clock seconds before the run (its whole namespace) is killed
    cpu_s: int | None = None         # RLIMIT_CPU; default: timeout_s rounded up, plus 1
    memory_mb: int = 512             # RLIMIT_AS, address space of each process
    max_file_mb: int = 16            # RLIMIT_FSIZE: largest file (and captured output) it can write
    max_output_chars: int = 100_000  # stdout/stderr kept in the result
    max_processes: int = 64          # RLIMIT_NPROC, applied when a run has a uid of its own (root)
    disk_mb: int = 64                # bwrap: size of each private tmpfs (/sandbox and /tmp)
    isolation: str = "auto"          # "auto": bwrap if it works, else the fallback (with a warning);
    #                                  "bwrap": bwrap or RuntimeError; "subprocess": the fallback on purpose
    isolate_network: bool = True     # fallback: a new network namespace when the kernel allows it
    drop_privileges: bool = True     # when root: bwrap runs as a fresh uid per call, the fallback as `user`
    user: str = "nobody"             # fallback only
    audit_hook: bool = True          # fallback only: the in-process guard (not a security boundary)
    python: str | None = None        # interpreter; default sys.executable (see _interpreters)

    def __post_init__(self):
        from qwqlab.config import check_fields

        check_fields(self)  # types, and finite numbers: timeout_s=nan passes `<= 0`
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")
        if self.memory_mb < 32:
            raise ValueError(f"memory_mb={self.memory_mb} is too small for the Python interpreter "
                             "to start; use at least 32 (default 512)")
        if self.isolation not in _ISOLATION:
            raise ValueError(f"isolation must be one of {_ISOLATION}, got {self.isolation!r}")


@dataclass
class RunResult:
    """What a sandboxed program did.

    ``status``: ``"ok"`` (exit 0), ``"error"`` (non-zero exit), ``"timeout"`` (wall or CPU
    limit), ``"memory"`` (hit the address-space limit), ``"output_limit"`` (wrote past
    ``max_file_mb`` or filled its tmpfs), ``"killed"`` (another signal).
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


# The program's first Python, passed with -c (argv: audit hook 0/1, checks 0/1). It reads the
# checks (if any) and removes their file, installs the fallback's audit hook if asked, then
# runs main.py as a fresh __main__ module: the program never shares this code's globals.
# After the program, each check step runs and its result goes to fd 1 as one line
# "<token> <step> = <plain literal>" (or "ok" / "!"); the parent judges those lines.
_BOOTSTRAP = r'''
import os, sys

def _install(ROOT):
    W = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
    realpath, fspath, sep, isinstance_, int_, str_, bytes_ = os.path.realpath, os.fspath, os.sep, isinstance, int, str, bytes
    PATH_EVENTS = (("os.remove", (0,)), ("os.rmdir", (0,)), ("os.mkdir", (0,)), ("os.chmod", (0,)),
                   ("os.chown", (0,)), ("os.truncate", (0,)), ("os.utime", (0,)), ("os.rename", (0, 1)),
                   ("os.link", (0, 1)), ("os.symlink", (1,)), ("shutil.rmtree", (0,)), ("os.mkfifo", (0,)),
                   ("os.mknod", (0,)), ("os.setxattr", (0,)), ("os.removexattr", (0,)))
    BLOCKED = ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
               "os.forkpty", "pty.spawn", "os.kill", "os.killpg", "signal.pthread_kill", "ctypes.",
               "socket.", "gc.get_objects", "gc.get_referrers", "gc.get_referents", "webbrowser.open",
               "sys.settrace", "sys.setprofile", "_imp.create_dynamic")

    def inside(path):
        if isinstance_(path, int_):
            return True  # an already open descriptor
        p = fspath(path)
        if isinstance_(p, bytes_):
            p = p.decode("utf-8", "surrogateescape")
        full = realpath(p)
        return full == ROOT or full.startswith(ROOT + sep)

    def hook(event, args):
        if event == "open":
            path, mode, flags = args
            writing = (isinstance_(mode, str_) and any(c in mode for c in "wax+")) or \
                (isinstance_(flags, int_) and flags & W)
            if writing and path is not None and not inside(path):
                raise PermissionError("qwqlab sandbox: write outside the working directory: " + repr(path))
        elif event.startswith(BLOCKED) or (event == "import" and args[0] in ("_posixsubprocess", "_ctypes")):
            raise PermissionError("qwqlab sandbox: " + event + " is not allowed")
        elif event == "object.__setattr__" and args[1] == "__code__":
            raise PermissionError("qwqlab sandbox: replacing a function's code is not allowed")
        elif event == "object.__getattr__" and args[1] in ("tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_back"):
            raise PermissionError("qwqlab sandbox: frame access is not allowed")
        elif event.startswith(("os.", "shutil.")):
            for name, positions in PATH_EVENTS:
                if event == name:
                    for i in positions:
                        if i < len(args) and args[i] is not None and not inside(args[i]):
                            raise PermissionError("qwqlab sandbox: " + event + " outside the working directory: " + repr(args[i]))

    sys.addaudithook(hook)

def _plain(type=type, repr=repr, str=str, int=int, float=float, complex=complex, bool=bool,
           bytes=bytes, list=list, tuple=tuple, dict=dict, set=set, frozenset=frozenset, sorted=sorted):
    # Builtins bound now, before the program runs: it cannot swap them for liars.
    atoms = (int, float, complex, bool, str, bytes, type(None))

    def lit(v, depth=0):
        t = type(v)
        if depth > 100:
            raise ValueError("nested too deeply")
        for a in atoms:
            if t is a:
                return repr(v)
        if t is list or t is tuple:
            body = ", ".join([lit(x, depth + 1) for x in v])
            return "[" + body + "]" if t is list else "(" + body + ("," if len(v) == 1 else "") + ")"
        if t is set or t is frozenset:
            body = "[" + ", ".join([lit(x, depth + 1) for x in v]) + "]"
            return ("set(" if t is set else "frozenset(") + body + ")"
        if t is dict:
            return "{" + ", ".join([lit(k, depth + 1) + ": " + lit(x, depth + 1) for k, x in v.items()]) + "}"
        raise TypeError("not a plain value")
    return lit

def _qwqlab(sys, os):
    import builtins
    hook, checked = sys.argv[1:3]
    del sys.argv[1:3]
    plan = None
    if checked == "1":
        import json
        with open("checks.json", encoding="utf-8") as f:
            plan = json.load(f)
        os.remove("checks.json")
    lit, write, BaseException_, exec_, eval_, compile_ = _plain(), os.write, BaseException, exec, eval, compile
    if hook == "1":
        _install(os.path.realpath(os.getcwd()))
    path = os.path.join(os.getcwd(), "main.py")
    with open("main.py", encoding="utf-8", errors="replace") as f:
        code = compile(f.read(), "main.py", "exec")
    main = type(sys)("__main__")
    main.__file__, main.__builtins__ = path, builtins
    sys.modules["__main__"] = main
    sys.argv[0] = path
    exec(code, main.__dict__)
    if plan is None:
        return
    token, steps = plan["token"], plan["steps"]
    del plan
    for i, (kind, src) in enumerate(steps):
        try:
            if kind == "exec":
                exec_(compile_(src, "<test>", "exec"), main.__dict__)
                out = "ok"
            else:
                out = "= " + lit(eval_(compile_(src, "<test>", "eval"), main.__dict__))
        except BaseException_:
            out = "!"
        try:
            sys.stdout.flush()
        except BaseException_:
            pass
        write(1, ("\n" + token + " " + str(i) + " " + out + "\n").encode("utf-8", "backslashreplace"))
        if out == "!":
            break

_qwqlab(sys, os)
'''


def _libc():
    import ctypes
    import ctypes.util

    return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


_LIBC = None
_LOCK = threading.Lock()
_PROBES: dict = {}
_WARNED = False
_UIDS_IN_USE: set[int] = set()
_UID_BASE = 1_000_000  # fresh per-call uids (root only): no account, no file on the host owns them


def _user_ids(name: str) -> tuple[int, int] | None:
    try:
        import pwd

        entry = pwd.getpwnam(name)
        return entry.pw_uid, entry.pw_gid
    except (KeyError, ImportError):
        return None


def _limits(cfg: SandboxConfig, netns: int, ids: tuple[int, int] | None):
    """The function run in the child between fork and exec: limits, namespace, user.

    It only calls pre-resolved functions (no imports), as a ``preexec_fn`` must when the
    parent may have other threads.
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


def _interpreters(cfg: SandboxConfig) -> list[str]:
    """Interpreters to try, in order: the configured one, else this one, then the system's.

    Programs run with ``-I -S`` (standard library only), so any Python 3 will do; the
    system one is there for when this one is not reachable by the sandbox's user (a
    Python under ``/root``).
    """
    if cfg.python:
        return [cfg.python]
    return list(dict.fromkeys(c for c in (sys.executable, "/usr/bin/python3", shutil.which("python3")) if c))


def _bwrap_args(cfg: SandboxConfig, python: str) -> list[str]:
    """bwrap's command line up to the program: namespaces, read-only system, private tmpfs."""
    args = ["bwrap", "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent",
            "--new-session", "--hostname", "sandbox"]
    bound = []
    for d in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(d):  # merged /usr: /lib -> usr/lib
            args += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            args += ["--ro-bind", d, d]
            bound.append(d)
    prefix = os.path.dirname(os.path.dirname(os.path.realpath(python)))  # <prefix>/bin/python3
    if not any(prefix == b or prefix.startswith(b + "/") for b in bound):
        args += ["--ro-bind", prefix, prefix]
    size = str(cfg.disk_mb * 2 ** 20)
    return args + ["--proc", "/proc", "--dev", "/dev", "--size", size, "--tmpfs", "/tmp",
                   "--size", size, "--tmpfs", "/sandbox", "--chdir", "/sandbox",
                   "--uid", "65534", "--gid", "65534"]


_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONIOENCODING": "utf-8",
        "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}


def _probe_bwrap(cfg: SandboxConfig, python: str, as_root: bool) -> tuple[bool, str]:
    """Does a trivial program run under bwrap with this interpreter, in its own pid namespace?"""
    key = ("bwrap", python, as_root, cfg.disk_mb)
    with _LOCK:
        if key not in _PROBES:
            if shutil.which("bwrap") is None:
                _PROBES[key] = (False, "bwrap is not installed")
            else:
                ids = (_UID_BASE - 1, _UID_BASE - 1) if as_root else None
                cmd = _bwrap_args(cfg, python) + [os.path.realpath(python), "-I", "-S", "-c",
                                                  "import os; print(os.getpid(), os.getuid())"]
                try:
                    r = subprocess.run(cmd, env=dict(_ENV), preexec_fn=_limits(SandboxConfig(), 0, ids),
                                       capture_output=True, text=True, timeout=20)
                    ok = r.returncode == 0 and r.stdout.split() == ["2", "65534"]
                    _PROBES[key] = (ok, "" if ok else (r.stderr.strip() or r.stdout.strip())[-300:])
                except (OSError, subprocess.SubprocessError) as e:
                    _PROBES[key] = (False, str(e))
        return _PROBES[key]


def _probe(python: str, netns: int, ids) -> bool:
    """Fallback: can ``python`` start with this namespace flag and user? (cached)"""
    key = (python, netns, ids)
    with _LOCK:
        if key not in _PROBES:
            global _LIBC
            if netns and _LIBC is None:
                try:
                    _LIBC = _libc()
                except OSError:
                    _PROBES[key] = False
                    return False
            try:
                r = subprocess.run([python, "-I", "-S", "-c", "pass"], cwd="/", env=dict(_ENV),
                                   preexec_fn=_limits(SandboxConfig(), netns, ids), capture_output=True, timeout=10)
                _PROBES[key] = r.returncode == 0
            except (OSError, subprocess.SubprocessError):
                _PROBES[key] = False
        return _PROBES[key]


@dataclass(frozen=True)
class _Plan:
    kind: str                          # "bwrap" or "subprocess"
    python: str
    layers: tuple[str, ...]
    netns: int = 0                     # fallback only
    ids: tuple[int, int] | None = None  # fallback only
    fresh_uid: bool = False            # bwrap: run as a new uid per call (root)


def _warn_fallback(reason: str) -> None:
    global _WARNED
    if not _WARNED:
        _WARNED = True
        warnings.warn(
            f"qwqlab.sandbox: no bubblewrap sandbox here ({reason}). Model-written code runs as a plain "
            "subprocess with resource limits, which is NOT a security boundary: the program can read "
            "host files, get around the audit hook, and, under one shared user, signal other runs. "
            "Install bubblewrap (`sudo apt-get install bubblewrap`) for real isolation.",
            SandboxWarning, stacklevel=3)


def _plan(cfg: SandboxConfig) -> _Plan:
    """Which sandbox this config gets on this machine, and the layer names it gives."""
    root = os.geteuid() == 0
    reason = "isolation='subprocess' was asked for"
    if cfg.isolation != "subprocess" and sys.platform.startswith("linux"):
        as_root = root and cfg.drop_privileges
        for python in _interpreters(cfg):
            ok, reason = _probe_bwrap(cfg, python, as_root)
            if ok:
                layers = ("bwrap", "limits", "network_namespace", "pid_namespace", "mount_namespace")
                return _Plan("bwrap", os.path.realpath(python), layers + (("unprivileged_user",) if as_root else ()),
                             fresh_uid=as_root)
    elif cfg.isolation != "subprocess":
        reason = f"bwrap needs Linux, this is {sys.platform}"
    if cfg.isolation == "bwrap":
        raise RuntimeError(f"isolation='bwrap' but bubblewrap cannot run here: {reason}. "
                           "Install it with `sudo apt-get install bubblewrap` (Debian/Ubuntu).")
    _warn_fallback(reason)
    python = cfg.python or sys.executable
    ids = None
    if cfg.drop_privileges and root:
        wanted = _user_ids(cfg.user)
        if wanted is not None:
            for cand in _interpreters(cfg):
                if _probe(cand, 0, wanted):
                    python, ids = cand, wanted
                    break
    netns = 0
    if cfg.isolate_network and sys.platform.startswith("linux"):
        flags = _CLONE_NEWNET if root else _CLONE_NEWUSER | _CLONE_NEWNET
        if _probe(python, flags, ids):
            netns = flags
    layers = ["limits"]
    if netns:
        layers.append("network_namespace")
    if ids is not None:
        layers.append("unprivileged_user")
    if cfg.audit_hook:
        layers.append("audit_hook")
    return _Plan("subprocess", python, tuple(layers), netns=netns, ids=ids)


def isolation_layers(config: SandboxConfig | None = None) -> dict[str, bool]:
    """Which isolation layers a run gets on this machine (see the module docstring).

    ``"bwrap"`` True is the only answer that means a security boundary.
    """
    layers = _plan(config or SandboxConfig()).layers
    return {name: name in layers for name in LAYERS}


def _read(path: str, limit: int) -> str:
    with open(path, "rb") as f:
        data = f.read(limit * 4)
    return data.decode("utf-8", errors="replace")[:limit]


def _status(rc: int | None, timed_out: bool, stderr: str) -> str:
    # Python ignores SIGXFSZ, so a write past RLIMIT_FSIZE fails with EFBIG instead
    if rc != 0 and ("MemoryError" in stderr or "Cannot allocate memory" in stderr):
        return "memory"
    if timed_out or rc == -signal.SIGXCPU:
        return "timeout"
    if rc == -signal.SIGXFSZ or (rc != 0 and ("File too large" in stderr or "No space left" in stderr)):
        return "output_limit"
    if rc == 0:
        return "ok"
    return "killed" if rc is not None and rc < 0 else "error"


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    if int(f.read().rpartition(b")")[2].split()[1]) == pid:
                        out.append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    return out


def _fresh_uid() -> int:
    with _LOCK:
        while True:
            uid = _UID_BASE + secrets.randbelow(1 << 20)
            if uid not in _UIDS_IN_USE:
                _UIDS_IN_USE.add(uid)
                return uid


def _memfd(name: str, text: str) -> int:
    fd = os.memfd_create(name)
    os.write(fd, text.encode("utf-8", errors="replace"))
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _execute(code: str, stdin: str, cfg: SandboxConfig, checks: str | None) -> RunResult:
    """One run: the program (and the checks file, if any) in the sandbox this machine has."""
    plan = _plan(cfg)
    capture = tempfile.mkdtemp(prefix="qwqlab-capture-")  # host-only: the program gets file descriptors
    out_path, err_path = os.path.join(capture, "stdout"), os.path.join(capture, "stderr")
    argv = ["-I", "-S", "-c", _BOOTSTRAP, "1" if plan.kind == "subprocess" and cfg.audit_hook else "0",
            "0" if checks is None else "1"]
    fds, uid, workdir = [], None, None
    try:
        if plan.kind == "bwrap":
            fds.append(_memfd("main.py", code))
            files = ["--file", str(fds[0]), "/sandbox/main.py"]
            if checks is not None:
                fds.append(_memfd("checks.json", checks))
                files += ["--file", str(fds[1]), "/sandbox/checks.json"]
            if plan.fresh_uid:
                uid = _fresh_uid()
            cmd = _bwrap_args(cfg, plan.python) + files + [plan.python] + argv
            env = dict(_ENV, HOME="/sandbox", TMPDIR="/tmp")
            kwargs = dict(pass_fds=tuple(fds), preexec_fn=_limits(cfg, 0, None if uid is None else (uid, uid)))
        else:
            workdir = tempfile.mkdtemp(prefix="qwqlab-sandbox-")
            names = ["main.py"] + ([] if checks is None else ["checks.json"])
            for name, text in zip(names, [code, checks]):
                with open(os.path.join(workdir, name), "w", encoding="utf-8", errors="replace") as f:
                    f.write(text)
            if plan.ids is not None:
                for p in [workdir] + [os.path.join(workdir, n) for n in names]:
                    os.chown(p, *plan.ids)
            cmd = [plan.python] + argv
            env = dict(_ENV, HOME=workdir, TMPDIR=workdir)
            kwargs = dict(cwd=workdir, preexec_fn=_limits(cfg, plan.netns, plan.ids))
        start = time.perf_counter()
        timed_out = False
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=out, stderr=err,
                                    start_new_session=True, close_fds=True, **kwargs)
            try:
                proc.communicate(stdin.encode("utf-8", errors="replace"), timeout=cfg.timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
            except (BrokenPipeError, OSError):
                pass
            finally:
                _kill(proc, plan)
        wall = time.perf_counter() - start
        stdout, stderr = _read(out_path, cfg.max_output_chars), _read(err_path, cfg.max_output_chars)
        rc = proc.returncode
        if plan.kind == "bwrap" and rc is not None and 128 < rc < 128 + 65:
            rc = 128 - rc  # bwrap's pid 1 reports a program killed by signal N as 128 + N, like a shell
        return RunResult(_status(rc, timed_out, stderr), rc, stdout, stderr, wall, plan.layers)
    finally:
        for fd in fds:
            os.close(fd)
        if uid is not None:
            with _LOCK:
                _UIDS_IN_USE.discard(uid)
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(capture, ignore_errors=True)


def _kill(proc: subprocess.Popen, plan: _Plan) -> None:
    """End the run and everything it started.

    bwrap: the sandbox's pid 1 is bwrap's child; killing it makes the kernel kill every
    process in the pid namespace before bwrap (which waits for it) exits. A run that
    ended by itself has already gone the same way. Fallback: the process group.
    """
    if plan.kind == "bwrap":
        if proc.poll() is None:
            for child in _children(proc.pid):
                try:
                    os.kill(child, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
    else:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    proc.wait()


def run_python(code: str, stdin: str = "", config: SandboxConfig | None = None) -> RunResult:
    """Run ``code`` as ``__main__`` in a fresh sandbox and return what happened.

    Args:
        code: the program (model-written, untrusted).
        stdin: text fed to its standard input.
        config: limits and isolation; ``SandboxConfig()`` by default.
    """
    return _execute(code, stdin, config or SandboxConfig(), None)


# --- judging tests outside the sandbox ---------------------------------------------------

def _plain_value(node: ast.AST):
    """The value of a plain literal (what the sandbox's serialiser writes), or ValueError."""
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


def _test_plan(test: str) -> tuple[list[tuple[str, str]], list[tuple]]:
    """Split an assert-style test into steps for the sandbox and what the parent expects.

    ``assert <expr> == <literal>`` (either side): only ``<expr>`` goes in; its value comes
    back as a plain literal and the parent compares it with the literal, which the
    program never sees. ``assert a == b`` (neither a literal): both values come back and
    the parent compares them. Any other ``assert x``: ``x``'s value must come back truthy.
    Other statements run in the sandbox and must finish. Caveat: an ``assert`` nested in
    another statement, or an ``x`` that calls the program's objects, is evaluated by the
    program's code and a determined program can fool it; the ``==`` forms cannot be.
    """
    steps, expect = [], []
    for stmt in ast.parse(test).body:
        t = stmt.test if isinstance(stmt, ast.Assert) else None
        if t is None:
            steps.append(("exec", ast.unparse(stmt)))
            expect.append(("ok",))
        elif isinstance(t, ast.Compare) and len(t.ops) == 1 and isinstance(t.ops[0], ast.Eq):
            left, right = t.left, t.comparators[0]
            for expr, other in ((left, right), (right, left)):
                try:
                    want = _plain_value(other)
                except ValueError:
                    continue
                steps.append(("value", ast.unparse(expr)))
                expect.append(("equals", want))
                break
            else:
                steps += [("value", ast.unparse(left)), ("value", ast.unparse(right))]
                expect += [("pair",), ("pair_end",)]
        else:
            steps.append(("value", ast.unparse(t)))
            expect.append(("truthy",))
    return steps, expect


def _judge(stdout: str, token: str, expect: list[tuple]) -> bool:
    """Did every step report exactly once, with what the parent expected?"""
    got: dict[int, list[str]] = {}
    for line in stdout.splitlines():
        if line.startswith(token + " "):
            i, _, text = line[len(token) + 1:].partition(" ")
            got.setdefault(int(i) if i.isdigit() else -1, []).append(text)
    values = []
    for i, e in enumerate(expect):
        reports = got.get(i, [])
        if len(reports) != 1:
            return False  # missing (exited early, crashed, failed) or reported twice (forged)
        text = reports[0]
        if e[0] == "ok":
            if text != "ok":
                return False
            values.append(None)
            continue
        if not text.startswith("= "):
            return False
        try:
            values.append(_plain_value(ast.parse(text[2:], mode="eval")))
        except (SyntaxError, ValueError, TypeError, RecursionError, MemoryError):
            return False
    for i, (e, v) in enumerate(zip(expect, values)):
        if e[0] == "equals":
            ok = v == e[1]
        elif e[0] == "truthy":
            ok = bool(v)
        elif e[0] == "pair":
            ok = v == values[i + 1]
        else:  # "ok" (checked above) and "pair_end"
            ok = True
        if not ok:
            return False
    return True


def _same_output(got: str, expected: str) -> bool:
    a = [line.rstrip() for line in got.strip().splitlines()]
    b = [line.rstrip() for line in str(expected).strip().splitlines()]
    return a == b


def run_tests(code: str, test_cases: list, config: SandboxConfig | None = None) -> list[bool]:
    """Run ``code`` once per test case, each in its own sandbox; one pass/fail per test.

    A test case is ``{"input": stdin, "output": expected stdout}`` (lines compared, trailing
    whitespace ignored, exit status 0 required) or a string of Python run after the
    program, judged step by step outside the sandbox (``_test_plan``): a program that
    exits early (``sys.exit(0)``, ``os._exit(0)``), or returns an object whose ``__eq__``
    always says yes, fails it. The code reward (``rewards.make_code_reward``) goes
    through here.
    """
    cfg = config or SandboxConfig()
    results = []
    for case in test_cases:
        if isinstance(case, dict):
            r = _execute(code, str(case.get("input", "")), cfg, None)
            results.append(r.ok and _same_output(r.stdout, case.get("output", "")))
            continue
        try:
            steps, expect = _test_plan(str(case))
        except SyntaxError:
            results.append(False)
            continue
        token = secrets.token_hex(16)
        r = _execute(code, "", cfg, json.dumps({"token": token, "steps": steps}))
        results.append(r.status in ("ok", "error") and _judge(r.stdout, token, expect))
    return results
