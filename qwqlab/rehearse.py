"""A CPU rehearsal of a GPU training file: the same file, a tiny random model of the same family, 2 steps.

``qwqlab train CONFIG --rehearse`` runs what the GPU run would run, small: the experiment file
with its model swapped for a randomly initialised model of the same architecture family
(qwq-nano's tokenizer and sizes), lengths and batch shrunk, on 2 CPU processes (torchrun, gloo)
through the same ``qwqlab.launch`` path: LoRA (on a 4-bit base where the file says ``bits: 4``),
activation checkpointing as the file sets it, micro-batches with gradient accumulation, a
checkpoint after step 1, and a second launch that resumes from it to step 2.

A ZeRO-3 file is rehearsed under DeepSpeed ZeRO-3 (its own DeepSpeed file, on DeepSpeed's CPU
accelerator over gloo) when ``deepspeed`` is installed. What it cannot rehearse here, it says: vLLM
(CUDA only; TRL's own ``generate`` samples instead), bf16 (off on a CPU), and ZeRO-3 without deepspeed.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

#: The file's settings a CPU cannot run, with why.
CPU_DROPS = {"use_vllm": "vLLM runs on CUDA GPUs only; TRL's generate() samples instead",
             "vllm_mode": "no vLLM", "vllm_tensor_parallel_size": "no vLLM", "vllm_gpu_memory_utilization": "no vLLM",
             "vllm_max_model_length": "no vLLM", "vllm_enable_sleep_mode": "no vLLM", "vllm_server_host": "no vLLM",
             "vllm_server_port": "no vLLM", "vllm_server_base_url": "no vLLM",
             "bf16": "bf16 autocast is off on a CPU (slow there, see lab notes)"}


def tiny_model(model: str, folder) -> str:
    """A random model of ``model``'s architecture family (its config's ``model_type``) at qwq-nano's
    sizes and with qwq-nano's tokenizer, saved in ``folder``; returns the folder."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

    from qwqlab.models import architecture
    from qwqlab.paths import nano_dir

    folder = Path(folder)
    family = architecture(model)
    nano = json.loads((nano_dir() / "config.json").read_text())
    keep = {k: nano[k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                                 "num_key_value_heads", "vocab_size", "pad_token_id", "eos_token_id",
                                 "max_position_embeddings")}
    config = AutoConfig.for_model(family.get("model_type", "qwen2"), **keep,
                                  tie_word_embeddings=family.get("tie_word_embeddings", False))
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    PreTrainedTokenizerFast.from_pretrained(nano_dir()).save_pretrained(folder)  # keeps its pre-tokenizer
    return str(folder)


def rehearsal_config(cfg, folder, steps: int = 2):
    """``cfg`` shrunk for 2 CPU processes: tiny model in ``folder``, 2 prompts x 4 completions of at
    most 32 tokens, micro-batches of 2 (so 2 accumulation steps a rank), a checkpoint every step;
    the objective's other knobs (loss, estimator, LoRA, bits, checkpointing) as the file has them."""
    folder = Path(folder)
    grpo = replace(cfg.grpo, num_prompts=2, num_generations=4, max_new_tokens=32, micro_batch_size=2, steps=steps,
                   checkpoint_every=1, keep_checkpoints=2, progress=False, num_threads=2,
                   reward_weights=cfg.grpo.reward_weights)
    trl = {k: v for k, v in cfg.trl.items() if k not in CPU_DROPS}
    zero3 = _zero3_file(cfg)
    if zero3 is not None and _have_deepspeed():  # ZeRO-3 over gloo: DeepSpeed's CPU accelerator runs it
        trl["deepspeed"] = str(zero3)
    rewards = [replace(r, params={**r.params, **({"max_completion_len": 32, "soft_punish_cache": 8}
                                                 if r.name == "soft_overlong" else {})}) for r in cfg.rewards]
    task, task_args = cfg.task, cfg.task_args
    if task_args.get("path") and not Path(task_args["path"]).exists():  # the GPU node's data: rehearse on sums
        task, task_args = "arithmetic", {"split": "train"}
    return replace(cfg, model=str(folder / "model"), grpo=grpo, trl=trl, rewards=rewards, task=task,
                   task_args=task_args, out=str(folder / "run"))


def _zero3_file(cfg):
    """The DeepSpeed file of the experiment's Accelerate launch when it is ZeRO-3, else None."""
    import yaml

    from qwqlab.plan import repo_path, read_launch

    if read_launch(cfg.accelerate).zero_stage != 3:
        return None
    acc = yaml.safe_load(repo_path(cfg.accelerate).read_text())
    return repo_path(acc["deepspeed_config"]["deepspeed_config_file"])


def _have_deepspeed() -> bool:
    import importlib.util
    return importlib.util.find_spec("deepspeed") is not None


def dropped(cfg) -> dict:
    """The file's settings the rehearsal leaves out, with why (also ZeRO-3 without deepspeed)."""
    out = {k: CPU_DROPS[k] for k in cfg.trl if k in CPU_DROPS}
    if _zero3_file(cfg) is not None and not _have_deepspeed():
        out["deepspeed"] = ("ZeRO-3 not rehearsed: deepspeed is not installed here (`pip install 'qwqlab[deepspeed]'`); "
                            "DDP over gloo instead")
    return out


def rehearse(config_path, folder, nproc: int = 2, master_port: int = 29561, timeout: float = 900) -> dict:
    """Rehearse ``config_path`` in ``folder``: step 1 on ``nproc`` processes, then a second launch that
    resumes from its checkpoint to step 2. Returns what ran and what was left out."""
    import yaml

    from qwqlab.config import load_train_config

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = load_train_config(config_path)
    tiny_model(cfg.model, folder / "model")
    phases = []
    for steps, extra in ((1, []), (2, ["--resume"])):
        small = rehearsal_config(cfg, folder, steps=steps)
        path = folder / f"rehearsal-{steps}.yaml"
        path.write_text(yaml.safe_dump(_as_file(small)))
        cmd = [sys.executable, "-m", "qwqlab", "train", str(path), "--engine", "trl", "--nproc-per-node", str(nproc),
               "--master-port", str(master_port + steps), *extra]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=dict(os.environ))
        phases.append({"steps": steps, "returncode": proc.returncode, "stderr_tail": proc.stderr[-3000:]})
        if proc.returncode:
            break
    return {"config": str(config_path), "phases": phases, "dropped": dropped(cfg), "out": str(folder / "run")}


def _as_file(cfg) -> dict:
    """A ``TrainConfig`` as the mapping an experiment file holds (no ``accelerate:``: torchrun launches it)."""
    from dataclasses import fields

    grpo = {f.name: getattr(cfg.grpo, f.name) for f in fields(cfg.grpo)}
    for k in ("reward_weights", "log_file", "checkpoint_dir", "resume"):
        grpo.pop(k)  # the weights ride on rewards:; the rest qwqlab.launch sets
    return {"model": cfg.model, "bits": cfg.bits, "task": cfg.task, "task_args": dict(cfg.task_args),
            "rewards": [{"name": r.name, "weight": r.weight, **r.params} for r in cfg.rewards], "grpo": grpo,
            "trl": dict(cfg.trl), "out": cfg.out}
