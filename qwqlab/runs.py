"""Recorded runs: ``train_grpo``'s checkpoints, and the one reader of what ``data/runs`` holds.

- Checkpoints: ``save_checkpoint`` writes the trainable weights, optimizer state, log and run
  identity atomically (a temporary folder, then a rename); ``latest_checkpoint``,
  ``load_checkpoint`` and ``check_resumable`` (a resume must be the same experiment) read them.
- ``find_recorded_runs``: everything recorded in a folder (default ``data/runs``, written by
  ``scripts/record_runs.py``): its ``summary.json``, GRPO logs, rollout tables, trained
  models and checkpoints. Notebooks 04 and 05 and the dashboards all read runs through it.
- ``collect_rollouts``: rollouts before and after RL, recorded or freshly sampled.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from qwqlab.paths import data_dir

if TYPE_CHECKING:
    import pandas as pd

# pandas and qwqlab.lengths are imported by the readers that use them: train_grpo imports this
# module for its checkpoints, and importing pandas would add about 0.6 s to `import qwqlab.grpo`.


# ----------------------------------------------------------------------------- checkpoints

class CheckpointError(ValueError):
    """A checkpoint folder cannot be used for this run; the message says why and what to do."""


def _run_of(checkpoint: Path) -> dict | None:
    """A checkpoint's ``run.json`` (``run_id`` and ``settings``); ``None`` for one saved before runs had ids."""
    try:
        return json.loads((checkpoint / "run.json").read_text())
    except (OSError, ValueError):
        return None


def _checkpoints(root: Path, run_id: str | None = None) -> list[Path]:
    """Complete checkpoints in ``root``, oldest first; with ``run_id``, that run's only."""
    done = [p for p in root.glob("step-*") if p.suffix != ".tmp" and (p / "state.pt").exists()]
    if run_id is not None:
        done = [p for p in done if (_run_of(p) or {}).get("run_id", run_id) == run_id]
    return sorted(done, key=lambda p: int(p.name.split("-")[1]))


def latest_checkpoint(checkpoint_dir, run_id: str | None = None) -> Path | None:
    """The newest complete checkpoint (``step-NNNNNN`` holding ``state.pt``) in ``checkpoint_dir``
    (with ``run_id``: the newest of that run)."""
    if checkpoint_dir is None or not Path(checkpoint_dir).is_dir():
        return None
    done = _checkpoints(Path(checkpoint_dir), run_id)
    return done[-1] if done else None


def _differences(saved: dict, now: dict) -> list[str]:
    keys = [k for k in now if k in saved] + [k for k in saved if k not in now]
    return [f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in keys if saved.get(k) != now.get(k)]


def check_resumable(checkpoint: Path, settings: dict, may_change: tuple[str, ...] = ()) -> str | None:
    """The run id to continue from ``checkpoint``; ``CheckpointError`` naming each difference
    (``"learning_rate: 0.01 -> 0.5"``) if this run is another experiment.

    ``settings`` is what makes the run the experiment it is (``grpo.run_settings``);
    ``may_change`` the config fields left out of it, named in the message.
    """
    run = _run_of(checkpoint)
    if run is not None:
        saved = run.get("settings", {})
    else:  # saved before runs had ids: its config.json still says how it was trained
        try:
            saved = {k: v for k, v in json.loads((checkpoint / "config.json").read_text()).items()
                     if k not in may_change}
        except (OSError, ValueError):
            saved = {}
        saved = {**{k: settings[k] for k in ("task", "rewards")}, **saved}
    diff = _differences(saved, settings)
    if diff:
        raise CheckpointError(
            f"train_grpo: {checkpoint} belongs to a run with other settings ({'; '.join(diff)}). Resuming would "
            "continue that run as another experiment in the middle of its log. Use that run's settings to "
            "continue it, or another checkpoint_dir to start a new run. (Only "
            f"{', '.join(may_change)} may change on a resume.)")
    return (run or {}).get("run_id")


def _trainable_state(model) -> dict:
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(checkpoint_dir, step: int, model, optimizer, history: list[dict], config,
                    keep: int = 2, run: dict | None = None) -> Path:
    """Write the trainable weights, optimizer state and log so far; written to a temporary
    folder and renamed, so an interruption never leaves a half-written checkpoint.

    ``run`` (``{"run_id": ..., "settings": run_settings(...)}``) is stored as ``run.json``;
    rotation (keep the newest ``keep``) then deletes only that run's checkpoints.
    """
    import torch

    root = Path(checkpoint_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:06d}"
    tmp = root / f"step-{step:06d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    torch.save({"step": step, "model": _trainable_state(model), "optimizer": optimizer.state_dict()},
               tmp / "state.pt")
    (tmp / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in history))
    (tmp / "config.json").write_text(json.dumps(config.to_dict(), indent=2, default=str))
    if run is not None:
        (tmp / "run.json").write_text(json.dumps(run, indent=2))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    old = _checkpoints(root, (run or {}).get("run_id"))
    for p in old[:-keep]:
        shutil.rmtree(p, ignore_errors=True)
    return final


def load_checkpoint(path, model, optimizer=None) -> tuple[int, list[dict]]:
    """Restore weights (and optimizer state) from a checkpoint; returns ``(step, history)``."""
    import torch

    path = Path(path)
    state = torch.load(path / "state.pt", map_location="cpu", weights_only=True)
    missing = set(state["model"]) - {n for n, _ in model.named_parameters()}
    if missing:
        raise ValueError(f"checkpoint {path} does not fit this model: unknown parameters {sorted(missing)[:3]}...")
    model.load_state_dict(state["model"], strict=False)
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    lines = (path / "history.jsonl").read_text().splitlines()
    return state["step"], [json.loads(line) for line in lines if line]


def write_log(log_file, history: list[dict], append_row: dict | None = None) -> None:
    """Write ``train_grpo``'s per-step log: a CSV rewritten whole, or JSON lines (``append_row`` appended)."""
    if not log_file:
        return
    path = Path(log_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        import pandas as pd

        pd.DataFrame(history).to_csv(path, index=False)
    elif append_row is not None:
        with open(path, "a") as f:
            f.write(json.dumps(append_row) + "\n")
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in history))


def latest_trainer_checkpoint(folder, world_size: int = 1) -> Path | None:
    """The newest complete ``checkpoint-N`` that transformers' ``Trainer`` wrote in ``folder``.

    Trainer writes a checkpoint in place (weights, optimizer, one RNG state per rank, then
    ``trainer_state.json`` last), so a run killed while saving leaves a folder without them:
    such a folder is skipped, and the one before it is the latest.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return None

    def complete(p: Path) -> bool:
        rng = [p / "rng_state.pth"] if world_size == 1 else [p / f"rng_state_{r}.pth" for r in range(world_size)]
        return (p / "trainer_state.json").exists() and all(f.exists() for f in rng)

    done = [p for p in folder.glob("checkpoint-*") if p.name.split("-")[-1].isdigit() and complete(p)]
    return max(done, key=lambda p: int(p.name.split("-")[-1]), default=None)


def trim_log(log_file, step: int) -> int:
    """Keep the rows of a ``.jsonl`` step log up to ``step`` (a resumed run appends the later ones again);
    returns how many rows were dropped. The rows kept are never rewritten."""
    path = Path(log_file)
    if not path.exists():
        return 0
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    keep = [line for line in lines if json.loads(line).get("step", 0) <= step]
    if len(keep) != len(lines):
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text("".join(line + "\n" for line in keep))
        os.replace(tmp, path)
    return len(lines) - len(keep)


# ----------------------------------------------------------------------------- recorded runs

def runs_dir() -> Path:
    """Where ``scripts/record_runs.py`` writes its recorded runs: ``data/runs``."""
    return data_dir() / "runs"


@dataclass
class RecordedRuns:
    """What ``find_recorded_runs`` found: the summary, GRPO logs, rollout tables, and trained models."""
    folder: Path
    summary: dict | None = None                       # summary.json (scripts/record_runs.py), if any
    logs: dict = field(default_factory=dict)          # name -> log DataFrame
    rollouts: dict = field(default_factory=dict)      # name -> rollouts DataFrame
    models: dict = field(default_factory=dict)        # name -> folder with config.json + safetensors
    checkpoints: dict = field(default_factory=dict)   # name -> train_grpo checkpoint (step-*/state.pt)
    unreadable: dict = field(default_factory=dict)    # name -> why it was skipped

    def describe(self) -> str:
        if not any((self.logs, self.rollouts, self.models, self.checkpoints)):
            return f"no recorded runs in {self.folder}"
        parts = [f"{k}: {', '.join(sorted(v))}" for k, v in
                 (("GRPO logs", self.logs), ("rollout tables", self.rollouts), ("models", self.models),
                  ("checkpoints", self.checkpoints)) if v]
        if self.unreadable:
            parts.append(f"skipped: {', '.join(f'{k} ({v})' for k, v in self.unreadable.items())}")
        return f"in {self.folder}: " + "; ".join(parts)


def find_recorded_runs(folder: str | Path | None = None, columns: Mapping[str, str] | None = None) -> RecordedRuns:
    """Look through ``folder`` (default ``data/runs``) for recorded RL runs.

    Tables (.jsonl, .csv, .parquet) with a step column and a length column (see
    ``DEFAULT_LOG_COLUMNS``, or map yours with ``columns``) are GRPO logs; tables with a
    ``completion`` column are rollouts. Folders with ``config.json`` and safetensors are
    models; ``step-*/state.pt`` folders are ``train_grpo`` checkpoints (the newest per run
    is kept). Names are paths relative to ``folder``, without suffix, except for the logs a
    ``summary.json`` lists (``{"runs": {name: {"log": path, ...}}}``, as ``scripts/record_runs.py``
    writes it), which are named by their run and read whatever their columns. A missing folder
    gives an empty result, so notebooks can fall back to sampling.
    """
    from qwqlab.lengths import DEFAULT_LOG_COLUMNS, read_table

    root = Path(folder) if folder else runs_dir()
    found = RecordedRuns(folder=root)
    if not root.is_dir():
        return found
    mapping = {**DEFAULT_LOG_COLUMNS, **(columns or {})}
    listed = {}  # log path -> run name, from summary.json
    if (root / "summary.json").exists():
        try:
            found.summary = json.loads((root / "summary.json").read_text())
        except ValueError as e:
            found.unreadable["summary"] = f"not valid JSON: {e}"
        for name, run in ((found.summary or {}).get("runs") or {}).items():
            listed[(root / run.get("log", f"{name}/log.jsonl")).resolve()] = name
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith((".", "step-")) for part in rel.parts[:-1]):
            continue  # hidden folders; checkpoints hold their own history, handled below
        name = str(rel.with_suffix("")) if path.is_file() else str(rel)
        if path.is_dir():
            if (path / "config.json").exists() and any(path.glob("*.safetensors")):
                found.models[name] = path
            steps = [p for p in path.glob("step-*") if (p / "state.pt").exists() and p.suffix != ".tmp"]
            if steps:
                found.checkpoints[name] = max(steps, key=lambda p: int(p.name.split("-")[1]))
            continue
        if path.suffix not in (".jsonl", ".csv", ".parquet") or path.name in ("manifest.jsonl",):
            continue
        try:
            df = read_table(path)
        except Exception as e:  # a half-written file must not stop the notebook
            found.unreadable[name] = type(e).__name__
            continue
        if path.resolve() in listed:
            found.logs[listed[path.resolve()]] = df
        elif mapping["step"] in df.columns and {mapping["completion_tokens"], mapping["think_tokens"]} & set(df.columns):
            found.logs[name] = df
        elif "completion" in df.columns:
            found.rollouts[name] = df
    return found


def collect_rollouts(runs: RecordedRuns | None = None, model: str = "qwq-nano", task=None, max_runs: int = 3,
                     progress: bool = True, **settings) -> pd.DataFrame:
    """Rollouts before and after RL, stacked with a ``run`` column, from whatever is recorded.

    - Recorded rollout tables (``runs.rollouts``) are used as they are, named by file
      (missing glossary columns filled by ``add_lengths`` with ``model``'s tokenizer).
    - Otherwise ``model`` is sampled fresh (``"<model> (before RL)"``), and so is every
      recorded RL model or ``train_grpo`` checkpoint (``"after RL: <name>"``, at most
      ``max_runs`` of them), with the same problems and ``settings`` (see
      ``rollouts.sample``, plain sampling at ``temperature``). With nothing recorded, only the
      "before" table comes back.
    """
    import pandas as pd

    from qwqlab.lengths import LENGTH_COLUMNS, add_lengths
    from qwqlab.models import load_model
    from qwqlab.tasks import ArithmeticTask

    runs = runs if runs is not None else find_recorded_runs()
    task = task or ArithmeticTask(split="test", seed=settings.get("seed", 0))
    if runs.rollouts:
        tokenizer = None
        tables = {}
        # "before"-like tables first, so plots read before -> after.
        ordered = sorted(runs.rollouts.items(), key=lambda kv: (
            0 if re.search(r"before|base|initial|start", kv[0], re.I) else 1, kv[0]))
        for name, df in ordered[:max_runs]:
            if not set(LENGTH_COLUMNS) <= set(df.columns) and tokenizer is None:
                tokenizer = load_model(model, verbose=False)[1]
            tables[name] = add_lengths(df, tokenizer)
    else:
        base, tokenizer = load_model(model, verbose=False)
        tables = {f"{Path(model).name} (before RL)": _sample(base, tokenizer, task, progress=progress,
                                                                     desc="before RL", **settings)}
        todo = [(n, "model", p) for n, p in runs.models.items()] + \
               [(n, "checkpoint", p) for n, p in runs.checkpoints.items()]
        for name, kind, path in todo[:max_runs]:
            try:
                if kind == "model":
                    trained, tok = load_model(str(path), verbose=False)
                else:
                    import copy

                    trained, tok = copy.deepcopy(base), tokenizer
                    load_checkpoint(path, trained)
            except Exception as e:  # a checkpoint of another model (or LoRA) should not stop the rest
                print(f"skipping {name}: {e}")
                continue
            tables[f"after RL: {name}"] = _sample(trained, tok, task, progress=progress,
                                                          desc=f"after RL: {name}", **settings)
    return pd.concat([df.assign(run=name) for name, df in tables.items()], ignore_index=True)


def _sample(model, tokenizer, task, num_problems: int = 64, num_generations: int = 8,
                    max_new_tokens: int = 96, temperature: float = 1.0, seed: int = 0, batch_size: int = 256,
                    progress: bool = True, desc: str | None = None) -> pd.DataFrame:
    """``num_generations`` completions for each of ``task``'s first problems: ``rollouts.sample``
    with plain sampling (no top-p/top-k) at ``temperature``, so the table describes the
    model's own distribution. Deterministic for a given ``seed`` on CPU.
    """
    from qwqlab.rollouts import sample

    return sample(model, tokenizer, task.problems(num_problems), task, num_generations=num_generations,
                  temperature=temperature, top_p=1.0, top_k=0, max_new_tokens=max_new_tokens, seed=seed,
                  batch_size=batch_size, progress=progress, desc=desc)
