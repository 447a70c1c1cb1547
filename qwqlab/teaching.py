"""What a class needs beyond the notebooks: a first cell for hosted kernels, and the teacher's notes.

* ``setup_cell_source(repo_url)``: the first code cell of every notebook. In a fresh hosted
  kernel (Colab and the like) where ``import qwqlab`` fails, it clones the repository
  (qwqlab's data, qwq-nano included, lives beside the package) and installs it; where
  qwqlab is installed (``make lab``, a local virtualenv) it does nothing but say which
  qwqlab it found. ``add_setup_cell(nb, repo_url)`` puts it in a notebook, idempotently
  (``scripts/add_setup_cell.py`` does every notebook).
* ``fill_run_times(notes, manifest)``: writes each notebook's run time, as measured by
  ``qwqlab figures`` (``figures/manifest.json``), into ``notebooks/README.md``
  (``scripts/fill_teacher_notes.py``), so the notes never quote a time from memory.
"""
from __future__ import annotations

import json
import os
import re
from datetime import datetime, timezone
from pathlib import Path

SETUP_TAG = "qwqlab-setup"

_SETUP_TEMPLATE = '''# Set-up for a fresh hosted kernel (Colab and the like): install qwqlab if it is missing.
# Where qwqlab is installed already (`make lab`, a local virtualenv) this cell does nothing.
try:
    import qwqlab
except ImportError:
    import os, subprocess, sys
    QWQLAB_REPO = os.environ.get("QWQLAB_REPO", {repo_url!r})
    QWQLAB_DIR = os.path.abspath(os.environ.get("QWQLAB_DIR", "qwqlab-repo"))
    if not os.path.isdir(os.path.join(QWQLAB_DIR, "qwqlab")):
        if not QWQLAB_REPO:
            raise RuntimeError("qwqlab is not installed in this kernel. Set the git URL you got these "
                               "notebooks from, e.g. os.environ['QWQLAB_REPO'] = 'https://.../qwqlab.git', "
                               "and run this cell again (or set QWQLAB_DIR to a folder holding a checkout).")
        subprocess.run(["git", "clone", "--depth", "1", QWQLAB_REPO, QWQLAB_DIR], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", QWQLAB_DIR], check=True)
    sys.path.insert(0, QWQLAB_DIR)  # a running kernel does not see a new editable install
    import qwqlab
print(f"qwqlab {{qwqlab.__version__}} from {{qwqlab.__path__[0]}}")'''


def setup_cell_source(repo_url: str | None) -> str:
    """The set-up cell's code, cloning from ``repo_url`` (``$QWQLAB_REPO`` overrides it at run time).

    ``None`` (no public URL known yet) makes a cell that asks for ``$QWQLAB_REPO`` in plain words.
    """
    if repo_url is not None and not repo_url:
        raise ValueError("repo_url is needed: the git URL a hosted kernel clones qwqlab from")
    return _SETUP_TEMPLATE.format(repo_url=repo_url)


def add_setup_cell(nb, repo_url: str) -> bool:
    """Make the set-up cell the first code cell of ``nb`` (after the title and intro markdown).

    An existing set-up cell (tagged ``qwqlab-setup``) is updated in place, so running this
    twice gives the same notebook. Returns whether ``nb`` changed.
    """
    import nbformat

    source = setup_cell_source(repo_url)
    for cell in nb.cells:
        if SETUP_TAG in cell.get("metadata", {}).get("tags", []):
            if cell.source == source:
                return False
            cell.source = source
            return True
    first_code = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), len(nb.cells))
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": [SETUP_TAG]})
    nb.cells.insert(first_code, cell)
    return True


# ----------------------------------------------------------------------------- teacher's notes

_TIME = re.compile(r"<!-- run-time:(?P<name>[\w.-]+) -->(?P<old>.*?)<!-- /run-time -->", re.S)
_MEASURED = re.compile(r"<!-- measured -->(?P<old>.*?)<!-- /measured -->", re.S)


def _format_seconds(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min"


def fill_run_times(notes: str, manifest: dict, cores: int | None = None, when: str | None = None) -> str:
    """Put the manifest's per-notebook seconds into ``notes`` and return the new text.

    ``notes`` marks each place with ``<!-- run-time:STEM -->...<!-- /run-time -->`` (STEM
    as in ``01_models_and_quantization``; ``total`` for all notebooks) and once with
    ``<!-- measured -->...<!-- /measured -->`` for where the numbers come from. A notebook
    missing from the manifest reads "not measured yet".
    """
    runs = manifest.get("notebooks", {})

    def time_for(m):
        name = m["name"]
        if name == "total":
            text = _format_seconds(manifest["total_seconds"]) if "total_seconds" in manifest else "not measured yet"
        else:
            text = _format_seconds(runs[name]["seconds"]) if name in runs else "not measured yet"
        return f"<!-- run-time:{name} -->{text}<!-- /run-time -->"

    notes = _TIME.sub(time_for, notes)
    cores = cores or os.cpu_count()
    origin = (f"measured by `qwqlab figures` (`make figures`) on {cores} CPU cores, no GPU"
              f"{', ' + when if when else ''}")
    return _MEASURED.sub(f"<!-- measured -->{origin}<!-- /measured -->", notes)


def fill_run_times_file(notes_path: str | Path, manifest_path: str | Path, cores: int | None = None) -> dict:
    """``fill_run_times`` on files; returns ``{stem: seconds}`` of what was written."""
    notes_path, manifest_path = Path(notes_path), Path(manifest_path)
    manifest = json.loads(manifest_path.read_text())
    when = datetime.fromtimestamp(manifest_path.stat().st_mtime, tz=timezone.utc).strftime("%Y-%m-%d")
    notes_path.write_text(fill_run_times(notes_path.read_text(), manifest, cores=cores, when=when))
    return {k: v["seconds"] for k, v in manifest.get("notebooks", {}).items()}
