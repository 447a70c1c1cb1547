"""Run an experiment file on the lab's loop or on the field's engines (TRL + torchrun/Accelerate, vLLM).

``train(config, engine="qwqlab")`` is ``qwqlab.grpo.train_grpo`` in one process.
``train(config, engine="trl")`` builds TRL's ``GRPOTrainer`` from ``qwqlab.trl_bridge.to_trl_config``
with qwqlab's own reward functions, and writes its per-step log in ``train_grpo``'s columns
(``LOG_COLUMNS``), so notebook 04's plots and ``qwqlab.lengths.length_over_steps`` read either.
Under ``torchrun --nproc_per_node N`` (or ``accelerate launch`` on GPUs) each process is one
data-parallel rank: rank 0 writes the log, every rank writes ``weights-rank<R>.sha256``, a
digest of its trainable weights, which must agree across ranks after training.

Measured on 2 CPU cores: ``torchrun --nproc_per_node 2`` starts two gloo ranks;
``accelerate launch --cpu --num_processes 2`` started one only (accelerate 1.15 and 1.16: no RANK set).
"""
from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
import time
from pathlib import Path

#: The per-step log's columns, as ``train_grpo`` writes them (per reward, ``PER_REWARD`` columns come after).
LOG_COLUMNS = ("step", "reward_mean", "reward_std", "accuracy", "format_rate", "completion_tokens_mean",
               "think_tokens_mean", "truncation_rate", "kl", "clip_fraction", "zero_spread_share", "entropy",
               "trained_share", "loss", "grad_norm", "unjudged_share", "learning_rate", "generation_seconds",
               "seconds", "elapsed_seconds", "skipped_updates")
#: Prefixes of the columns written once per reward: its mean, and how many of its values could not be judged.
PER_REWARD = ("reward/", "unjudged/")

#: train_grpo's column <- TRL's logged key. The rest TRL does not report: NaN in the log.
TRL_LOG_KEYS = {"reward_mean": "reward", "reward_std": "reward_std", "completion_tokens_mean": "completions/mean_length",
                "truncation_rate": "completions/clipped_ratio", "kl": "kl", "clip_fraction": "clip_ratio/region_mean",
                "zero_spread_share": "frac_reward_zero_std", "entropy": "entropy", "loss": "loss",
                "grad_norm": "grad_norm", "learning_rate": "learning_rate"}


def world() -> tuple[int, int]:
    """``(rank, world_size)`` from the launcher's environment (torchrun and Accelerate set both)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def weights_digest(model) -> str:
    """SHA-256 of the trainable parameters (names, shapes and bytes), to compare ranks.

    Under DDP every rank holds every weight, so the digests must agree; under DeepSpeed ZeRO-3
    each rank holds a shard only, and the digests differ by design.
    """
    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters()):
        if p.requires_grad:
            t = p.detach().cpu().contiguous()
            h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
            h.update(t.view(-1).view(dtype=__import__("torch").uint8).numpy().tobytes())
    return h.hexdigest()


def _load(cfg):
    """The model for this rank: on several CUDA ranks, all of it on the rank's own GPU (LOCAL_RANK);
    under DeepSpeed ZeRO-3 in host memory at the training dtype, for DeepSpeed to shard onto the GPUs."""
    import torch

    from qwqlab.models import load_model

    rank, size = world()
    device, dtype = "auto", None
    if size > 1 and torch.cuda.is_available():
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
        torch.cuda.set_device(device)
        if os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true" and cfg.bits is None:
            # Loaded whole on each GPU first, a 32B model (61 GiB in bf16) would leave no room; in
            # host memory, each rank holds one copy until deepspeed.initialize partitions it.
            device, dtype = "cpu", torch.bfloat16 if cfg.trl.get("bf16") else None
    return load_model(cfg.model, bits=cfg.bits, device=device, dtype=dtype, verbose=rank == 0)


#: trl: settings (prefixes) a resume may change: how memory is spent and where things run, not what is learned.
TRL_MAY_CHANGE = ("activation_checkpointing", "gradient_checkpointing", "vllm_gpu_memory_utilization",
                  "vllm_enable_sleep_mode", "vllm_server_", "vllm_tensor_parallel_size", "report_to", "logging_",
                  "dataloader_", "disable_tqdm")


def run_identity(cfg, engine: str, task, reward_funcs) -> dict:
    """What makes this ``qwqlab train`` run the experiment it is: ``train_grpo``'s ``run_settings``
    plus the model, its bits and the engine (their checkpoints differ), as a resume compares them."""
    from qwqlab.grpo import run_settings

    settings = run_settings(cfg.grpo, task, reward_funcs)
    settings.update(model=cfg.model, bits=cfg.bits, engine=engine)
    trl = {k: v for k, v in cfg.trl.items() if not k.startswith(TRL_MAY_CHANGE)}
    # the rest of trl: is part of the experiment (bf16, use_vllm, ...); always a key, so adding one is a change
    settings["trl"] = json.loads(json.dumps(trl, sort_keys=True, default=str))
    return settings


def _claim_out(out: Path, settings: dict, resume: bool) -> None:
    """Refuse to start over a run's log and checkpoints; on ``resume``, refuse another experiment.

    ``out/run.json`` holds the settings of the run that owns ``out``; a resume checks them with
    ``train_grpo``'s rules (``qwqlab.runs.check_resumable``: only speed and bookkeeping knobs
    may change). Nothing in ``out`` is deleted.
    """
    from qwqlab.grpo import RESUME_MAY_CHANGE
    from qwqlab.runs import check_resumable

    held = [p.name for p in (out / "log.jsonl", out / "checkpoints", out / "trl", out / "run.json") if p.exists()]
    if not resume and held:
        raise RuntimeError(f"{out} already holds a run ({', '.join(held)}); pass --resume to continue it from its "
                           "last checkpoint, or set another out: in the experiment file (nothing was deleted)")
    if (out / "run.json").exists():
        check_resumable(out, settings, RESUME_MAY_CHANGE)
    else:
        (out / "run.json").write_text(json.dumps({"settings": settings}, indent=2))


def train(cfg, engine: str = "qwqlab", resume: bool = False) -> dict:
    """Run a ``qwqlab.config.TrainConfig``; returns a summary (also written to ``out/summary-rank<R>.json``).

    Both engines save checkpoints (trainable weights, optimizer and RNG state, the log) every
    ``grpo.checkpoint_every`` steps and at the end: ``train_grpo``'s in ``out/checkpoints``,
    TRL's (adapters or full weights, Trainer state) in ``out/trl/checkpoint-N``. With ``resume``
    the run continues from the last complete one; ``out/log.jsonl`` keeps its rows up to there
    and the later steps are appended.
    """
    if engine not in ("qwqlab", "trl"):
        raise ValueError(f"engine must be 'qwqlab' or 'trl', not {engine!r}")
    rank, size = world()
    if engine == "qwqlab" and size > 1:
        raise RuntimeError("engine='qwqlab' is qwqlab's single-process loop; launch it without torchrun, or use "
                           "--engine trl for several processes")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    task = cfg.build_task()
    reward_funcs, _ = cfg.reward_funcs()
    if rank == 0:  # a refusal here ends rank 0, and torchrun then stops the other ranks
        _claim_out(out, run_identity(cfg, engine, task, reward_funcs), resume)
    model, tok = _load(cfg)
    initial = weights_digest(model)
    if engine == "qwqlab":
        from dataclasses import replace

        from qwqlab.grpo import train_grpo
        grpo = replace(cfg.grpo, log_file=str(out / "log.jsonl"), checkpoint_dir=str(out / "checkpoints"),
                       resume=resume)
        log = train_grpo(model, tok, task, reward_funcs, grpo)
        steps, trained = len(log), model
    else:
        from qwqlab.runs import latest_trainer_checkpoint, trim_log

        trainer = build_trl_trainer(cfg, model, tok, task, reward_funcs)
        last = latest_trainer_checkpoint(trainer.args.output_dir, size) if resume else None
        if last is not None and rank == 0:
            trim_log(out / "log.jsonl", int(last.name.split("-")[-1]))
        _barrier()
        trainer.train(resume_from_checkpoint=str(last) if last is not None else None)
        steps, trained = trainer.state.global_step, trainer.model
    digest = weights_digest(trained)
    (out / f"weights-rank{rank}.sha256").write_text(digest + "\n")
    summary = {"engine": engine, "rank": rank, "world_size": size, "steps": steps, "weights_sha256": digest,
               "initial_weights_sha256": initial,
               "seconds": round(time.perf_counter() - t0, 2), "log": str(out / "log.jsonl")}
    (out / f"summary-rank{rank}.json").write_text(json.dumps(summary, indent=2))
    return summary


def _barrier():
    """Wait for every rank (a no-op in one process, or before torch.distributed is set up)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def build_trl_trainer(cfg, model, tokenizer, task, reward_funcs):
    """TRL's ``GRPOTrainer`` for the experiment, with the same global batch on any number of ranks.

    ``to_trl_config`` gives each of N ranks 1/N of the ``num_prompts x num_generations``
    completions, in micro-batches of ``grpo.micro_batch_size``, so a step still sees
    ``num_prompts`` prompts. The task's own grader rides along at weight 0, so the log has
    ``accuracy`` as ``train_grpo``'s has.
    """
    import torch
    import trl

    from qwqlab.config import check_trl_keys
    from qwqlab.rewards import task_reward
    from qwqlab.trl_bridge import to_trl_config, trl_dataset

    check_trl_keys("the experiment file", cfg.trl)
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
    args = to_trl_config(g, str(Path(cfg.out) / "trl"), world_size=size, reward_weights=weights, **cfg.trl)
    dataset = trl_dataset(task, tokenizer, max(g.steps * g.num_prompts, g.num_prompts))
    model = add_lora_for_trl(model, g)
    trainer = trl.GRPOTrainer(model=model, reward_funcs=funcs, args=args, train_dataset=dataset,
                              processing_class=tokenizer)
    trainer.add_callback(_TRLLog(Path(cfg.out) / "log.jsonl", grader.__name__, is_main=rank == 0))
    trainer.add_callback(_SaveAtEnd())
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
    """Appends one ``train_grpo``-style row per TRL training step to a .jsonl (main process only).

    The file is never deleted: a resumed run appends after the rows its checkpoint had seen,
    and its ``elapsed_seconds`` go on from the last of them.
    """

    def __init__(self, path: Path, grader_name: str, is_main: bool):
        self.path, self.grader_name, self.is_main = path, grader_name, is_main
        self.t_last = self.t_start = time.perf_counter()
        self.elapsed_before = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not self.is_main or not logs or "reward" not in logs:
            return
        if self.elapsed_before is None:  # read once, after a resume has trimmed the log
            rows = self.path.read_text().splitlines() if self.path.exists() else []
            self.elapsed_before = json.loads(rows[-1]).get("elapsed_seconds", 0.0) if rows else 0.0
        now = time.perf_counter()
        row = trl_row(logs, state.global_step, self.grader_name, self.elapsed_before + now - self.t_start,
                      now - self.t_last)
        self.t_last = now
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")


class _SaveAtEnd(_trl_callback_base()):
    """A checkpoint after the last step too, whatever ``save_steps`` is (as ``train_grpo`` saves at the end)."""

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= state.max_steps:
            control.should_save = True


# ----------------------------------------------------------------------------- sampling, sharded

def parse_shard(text: str | None) -> tuple[int, int]:
    """``"I/N"`` -> ``(I, N)`` with ``0 <= I < N``; ``None`` -> ``(0, 1)`` (everything)."""
    if text is None:
        return 0, 1
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like I/N (e.g. 0/4), not {text!r}") from None
    if not 0 <= i < n:
        raise ValueError(f"--shard {text}: need 0 <= I < N (shards are numbered from 0)")
    return i, n


def shard_path(out, index: int, count: int) -> Path:
    """Where shard ``index`` of ``count`` writes: ``rollouts.jsonl`` -> ``rollouts.shard-1-of-4.jsonl``."""
    out = Path(out)
    if count == 1:
        return out
    return out.with_name(f"{out.stem}.shard-{index}-of-{count}{out.suffix}")


def sample(cfg, backend: str = "hf", shard: str | None = None, resume: bool = False, progress: bool = True):
    """Run a ``qwqlab.config.SampleConfig`` through ``qwqlab.rollouts.sample``; returns this shard's table.

    Shard ``I/N`` takes problems ``I, I+N, I+2N, ...`` of the task's first ``num_problems``.
    Sampling is keyed per completion (seed, problem, sample index), so the shards together
    are the very table one unsharded run writes. With ``backend="vllm"`` the model is
    ``vllm.LLM(model=..., seed=..., **cfg.vllm)``: ``tensor_parallel_size`` splits the model
    over that many GPUs of one machine; data parallelism is N shards, one per GPU group.
    """
    from qwqlab import rollouts
    from qwqlab.models import load_model, resolve_model_path

    index, count = parse_shard(shard)
    task = cfg.build_task()
    problems = task.problems(cfg.num_problems)[index::count]
    if not problems:
        raise ValueError(f"shard {index}/{count} of {cfg.num_problems} problems is empty; use fewer shards")
    settings = dict(cfg.sampling)
    if backend == "vllm":
        try:
            import vllm
        except ImportError as e:
            raise ImportError("--backend vllm needs vLLM, which runs on CUDA GPUs: `pip install 'qwqlab[vllm]'` "
                              "there, or use --backend hf.") from e
        llm = vllm.LLM(model=resolve_model_path(cfg.model), seed=settings.get("seed", 0) or 0,
                                     **cfg.vllm)
        model, tok = llm, None
    elif backend == "hf":
        if cfg.vllm:
            raise ValueError("the vllm: settings need --backend vllm")
        model, tok = load_model(cfg.model, bits=cfg.bits, verbose=progress)
    elif backend == "openai":  # model: the id the server knows it by; openai: qwqlab.backends.ServerSettings
        from qwqlab.models import load_tokenizer
        model, tok = cfg.model, load_tokenizer(cfg.tokenizer) if cfg.tokenizer else None
    else:
        raise ValueError(f"backend must be 'hf', 'vllm' or 'openai', not {backend!r}")
    out = shard_path(cfg.out, index, count)
    # What this shard must hold when it is done, for read_shards to tell a finished shard from a killed one.
    generations = settings.get("num_generations", inspect.signature(rollouts.sample).parameters["num_generations"].default)
    expected_path(out).parent.mkdir(parents=True, exist_ok=True)
    expected_path(out).write_text(json.dumps({"shard": f"{index}/{count}", "num_problems": cfg.num_problems,
                                              "problems": len(problems), "num_generations": generations,
                                              "rows": len(problems) * generations}))
    return rollouts.sample(model, tok, problems, task, out=out, resume=resume,
                           backend=backend, progress=progress, server=cfg.openai if backend == "openai" else None,
                           model_name=cfg.model if backend == "vllm" else None, **settings)


def expected_path(shard_file) -> Path:
    """Where ``qwqlab sample`` notes what a shard file must hold when done: ``FILE.expected.json``."""
    shard_file = Path(shard_file)
    return shard_file.with_name(shard_file.name + ".expected.json")


def _check_shard(path: Path, rows: list[dict], where: str) -> None:
    """A shard is complete (its expected rows, every problem with all its samples) and of one run."""
    from collections import Counter

    from qwqlab.rollouts import RUN_SETTINGS

    expected = json.loads(expected_path(path).read_text()) if expected_path(path).exists() else None
    if expected is not None and len(rows) != expected["rows"]:
        raise ValueError(f"{where} holds {len(rows)} of its {expected['rows']} rows ({expected['problems']} problems x "
                         f"{expected['num_generations']} samples): it stopped before the end; run it again with "
                         f"--shard {expected['shard']} --resume")
    per_problem = Counter(str(r["problem_id"]) for r in rows)
    for pid, n in per_problem.items():
        want = next((r.get("num_generations") for r in rows if str(r["problem_id"]) == pid), None)
        if want is not None and n != int(want):
            raise ValueError(f"{where}: problem {pid!r} has {n} of its {want} samples: the shard stopped in the middle; "
                             "run it again with --resume")
    for key in RUN_SETTINGS:
        values = {json.dumps(r[key], default=str) for r in rows if key in r}
        if len(values) > 1:
            raise ValueError(f"{where} mixes runs: {key} is {sorted(values)}; a shard must be one run's settings")


def read_shards(out):
    """The table that ``--shard I/N`` runs wrote for ``out``, as one DataFrame (one unsharded file too).

    Checks that all N shards are there, that each is complete (the rows ``qwqlab sample`` noted it
    must hold: its problems x samples; every problem with all its samples), that all shards are
    one run (the same model, weights, seed and sampling settings: ``rollouts.RUN_SETTINGS``), and
    that no (problem, sample) row appears twice; the error names the shard. Rows come in the
    unsharded run's order: shard I's k-th problem is problem ``k x N + I``.
    """
    import re

    from qwqlab.rollouts import RUN_SETTINGS, RolloutStore, to_frame

    out = Path(out)
    pattern = re.compile(re.escape(out.stem) + r"\.shard-(\d+)-of-(\d+)" + re.escape(out.suffix) + "$")
    found = sorted((int(m.group(1)), int(m.group(2)), p) for p in out.parent.glob(f"{out.stem}.shard-*{out.suffix}")
                   if (m := pattern.match(p.name)))
    if not found:
        if out.exists():
            rows = RolloutStore(out).load()
            _check_shard(out, rows, str(out))
            return to_frame(rows)
        raise FileNotFoundError(f"neither {out} nor its shards ({out.stem}.shard-I-of-N{out.suffix}) exist")
    counts = {n for _, n, _ in found}
    if len(counts) > 1:
        raise ValueError(f"{out}: shards of different splits {sorted(counts)} are mixed in {out.parent}")
    (count,) = counts
    missing = sorted(set(range(count)) - {i for i, _, _ in found})
    if missing:
        raise FileNotFoundError(f"{out}: shard(s) {missing} of {count} are missing; run them with --shard I/{count}")
    rows, position, first = [], {}, None
    for index, _, path in found:
        seen: dict[str, int] = {}
        shard_rows = RolloutStore(path).load()
        where = f"shard {index}/{count} ({path.name})"
        _check_shard(path, shard_rows, where)
        settings = {k: shard_rows[0].get(k) for k in RUN_SETTINGS} if shard_rows else None
        if settings is not None:
            if first is None:
                first = (where, settings)
            elif settings != first[1]:
                diff = [f"{k}: {first[1][k]!r} in {first[0]}, {settings[k]!r} here" for k in RUN_SETTINGS
                        if settings[k] != first[1][k]]
                raise ValueError(f"{where} is another run than the other shards ({'; '.join(diff)}); sample it "
                                 "again with the same experiment file")
        for r in shard_rows:
            pid = str(r["problem_id"])
            if pid not in seen:
                seen[pid] = len(seen) * count + index
                position.setdefault(pid, seen[pid])
            rows.append(r)
    keys = [(str(r["problem_id"]), int(r["sample_index"])) for r in rows]
    if len(set(keys)) != len(keys):
        raise ValueError(f"{out}: the shards overlap (a row appears twice); were they run with different N?")
    return to_frame(sorted(rows, key=lambda r: (position[str(r["problem_id"])], int(r["sample_index"]))))
