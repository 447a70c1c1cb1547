"""Fixtures for the browser tests: Debian's Chromium through Playwright, JupyterLab, screenshots.

Every test here is marked ``browser`` and ``slow``; ``make test`` runs them (and installs
Chromium first when it runs as root). Without Chromium they skip and say how to install it.
Screenshots go to ``$QWQLAB_SCREENSHOTS`` (default ``build/screenshots/``); the session's
closing summary lists each one with the test's time.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from browser_harness import INSTALL_HINT, find_chromium, launch_chromium, start_jupyterlab

REPO = Path(__file__).resolve().parents[2]
_RECORDS: list[tuple[str, float, str]] = []


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = find_chromium()
    if path is None:
        pytest.skip(INSTALL_HINT)
    return path


@pytest.fixture(scope="session")
def browser(chromium_path):
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is missing: `pip install -e '.[test]'`")
    with sync_api.sync_playwright() as p:
        b = launch_chromium(p, chromium_path)
        yield b
        b.close()


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    path = Path(os.environ.get("QWQLAB_SCREENSHOTS", REPO / "build" / "screenshots")).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def figures_tmp(tmp_path_factory) -> Path:
    """Figures the notebooks save while the browser runs them go here, not into ./figures."""
    return tmp_path_factory.mktemp("browser-figures")


@pytest.fixture(scope="session")
def lab_root(tmp_path_factory) -> Path:
    """The folder JupyterLab serves: test copies of the notebooks, with small parameters."""
    return tmp_path_factory.mktemp("browser-notebooks")


@pytest.fixture(scope="session")
def lab_server(chromium_path, lab_root, figures_tmp, tmp_path_factory):
    server = start_jupyterlab(lab_root, tmp_path_factory.mktemp("jupyterlab"),
                              env_extra={"QWQLAB_FIGURES": figures_tmp})
    yield server
    server.stop()


@pytest.fixture
def record(request):
    """Call ``record(screenshot_path)`` once a test has its screenshot; timed from the test's start."""
    start = time.monotonic()

    def _record(screenshot: Path) -> None:
        _RECORDS.append((request.node.name, time.monotonic() - start, str(screenshot)))
        print(f"screenshot: {screenshot}")

    return _record


def pytest_terminal_summary(terminalreporter):
    if not _RECORDS:
        return
    terminalreporter.section("browser tests: time and screenshot")
    for name, seconds, shot in _RECORDS:
        terminalreporter.write_line(f"{name:60s} {seconds:6.1f} s  {shot}")
    folder = Path(_RECORDS[0][2]).parent
    terminalreporter.write_line(f"screenshots in {folder}")
