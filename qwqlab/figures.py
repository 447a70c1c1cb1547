"""Run the notebooks headless and collect every figure they write, with a data manifest.

A notebook saves a figure with ``save_figure(name, static=..., interactive=..., data=...)``:
the static (matplotlib) one becomes ``NAME.png``, the interactive (plotly) one
``NAME.html``, and the manifest records a SHA-256 of the figure's underlying data, so two
runs can be compared figure by figure. ``run_notebooks`` executes notebooks with nbclient,
injecting parameters after the cell tagged ``parameters`` (papermill's convention).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from qwqlab.paths import REPO_ROOT

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
FIGURES_ENV = "QWQLAB_FIGURES"
SLIDE_DPI = 200


def figure_dir() -> Path:
    """Where figures go: ``$QWQLAB_FIGURES`` (set by ``run_notebooks``), else ``./figures``."""
    path = Path(os.environ.get(FIGURES_ENV, "figures"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_hash(data) -> str:
    """A stable SHA-256 of a figure's data (DataFrame, dict/list, str or bytes)."""
    if data is None:
        return ""
    if hasattr(data, "to_csv"):
        payload = data.to_csv(index=True, float_format="%.10g").encode()
    elif isinstance(data, bytes):
        payload = data
    elif isinstance(data, str):
        payload = data.encode()
    else:
        payload = json.dumps(data, sort_keys=True, default=str).encode()
    return hashlib.sha256(payload).hexdigest()


def save_figure(name: str, static=None, interactive=None, data=None, out: str | Path | None = None) -> dict:
    """Write a figure as PNG at 200 dpi and SVG (matplotlib ``static``) and HTML (plotly ``interactive``).

    The HTML shares one ``plotly.min.js`` beside it, so it draws offline. Returns the
    manifest entry (also appended to ``manifest.jsonl`` in the folder).
    """
    out = Path(out) if out else figure_dir()
    out.mkdir(parents=True, exist_ok=True)
    files = []
    if static is not None:
        # Slide quality: 200 dpi, and an SVG that scales to any projector (no date: same bytes each run).
        static.savefig(out / f"{name}.png", dpi=SLIDE_DPI, bbox_inches="tight", metadata={"Software": None})
        static.savefig(out / f"{name}.svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
        files += [f"{name}.png", f"{name}.svg"]
    if interactive is not None:
        interactive.write_html(out / f"{name}.html", include_plotlyjs="directory", full_html=True,
                               div_id=f"qwqlab-{name}")
        files.append(f"{name}.html")
    if not files:
        raise ValueError(f"save_figure({name!r}) got neither a static nor an interactive figure")
    entry = {"name": name, "files": files, "data_sha256": data_hash(data)}
    with open(out / "manifest.jsonl", "a") as f:
        f.write(json.dumps(entry) + "\n")
    return entry


def list_notebooks(folder: str | Path = NOTEBOOK_DIR) -> list[Path]:
    return sorted(Path(folder).glob("[0-9][0-9]_*.ipynb"))


def inject_parameters(nb, parameters: dict) -> None:
    """Add a cell setting ``parameters`` right after the cell tagged ``parameters``."""
    import nbformat

    if not parameters:
        return
    idx = next((i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    if idx is None:
        raise ValueError("notebook has no cell tagged 'parameters' to override")
    src = "# Parameters injected by qwqlab.figures\n" + "\n".join(f"{k} = {v!r}" for k, v in parameters.items())
    cell = nbformat.v4.new_code_cell(src, metadata={"tags": ["injected-parameters"]})
    nb.cells.insert(idx + 1, cell)


def execute_notebook(path: str | Path, parameters: dict | None = None, out_dir: str | Path | None = None,
                     timeout: int = 600, save_executed: str | Path | None = None):
    """Execute one notebook headless (nbclient) and return the executed notebook.

    Figures it saves go to ``out_dir`` (through ``$QWQLAB_FIGURES``). A cell that raises
    makes this raise ``nbclient.exceptions.CellExecutionError`` naming the cell.
    """
    import nbformat
    from nbclient import NotebookClient

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    inject_parameters(nb, parameters or {})
    old = os.environ.get(FIGURES_ENV)
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        os.environ[FIGURES_ENV] = str(Path(out_dir).resolve())
    # The kernel draws figures inline, as JupyterLab's does, so an executed notebook shows (and a
    # test can check) what a class sees; the caller's own MPLBACKEND (Agg in tests) is put back after.
    old_backend = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    try:
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}})
        client.execute()
    finally:
        if old_backend is None:
            os.environ.pop("MPLBACKEND", None)
        else:
            os.environ["MPLBACKEND"] = old_backend
        if out_dir is not None:
            if old is None:
                os.environ.pop(FIGURES_ENV, None)
            else:
                os.environ[FIGURES_ENV] = old
    if save_executed:
        nbformat.write(nb, save_executed)
    return nb


_WARNING_WORDS = ("Warning:", "WARNING", "warnings.warn", "Traceback (most recent call last)")
#: Progress bars libraries draw on their own (a class cannot act on them; qwqlab.quiet turns them off).
_THIRD_PARTY_BARS = ("Loading weights", "Loading checkpoint shards", "Fetching ")
_RICH = ("text/html", "image/png", "image/svg+xml", "text/markdown", "text/latex",
         "application/vnd.jupyter.widget-view+json", "application/vnd.plotly.v1+json")


def page_problems(nb) -> list[str]:
    """What a class should not see in an executed notebook, one line each naming the cell.

    A clean page has: no error and no stderr output (a pink box students act on), no warning
    text anywhere in the outputs, no image shown twice (a cell's returned figure drawn again by
    the inline backend, or a figure leaked into a later cell), and no stray return value (an
    ``execute_result`` that is only a repr such as ``{'name': ...}``; a value worth showing is
    printed or displayed). An empty list means the page is clean.
    """
    problems, seen_images = [], {}
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        head = cell.source.strip().splitlines()[0][:60] if cell.source.strip() else ""
        where = f"cell {i} ({head!r})"
        for out in cell.get("outputs", []):
            kind = out.get("output_type")
            if kind == "error":
                problems.append(f"{where}: error output {out.get('ename')}: {out.get('evalue', '')[:120]}")
                continue
            if kind == "stream":
                text = out.get("text", "")
                if out.get("name") == "stderr":
                    problems.append(f"{where}: stderr output {text.strip()[:160]!r}")
                    continue
            else:
                data = out.get("data", {})
                text = "\n".join(str(data.get(k, "")) for k in ("text/plain", "text/html", "text/markdown"))
                png = data.get("image/png")
                if png:
                    key = hashlib.sha256(png.encode()).hexdigest()
                    if key in seen_images:
                        problems.append(f"{where}: an image already shown in {seen_images[key]}")
                    seen_images.setdefault(key, where)
                bar = next((b for b in _THIRD_PARTY_BARS if str(data.get("text/plain", "")).startswith(b)), None)
                if bar:
                    problems.append(f"{where}: a third-party progress bar {bar!r}")
                if kind == "execute_result" and not any(k in data for k in _RICH):
                    problems.append(f"{where}: stray return value {str(data.get('text/plain', ''))[:80]!r} "
                                    "(end the line with ';' or print what is meant to be read)")
            for word in _WARNING_WORDS:
                if word in text:
                    line = next((ln for ln in text.splitlines() if word in ln), "")
                    problems.append(f"{where}: warning text {line.strip()[:160]!r}")
                    break
    return problems


#: Overrides ``make figures`` applies so that the same commit on the same machine draws the same
#: figures: notebook 04's live run is time-budgeted in a classroom (``MAX_SECONDS``), so the number
#: of steps would depend on the machine's speed and load; here it runs a fixed number of steps, with
#: torch's deterministic kernels (with 2 threads, backward reductions otherwise add in a varying order,
#: and two runs on one machine drew different live-run figures after 60 steps).
REPRODUCIBLE_PARAMETERS: dict[str, dict] = {
    "04_rl_training": {"MAX_SECONDS": None, "STEPS": 60, "DETERMINISTIC": True},
}

#: What can still differ between two machines (never between two runs on one machine), per notebook.
ACROSS_MACHINES = {
    "default": "identical on one machine; on another CPU (AVX-512 against AVX2, another thread count) "
               "float rounding in matrix kernels can change a sampled token, and everything after it",
    "01_models_and_quantization": "memory figures are identical everywhere; logit drift of 8/4-bit "
                                  "layers depends on bitsandbytes' CPU kernels",
    "06_benchmark_plots": "identical everywhere: published figures and qwq-nano's recorded results",
}


def run_notebooks(out: str | Path = "figures", notebooks: list[str | Path] | None = None,
                  parameters: dict[str, dict] | None = None, progress: bool = True) -> dict:
    """Execute every notebook (or those given) and write figures plus ``manifest.json`` under ``out``.

    ``parameters`` maps a notebook's stem (``"02_rollout_sampling"``) to overrides, applied over
    ``REPRODUCIBLE_PARAMETERS``. Returns the manifest: per notebook, the seconds it took, each
    figure's files and data hash, and what may differ on another machine (``across_machines``).
    """
    parameters = {k: {**REPRODUCIBLE_PARAMETERS.get(k, {}), **(parameters or {}).get(k, {})}
                  for k in set(REPRODUCIBLE_PARAMETERS) | set(parameters or {})}
    from tqdm.auto import tqdm

    out = Path(out)
    paths = [Path(p) for p in notebooks] if notebooks else list_notebooks()
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:  # before any folder is made
        raise FileNotFoundError(2, "no such notebook", ", ".join(missing))
    out.mkdir(parents=True, exist_ok=True)
    manifest = {"notebooks": {}, "total_seconds": 0.0}
    start = time.perf_counter()
    for path in tqdm(paths, desc="notebooks", disable=not progress):
        nb_out = out / path.stem
        if (nb_out / "manifest.jsonl").exists():
            (nb_out / "manifest.jsonl").unlink()
        t = time.perf_counter()
        # The executed notebook is kept beside its figures: `qwqlab book` turns it into a page.
        nb = execute_notebook(path, (parameters or {}).get(path.stem), out_dir=nb_out,
                              save_executed=nb_out / path.name)
        figs = []
        if (nb_out / "manifest.jsonl").exists():
            figs = [json.loads(line) for line in (nb_out / "manifest.jsonl").read_text().splitlines() if line]
        manifest["notebooks"][path.stem] = {
            "seconds": round(time.perf_counter() - t, 1), "figures": figs, "page_problems": page_problems(nb),
            "parameters": parameters.get(path.stem, {}),
            "across_machines": ACROSS_MACHINES.get(path.stem, ACROSS_MACHINES["default"])}
    manifest["total_seconds"] = round(time.perf_counter() - start, 1)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest
