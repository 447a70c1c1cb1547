"""Run an experiment file on the lab's loop or on the field's engines (TRL + torchrun/Accelerate, vLLM).

``train(config, engine="qwqlab")`` is ``qwqlab.grpo.train_grpo`` in one process.
``train(config, engine="trl")`` builds TRL's ``GRPOTrainer`` from ``qwqlab.grpo.to_trl_config``
with qwqlab's own reward functions, and writes its per-step log in ``train_grpo``'s columns
(``LOG_COLUMNS``), so notebook 04's plots and ``qwqlab.lengths.length_over_steps`` read either.
Under ``torchrun --nproc_per_node N`` (or ``accelerate launch`` on GPUs) each process is one
data-parallel rank: rank 0 writes the log, every rank writes ``weights-rank<R>.sha256``, a
digest of its trainable weights, which must agree across ranks after training.

Measured on 2 CPU cores: ``torchrun --nproc_per_node 2`` starts two gloo ranks;
``accelerate launch --cpu --num_processes 2`` (accelerate 1.15-1.16) started one only.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from pathlib import Path

#: The per-step log's columns, as ``train_grpo`` writes them (``reward/<name>`` per reward comes after).
LOG_COLUMNS = ("step", "reward_mean", "reward_std", "accuracy", "format_rate", "completion_tokens_mean",
               "think_tokens_mean", "truncation_rate", "kl", "clip_fraction", "zero_spread_share", "entropy",
               "trained_share", "loss", "grad_norm", "unjudged_share", "learning_rate", "generation_seconds",
               "seconds", "elapsed_seconds")

#: train_grpo's column <- TRL's logged key. The rest TRL does not report: NaN in the log.
TRL_LOG_KEYS = {"reward_mean": "reward", "reward_std": "reward_std", "completion_tokens_mean": "completions/mean_length",
                "truncation_rate": "completions/clipped_ratio", "kl": "kl", "clip_fraction": "clip_ratio/region_mean",
                "zero_spread_share": "frac_reward_zero_std", "entropy": "entropy", "loss": "loss",
                "grad_norm": "grad_norm", "learning_rate": "learning_rate"}


def world() -> tuple[int, int]:
    """``(rank, world_size)`` from the launcher's environment (torchrun and Accelerate set both)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def weights_digest(model) -> str:
    """SHA-256 of the trainable parameters (names, shapes and bytes), to compare ranks."""
    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters()):
        if p.requires_grad:
            t = p.detach().cpu().contiguous()
            h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
            h.update(t.view(-1).view(dtype=__import__("torch").uint8).numpy().tobytes())
    return h.hexdigest()


def _load(cfg):
    from qwqlab.models import load_model

    return load_model(cfg.model, bits=cfg.bits, verbose=world()[0] == 0)


def train(cfg, engine: str = "qwqlab") -> dict:
    """Run a ``qwqlab.config.TrainConfig``; returns a summary (also written to ``out/summary-rank<R>.json``)."""
    if engine not in ("qwqlab", "trl"):
        raise ValueError(f"engine must be 'qwqlab' or 'trl', not {engine!r}")
    rank, size = world()
    if engine == "qwqlab" and size > 1:
        raise RuntimeError("engine='qwqlab' is qwqlab's single-process loop; launch it without torchrun, or use "
                           "--engine trl for several processes")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    model, tok = _load(cfg)
    task = cfg.build_task()
    reward_funcs, _ = cfg.reward_funcs()
    initial = weights_digest(model)
    if engine == "qwqlab":
        from dataclasses import replace

        from qwqlab.grpo import train_grpo
        grpo = replace(cfg.grpo, log_file=str(out / "log.jsonl"))
        log = train_grpo(model, tok, task, reward_funcs, grpo)
        steps, trained = len(log), model
    else:
        trainer = build_trl_trainer(cfg, model, tok, task, reward_funcs)
        trainer.train()
        steps, trained = trainer.state.global_step, trainer.model
    digest = weights_digest(trained)
    (out / f"weights-rank{rank}.sha256").write_text(digest + "\n")
    summary = {"engine": engine, "rank": rank, "world_size": size, "steps": steps, "weights_sha256": digest,
               "initial_weights_sha256": initial,
               "seconds": round(time.perf_counter() - t0, 2), "log": str(out / "log.jsonl")}
    (out / f"summary-rank{rank}.json").write_text(json.dumps(summary, indent=2))
    return summary


def build_trl_trainer(cfg, model, tokenizer, task, reward_funcs):
    """TRL's ``GRPOTrainer`` for the experiment, with the same global batch on any number of ranks.

    ``to_trl_config`` gives one process ``num_prompts x num_generations`` completions a step;
    on N ranks each gets 1/N of them, so a step still sees ``num_prompts`` prompts. The task's
    own grader rides along at weight 0, so the log has ``accuracy`` as ``train_grpo``'s has.
    """
    import torch
    import trl

    from qwqlab.grpo import task_reward, to_trl_config, trl_dataset

    g = cfg.grpo
    rank, size = world()
    if g.num_prompts % size:
        raise ValueError(f"num_prompts={g.num_prompts} must be a multiple of the {size} processes, so each rank "
                         "gets whole groups of num_generations completions")
    if g.num_threads:
        torch.set_num_threads(max(1, g.num_threads // size))  # the ranks share the machine's cores
    grader = task_reward(task)
    funcs = list(reward_funcs) + [grader]
    weights = list(g.reward_weights or [1.0] * len(reward_funcs)) + [0.0]
    args = to_trl_config(g, str(Path(cfg.out) / "trl"), reward_weights=weights,
                         per_device_train_batch_size=g.num_prompts * g.num_generations // size)
    dataset = trl_dataset(task, tokenizer, max(g.steps * g.num_prompts, g.num_prompts))
    model = add_lora_for_trl(model, g)
    trainer = trl.GRPOTrainer(model=model, reward_funcs=funcs, args=args, train_dataset=dataset,
                              processing_class=tokenizer)
    trainer.add_callback(_TRLLog(Path(cfg.out) / "log.jsonl", grader.__name__, is_main=rank == 0))
    return trainer


def add_lora_for_trl(model, grpo_config):
    """The model with LoRA adapters when ``use_lora`` (qwqlab's own ``add_lora``), else unchanged."""
    if not grpo_config.use_lora:
        return model
    from qwqlab.grpo import add_lora
    return add_lora(model, grpo_config)


def trl_row(logs: dict, step: int, grader_name: str, elapsed: float, seconds: float) -> dict:
    """One of TRL's log dicts as a row with ``train_grpo``'s columns (NaN where TRL has no such number)."""
    row = {c: math.nan for c in LOG_COLUMNS}
    row.update(step=step, seconds=seconds, elapsed_seconds=elapsed)
    for ours, theirs in TRL_LOG_KEYS.items():
        if theirs in logs:
            row[ours] = float(logs[theirs])
    row["accuracy"] = float(logs.get(f"rewards/{grader_name}/mean", math.nan))
    for key, value in logs.items():
        if key.startswith("rewards/") and key.endswith("/mean") and key != f"rewards/{grader_name}/mean":
            row[f"reward/{key[len('rewards/'):-len('/mean')]}"] = float(value)
    return row


def _trl_callback_base():
    from transformers import TrainerCallback
    return TrainerCallback


class _TRLLog(_trl_callback_base()):
    """Appends one ``train_grpo``-style row per TRL training step to a .jsonl (main process only)."""

    def __init__(self, path: Path, grader_name: str, is_main: bool):
        self.path, self.grader_name, self.is_main = path, grader_name, is_main
        self.t_last = self.t_start = time.perf_counter()
        if is_main and path.exists():
            path.unlink()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not self.is_main or not logs or "reward" not in logs:
            return
        now = time.perf_counter()
        row = trl_row(logs, state.global_step, self.grader_name, now - self.t_start, now - self.t_last)
        self.t_last = now
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
