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
* ``check(name, answer)``: the exercises at the end of each notebook (the teacher's "Ask the
  class" questions): right, or not yet with a hint. Each check computes its answer from the
  package, so it stays true when the package changes.
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
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


def run_times_in(text: str) -> dict[str, str]:
    """``{stem: run time as written}`` for every run-time marker in ``text``."""
    return {m["name"]: m["old"] for m in _TIME.finditer(text)}


def fill_notebook_run_times(folder: str | Path, manifest: dict) -> list[Path]:
    """Write the manifest's run times into each notebook's intro (its ``**Time.**`` marker).

    The same markers as the teacher's notes, so a notebook never states a time of its own.
    Returns the notebooks that changed (only their marked text changes).
    """
    import nbformat

    changed = []
    for path in sorted(Path(folder).glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        touched = False
        for cell in nb.cells:
            if cell.cell_type == "markdown" and "<!-- run-time:" in cell.source:
                new = _TIME.sub(lambda m: fill_run_times(m.group(0), manifest), cell.source)
                touched |= new != cell.source
                cell.source = new
        if touched:
            nbformat.write(nb, path)
            changed.append(path)
    return changed


def fill_run_times_file(notes_path: str | Path, manifest_path: str | Path, cores: int | None = None) -> dict:
    """``fill_run_times`` on files; returns ``{stem: seconds}`` of what was written."""
    notes_path, manifest_path = Path(notes_path), Path(manifest_path)
    manifest = json.loads(manifest_path.read_text())
    when = datetime.fromtimestamp(manifest_path.stat().st_mtime, tz=timezone.utc).strftime("%Y-%m-%d")
    notes_path.write_text(fill_run_times(notes_path.read_text(), manifest, cores=cores, when=when))
    return {k: v["seconds"] for k, v in manifest.get("notebooks", {}).items()}


# ----------------------------------------------------------------------------- exercises

@dataclass
class Verdict:
    """What a check says: right or not yet, and a line that explains or hints."""

    ok: bool
    message: str

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        return ("Right. " if self.ok else "Not yet. ") + self.message

    def _repr_html_(self) -> str:
        import html

        color, word = ("#2e7d32", "Right.") if self.ok else ("#b26a00", "Not yet.")
        return (f'<div class="qwqlab-verdict" style="border-left:4px solid {color};padding:4px 8px">'
                f'<b style="color:{color}">{word}</b> {html.escape(self.message)}</div>')


def _number(answer, want: float, hint: str, why: str, rel: float = 0.01, abs_tol: float = 1e-9) -> Verdict:
    try:
        got = float(answer)
    except (TypeError, ValueError):
        return Verdict(False, f"`answer` should be a number (got {answer!r}). Hint: {hint}")
    if math.isclose(got, want, rel_tol=rel, abs_tol=abs_tol):
        return Verdict(True, why)
    return Verdict(False, f"{got:g} is not it. Hint: {hint}")


def _numbers(answer, want, hint: str, why: str, rel: float = 0.01) -> Verdict:
    try:
        got = [float(a) for a in answer]
    except (TypeError, ValueError):
        return Verdict(False, f"`answer` should be {len(want)} numbers (got {answer!r}). Hint: {hint}")
    if len(got) == len(want) and all(math.isclose(g, w, rel_tol=rel, abs_tol=1e-6) for g, w in zip(got, want)):
        return Verdict(True, why)
    return Verdict(False, f"{tuple(round(g, 4) for g in got)} is not it. Hint: {hint}")


def _choice(answer, want: str, hint: str, why: str) -> Verdict:
    if isinstance(answer, str) and answer.strip().lower().strip("()") == want:
        return Verdict(True, why)
    return Verdict(False, f"{answer!r} is not it. Hint: {hint}")


# Each check computes the right answer from the package (never a typed number), so it stays true.

def _kv_bytes_per_token(name: str = "Qwen/QwQ-32B") -> float:
    from qwqlab.models import estimate_memory

    return estimate_memory(name, bits=16, context_tokens=1024).kv_cache_bytes / 1024


def _check_kv_cache_per_token(answer):
    want = _kv_bytes_per_token() / 1024
    return _number(answer, want, "K and V (2) x layers x KV heads (not attention heads) x head dim "
                   "(hidden size / attention heads) x 2 bytes, then / 1024 for KiB.",
                   f"{want:.0f} KiB a token: QwQ-32B shares 8 KV heads among its 40 attention heads (GQA).")


def _check_kv_crossover(answer):
    from qwqlab.models import estimate_memory

    want = estimate_memory("Qwen/QwQ-32B", bits=4, context_tokens=1).weights_bytes / _kv_bytes_per_token()
    return _number(answer, want, "tokens = 4-bit weight bytes / KV bytes per token (both from "
                   "models.estimate_memory).", f"about {want / 1000:.0f}k tokens: past that, a long reasoning "
                   "trace costs more memory than the whole quantized model.", rel=0.05)


def _check_pass_at_k(answer):
    from qwqlab.metrics import pass_at_k

    want = float(pass_at_k(16, 4, 4))
    return _number(answer, want, "pass@k = 1 - C(n-c, k) / C(n, k): the chance that k of the n samples, "
                   "drawn without replacement, are not all wrong. It is not c/n.",
                   f"{want:.3f}: four tries at a problem solved 1 time in 4 succeed about 73% of the time.")


def _check_majority_answer(answer):
    want = "7"
    got = str(answer).strip() if answer is not None else None
    if got == want:
        return Verdict(True, "'7' (4 votes) beats '12' (3 votes): maj@k scores the most frequent answer.")
    return Verdict(False, f"{answer!r} is not it. Hint: count each extracted answer; the most frequent wins.")


def _check_truncation(answer):
    return _choice(answer, "b", "look at finish_reason: what did the cut samples never get to write?",
                   "(b): a sample cut off before \\boxed{} never answered; the model did not change, the "
                   "budget did. Report truncation beside accuracy.")


def _check_equal_rewards(answer):
    from qwqlab.grpo import compute_advantages

    want = compute_advantages([1.0] * 8, 8)
    return _numbers(answer, want, "advantage = (reward - group mean) / (group std + eps).",
                    "all 0: a group with no spread teaches nothing, however good its answers.")


def _check_rare_right(answer):
    from qwqlab.grpo import compute_advantages

    want = [compute_advantages([1.0] + [0.0] * 7, 8)[0], compute_advantages([1.0] * 4 + [0.0] * 4, 8)[0]]
    return _numbers(answer, want, "compute_advantages on [1, 0, 0, 0, 0, 0, 0, 0] and on [1, 1, 1, 1, 0, 0, 0, 0]; "
                    "take each group's first advantage.",
                    f"{want[0]:.2f} against {want[1]:.2f}: dividing by the std pushes the rare right answer "
                    "hardest (what Dr. GRPO removes).")


def _check_soft_overlong(answer):
    from qwqlab.rewards import make_soft_overlong_reward

    want = make_soft_overlong_reward(512, 128)(None, [""], completion_ids=[[0] * 448])[0]
    return _number(answer, want, "0 up to 512 - 128 = 384 tokens, then falling linearly to -1 at 512.",
                   f"{want:g}: halfway through the last 128 tokens, half the punishment.", abs_tol=1e-9)


def _check_zero_spread(answer):
    rewards = [[1, 1, 1, 1], [0, 1, 0, 0], [0, 0, 0, 0]]
    want = sum(max(g) == min(g) for g in rewards) / len(rewards)
    return _number(answer, want, "a group has no spread when all its rewards are equal.",
                   f"{want:.2f}: two groups of three give no gradient; near 1, training stalls.")


def _check_clipped_loss(answer):
    import torch

    from qwqlab.grpo import clipped_surrogate

    logp = torch.log(torch.tensor([[1.5]]))
    loss, _ = clipped_surrogate(logp, torch.zeros(1, 1), torch.tensor([1.0]), 0.2, 0.28)
    want = float(loss[0, 0])
    return _number(answer, want, "loss = -min(ratio * A, clip(ratio, 1 - 0.2, 1 + 0.28) * A).",
                   f"{want:g}: the ratio 1.5 is clipped to 1.28, so this token stops pushing.")


def _check_k3(answer):
    import torch

    from qwqlab.grpo import kl_estimate

    want = float(kl_estimate(torch.tensor([-1.0]), torch.tensor([-1.5]), "k3")[0])
    return _number(answer, want, "log_r = ref_logp - logp; k3 = exp(log_r) - 1 - log_r.",
                   f"{want:.4f}: positive, as k3 always is.", rel=1e-3)


def _check_marker_rate(answer):
    want = 1000 * (6 + 2) / (400 + 100)
    return _number(answer, want, "add the counts and the thinking tokens first, then divide (not the mean of "
                   "the two rates, which weighs a short completion like a long one).",
                   f"{want:g} per 1,000 thinking tokens, as lengths.marker_summary computes it.")


def _check_short_bucket(answer):
    return _choice(answer, "b", "compare within one problem: does the same problem get solved less when its "
                   "sample thinks less?", "(b): hard problems both take longer and fail more; the per-problem "
                   "view (length against pass rate) separates difficulty from habit.")


def _published(model: str, benchmark: str):
    from qwqlab.results import load_published

    t = load_published()
    return t[(t["model"] == model) & (t["benchmark"] == benchmark) & (t["metric"] == "pass@1")]


def _check_points_per_active_b(answer):
    rows = [_published(m, "AIME24").iloc[0] for m in ("QwQ-32B", "DeepSeek-R1")]
    want = [r["score"] / r["params_active_b"] for r in rows]
    return _numbers(answer, want, "AIME24 score / params_active_b, from results.load_published().",
                    f"{want[0]:.2f} against {want[1]:.2f} points per active billion: close on compute; on memory "
                    "(total parameters, 671B for R1) QwQ-32B is about 20 times leaner.")


def _check_preview_sources(answer):
    rows = _published("QwQ-32B-Preview (re-evaluated)", "AIME24")
    want = {float(s): src for s, src in zip(rows["score"], rows["source"])}
    try:
        got = {float(k): str(v) for k, v in dict(answer).items()}
    except (TypeError, ValueError):
        return Verdict(False, "`answer` should be a dict {score: source}. Hint: filter results.load_published() "
                       "to the model and AIME24.")
    if got == want:
        return Verdict(True, "the same model, two documents of one lab: the source decides the number, so a "
                       "figure is quoted with its source.")
    return Verdict(False, f"{got} is not it. Hint: look at the 'source' column of the two AIME24 rows.")


def _check_gpqa_origin(answer):
    from qwqlab.results import misattributions

    c = misattributions()
    row = c[(c["model"] == "QwQ-32B") & (c["quoted_score"] == 65.2)].iloc[0]
    want = (row["origin_model"], row["origin_benchmark"])
    if isinstance(answer, (tuple, list)) and tuple(str(a) for a in answer) == want:
        return Verdict(True, f"{want[0]} on {want[1]}: a preview's number, carried over to the final model.")
    return Verdict(False, f"{answer!r} is not it. Hint: results.misattributions() has origin_model and "
                   "origin_benchmark columns.")


#: name -> (notebook, check). The notebooks' Exercises sections call ``check(name, answer)``.
EXERCISES = {
    "kv_cache_per_token": ("01", _check_kv_cache_per_token),
    "kv_crossover": ("01", _check_kv_crossover),
    "pass_at_k": ("02", _check_pass_at_k),
    "majority_answer": ("02", _check_majority_answer),
    "truncation": ("02", _check_truncation),
    "equal_rewards": ("03", _check_equal_rewards),
    "rare_right": ("03", _check_rare_right),
    "soft_overlong": ("03", _check_soft_overlong),
    "zero_spread": ("04", _check_zero_spread),
    "clipped_loss": ("04", _check_clipped_loss),
    "k3": ("04", _check_k3),
    "marker_rate": ("05", _check_marker_rate),
    "short_bucket": ("05", _check_short_bucket),
    "points_per_active_b": ("06", _check_points_per_active_b),
    "preview_sources": ("06", _check_preview_sources),
    "gpqa_origin": ("06", _check_gpqa_origin),
}


def check(name: str, answer) -> Verdict:
    """Say whether ``answer`` to exercise ``name`` is right, with why, or a hint when it is not."""
    if name not in EXERCISES:
        raise ValueError(f"no exercise {name!r}; known: {', '.join(EXERCISES)}")
    if answer is None or answer is ...:
        return Verdict(False, "fill in `answer` above, then run the cell again.")
    return EXERCISES[name][1](answer)
