"""qwqlab.dashboard without a browser: the command line, the page's notebook, each explorer's builder.

The pages themselves are tested in Chromium by tests/browser/test_dashboard.py.
"""
import subprocess
import sys

import pytest

from qwqlab import cli, dashboard
from qwqlab.dashboard import DASHBOARDS, Dashboard, available, build, dashboard_notebook, voila_command


def test_dashboard_help():
    out = subprocess.run([sys.executable, "-m", "qwqlab", "dashboard", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "usage: qwqlab dashboard" in out.stdout and "--port" in out.stdout


def test_dashboard_without_a_name_lists_them(capsys):
    assert cli.main(["dashboard"]) == 0
    listed = capsys.readouterr().out
    for name, d in DASHBOARDS.items():
        assert name in listed and d.title in listed


def test_a_dashboard_whose_explorer_is_missing_says_so(monkeypatch, capsys):
    monkeypatch.setitem(DASHBOARDS, "future", Dashboard("Future", "Not written yet.", "no_such_widget",
                                                        "build_future", ".qwqlab-future"))
    assert "future" not in available()
    assert cli.main(["dashboard", "future"]) == 2
    err = capsys.readouterr().err
    assert "needs qwqlab.widgets.no_such_widget" in err
    with pytest.raises(KeyError, match="does not have yet"):
        dashboard_notebook("future")
    with pytest.raises(KeyError, match="no dashboard"):
        dashboard_notebook("nonsense")


def test_the_memory_chat_rollouts_lengths_and_benchmarks_pages_exist():
    assert {"memory", "chat", "rollouts", "lengths", "benchmarks"} <= set(available())


@pytest.mark.parametrize("name", sorted(available()))
def test_page_is_a_title_and_one_call(name):
    nb = dashboard_notebook(name)
    assert [c.cell_type for c in nb.cells] == ["markdown", "code"]
    assert nb.cells[0].source.startswith(f"# {DASHBOARDS[name].title}")
    assert nb.cells[1].source == f"from qwqlab.dashboard import {DASHBOARDS[name].build}\n{DASHBOARDS[name].build}()"


def test_voila_command_hides_code_and_listens_locally(tmp_path):
    cmd = voila_command(tmp_path / "memory.ipynb", port=9999)
    assert cmd[:3] == [sys.executable, "-m", "voila"]
    assert {"--strip_sources=True", "--port=9999", "--Voila.ip=127.0.0.1", "--no-browser"} <= set(cmd)
    assert "--no-browser" not in voila_command(tmp_path / "m.ipynb", open_browser=True)


@pytest.mark.parametrize("name", sorted(available()))
def test_each_explorer_builds_with_its_css_class(name):
    widget = build(name)
    assert DASHBOARDS[name].selector.lstrip(".") in widget._dom_classes
    assert widget.controls, "an explorer has controls to move"


def test_every_builder_named_in_the_registry_exists_or_waits_for_its_widget():
    for name, d in DASHBOARDS.items():
        assert hasattr(dashboard, d.build) or not d.is_available(), name
