"""qwqlab.teaching: the hosted-kernel set-up cell (run in real kernels) and the teacher's notes' times."""
import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from qwqlab.paths import REPO_ROOT
from qwqlab.teaching import SETUP_TAG, add_setup_cell, fill_run_times, setup_cell_source

REPO = "https://example.org/teacher/qwqlab.git"

# Runs first in the kernel: qwqlab is made unimportable (a meta-path finder that refuses it,
# like a fresh Colab kernel), and subprocess.run is replaced by a recorder whose "pip install"
# makes qwqlab importable again, as a real install would. Nothing is cloned or installed.
HIDE_QWQLAB = '''
import os, subprocess, sys

class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name == "qwqlab" or name.startswith("qwqlab."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

hider = NotInstalled()
sys.meta_path.insert(0, hider)
for m in [m for m in sys.modules if m.split(".")[0] == "qwqlab"]:
    del sys.modules[m]
try:
    import qwqlab
    raise AssertionError("qwqlab should not be importable here")
except ImportError:
    pass

calls = []
def fake_run(cmd, check=False, **kwargs):
    calls.append(list(cmd))
    if "pip" in cmd and hider in sys.meta_path:
        sys.meta_path.remove(hider)
    return subprocess.CompletedProcess(cmd, 0)
subprocess.run = fake_run
'''

FORBID_SUBPROCESS = '''
import subprocess
calls = []
def refuse(cmd, *a, **k):
    calls.append(list(cmd))
    raise AssertionError(f"the set-up cell ran {cmd} although qwqlab is installed")
subprocess.run = refuse
'''

REPORT = '''
import json, qwqlab
print("REPORT" + json.dumps({"calls": calls, "path": qwqlab.__path__[0], "sys_path0": sys.path[0]}))
'''


def run_in_kernel(*sources, env=None):
    """Execute ``sources`` as cells in a fresh python3 kernel; return each cell's stdout."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    env_cell = "import os\nos.environ.pop('QWQLAB_REPO', None)\n" + "".join(
        f"os.environ[{k!r}] = {v!r}\n" for k, v in (env or {}).items())
    nb.cells.insert(0, nbformat.v4.new_code_cell(env_cell))
    NotebookClient(nb, timeout=60, kernel_name="python3").execute()
    return ["".join(o.get("text", "") for o in c.outputs if o.output_type == "stream") for c in nb.cells]


def report(out: str) -> dict:
    return json.loads(out.split("REPORT", 1)[1])


def test_setup_cell_installs_qwqlab_when_it_is_missing(tmp_path):
    clone = tmp_path / "qwqlab-repo"
    outs = run_in_kernel("import sys\n" + HIDE_QWQLAB, setup_cell_source(REPO), REPORT, env={"QWQLAB_DIR": str(clone)})
    r = report(outs[3])
    assert r["calls"] == [["git", "clone", "--depth", "1", REPO, str(clone)],
                          [r["calls"][1][0], "-m", "pip", "install", "-q", "-e", str(clone)]]
    assert Path(r["calls"][1][0]).name.startswith("python")  # the kernel's own interpreter
    assert r["sys_path0"] == str(clone)  # the fresh install is importable in this kernel at once
    assert outs[2].startswith("qwqlab 0.1.0 from ")


def test_setup_cell_reuses_a_clone_and_honours_qwqlab_repo(tmp_path):
    # QWQLAB_DIR already holds a checkout (this repository): no clone, only the install.
    outs = run_in_kernel("import sys\n" + HIDE_QWQLAB, setup_cell_source(REPO), REPORT,
                         env={"QWQLAB_DIR": str(REPO_ROOT), "QWQLAB_REPO": "file:///elsewhere"})
    r = report(outs[3])
    assert [c[1:] for c in r["calls"]] == [["-m", "pip", "install", "-q", "-e", str(REPO_ROOT)]]
    assert Path(r["path"]) == REPO_ROOT / "qwqlab"
    outs = run_in_kernel("import sys\n" + HIDE_QWQLAB, setup_cell_source(REPO), REPORT,
                         env={"QWQLAB_DIR": str(tmp_path / "x"), "QWQLAB_REPO": "file:///elsewhere"})
    assert report(outs[3])["calls"][0][-2] == "file:///elsewhere"


def test_setup_cell_is_a_no_op_where_qwqlab_is_installed():
    outs = run_in_kernel("import sys\n" + FORBID_SUBPROCESS, setup_cell_source(REPO), REPORT)
    r = report(outs[3])
    assert r["calls"] == []
    assert Path(r["path"]) == REPO_ROOT / "qwqlab"
    assert outs[2] == f"qwqlab 0.1.0 from {REPO_ROOT / 'qwqlab'}\n"


def test_setup_cell_needs_a_repo_url():
    with pytest.raises(ValueError, match="repo_url"):
        setup_cell_source("")


def _notebook():
    return nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# 99 · Title"), nbformat.v4.new_markdown_cell("What it teaches."),
        nbformat.v4.new_code_cell("N = 1", metadata={"tags": ["parameters"]}), nbformat.v4.new_code_cell("N")])


def test_add_setup_cell_goes_first_among_code_cells_and_is_idempotent():
    nb = _notebook()
    assert add_setup_cell(nb, REPO) is True
    assert [c.cell_type for c in nb.cells] == ["markdown", "markdown", "code", "code", "code"]
    assert nb.cells[2].metadata["tags"] == [SETUP_TAG] and nb.cells[2].source == setup_cell_source(REPO)
    assert nb.cells[3].metadata["tags"] == ["parameters"]  # the layout the notebook tests expect is kept
    assert add_setup_cell(nb, REPO) is False and len(nb.cells) == 5
    assert add_setup_cell(nb, "https://example.org/other.git") is True and len(nb.cells) == 5
    assert "other.git" in nb.cells[2].source


def test_add_setup_cell_script_and_its_check(tmp_path):
    path = tmp_path / "99_tiny.ipynb"
    nbformat.write(_notebook(), path)
    script = [sys.executable, str(REPO_ROOT / "scripts" / "add_setup_cell.py")]
    assert subprocess.run(script + ["--check", str(path)], capture_output=True).returncode == 1
    out = subprocess.run(script + ["--repo", REPO, str(path)], capture_output=True, text=True)
    assert out.returncode == 0 and "set-up cell written" in out.stdout, out.stderr
    first = path.read_text()
    out = subprocess.run(script + ["--repo", REPO, str(path)], capture_output=True, text=True)
    assert "already up to date" in out.stdout and path.read_text() == first
    assert subprocess.run(script + ["--check", str(path)], capture_output=True).returncode == 0
    nbformat.validate(nbformat.read(path, as_version=4))


# ----------------------------------------------------------------------------- teacher's notes

NOTES = """Times <!-- measured -->?<!-- /measured -->.
| 01 | <!-- run-time:01_models_and_quantization -->?<!-- /run-time --> |
| 02 | <!-- run-time:02_rollout_sampling -->?<!-- /run-time --> |
All: <!-- run-time:total -->?<!-- /run-time -->
"""
MANIFEST = {"notebooks": {"01_models_and_quantization": {"seconds": 31.4, "figures": []}}, "total_seconds": 131.0}


def test_fill_run_times_from_the_manifest():
    out = fill_run_times(NOTES, MANIFEST, cores=2, when="2026-11-29")
    assert "<!-- run-time:01_models_and_quantization -->31 s<!-- /run-time -->" in out
    assert "<!-- run-time:02_rollout_sampling -->not measured yet<!-- /run-time -->" in out
    assert "<!-- run-time:total -->2.2 min<!-- /run-time -->" in out
    assert "on 2 CPU cores, no GPU, 2026-11-29" in out
    assert fill_run_times(out, MANIFEST, cores=2, when="2026-11-29") == out  # markers survive: re-runnable


def test_fill_teacher_notes_script(tmp_path):
    notes, manifest = tmp_path / "README.md", tmp_path / "manifest.json"
    notes.write_text(NOTES)
    manifest.write_text(json.dumps(MANIFEST))
    out = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "fill_teacher_notes.py"), "--manifest",
                          str(manifest), "--notes", str(notes), "--cores", "2"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "31 s" in notes.read_text()
    missing = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "fill_teacher_notes.py"), "--manifest",
                              str(tmp_path / "nope.json"), "--notes", str(notes)], capture_output=True, text=True)
    assert missing.returncode == 2 and "make figures" in missing.stderr


def test_teacher_notes_cover_every_notebook_with_markers():
    from qwqlab.figures import list_notebooks

    text = (REPO_ROOT / "notebooks" / "README.md").read_text()
    for path in list_notebooks():
        assert f"<!-- run-time:{path.stem} -->" in text, f"notebooks/README.md has no run time for {path.stem}"
    assert "<!-- measured -->" in text and "<!-- run-time:total -->" in text


def test_setup_cell_without_a_known_url_asks_for_one_plainly(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import sys\n" + HIDE_QWQLAB),
                                         nbformat.v4.new_code_cell(setup_cell_source(None))])
    nb.cells.insert(0, nbformat.v4.new_code_cell(
        f"import os\nos.environ.pop('QWQLAB_REPO', None)\nos.environ['QWQLAB_DIR'] = {str(tmp_path / 'x')!r}"))
    from nbclient.exceptions import CellExecutionError
    with pytest.raises(CellExecutionError, match="QWQLAB_REPO"):
        NotebookClient(nb, timeout=60, kernel_name="python3").execute()


def test_notebooks_state_the_run_time_the_notes_state():
    """Each notebook's stated time is the manifest's, through the same markers as the teacher's notes."""
    from qwqlab.figures import list_notebooks
    from qwqlab.teaching import run_times_in

    notes = run_times_in((REPO_ROOT / "notebooks" / "README.md").read_text())
    for path in list_notebooks():
        intro = nbformat.read(path, as_version=4).cells[1].source
        stated = run_times_in(intro)
        assert list(stated) == [path.stem], f"{path.name}: its intro states its time through one marker"
        assert stated[path.stem] == notes[path.stem], f"{path.name} says {stated}, the notes {notes[path.stem]}"


def test_fill_notebook_run_times_writes_the_manifests_time(tmp_path):
    import shutil

    from qwqlab.figures import list_notebooks
    from qwqlab.teaching import fill_notebook_run_times, run_times_in

    src = list_notebooks()[0]
    shutil.copy(src, tmp_path / src.name)
    changed = fill_notebook_run_times(tmp_path, {"notebooks": {src.stem: {"seconds": 95.0}}})
    assert changed == [tmp_path / src.name]
    assert run_times_in(nbformat.read(changed[0], as_version=4).cells[1].source) == {src.stem: "1.6 min"}
    assert fill_notebook_run_times(tmp_path, {"notebooks": {src.stem: {"seconds": 95.0}}}) == []


def test_the_notes_name_every_dashboard_and_no_stale_claim():
    from qwqlab.dashboard import DASHBOARDS

    text = (REPO_ROOT / "notebooks" / "README.md").read_text()
    assert "once notebook 03's explorer exists" not in text and "once it exists" not in text
    for name in DASHBOARDS:
        assert f"`{name}`" in text, name


def test_readme_starts_a_teacher_at_make_lab_and_times_each_command():
    from qwqlab.teaching import run_times_in

    text = (REPO_ROOT / "README.md").read_text()
    # The first block is the two set-up commands (tests/test_packaging.py); the teachers' section
    # that follows starts them at make lab.
    teachers = text.split("## Teachers: start here", 1)[1].split("\n## ", 1)[0]
    assert teachers.strip().startswith("`make lab`")
    for command in ("make lab", "make figures", "make book", "make test", "make nano"):
        row = next(line for line in text.splitlines() if line.startswith(f"| `{command}`"))
        assert re.search(r"\d+ (s|min)", row), f"README: no time for {command}"
    notes = run_times_in((REPO_ROOT / "notebooks" / "README.md").read_text())
    assert run_times_in(text)["total"] == notes["total"]
