"""qwqlab.figures: figure files, the data manifest, parameters injection, and notebooks kept clean."""
import json
import re
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402
import pandas as pd  # noqa: E402
import plotly.graph_objects as go  # noqa: E402
import pytest  # noqa: E402

from qwqlab import figures  # noqa: E402
from qwqlab.paths import REPO_ROOT  # noqa: E402


def test_data_hash_is_stable_and_sensitive():
    df = pd.DataFrame({"a": [1, 2], "b": [0.1, 0.2]})
    assert figures.data_hash(df) == figures.data_hash(df.copy())
    assert figures.data_hash(df) != figures.data_hash(df.assign(b=[0.1, 0.3]))
    assert figures.data_hash({"x": 1, "y": [1, 2]}) == figures.data_hash({"y": [1, 2], "x": 1})  # key order
    assert figures.data_hash("abc") == figures.data_hash(b"abc")
    assert figures.data_hash(None) == ""


def test_save_figure_writes_png_html_and_manifest(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([1, 2], [3, 4])
    entry = figures.save_figure("line", static=fig, interactive=go.Figure(go.Scatter(y=[3, 4])),
                                data={"y": [3, 4]}, out=tmp_path)
    plt.close(fig)
    assert entry["files"] == ["line.png", "line.svg", "line.html"]
    assert (tmp_path / "line.png").stat().st_size > 0
    assert (tmp_path / "plotly.min.js").exists()  # the HTML draws offline
    lines = (tmp_path / "manifest.jsonl").read_text().splitlines()
    assert json.loads(lines[-1]) == entry
    with pytest.raises(ValueError, match="neither"):
        figures.save_figure("nothing", out=tmp_path)


def test_inject_parameters_goes_after_the_tagged_cell():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# t"),
        nbformat.v4.new_code_cell("N = 100", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("print(N)")])
    figures.inject_parameters(nb, {"N": 3, "NAME": "x"})
    assert nb.cells[2].source.endswith("N = 3\nNAME = 'x'")
    assert nb.cells[2].metadata["tags"] == ["injected-parameters"]
    with pytest.raises(ValueError, match="tagged 'parameters'"):
        figures.inject_parameters(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]), {"x": 2})


# ----------------------------------------------------------------------------- notebooks as committed

NOTEBOOKS = figures.list_notebooks()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebooks_are_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.get("outputs") == [], f"{path.name}: cell {i} has outputs; clear them before committing"
            assert cell.get("execution_count") is None, f"{path.name}: cell {i} has an execution count"
    assert "widgets" not in nb.metadata, f"{path.name}: saved widget state; clear it before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebooks_follow_the_layout(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "), "a title cell first"
    intro = nb.cells[1]
    assert intro.cell_type == "markdown", "then a markdown cell: what it teaches, time on a CPU, a GPU"
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1 and tagged[0].cell_type == "code", "exactly one code cell tagged `parameters`"


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 2 and all(p.name[:2].isdigit() for p in NOTEBOOKS)


def test_figures_command_has_help():
    out = subprocess.run([sys.executable, "-m", "qwqlab", "figures", "--help"], capture_output=True, text=True,
                         cwd=REPO_ROOT, timeout=60)
    assert out.returncode == 0 and "--out" in out.stdout


# ----------------------------------------------------------------------------- two runs, same data

TINY = '''
import numpy as np, pandas as pd, matplotlib.pyplot as plt, plotly.graph_objects as go
from qwqlab.figures import save_figure
rng = np.random.default_rng(SEED)
df = pd.DataFrame({"x": np.arange(N), "y": rng.normal(size=N)})
fig, ax = plt.subplots(); ax.plot(df.x, df.y)
save_figure("walk", static=fig, interactive=go.Figure(go.Scatter(x=df.x, y=df.y)), data=df)
'''


@pytest.mark.slow
def test_two_runs_give_identical_data_hashes(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# 99 · tiny"),
        nbformat.v4.new_code_cell("N = 1000\nSEED = 0", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(TINY)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "99_tiny.ipynb"
    nbformat.write(nb, path)
    first = figures.run_notebooks(tmp_path / "a", notebooks=[path], parameters={"99_tiny": {"N": 50}}, progress=False)
    second = figures.run_notebooks(tmp_path / "b", notebooks=[path], parameters={"99_tiny": {"N": 50}}, progress=False)
    hashes = [[f["data_sha256"] for f in m["notebooks"]["99_tiny"]["figures"]] for m in (first, second)]
    assert hashes[0] == hashes[1] and len(hashes[0]) == 1 and hashes[0][0]
    assert (tmp_path / "a" / "99_tiny" / "walk.png").exists() and (tmp_path / "b" / "manifest.json").exists()
    # A rerun into the same folder replaces, not appends to, the notebook's manifest.
    again = figures.run_notebooks(tmp_path / "a", notebooks=[path], parameters={"99_tiny": {"N": 50}}, progress=False)
    assert len(again["notebooks"]["99_tiny"]["figures"]) == 1
    assert "across_machines" in again["notebooks"]["99_tiny"]


def test_make_figures_runs_every_time_budgeted_notebook_on_a_step_budget():
    """issue 10: a time budget makes the live run's steps depend on the machine's load, so two
    `make figures` runs drew different figures. Every notebook knob that is a time budget gets
    overridden (and the overrides name knobs that exist in the notebook's parameters cell)."""
    for path in figures.list_notebooks():
        nb = nbformat.read(path, 4)
        params = next(c.source for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", []))
        names = set(re.findall(r"^([A-Z_][A-Z0-9_]*)\s*=", params, re.M))
        budgets = {n for n in names if "SECONDS" in n}
        overrides = figures.REPRODUCIBLE_PARAMETERS.get(path.stem, {})
        assert set(overrides) <= names, f"{path.stem}: overrides {set(overrides) - names} are not parameters"
        assert all(overrides.get(n, "missing") is None for n in budgets), f"{path.stem}: {budgets} left time-budgeted"


def test_page_problems_names_each_kind_of_dirt_by_cell():
    """What a class should not see, each named with its cell; a clean page gives []."""
    v4 = nbformat.v4
    png = {"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"}
    nb = v4.new_notebook(cells=[
        v4.new_code_cell("load()", outputs=[v4.new_output("stream", name="stderr", text="qwqlab: using cpu\n")]),
        v4.new_code_cell("fig", outputs=[v4.new_output("execute_result", data=png, execution_count=1),
                                         v4.new_output("display_data", data=png)]),
        v4.new_code_cell("save_figure('x')", outputs=[v4.new_output("execute_result", data={
            "text/plain": "{'name': 'x'}"}, execution_count=2)]),
        v4.new_code_cell("old()", outputs=[v4.new_output("stream", name="stdout",
                                                         text="x.py:3: FutureWarning: old\n")]),
        v4.new_code_cell("m = load()", outputs=[v4.new_output("display_data", data={
            "text/plain": "Loading weights:  0%|", "application/vnd.jupyter.widget-view+json": {}})]),
        v4.new_code_cell("table", outputs=[v4.new_output("execute_result", data={
            "text/html": "<table/>", "text/plain": "a b"}, execution_count=3)]),
    ])
    problems = figures.page_problems(nb)
    assert len(problems) == 5, problems
    assert problems[0].startswith("cell 0 ('load()'): stderr output")
    assert problems[1].startswith("cell 1 ('fig'): an image already shown in cell 1")
    assert problems[2].startswith("cell 2 (\"save_figure('x')\"): stray return value")
    assert problems[3].startswith("cell 3 ('old()'): warning text") and "FutureWarning" in problems[3]
    assert problems[4].startswith("cell 4 ('m = load()'): a third-party progress bar 'Loading weights'")
    assert figures.page_problems(v4.new_notebook(cells=[nb.cells[-1]])) == []


def test_save_figure_is_slide_quality(tmp_path):
    from PIL import Image

    fig, ax = plt.subplots()
    ax.plot([1, 2], [3, 4])
    figures.save_figure("line", static=fig, out=tmp_path)
    plt.close(fig)
    dpi = Image.open(tmp_path / "line.png").info["dpi"]
    assert round(dpi[0]) == figures.SLIDE_DPI == 200
    assert (tmp_path / "line.svg").read_text().lstrip().startswith("<?xml")


def test_the_book_page_drops_progress_bars_describes_widgets_and_folds_solutions():
    from qwqlab.book import prepare_for_book

    v4 = nbformat.v4
    widget = "application/vnd.jupyter.widget-view+json"
    nb = v4.new_notebook(cells=[
        v4.new_markdown_cell("# 99 · t"),
        v4.new_code_cell("setup", metadata={"tags": ["qwqlab-setup"]}),
        v4.new_code_cell("sample()", outputs=[v4.new_output("display_data", data={
            widget: {}, "text/plain": "sampling:  42%|####      | 5/12"})]),
        v4.new_code_cell("explorer", outputs=[v4.new_output("execute_result", data={
            widget: {}, "text/plain": "VBox(children=(...))"}, execution_count=1)]),
        v4.new_code_cell("answer = None", metadata={"tags": ["exercise"]},
                         outputs=[v4.new_output("stream", name="stdout", text="Not yet.")]),
        v4.new_code_cell("answer = 1 < 2", metadata={"tags": ["solution"]}),
    ])
    page = prepare_for_book(nb, nav="<nav>x</nav>")
    sources = [c.source for c in page.cells]
    assert sources[0] == "<nav>x</nav>" and "setup" not in sources
    assert page.cells[2].outputs == []                                   # the progress bar is gone
    assert "interactive widget" in page.cells[3].outputs[0]["data"]["text/html"]
    assert page.cells[4].outputs == []                                   # an exercise is for the reader to fill
    assert page.cells[5].cell_type == "markdown" and "<details" in sources[5] and "1 &lt; 2" in sources[5]


def test_the_book_page_numbers_its_code_cells_from_one():
    """Executed, the set-up cell was In [1] and a solution In [4]: the page showed In [2], In [3], In [5]."""
    from qwqlab.book import prepare_for_book

    v4 = nbformat.v4
    cells = [v4.new_code_cell("setup", metadata={"tags": ["qwqlab-setup"]}, execution_count=1),
             v4.new_code_cell("a", execution_count=2),
             v4.new_code_cell("b", execution_count=3, outputs=[v4.new_output(
                 "execute_result", data={"text/plain": "3"}, execution_count=3)]),
             v4.new_code_cell("answer = 1", metadata={"tags": ["solution"]}, execution_count=4),
             v4.new_code_cell("c", execution_count=5),
             v4.new_markdown_cell("text")]
    page = prepare_for_book(v4.new_notebook(cells=cells))
    code = [c for c in page.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == [1, 2, 3]
    assert code[1].outputs[0]["execution_count"] == 2


def test_informational_lines_go_to_stderr_in_a_terminal_and_stdout_in_a_kernel(capsys):
    """A pink stderr box in a notebook reads as an error; in a terminal stdout stays machine-readable."""
    from qwqlab import quiet

    quiet.say("qwqlab: hello")
    assert capsys.readouterr().err == "qwqlab: hello\n"
    import logging
    record = logging.LogRecord("bitsandbytes.backends.cpu.ops", logging.WARNING, "", 0,
                               "Failed to load CPU gemm_4bit_forward from kernels-community: %s", ("x",), None)
    other = logging.LogRecord("bitsandbytes.backends.cpu.ops", logging.WARNING, "", 0, "a real problem", (), None)
    logger = logging.getLogger("bitsandbytes.backends.cpu.ops")
    assert not all(f.filter(record) for f in logger.filters) and all(f.filter(other) for f in logger.filters)


def test_the_book_draws_formulas_as_mathml_and_leaves_code_and_money_alone():
    from qwqlab.book import markdown_mathml

    table = "| reward | value |\n|---|---|\n| GRPO | $\\frac{1}{|o_i|}\\sum_t A_i$ |"
    row = markdown_mathml(table).splitlines()[2]
    assert "<math" in row and "$" not in row and row.count("|") == 3  # the formula's |o_i| does not split the row
    assert markdown_mathml("run `echo $HOME $PATH` for $5") == "run `echo $HOME $PATH` for $5"
    block = markdown_mathml("$$x^2$$")
    assert block.startswith("<math") and 'display="block"' in block
    assert markdown_mathml(r"bad $\frac{1}{$ left") == r"bad $\frac{1}{$ left"  # cannot convert: stays LaTeX
