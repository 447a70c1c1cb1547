"""What the host does around each sandboxed run: a memory cgroup for the whole run, reaping.

``qwqlab.sandbox`` starts the runs; this module holds the host-side bookkeeping that outlives
a single process: the processes' family tree read from ``/proc``, the zombie ``bwrap``
processes handed to qwqlab when it is PID 1, and cgroup v1 memory limits.
"""
from __future__ import annotations

import os
import secrets
import threading
import time

__all__ = ["children", "reap_orphans", "memory_cgroups", "MemoryCgroup", "CHILDREN_LOCK", "LIVE"]


def children(pid: int) -> list[tuple[int, str, str]]:
    """``(pid, state, name)`` of each child process of ``pid``, read from /proc."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    stat = f.read()
                name, _, rest = stat.partition(b"(")[2].rpartition(b")")
                state, ppid = rest.split()[:2]
                if int(ppid) == pid:
                    out.append((int(entry), state.decode(), name.decode(errors="replace")))
            except (OSError, ValueError, IndexError):
                pass
    return out


CHILDREN_LOCK = threading.Lock()
LIVE: set[int] = set()  # runs started here and not yet waited for: never reaped by reap_orphans


_REAPER: dict = {}


def _reaper() -> bool:
    """Do orphaned processes come to this process? (It is PID 1, or a child subreaper; asked once per pid.)"""
    pid = os.getpid()
    if pid not in _REAPER:
        _REAPER.clear()
        try:
            import ctypes

            flag = ctypes.c_int(0)
            prctl = ctypes.CDLL(None, use_errno=True).prctl
            sub = prctl(37, ctypes.byref(flag), 0, 0, 0) == 0 and flag.value == 1  # PR_GET_CHILD_SUBREAPER
        except (OSError, AttributeError):
            sub = False
        _REAPER[pid] = pid == 1 or sub
    return _REAPER[pid]


def reap_orphans() -> int:
    """Wait for the zombie ``bwrap`` processes the kernel handed to this process; how many.

    bwrap's sandbox init is a child of the bwrap qwqlab starts; when that one exits first, the
    init is re-parented to PID 1. When qwqlab *is* PID 1 (a container entrypoint without an
    init) nobody waited for it, so every run left a zombie and a code-reward run filled the
    pid limit. Only zombies named bwrap that are not a run in flight are waited for, never
    another child of the program's.
    """
    if not _reaper():
        return 0
    reaped = 0
    with CHILDREN_LOCK:
        for pid, state, name in children(os.getpid()):
            if state == "Z" and name == "bwrap" and pid not in LIVE:
                try:
                    reaped += os.waitpid(pid, os.WNOHANG)[0] == pid
                except ChildProcessError:
                    pass
    return reaped


_CGROUP: dict = {}


def memory_cgroups() -> str | None:
    """A folder where this process may make memory cgroups (cgroup v1's memory controller, as
    root: its own cgroup's folder); None where it may not (cgroup v2 without delegation, not root)."""
    if "root" not in _CGROUP:
        _CGROUP["root"] = None
        try:
            with open("/proc/self/cgroup") as f:
                for line in f:
                    _, controllers, path = line.rstrip("\n").split(":", 2)
                    if "memory" in controllers.split(","):
                        for d in ("/sys/fs/cgroup/memory" + path.rstrip("/"), "/sys/fs/cgroup/memory"):
                            if os.path.isfile(os.path.join(d, "memory.limit_in_bytes")) and os.access(d, os.W_OK):
                                _CGROUP["root"] = d
                                break
        except (OSError, ValueError):
            pass
    return _CGROUP["root"]


class MemoryCgroup:
    """One run's memory cgroup: its processes and their tmpfs files together get ``run_memory_mb``."""

    def __init__(self, cfg, root: str):  # cfg: a qwqlab.sandbox.SandboxConfig
        limit = (cfg.run_memory_mb or cfg.memory_mb + 3 * cfg.disk_mb) * 2 ** 20
        self.path = os.path.join(root, f"qwqlab-{secrets.token_hex(6)}")
        os.mkdir(self.path)
        try:
            for name in ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes"):  # RAM, then RAM + swap
                if os.path.exists(os.path.join(self.path, name)):
                    with open(os.path.join(self.path, name), "w") as f:
                        f.write(str(limit))
        except OSError:
            self.remove()
            raise
        self.procs = os.path.join(self.path, "cgroup.procs")

    def oom_killed(self) -> bool:
        try:
            with open(os.path.join(self.path, "memory.oom_control")) as f:
                return any(line.split()[0] == "oom_kill" and int(line.split()[1]) > 0 for line in f)
        except (OSError, ValueError, IndexError):
            return False

    def remove(self) -> None:
        for _ in range(50):  # the run's processes are dead; the kernel may take a moment to let go
            try:
                os.rmdir(self.path)
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.01)
