"""Run model-written Python in a throw-away process, the way a code-execution reward must.

Where the machine allows it, every call gets its own **bubblewrap** sandbox (``bwrap``,
Debian's ``bubblewrap`` package; ``make test`` installs it when run as root). That is the
security boundary; what the tests in ``tests/test_sandbox*.py`` check it does:

- own user, pid, network, ipc, uts and mount namespaces (``--unshare-all``): the program
  sees only its own processes, has no network at all (not even the host's loopback or
  abstract unix sockets), and a filesystem made of read-only system folders (``/usr``,
  the interpreter's prefix), a fresh ``/proc``, a read-only root and ``/dev``, and three
  small private tmpfs folders: the working directory ``/sandbox``, ``/tmp`` and ``/dev/shm``.
  No host file, socket or process of another run is even visible.
- when qwqlab runs as root, bwrap itself runs as a fresh unprivileged uid per call;
- when the call returns, its whole pid namespace is gone: a child that called ``setsid``
  or forked dies with the run; when qwqlab is PID 1 (a container without an init), the
  bwrap processes handed to it are reaped (``reap_orphans``).

What is bounded, and where:

- processes: ``max_processes`` (``RLIMIT_NPROC``, set by the program's first line inside the
  sandbox, where the kernel counts it per user namespace: it holds as any user, not only root);
- memory, where a memory cgroup can be made (root on cgroup v1; layer ``memory_cgroup``): the
  whole run, every process and its tmpfs files together, gets ``run_memory_mb`` (default
  ``memory_mb + 3 x disk_mb``); a run the kernel's OOM killer stopped is ``"memory"``;
- memory everywhere: ``RLIMIT_AS`` of ``memory_mb`` per process, so without a cgroup a run's
  RAM is at most ``max_processes x memory_mb`` (8 GiB by default) plus its three tmpfs folders
  of ``disk_mb`` each (192 MiB by default); nothing else in the sandbox is writable;
- time: a wall-clock ``timeout_s`` and ``RLIMIT_CPU``; files: ``RLIMIT_FSIZE`` (``max_file_mb``,
  which also caps captured output); ``RLIMIT_CORE`` 0.

A run whose sandbox fails before the program starts (bwrap cannot create its namespaces:
user namespaces used up, a mount refused) gets status ``"infrastructure"``, is logged, and
the code reward counts it as "cannot be judged" (``None``), never as the program's failure:
the program's first act is a byte on a pipe only qwqlab reads, so it cannot fake that status.

Where bwrap is missing or fails its probe (macOS, no user namespaces), the **fallback**
runs the program as a plain subprocess with the same rlimits, plus, where possible, a new
network namespace, the ``nobody`` user (when root) and a PEP 578 audit hook. **That is not
a security boundary**: a program can get around the audit hook, see the host filesystem,
and, under one shared user, signal other runs. qwqlab says so once with a
``SandboxWarning``. ``isolation_layers()`` and every ``RunResult.layers`` say which layers
a run had. Its process cap counts every process of the user it runs as, and it writes to
a host temporary folder (``RLIMIT_FSIZE`` per file, no size cap in all).

Tests are judged **outside** the program's sandbox (``qwqlab.code_tests``): the test code
runs in a second sandbox, and only plain data crosses between the two.

>>> run_python("print(6 * 7)").stdout  # doctest: +SKIP
'42\\n'
"""
from __future__ import annotations

import logging
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

from qwqlab.sandbox_bootstrap import BOOTSTRAP, RUN
from qwqlab.sandbox_host import CHILDREN_LOCK, LIVE, MemoryCgroup, children, memory_cgroups, reap_orphans

__all__ = ["SandboxConfig", "RunResult", "SandboxWarning", "Sandboxed", "run_python", "isolation_layers"]

_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
#: Every layer a run can have; ``isolation_layers()`` answers for each.
LAYERS = ("bwrap", "limits", "memory_cgroup", "network_namespace", "pid_namespace", "mount_namespace",
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
    max_processes: int = 16          # processes (and threads) one run may have, whoever runs it
    disk_mb: int = 64                # bwrap: size of each private tmpfs (/sandbox, /tmp, /dev/shm)
    run_memory_mb: int | None = None  # the whole run's RAM, tmpfs included, where a memory cgroup can be
    #                                  made (root on cgroup v1); default memory_mb + 3 x disk_mb
    isolation: str = "auto"          # "auto": bwrap if it works, else the fallback (with a warning);
    #                                  "bwrap": bwrap or RuntimeError; "subprocess": the fallback on purpose
    isolate_network: bool = True     # fallback: a new network namespace when the kernel allows it
    drop_privileges: bool = True     # when root: bwrap runs as a fresh uid per call, the fallback as `user`
    user: str = "nobody"             # fallback only
    audit_hook: bool = True          # fallback only: the in-process guard (not a security boundary)
    python: str | None = None        # interpreter; default sys.executable (see _interpreters)

    def __post_init__(self):
        from qwqlab.validate import check_fields

        check_fields(self)  # types, and finite numbers: timeout_s=nan passes `<= 0`
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")
        if self.max_processes < 2:
            raise ValueError(f"max_processes must be at least 2 (the sandbox's init and Python), "
                             f"got {self.max_processes}")
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
    ``max_file_mb`` or filled its tmpfs), ``"killed"`` (another signal), ``"infrastructure"``
    (the sandbox failed before the program started, e.g. no user namespaces left: not the
    program's doing, so it cannot be judged; logged).
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


def _limits(cfg: SandboxConfig, netns: int, ids: tuple[int, int] | None, cgroup_procs: str | None = None):
    """The function run in the child between fork and exec: cgroup, limits, namespace, user.

    It only calls pre-resolved functions (no imports), as a ``preexec_fn`` must when the
    parent may have other threads.
    """
    mem = cfg.memory_mb * 2 ** 20
    cpu = cfg.cpu_s if cfg.cpu_s is not None else int(cfg.timeout_s) + 1
    fsize = cfg.max_file_mb * 2 ** 20
    unshare = _LIBC.unshare if netns else None  # resolved here, not in the forked child
    setrlimit = resource.setrlimit

    def preexec():
        if cgroup_procs is not None:  # every process of the run is born in the run's memory cgroup
            fd = os.open(cgroup_procs, os.O_WRONLY)
            os.write(fd, b"0")
            os.close(fd)
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
    # Every writable place is a tmpfs of disk_mb (RAM): /tmp, /sandbox and /dev/shm. The root
    # (bwrap's own tmpfs) and /dev are read-only: without that they were unbounded RAM.
    return args + ["--proc", "/proc", "--dev", "/dev", "--size", size, "--tmpfs", "/dev/shm",
                   "--size", size, "--tmpfs", "/tmp", "--size", size, "--tmpfs", "/sandbox",
                   "--remount-ro", "/dev", "--remount-ro", "/", "--chdir", "/sandbox",
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
                layers += ("memory_cgroup",) if memory_cgroups() else ()
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
    layers = ["limits"] + (["memory_cgroup"] if memory_cgroups() else [])
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


class Sandboxed:
    """One sandboxed process (``BOOTSTRAP``, then ``mode``: Python run after it, e.g. ``RUN``), and
    everything to end it cleanly; a context manager. ``pipes`` gives it a stdout pipe instead of a file
    (``qwqlab.code_tests`` talks to its two sandboxes that way)."""

    def __init__(self, cfg: SandboxConfig, files: dict[str, str], mode: str, pipes: bool):
        self.cfg, self.plan = cfg, _plan(cfg)
        self.capture = tempfile.mkdtemp(prefix="qwqlab-capture-")  # host-only: the program gets descriptors
        self.marker, marker_w = os.pipe()
        os.set_blocking(self.marker, False)
        self.fds, self.uid, self.workdir, self.proc, self.cgroup = [marker_w], None, None, None, None
        argv = ["-I", "-S", "-c", BOOTSTRAP + mode, "1" if self.plan.kind == "subprocess" and cfg.audit_hook else "0",
                str(marker_w), str(cfg.max_processes)]
        try:
            if "memory_cgroup" in self.plan.layers:
                self.cgroup = MemoryCgroup(cfg, memory_cgroups())
            procs = None if self.cgroup is None else self.cgroup.procs
            if self.plan.kind == "bwrap":
                mounts = []
                for name, text in files.items():
                    self.fds.append(_memfd(name, text))
                    mounts += ["--file", str(self.fds[-1]), f"/sandbox/{name}"]
                if self.plan.fresh_uid:
                    self.uid = _fresh_uid()
                cmd = _bwrap_args(cfg, self.plan.python) + mounts + [self.plan.python] + argv
                env = dict(_ENV, HOME="/sandbox", TMPDIR="/tmp")
                kwargs = dict(preexec_fn=_limits(cfg, 0, None if self.uid is None else (self.uid, self.uid), procs))
            else:
                self.workdir = tempfile.mkdtemp(prefix="qwqlab-sandbox-")
                for name, text in files.items():
                    with open(os.path.join(self.workdir, name), "w", encoding="utf-8", errors="replace") as f:
                        f.write(text)
                if self.plan.ids is not None:
                    for p in [self.workdir] + [os.path.join(self.workdir, n) for n in files]:
                        os.chown(p, *self.plan.ids)
                cmd = [self.plan.python] + argv
                env = dict(_ENV, HOME=self.workdir, TMPDIR=self.workdir)
                kwargs = dict(cwd=self.workdir, preexec_fn=_limits(cfg, self.plan.netns, self.plan.ids, procs))
            with open(os.path.join(self.capture, "stdout"), "wb") as out, \
                    open(os.path.join(self.capture, "stderr"), "wb") as err, CHILDREN_LOCK:  # before any reaper sees it
                self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE,
                                             stdout=subprocess.PIPE if pipes else out, stderr=err,
                                             start_new_session=True, close_fds=True, pass_fds=tuple(self.fds), **kwargs)
                LIVE.add(self.proc.pid)
        except BaseException:
            self.__exit__()
            raise
        finally:
            for fd in self.fds:
                os.close(fd)
            self.fds = []
        self.start = time.perf_counter()

    def started(self) -> bool:
        """Did the program's Python start inside the sandbox? (Ask once the process has ended.)"""
        try:
            return os.read(self.marker, 1) == b"S"
        except (BlockingIOError, OSError):
            return False

    def output(self) -> tuple[str, str]:
        limit = self.cfg.max_output_chars
        return _read(os.path.join(self.capture, "stdout"), limit), _read(os.path.join(self.capture, "stderr"), limit)

    def returncode(self) -> int | None:
        rc = self.proc.returncode
        if self.plan.kind == "bwrap" and rc is not None and 128 < rc < 128 + 65:
            rc = 128 - rc  # bwrap's pid 1 reports a program killed by signal N as 128 + N, like a shell
        return rc

    def end(self) -> None:
        """Kill the run (its whole pid namespace, or process group), wait, clean up; idempotent."""
        if self.proc is not None:
            _kill(self.proc, self.plan)
            for pipe in (self.proc.stdin, self.proc.stdout):
                if pipe is not None:
                    try:
                        pipe.close()
                    except OSError:
                        pass
            with CHILDREN_LOCK:
                LIVE.discard(self.proc.pid)
            reap_orphans()
        if self.uid is not None:
            with _LOCK:
                _UIDS_IN_USE.discard(self.uid)
            self.uid = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.end()
        if self.cgroup is not None:
            self.cgroup.remove()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
        shutil.rmtree(self.capture, ignore_errors=True)
        try:
            os.close(self.marker)
        except OSError:
            pass


def infrastructure_failure(run: Sandboxed, stderr: str) -> RunResult:
    """The sandbox never started the program (bwrap failed: no user namespaces left, a mount
    refused ...): the machine's failure, not the program's. Logged; the result cannot be judged."""
    logging.getLogger(__name__).warning(
        "qwqlab.sandbox: the sandbox failed before the program started (%s): this run cannot be judged",
        " ".join(stderr.split())[-300:] or f"exit status {run.proc.returncode}")
    return RunResult("infrastructure", run.returncode(), "", stderr, time.perf_counter() - run.start, run.plan.layers)


def _execute(code: str, stdin: str, cfg: SandboxConfig) -> RunResult:
    """One run of ``code`` as ``__main__`` in the sandbox this machine has."""
    with Sandboxed(cfg, {"main.py": code}, RUN, pipes=False) as run:
        timed_out = False
        try:
            run.proc.communicate(stdin.encode("utf-8", errors="replace"), timeout=cfg.timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
        except (BrokenPipeError, OSError):
            pass
        finally:
            run.end()
        wall = time.perf_counter() - run.start
        stdout, stderr = run.output()
        if not run.started():
            return infrastructure_failure(run, stderr)
        rc = run.returncode()
        status = "memory" if run.cgroup is not None and run.cgroup.oom_killed() else _status(rc, timed_out, stderr)
        return RunResult(status, rc, stdout, stderr, wall, run.plan.layers)


def _kill(proc: subprocess.Popen, plan: _Plan) -> None:
    """End the run and everything it started.

    bwrap: the sandbox's pid 1 is bwrap's child; killing it makes the kernel kill every
    process in the pid namespace before bwrap (which waits for it) exits. A run that
    ended by itself has already gone the same way. Fallback: the process group.
    """
    if plan.kind == "bwrap":
        if proc.poll() is None:
            for child, _, _ in children(proc.pid):
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
    return _execute(code, stdin, config or SandboxConfig())
