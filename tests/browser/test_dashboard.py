"""``qwqlab dashboard NAME`` in a real browser: a page with the explorer, no code, and it answers.

Each available dashboard is served by the command itself (Voila), opened in Chromium; the
test checks that no code cell or editor is on the page and no output shows an error, moves
the explorer's control with the same exercise as its notebook's test, and saves a screenshot.
"""
from __future__ import annotations

import time

import pytest

from browser_harness import PageReader, start_dashboard
from exercises import (exercise_benchmarks, exercise_chat, exercise_lengths, exercise_memory, exercise_reward,
                       exercise_rollouts)
from qwqlab.dashboard import DASHBOARDS, available

pytestmark = [pytest.mark.browser, pytest.mark.slow]
EXERCISES = {"memory": exercise_memory, "chat": exercise_chat, "lengths": exercise_lengths,
             "benchmarks": exercise_benchmarks, "rollouts": exercise_rollouts, "reward": exercise_reward}
CODE_ON_PAGE = ".jp-CodeCell .jp-InputArea, .jp-InputPrompt, .jp-CodeMirrorEditor, .cm-editor, .CodeMirror"


@pytest.mark.parametrize("name", sorted(available()))
def test_dashboard_serves_its_explorer_without_code(name, browser, chromium_path, screenshot_dir, record,
                                                    tmp_path):
    assert name in EXERCISES, f"dashboard {name!r} has no browser exercise: add one in tests/browser/exercises.py"
    server = start_dashboard(name, tmp_path)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        start = time.monotonic()
        try:
            page.goto(server.url + "/", wait_until="domcontentloaded", timeout=300_000)
        except Exception:
            pytest.fail(f"the {name} page never loaded; the server's kernels' stacks and log:\n{server.dump_stacks()}")
        page.locator(DASHBOARDS[name].selector).first.wait_for(timeout=300_000)
        loaded = time.monotonic() - start
        assert page.get_by_text(DASHBOARDS[name].title).count() >= 1
        assert page.locator(CODE_ON_PAGE).count() == 0, "the dashboard shows code cells"
        assert "from qwqlab.dashboard import" not in page.locator("body").inner_text()
        reader = PageReader(page)
        assert reader.errors() == [], "\n\n".join(reader.errors())
        what = EXERCISES[name](page, reader)
        time.sleep(0.3)
        shot = screenshot_dir / f"dashboard-{name}.png"
        page.screenshot(path=str(shot))
        print(f"dashboard {name}: live in {loaded:.1f} s; {what}")
        record(shot)
    finally:
        page.close()
        server.stop()


def test_served_kernels_do_not_inherit_pytest_variables():
    """A kernel that sees PYTEST_CURRENT_TEST behaves as if inside pytest (ipykernel stops watching
    its stdout/stderr descriptors); the servers the browser tests start must look like a user's."""
    from browser_harness import server_env
    assert "PYTEST_CURRENT_TEST" in __import__("os").environ  # pytest sets it while a test runs
    env = server_env(JUPYTER_DATA_DIR="/tmp/x")
    assert not [k for k in env if k.startswith("PYTEST_")] and env["JUPYTER_DATA_DIR"] == "/tmp/x"
