"""Drive JupyterLab and Voila pages in Debian's Chromium with Playwright, for the browser tests.

Measured traps (see ../shared/reference/lab_notes.md): JupyterLab's status bar says "Idle"
before any kernel exists, so Run All clicked too early runs nothing: we wait for
"Python 3 (ipykernel) | Idle". A "Jupyter news?" pop-up appears unless suppressed in
overrides.json. ``launch()`` rejects ``--user-data-dir`` (it makes a fresh profile itself).
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
INSTALL_HINT = ("Debian's Chromium is not installed: `make test` installs it when run as root "
                "(apt-get install -y chromium); otherwise run `sudo apt-get install -y chromium` "
                "or set QWQLAB_CHROMIUM to a Chromium binary.")
KERNEL_IDLE = "Python 3 (ipykernel) | Idle"

# JupyterLab settings for a quiet, test-friendly client: no news or update pop-ups, and every
# cell rendered (the default windowing skips cells outside the viewport).
LAB_OVERRIDES = {
    "@jupyterlab/apputils-extension:notification": {"checkForUpdates": False, "fetchNews": "false"},
    "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"},
    "@jupyterlab/extensionmanager-extension:plugin": {"enabled": False},
}


def find_chromium() -> str | None:
    """``$QWQLAB_CHROMIUM``, else ``chromium`` on PATH, else Debian's ``/usr/bin/chromium``."""
    for candidate in (os.environ.get("QWQLAB_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium",
                      shutil.which("chromium-browser")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(**extra) -> dict:
    """The environment for a Jupyter or Voila server and its kernels.

    The test session sets ``MPLBACKEND=Agg`` (conftest), which would stop inline figures in
    the browser: it is removed. ``JUPYTER_DATA_DIR`` points at an empty folder so that the
    kernel is this virtualenv's own ``python3``, not a user-level kernelspec.

    pytest's own variables (``PYTEST_CURRENT_TEST``, ``PYTEST_VERSION``, ...) are removed too:
    the server's kernels inherit them, and a kernel that sees ``PYTEST_CURRENT_TEST`` believes
    it runs inside pytest (ipykernel then leaves the process's stdout/stderr file descriptors
    unwatched, ``ipykernel/iostream.py``), so it would not behave as it does for a user. This
    was the one difference between the lengths dashboard timing out under pytest and loading
    in 10 s from a plain script on the same machine (issue 10).
    """
    env = {k: v for k, v in os.environ.items()
           if k not in ("MPLBACKEND", "JUPYTER_CONFIG_DIR") and not k.startswith("PYTEST_")}
    env.update({k: str(v) for k, v in extra.items()})
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["PYTHONFAULTHANDLER"] = "1"  # Server.dump_stacks: a stuck kernel can say where it is
    return env


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (parents before children), read from ``/proc``."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        p = todo.pop(0)
        found.append(p)
        todo += sorted(children.get(p, []))
    return found


class Server:
    """A server process (JupyterLab or Voila) on 127.0.0.1, stopped by ``stop()``."""

    def __init__(self, cmd: list[str], url: str, log: Path, env: dict, ready_path: str | None = "/",
                 timeout: float = 90):
        self.url, self.log = url, log
        self._log_file = open(log, "w")
        # stdin closed: a server (or a kernel it starts) must never wait on the test's terminal or CI pipe
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=subprocess.STDOUT,
                                     env=env, start_new_session=True)
        self._wait_ready(ready_path, timeout)

    def _wait_ready(self, path: str | None, timeout: float) -> None:
        """Until ``path`` answers 200, or (``None``) the port accepts connections."""
        deadline = time.monotonic() + timeout
        port = int(self.url.rsplit(":", 1)[1].split("/")[0])
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; log {self.log}:\n"
                                   f"{self.log.read_text()[-3000:]}")
            try:
                if path is None:
                    socket.create_connection(("127.0.0.1", port), timeout=2).close()
                    return
                with urllib.request.urlopen(self.url.rstrip("/") + path, timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise TimeoutError(f"server not ready after {timeout} s; log {self.log}:\n{self.log.read_text()[-3000:]}")

    def dump_stacks(self) -> str:
        """Every Python thread's stack in the server and its kernels, then the log's tail: for a
        page that never loads. ``PYTHONFAULTHANDLER`` is set for them, so SIGABRT prints the
        stacks to this log. Kernels run in sessions of their own (jupyter_client starts them
        with ``start_new_session``), so they are found as descendants, not by session."""
        pids = descendants(self.proc.pid)
        for pid in reversed(pids):  # kernels first, then Voila, then the ``qwqlab dashboard`` process
            try:
                os.kill(pid, signal.SIGABRT)
            except OSError:
                pass
            time.sleep(1)
        time.sleep(2)
        self._log_file.flush()
        return f"(stacks of processes {pids})\n" + self.log.read_text()[-16000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # our own process (its session holds the kernels it started)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log_file.close()


def start_jupyterlab(root_dir: Path, work: Path, env_extra: dict | None = None) -> Server:
    """JupyterLab on 127.0.0.1 with a random token, serving ``root_dir``, settings under ``work``."""
    work.mkdir(parents=True, exist_ok=True)
    settings = work / "app-settings"
    settings.mkdir(exist_ok=True)
    (settings / "overrides.json").write_text(json.dumps(LAB_OVERRIDES, indent=1))
    for sub in ("user-settings", "workspaces", "data", "runtime", "config"):
        (work / sub).mkdir(exist_ok=True)
    token, port = secrets.token_hex(16), free_port()
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
           f"--port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root_dir}",
           f"--LabApp.app_settings_dir={settings}", f"--LabApp.user_settings_dir={work / 'user-settings'}",
           f"--LabApp.workspaces_dir={work / 'workspaces'}", "--ServerApp.open_browser=False",
           "--LabApp.news_url=None", "--LabServerApp.collaborative=False"]
    env = server_env(JUPYTER_DATA_DIR=work / "data", JUPYTER_RUNTIME_DIR=work / "runtime",
                     JUPYTER_CONFIG_DIR=work / "config", **(env_extra or {}))
    server = Server(cmd, f"http://127.0.0.1:{port}", work / "jupyterlab.log", env,
                    ready_path=f"/api/status?token={token}")
    server.token = token
    return server


def start_dashboard(name: str, work: Path) -> Server:
    """``qwqlab dashboard NAME`` (Voila) on a free port of 127.0.0.1, its Jupyter folders under ``work``.

    Ready once the port accepts connections: each page request starts a render, so the
    readiness check must not request a page.
    """
    work.mkdir(parents=True, exist_ok=True)
    for sub in ("data", "runtime", "config"):
        (work / sub).mkdir(exist_ok=True)
    port = free_port()
    env = server_env(JUPYTER_DATA_DIR=work / "data", JUPYTER_RUNTIME_DIR=work / "runtime",
                     JUPYTER_CONFIG_DIR=work / "config")
    cmd = [sys.executable, "-m", "qwqlab", "dashboard", name, f"--port={port}"]
    return Server(cmd, f"http://127.0.0.1:{port}", work / f"dashboard-{name}.log", env, ready_path=None)


def launch_chromium(playwright, executable: str):
    return playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)


# ----------------------------------------------------------------------------- reading the page

# What a widget drives, as text the test can compare: visible output text (slider readouts
# and form controls left out, since they change with the control itself), every plotly
# figure's data and title, and every image.
SNAPSHOT_JS = """
(root) => {
  const scope = root || document;
  const texts = [];
  for (const el of scope.querySelectorAll('.jp-OutputArea-output, .widget-output, .widget-html-content, .widget-htmlmath-content, table')) {
    const clone = el.cloneNode(true);
    clone.querySelectorAll('.widget-readout, input, textarea, select, .widget-slider, script, style, .js-plotly-plot')
         .forEach(n => n.remove());
    texts.push(clone.innerText || clone.textContent || '');
  }
  for (const el of scope.querySelectorAll('textarea')) texts.push(el.value);
  const plots = [];
  for (const gd of scope.querySelectorAll('.js-plotly-plot')) {
    const data = (gd.data || []).map(t => {
      const out = {};
      for (const k of ['x', 'y', 'z', 'text', 'name']) if (t[k] !== undefined) out[k] = Array.from(t[k].length !== undefined && typeof t[k] !== 'string' ? t[k] : [t[k]]);
      return out;
    });
    const title = gd.querySelector('.gtitle');
    plots.push(JSON.stringify({data, title: title ? title.textContent : ''}));
  }
  const hash = (str) => { let h = 5381; for (let i = 0; i < str.length; i++) h = ((h * 33) ^ str.charCodeAt(i)) >>> 0; return h; };
  const images = Array.from(scope.querySelectorAll('img')).map(i => i.src.length + ':' + hash(i.src));
  return {text: texts.join('\\n'), plots: plots.join('\\n'), images: images.join('\\n')};
}
"""

ERRORS_JS = """
(scopeSelector) => {
  const scope = scopeSelector ? document.querySelector(scopeSelector) : document;
  const errs = [];
  for (const el of (scope || document).querySelectorAll('.jp-OutputArea-output')) {
    const mime = el.getAttribute('data-mime-type') || '';
    const text = el.innerText || '';
    if (mime === 'application/vnd.jupyter.stderr' && /(^|\\n)\\w*(Error|Exception)\\b/.test(text))
      errs.push(text.slice(0, 2000));
  }
  return errs;
}
"""

PROMPTS_JS = """
(scopeSelector) => Array.from(document.querySelector(scopeSelector).querySelectorAll('.jp-CodeCell .jp-InputPrompt'))
                        .map(p => p.innerText.trim())
"""

# The notebook in front: JupyterLab keeps other open tabs in the page, hidden.
ACTIVE_NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden)"


class PageReader:
    """Reads what widgets drive on any page (JupyterLab or Voila)."""

    scope: str | None = None  # CSS selector of the part of the page that counts; None: all of it

    def __init__(self, page):
        self.page = page

    def errors(self) -> list[str]:
        """Tracebacks shown in cell outputs (stderr text that is only a warning is not one)."""
        return self.page.evaluate(ERRORS_JS, self.scope)

    def snapshot(self, selector: str | None = None) -> dict:
        """Text, plotly data and images under ``selector`` (the whole scope when ``None``)."""
        selector = selector or self.scope
        root = self.page.locator(selector).first.element_handle() if selector else None
        return self.page.evaluate(SNAPSHOT_JS, root)


class LabPage(PageReader):
    """A notebook open in JupyterLab, alone in a fresh workspace."""

    scope = ACTIVE_NOTEBOOK

    def __init__(self, page, server: Server):
        super().__init__(page)
        self.server = server

    def open(self, notebook: str, timeout_ms: int = 90_000) -> None:
        # ?reset starts from an empty workspace, so notebooks opened by earlier tests stay closed.
        self.page.goto(f"{self.server.url}/lab/tree/{notebook}?reset&token={self.server.token}")
        self.page.locator(ACTIVE_NOTEBOOK).first.wait_for(timeout=timeout_ms)
        self.page.get_by_text(KERNEL_IDLE).first.wait_for(timeout=timeout_ms)

    def run_all(self, timeout_ms: int = 600_000) -> float:
        """Run All from the Run menu; wait until every code cell has run and the kernel is idle."""
        start = time.monotonic()
        self.page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        self.page.locator("li[data-command='runmenu:run-all']").click()
        self.page.wait_for_function(
            """([scope, idle]) => {
                const panel = document.querySelector(scope);
                if (!panel) return false;
                const prompts = Array.from(panel.querySelectorAll('.jp-CodeCell .jp-InputPrompt'))
                                     .map(p => p.innerText.trim());
                return document.body.innerText.includes(idle) && prompts.some(p => /\\d/.test(p))
                       && !prompts.some(p => p.includes('*'));
            }""", arg=[ACTIVE_NOTEBOOK, KERNEL_IDLE], timeout=timeout_ms, polling=250)
        return time.monotonic() - start

    def prompts(self) -> list[str]:
        return self.page.evaluate(PROMPTS_JS, self.scope)


def move_slider(page, handle, key: str = "ArrowRight", presses: int = 1) -> None:
    """Move a noUiSlider handle with the keyboard, as a person tabbing to it would."""
    handle.scroll_into_view_if_needed()
    handle.focus()
    for _ in range(presses):
        page.keyboard.press(key)


def wait_for_change(read, before: dict, keys=("text", "plots", "images"), timeout: float = 20.0,
                    require: str = "any", settle: float = 1.0) -> dict:
    """Poll ``read()`` until ``any`` (or ``all``) of ``keys`` differ from ``before``, then settle.

    An explorer redraws in steps (output cleared, table, then each figure), so after the
    first change we wait until two reads ``settle`` seconds apart agree, and return that.
    """
    done = any if require == "any" else all
    deadline = time.monotonic() + timeout
    after = read()
    while time.monotonic() < deadline and not done(after[k] != before[k] for k in keys):
        time.sleep(0.2)
        after = read()
    while time.monotonic() < deadline + timeout:
        time.sleep(settle)
        again = read()
        if again == after:
            break
        after = again
    return after


def _api(server: Server, method: str, path: str):
    req = urllib.request.Request(f"{server.url}{path}", method=method,
                                 headers={"Authorization": f"token {server.token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        body = r.read()
    return json.loads(body) if body else None


def shutdown_sessions(server: Server, path: str | None = None) -> int:
    """Shut down the kernels of open notebooks (those at ``path``, or all): frees memory and CPU."""
    sessions = [s for s in _api(server, "GET", "/api/sessions") if path is None or s["path"] == path]
    for s in sessions:
        _api(server, "DELETE", f"/api/sessions/{s['id']}")
    return len(sessions)
