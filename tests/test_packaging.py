import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _conda_pip_deps():
    text = (ROOT / "environment.yml").read_text()
    block = text.split("- pip:", 1)[1]
    return {m.group(1) for m in re.finditer(r'^\s+-\s+"?([^"\n]+?)"?\s*$', block, re.M)} - {"-e ."}


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip_deps = set(project["dependencies"]) | set(project["optional-dependencies"]["test"])
    assert _conda_pip_deps() == pip_deps
    assert "- python=" in (ROOT / "environment.yml").read_text()


def test_readme_opens_with_the_two_setup_commands():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", readme, re.S)
    first = [ln for ln in blocks[0].splitlines() if ln.strip() and not ln.startswith("#")]
    assert first == ["make figures", "make test"]
    assert "make lab" in readme


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test\b", ci, re.M)


def test_torch_is_chosen_deliberately():
    makefile = (ROOT / "Makefile").read_text()
    assert "TORCH_SPEC ?= torch==2.13.0" in makefile
    assert makefile.index("$(TORCH_SPEC)") < makefile.index('-e ".[test]"')


@pytest.mark.parametrize("cmd", [[], ["train-nano"], ["measure-nano"], ["figures"], ["info"]])
def test_cli_help(cmd):
    out = subprocess.run([sys.executable, "-m", "qwqlab", *cmd, "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "usage: qwqlab" in out.stdout


def test_cli_info_prints_memory():
    out = subprocess.run([sys.executable, "-m", "qwqlab", "info", "--bits", "4"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "Qwen/QwQ-32B" in out.stdout and "GiB" in out.stdout
