"""qwqlab.dashboard without a browser: the command line, the page's notebook, each explorer's builder.

The pages themselves are tested in Chromium by tests/browser/test_dashboard.py.
"""
import subprocess
import sys

import pytest

from qwqlab import cli, dashboard
from qwqlab.dashboard import DASHBOARDS, available, build, dashboard_notebook, voila_command


def test_dashboard_help():
    out = subprocess.run([sys.executable, "-m", "qwqlab", "dashboard", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "usage: qwqlab dashboard" in out.stdout and "--port" in out.stdout


def test_dashboard_without_a_name_lists_them(capsys):
    assert cli.main(["dashboard"]) == 0
    listed = capsys.readouterr().out
    for name, d in DASHBOARDS.items():
        assert name in listed and d.title in listed


def test_an_unknown_dashboard_says_which_exist(capsys):
    with pytest.raises(SystemExit):
        cli.main(["dashboard", "nonsense"])
    err = capsys.readouterr().err
    assert "invalid choice" in err and "lengths" in err  # argparse lists the dashboards there are
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


def test_every_builder_named_in_the_registry_exists():
    for name, d in DASHBOARDS.items():
        assert callable(getattr(dashboard, d.build)), name
