"""One explorer as a standalone page with no code cells, for a projector or for students.

``qwqlab dashboard NAME`` writes a two-cell notebook (a title, then one call that builds the
explorer from ``qwqlab.widgets`` with its data) to a temporary folder and serves it with Voila, which runs
it in a fresh kernel and shows only its outputs: the widgets stay live, the code is not
shown. Adding a dashboard is a ``build_NAME`` function and one entry in ``DASHBOARDS``.

>>> sorted(available())                                    # doctest: +SKIP
['benchmarks', 'chat', 'lengths', 'memory', 'reward', 'rollouts']
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Dashboard:
    """One explorer served as a page.

    Args:
        title: the page's heading.
        blurb: one or two sentences under it, for the class.
        build: builds the explorer with the data it shows (a function of this module, so
            it is unit-tested without a browser); the page's only code cell calls it.
        selector: the CSS class the explorer carries (``widget.add_class``), for browser tests.
    """
    title: str
    blurb: str
    build: str
    selector: str


def _quiet() -> None:
    """No "Loading weights" progress bars on a page for the class."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def build_memory():
    from qwqlab.widgets import memory_explorer

    return memory_explorer()


def build_chat():
    """The chat widget on the largest model this machine can serve (``pick_model``)."""
    from qwqlab.picking import load_model_or_fallback, pick_model
    from qwqlab.widgets import chat_widget

    _quiet()
    model, tokenizer, choice = load_model_or_fallback(pick_model(), verbose=False)
    import html

    from IPython.display import HTML, display

    display(HTML(f"<p style='max-width:70em'><i>{html.escape(str(choice))}</i></p>"))  # prose, not a log line
    chat = chat_widget(model, tokenizer)
    chat.run()
    return chat


def build_rollouts(num_problems: int = 16, num_generations: int = 8, seed: int = 0):
    """Notebook 02's rollout browser on fresh qwq-nano samples at QwQ's settings (T 0.6, top_p 0.95)."""
    from qwqlab.models import load_model
    from qwqlab.rollouts import sample
    from qwqlab.tasks import ArithmeticTask
    from qwqlab.widgets import rollout_browser

    _quiet()
    model, tokenizer = load_model("qwq-nano", verbose=False)
    task = ArithmeticTask(split="test", seed=seed)
    rollouts = sample(model, tokenizer, task.problems(num_problems), task, num_generations=num_generations,
                      temperature=0.6, top_p=0.95, top_k=40, max_new_tokens=96, seed=seed, progress=False)
    return rollout_browser(rollouts)


def build_reward(num_problems: int = 16, num_generations: int = 8, seed: int = 0):
    """Notebook 03's reward explorer on fresh qwq-nano rollouts sampled as ``train_grpo`` samples them
    (``GRPOConfig``'s temperature 1, no top-p or top-k): the same rollouts as the lengths page."""
    from qwqlab.models import load_model
    from qwqlab.rollouts import sample
    from qwqlab.tasks import ArithmeticTask
    from qwqlab.widgets import reward_explorer

    _quiet()
    model, tokenizer = load_model("qwq-nano", verbose=False)
    task = ArithmeticTask(split="test", seed=seed)
    rollouts = sample(model, tokenizer, task.problems(num_problems), task, num_generations=num_generations,
                      temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=96, seed=seed, progress=False)
    return reward_explorer(rollouts, tokenizer=tokenizer, weights={"accuracy": 1.0, "format": 0.2, "kimi_length": 0.5})


def build_lengths(num_problems: int = 16, num_generations: int = 8, seed: int = 0):
    """Notebook 05's explorer on qwq-nano rollouts before and after RL (recorded runs, else sampled)."""
    from qwqlab.runs import collect_rollouts, find_recorded_runs
    from qwqlab.tasks import ArithmeticTask
    from qwqlab.widgets import length_explorer

    _quiet()
    runs = find_recorded_runs()
    rollouts = collect_rollouts(runs, model="qwq-nano", task=ArithmeticTask(split="test", seed=seed),
                                num_problems=num_problems, num_generations=num_generations,
                                max_new_tokens=96, temperature=1.0, seed=seed, progress=False)
    return length_explorer(rollouts, by="run")


def build_benchmarks():
    """Notebook 06's explorer on the published results, with the lab's own measurements (qwq-nano, the traces)."""
    from qwqlab import results
    from qwqlab.widgets import benchmark_explorer

    own = results.own_results()
    table = results.add_results(results.load_published(), own)
    return benchmark_explorer(table, own=own if len(own) else None)


DASHBOARDS: dict[str, Dashboard] = {
    "memory": Dashboard(
        "How much memory does a reasoning model need?",
        "Weights, KV cache and overhead of QwQ-32B and the DeepSeek-R1 distills at 16, 8 and 4 bits. "
        "Move the context slider: long thinking costs memory too (QwQ-32B: 256 KiB a token in bf16).",
        "build_memory", ".qwqlab-memory"),
    "chat": Dashboard(
        "Chat with a reasoning model",
        "The model thinks first, writes `</think>`, then answers in `\\boxed{}`. The largest model this "
        "machine can serve is chosen for you (qwq-nano on a CPU).",
        "build_chat", ".qwqlab-chat"),
    "reward": Dashboard(
        "Reward shaping",
        "qwq-nano's rollouts at temperature 1, 8 per problem, as GRPO samples them. Change the reward "
        "weights, the length targets and the advantage estimator: every reward and the advantages of "
        "the group shown are recomputed.",
        "build_reward", ".qwqlab-reward-explorer"),
    "rollouts": Dashboard(
        "Rollout browser",
        "qwq-nano's samples at QwQ's settings (temperature 0.6, top_p 0.95), 8 per problem: read the "
        "thinking and the answer of any of them, and whether it was right.",
        "build_rollouts", ".qwqlab-rollout-browser"),
    "lengths": Dashboard(
        "How long does a model think, and does it pay?",
        "qwq-nano's rollouts before and after RL: reflection markers, accuracy by length bucket, and "
        "correct against incorrect completions. Type marker words, change the buckets.",
        "build_lengths", ".qwqlab-lengths"),
    "benchmarks": Dashboard(
        "QwQ-32B and its peers: published results",
        "Pick benchmarks and models; the table, the announcement's bars and the size-efficiency "
        "scatter follow. Every number has its source in data/published_results.csv.",
        "build_benchmarks", ".qwqlab-benchmarks"),
}


def available() -> dict[str, Dashboard]:
    """Every dashboard, by name."""
    return dict(DASHBOARDS)


def build(name: str):
    """The explorer of dashboard ``name``, built as its page builds it (tests use this)."""
    return globals()[_get(name).build]()


def _get(name: str) -> Dashboard:
    if name not in DASHBOARDS:
        raise KeyError(f"no dashboard {name!r}; choose one of {', '.join(available())}")
    return DASHBOARDS[name]


def dashboard_notebook(name: str):
    """The notebook Voila serves for dashboard ``name``: a title cell and the explorer's code."""
    import nbformat

    d = _get(name)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {d.title}\n\n{d.blurb}"),
                nbformat.v4.new_code_cell(f"from qwqlab.dashboard import {d.build}\n{d.build}()")]
    return nb


def write_dashboard(name: str, folder: str | Path) -> Path:
    """Write dashboard ``name`` as ``folder/NAME.ipynb`` and return the path."""
    import nbformat

    path = Path(folder) / f"{name}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(dashboard_notebook(name), path)
    return path


def voila_command(notebook: str | Path, port: int = 8866, ip: str = "127.0.0.1",
                  open_browser: bool = False) -> list[str]:
    """The Voila command line for one dashboard notebook.

    No kernel is preheated: Voila's pool would re-run the notebook for the next visitor as
    soon as one arrives, which on a 2-core laptop halves the speed of the page being shown.
    """
    try:
        import voila  # noqa: F401
    except ImportError as e:
        raise RuntimeError("dashboards are served by Voila: `pip install voila` (it is a qwqlab "
                           "dependency, so `pip install -e .` brings it)") from e
    cmd = [sys.executable, "-m", "voila", str(notebook), f"--port={port}", f"--Voila.ip={ip}",
           "--theme=light", "--strip_sources=True", "--show_tracebacks=True"]
    if not open_browser:
        cmd.append("--no-browser")
    return cmd


def serve(name: str, port: int = 8866, ip: str = "127.0.0.1", open_browser: bool = False) -> int:
    """Serve dashboard ``name`` with Voila until stopped (Ctrl-C twice, or SIGTERM); Voila's exit status."""
    folder = Path(tempfile.mkdtemp(prefix="qwqlab-dashboard-"))
    path = write_dashboard(name, folder)
    cmd = voila_command(path, port=port, ip=ip, open_browser=open_browser)
    print(f"qwqlab: serving the {name!r} dashboard at http://{ip}:{port}/ (Ctrl-C twice stops it)", flush=True)
    # One OpenMP thread per page kernel unless the user set one: the kernel shares the CPU with
    # the browser drawing the page (and on a projector laptop with everything else); qwq-nano's
    # matmuls are tiny, and spinning OpenMP threads against other busy processes slowed building
    # the lengths page from 12.5 s to 75 s on 2 cores (28 s with one thread and 16 problems).
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    proc = subprocess.Popen(cmd, cwd=folder, env=env)
    if threading.current_thread() is threading.main_thread():
        # SIGTERM (a test, a service manager) stops Voila cleanly too, and the folder is removed.
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        return proc.wait()
    except KeyboardInterrupt:  # Voila got the same Ctrl-C and shuts its kernels down itself
        return proc.wait()
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(folder, ignore_errors=True)
