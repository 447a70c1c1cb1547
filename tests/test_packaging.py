import os
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

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


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin"
            pins[canonicalize_name(name)] = version.strip()
    return pins


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]]


def test_constraints_pin_every_dependency_inside_the_pyproject_range():
    """issue 10: make installs exact pins; they must satisfy the ranges pyproject.toml promises."""
    pins = _pins()
    for req in _declared():
        name = canonicalize_name(req.name)
        if name == "torch":  # chosen by the Makefile's TORCH_SPEC (CPU or CUDA build), not pinned here
            assert name not in pins
            continue
        assert name in pins, f"{req.name} is a dependency but constraints.txt does not pin it: run `make lock`"
        assert req.specifier.contains(pins[name], prereleases=True), f"{req.name}=={pins[name]} is outside {req}"
    assert "qwqlab" not in pins


def test_environment_yml_uses_the_python_the_pins_were_locked_with():
    locked = re.search(r"Locked with Python (\d+\.\d+)", (ROOT / "constraints.txt").read_text()).group(1)
    assert f"- python={locked}" in (ROOT / "environment.yml").read_text()


@pytest.mark.skipif(bool(os.environ.get("QWQLAB_UNPINNED")), reason="make test-latest: newest releases on purpose")
def test_the_venv_holds_exactly_the_pinned_versions():
    """What `make` installed is what constraints.txt says (and torch is TORCH_SPEC's CPU build)."""
    if Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
        pytest.skip(f"not running in the project's .venv ({sys.prefix}): the pins apply to `make test`")
    wrong = {}
    for name, version in _pins().items():
        try:
            got = metadata.version(name)
        except metadata.PackageNotFoundError:
            got = None
        if got != version:
            wrong[name] = (version, got)
    assert not wrong, f"pinned vs installed: {wrong}; rebuild with `make clean test`"
    assert metadata.version("torch").startswith("2.13.0")


@pytest.mark.parametrize("cmd", [[], ["train-nano"], ["measure-nano"], ["figures"], ["info"]])
def test_cli_help(cmd):
    out = subprocess.run([sys.executable, "-m", "qwqlab", *cmd, "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "usage: qwqlab" in out.stdout


def test_cli_info_prints_memory():
    out = subprocess.run([sys.executable, "-m", "qwqlab", "info", "--bits", "4"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "Qwen/QwQ-32B" in out.stdout and "GiB" in out.stdout


# ----------------------------------------------------------------------------- one path per job

PACKAGE = ROOT / "qwqlab"


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _qwqlab_imports(path: Path):
    """(module, imported names) of every qwqlab import in a file, function-local ones included."""
    import ast

    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("qwqlab"):
            yield node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("qwqlab"):
                    yield a.name, []


def test_no_import_cycle_and_no_private_import_across_modules():
    """Function-local imports count too: they hid a grpo <-> rewards cycle once."""
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph, private = {}, []
    for name, path in files.items():
        deps = set()
        for module, names in _qwqlab_imports(path):
            deps.add(module)
            deps |= {f"{module}.{n}" for n in names if f"{module}.{n}" in files}  # from qwqlab import runs
            private += [f"{name} imports {module}.{n}" for n in names if n.startswith("_") and module != name]
        graph[name] = {d for d in deps if d in files and d != name}
    assert not private

    def reaches(start, goal, seen):
        for d in graph[start]:
            if d == goal or (d not in seen and (seen.add(d) or reaches(d, goal, seen))):
                return True
        return False

    cycles = sorted(n for n in graph if n != "qwqlab" and reaches(n, n, set()) and n not in ("qwqlab.tasks",))
    assert not cycles, f"import cycles through {cycles}"
    # lengths is analysis only: it samples nothing and loads no model
    assert not {d for d in graph["qwqlab.lengths"]} & {"qwqlab.rollouts", "qwqlab.models", "qwqlab.runs",
                                                        "qwqlab.decoding", "qwqlab.grpo", "qwqlab.traces"}


def test_one_decoding_loop_and_one_math_verify_call_site():
    """The acceptance greps of issue 9, as a test: only decoding.py reads next-token logits in a
    loop, only grading.py imports Math-Verify, and nothing calls Hugging Face's generate."""
    def holding(pattern):
        return sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if re.search(pattern, p.read_text(), re.M))

    assert holding(r"for \w+ in range\(max_new_tokens\)") == ["decoding.py"]
    assert holding(r"^\s*(import math_verify|from math_verify)") == ["grading.py"]
    assert holding(r"(?<!llm)\.generate\(") == []  # the vLLM backend's self.llm.generate is the one other engine


def test_one_step_seed_function():
    """The decoding seed of a training step (or evaluation chunk) has one formula,
    ``keys.step_seed`` (read on as ``decoding.step_seed`` and ``grpo.step_seed``): no module or
    notebook multiplies a seed by a large constant itself."""
    from qwqlab.decoding import step_seed

    formula = re.compile(r"seed\s*\*\s*[0-9_]{5,}")
    places = [p for p in [*PACKAGE.rglob("*.py"), *(ROOT / "notebooks").glob("*.ipynb")]
              if formula.search(p.read_text())]
    assert [str(p.relative_to(ROOT)) for p in places] == ["qwqlab/keys.py"]
    assert len(formula.findall((PACKAGE / "keys.py").read_text())) == 1
    assert step_seed(3, 5) != step_seed(5, 3) and step_seed(0, 7) == 7


def test_the_decoder_a_student_reads_is_plain():
    """decoding.py is the plain loop: nothing in it reaches into transformers' internals (the
    speed-ups live behind one door, qwqlab/fast_decoding.py), and it stays short."""
    text = (PACKAGE / "decoding.py").read_text()
    for internal in ("_attn_implementation", "AttentionInterface", "DynamicLayer", "modeling_qwen2"):
        assert internal not in text, internal
    assert len(text.splitlines()) <= 350


def test_modules_stay_one_job_sized_and_no_large_file_outside_data():
    """issue 22: every module at most about 600 lines (one job each), and no tracked file over
    1 MB outside data/ (a wheel or a build belongs in the install, not the repository)."""
    long = {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 620}
    assert not long, f"modules over ~600 lines: {long}; split them by job"
    try:
        files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the tracked files are unknown")
    big = [f for f in files if not f.startswith("data/") and (ROOT / f).is_file() and (ROOT / f).stat().st_size > 1 << 20]
    assert not big, f"files over 1 MB outside data/: {big}"


def test_ruff_finds_no_error():
    """`make lint`'s check as a test (errors only: pyflakes and syntax; settings in pyproject.toml)."""
    ruff = Path(sys.prefix) / "bin" / "ruff"
    if not ruff.exists():
        pytest.skip(f"ruff is not installed in {sys.prefix}: it comes with the test extra (`make test`)")
    out = subprocess.run([str(ruff), "check", "qwqlab", "tests", "scripts", "benchmarks"], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:]
