"""The browser harness's own failure report: a page that never loads must say where its kernel is."""
from __future__ import annotations

import threading
import time
import urllib.request
from pathlib import Path

import pytest

from browser_harness import descendants, start_dashboard

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _request(url: str) -> None:
    try:
        urllib.request.urlopen(url, timeout=120).read()
    except Exception:  # noqa: BLE001 - http.client: a chunked reply cut short (IncompleteRead)
        pass  # the server is aborted under the request, on purpose


def test_dump_stacks_reaches_the_kernel_in_its_own_session(tmp_path):
    """jupyter_client starts each kernel in a session of its own: the stacks must come from it anyway."""
    server = start_dashboard("memory", tmp_path)
    try:
        threading.Thread(target=_request, args=(server.url + "/",), daemon=True).start()  # starts the kernel
        deadline = time.monotonic() + 120
        while not any("ipykernel" in _cmdline(p) for p in descendants(server.proc.pid)):
            assert time.monotonic() < deadline, "no kernel started within 120 s"
            time.sleep(0.5)
        report = server.dump_stacks()
    finally:
        server.stop()
    kernel_stack = report.split("Voila")[-1] if "Voila" in report else report
    assert "most recent call first" in report, report[-3000:]
    assert "ipykernel" in kernel_stack or "zmq" in kernel_stack or "tornado" in kernel_stack, report[-3000:]
