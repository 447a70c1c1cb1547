"""Will a training run fit, per rank? ``qwqlab plan CONFIG`` counts what each GPU holds, before anything loads.

One rank of ``qwqlab train CONFIG --engine trl`` launched with the experiment's Accelerate file
(``accelerate:``) holds, in bytes:

- **weights** at their bits: ``qwqlab.models.estimate_memory`` (bitsandbytes' real storage,
  within 3% of measured footprints); under DeepSpeed ZeRO-3, 1/N of them plus the layers
  being gathered.
- **trainable state**: LoRA adapters (fp32) or every weight (bf16 training keeps an fp32
  master copy), their gradients and AdamW's two moments (fp32); ZeRO-3 shards all of it.
- **reference model** when ``beta > 0``: none with LoRA (the base with adapters off, as TRL
  does), else a second copy of the weights.
- **activations** of one micro-batch (``micro_batch_size`` sequences of prompt + completion
  tokens): per token and layer, the tensors autograd keeps for a Qwen2 block
  (``activation_elements``), or with activation checkpointing only each block's input plus one
  block recomputed; and the completion logits TRL turns into log-probs (``logit_bytes``).
  ``tests/test_plan.py`` checks both against peaks measured on a CPU for small cuts.
- **generation**: vLLM colocated takes ``vllm_gpu_memory_utilization`` of the GPU (with sleep
  mode it releases its weights and KV cache while the trainer steps, so the two phases are
  counted apart); without vLLM, transformers' ``generate`` needs the KV cache of the rank's
  whole generation batch.
- **CUDA context and allocator slack**: ``RUNTIME_ALLOWANCE_GIB``, an assumption, not a measurement.

The verdict compares the peak with the device (``--gpu-gib``, default 79.6 GiB, what an
80 GB H100/A100 reports) and names the knob to turn when it does not fit.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from qwqlab.paths import REPO_ROOT

GIB = 2**30
#: What an "80 GB" H100/A100 reports as total memory (81,559 MiB).
GPU_80GB_GIB = 81559 / 1024
#: CUDA context, NCCL buffers and the caching allocator's fragmentation: an allowance, not measured.
RUNTIME_ALLOWANCE_GIB = 3.0
#: A sleeping vLLM engine still holds some memory (CUDA graphs, its own context): an allowance.
VLLM_ASLEEP_GIB = 1.0
#: Prompt tokens when the file does not bound them (trl.vllm_max_model_length - max_new_tokens does).
DEFAULT_PROMPT_TOKENS = 1024


def activation_elements(h: int, kv: int, inter: int) -> int:
    """Elements autograd keeps per token for one Qwen2 decoder block (no checkpointing), trained
    in full or with LoRA on every linear layer (a LoRA layer keeps its input as a trained one does).

    MLP: gate, up, SiLU(gate) and their product (``4 x intermediate``); attention and the two
    norms: their inputs and outputs, q, k, v and the rotated q and k (``6 x hidden + 3 x kv``).
    Measured on a CPU (fp32, SDPA, a 4- and an 8-block cut, tests/test_plan.py): 5,030 elements
    per token and block at hidden 256, kv 128, intermediate 768, where this counts 4,992.
    """
    return 4 * inter + 6 * h + 3 * kv


def logit_bytes(dtype_bytes: int, sequences: int, positions: int, vocab: int) -> int:
    """Bytes for TRL's completion log-probs: four logits-sized tensors in the training dtype (the
    logits, their tempered copy, the softmax and the gradient of the backward), plus, in bf16, one
    sequence's fp32 log-softmax (TRL's ``selective_log_softmax`` goes row by row). Measured on a
    CPU in fp32: 16.3 bytes per position and vocabulary entry with the output head trained, 12.0
    with it frozen."""
    return 4 * dtype_bytes * sequences * positions * vocab + (4 * positions * vocab if dtype_bytes < 4 else 0)


@dataclass
class Launch:
    """What the Accelerate file says about the ranks: how many, and the DeepSpeed ZeRO stage (0: DDP)."""
    num_processes: int = 1
    zero_stage: int = 0
    source: str = "one process (no accelerate: file)"


def read_launch(path) -> Launch:
    """``num_processes`` and the ZeRO stage of an Accelerate config (and its DeepSpeed file)."""
    import yaml

    if path is None:
        return Launch()
    p = repo_path(path)
    acc = yaml.safe_load(p.read_text()) or {}
    stage = 0
    if acc.get("distributed_type") == "DEEPSPEED":
        ds = acc.get("deepspeed_config") or {}
        if ds.get("deepspeed_config_file"):
            stage = int(json.loads(repo_path(ds["deepspeed_config_file"]).read_text())
                        .get("zero_optimization", {}).get("stage", 0))
        else:
            stage = int(ds.get("zero_stage", 0))
    return Launch(int(acc.get("num_processes", 1)), stage, str(path))


def repo_path(path) -> Path:
    p = Path(path)
    return p if p.is_absolute() or p.exists() else REPO_ROOT / p


@dataclass
class Plan:
    """Per-rank memory of one training configuration, in GiB, and the verdict."""
    config: str
    rows: dict = field(default_factory=dict)      # component -> GiB during the training step
    generation: dict = field(default_factory=dict)  # component -> GiB while generating (sleep mode only)
    sync: dict = field(default_factory=dict)      # component -> GiB while weights are pushed to vLLM (ZeRO-3 + LoRA)
    notes: list = field(default_factory=list)
    gpu_gib: float = GPU_80GB_GIB
    knobs: dict = field(default_factory=dict)     # component -> the setting that shrinks it

    @property
    def peak_gib(self) -> float:
        return max(sum(self.rows.values()), sum(self.generation.values()), sum(self.sync.values()))

    @property
    def fits(self) -> bool:
        return self.peak_gib <= self.gpu_gib

    def biggest(self) -> str:
        return max(self.rows, key=lambda k: self.rows[k] if k in self.knobs else -1)

    def verdict(self) -> str:
        if self.fits:
            return (f"fits: {self.peak_gib:.1f} GiB of {self.gpu_gib:.1f} GiB per rank "
                    f"({self.gpu_gib - self.peak_gib:.1f} GiB spare)")
        k = self.biggest()
        return (f"does not fit: {self.peak_gib:.1f} GiB > {self.gpu_gib:.1f} GiB per rank; the largest part is "
                f"{k} ({self.rows[k]:.1f} GiB): {self.knobs[k]}")

    def table(self) -> str:
        lines = [f"{self.config}: memory per rank (GiB)"]
        lines += [f"  {k:44s} {v:8.2f}" for k, v in self.rows.items()]
        lines.append(f"  {'training step, total':44s} {sum(self.rows.values()):8.2f}")
        if self.generation:
            lines += [f"  generating: {k:32s} {v:8.2f}" for k, v in self.generation.items()]
            lines.append(f"  {'generating, total':44s} {sum(self.generation.values()):8.2f}")
        if self.sync:
            lines += [f"  weight sync: {k:31s} {v:8.2f}" for k, v in self.sync.items()]
            lines.append(f"  {'weight sync, total':44s} {sum(self.sync.values()):8.2f}")
        lines += [f"  note: {n}" for n in self.notes]
        lines.append(self.verdict())
        return "\n".join(lines)


class PlanError(RuntimeError):
    """A configuration whose plan does not fit the device; the message names the knob."""


def lora_parameters(cfg: dict, r: int) -> int:
    """LoRA's A and B over every linear layer of the decoder blocks ('all-linear' leaves the head out)."""
    h, layers = cfg["hidden_size"], cfg["num_hidden_layers"]
    heads = cfg["num_attention_heads"]
    kv_heads = cfg.get("num_key_value_heads") or heads
    d = cfg.get("head_dim") or h // heads
    inter = cfg["intermediate_size"]
    shapes = [(h, heads * d), (h, kv_heads * d), (h, kv_heads * d), (heads * d, h), (h, inter), (h, inter),
              (inter, h)]
    return layers * sum(r * (i + o) for i, o in shapes)


def activation_bytes(cfg: dict, sequences: int, tokens: int, completion_tokens: int, dtype_bytes: int,
                     checkpointing: bool) -> tuple[int, int]:
    """``(decoder blocks, logits)`` bytes autograd holds for one micro-batch's forward and backward."""
    h, layers = cfg["hidden_size"], cfg["num_hidden_layers"]
    heads = cfg["num_attention_heads"]
    kv = (cfg.get("num_key_value_heads") or heads) * (cfg.get("head_dim") or h // heads)
    per_block = activation_elements(h, kv, cfg["intermediate_size"]) * dtype_bytes * sequences * tokens
    if checkpointing:  # each block's input is kept; one block at a time is recomputed in full
        blocks = layers * h * dtype_bytes * sequences * tokens + per_block
    else:
        blocks = layers * per_block
    logits = logit_bytes(dtype_bytes, sequences, completion_tokens + 1, cfg["vocab_size"])
    return blocks, logits


def plan(cfg, gpu_gib: float = GPU_80GB_GIB, world_size: int | None = None, where: str = "config") -> Plan:
    """The per-rank memory of ``qwqlab train`` for a ``TrainConfig`` (see the module docstring)."""
    from qwqlab.models import architecture, count_parameters, estimate_memory
    from qwqlab.trl_bridge import CHECKPOINTING_KEYS, micro_batching

    g, trl = cfg.grpo, dict(cfg.trl)
    launch = read_launch(cfg.accelerate)
    n = world_size or launch.num_processes
    shape = architecture(cfg.model)
    bf16 = bool(trl.get("bf16", False)) or cfg.bits in (4, 8)
    dtype_bytes = 2 if bf16 else 4
    zero3 = launch.zero_stage == 3 and n > 1
    out = Plan(where, gpu_gib=gpu_gib)
    out.notes.append(f"{n} rank(s) from {launch.source}" + (", DeepSpeed ZeRO-3" if zero3 else ""))

    weights = estimate_memory(cfg.model, bits=cfg.bits or (16 if bf16 else 32), context_tokens=0,
                              overhead_fraction=0).weights_bytes
    params = count_parameters(cfg.model)
    if zero3:  # each rank keeps 1/N; the layer being computed is gathered whole
        layer = weights / shape["num_hidden_layers"]
        out.rows["weights (1/N shard + 2 gathered layers)"] = (weights / n + 2 * layer) / GIB
    else:
        out.rows[f"weights ({cfg.bits or 8 * dtype_bytes}-bit)"] = weights / GIB
    out.knobs[next(iter(out.rows))] = "bits: 4 with grpo.use_lora, or DeepSpeed ZeRO-3 (accelerate:)"

    if g.use_lora:
        trainable = lora_parameters(shape, g.lora_r)
        state = trainable * (4 + 4 + 8)  # fp32 adapters, gradients, AdamW moments
        label = f"LoRA r={g.lora_r} ({trainable / 1e6:.0f}M): weights, grads, AdamW"
    else:
        trainable = params
        # bf16 training: bf16 gradients, fp32 master copy (ZeRO/Accelerate mixed precision), AdamW moments
        state = trainable * ((dtype_bytes + 4 + 8) if bf16 else (4 + 8))
        label = f"full fine-tune ({trainable / 1e9:.2f}B): grads, master copy, AdamW"
    out.rows[label] = state / (n if zero3 else 1) / GIB
    out.knobs[label] = "grpo.use_lora: true, or DeepSpeed ZeRO-3 (accelerate:) to shard it"
    label_state = label

    if g.beta > 0 and not g.use_lora:
        out.rows["reference model (beta > 0)"] = (weights / n if zero3 else weights) / GIB
        out.knobs["reference model (beta > 0)"] = "grpo.beta: 0 (no reference model), or grpo.use_lora: true"

    vllm_len = trl.get("vllm_max_model_length")
    prompt = vllm_len - g.max_new_tokens if vllm_len else DEFAULT_PROMPT_TOKENS
    if not vllm_len:
        out.notes.append(f"prompts counted as {DEFAULT_PROMPT_TOKENS} tokens (set trl.vllm_max_model_length "
                         "to bound prompt + completion)")
    tokens = prompt + g.max_new_tokens
    micro, accumulation = micro_batching(g, n)
    checkpointing = any(bool(trl.get(k)) for k in CHECKPOINTING_KEYS)
    blocks, logits = activation_bytes(shape, micro, tokens, g.max_new_tokens, dtype_bytes, checkpointing)
    act = f"activations: {micro} x {tokens} tokens" + (", checkpointed" if checkpointing else "")
    out.rows[act] = blocks / GIB
    out.knobs[act] = ("grpo.micro_batch_size (smaller)" + ("" if checkpointing else
                      ", or trl.gradient_checkpointing: true"))
    lg = f"completion logits -> log-probs: {micro} x {g.max_new_tokens + 1} x {shape['vocab_size']}"
    out.rows[lg] = logits / GIB
    out.knobs[lg] = "grpo.micro_batch_size (smaller)"
    out.notes.append(f"{micro} completion(s) per micro-batch x {accumulation} accumulation step(s) x {n} rank(s) "
                     f"= {micro * accumulation * n} = num_prompts x num_generations")

    kv_token = estimate_memory(cfg.model, bits=16, context_tokens=1, overhead_fraction=0).kv_cache_bytes
    if trl.get("use_vllm"):
        mode = trl.get("vllm_mode", "server")
        if mode == "colocate":
            util = float(trl.get("vllm_gpu_memory_utilization", 0.3))
            share = util * gpu_gib
            tp = int(trl.get("vllm_tensor_parallel_size", 1))
            vllm_weights = estimate_memory(cfg.model, bits=16, context_tokens=0,
                                           overhead_fraction=0).weights_bytes / tp / GIB
            kv_room = share - vllm_weights - RUNTIME_ALLOWANCE_GIB / 2
            need = (vllm_len or tokens) * kv_token / tp / GIB
            if kv_room < need:
                out.rows["vLLM share: no room for one sequence's KV cache"] = float("inf")
                out.knobs["vLLM share: no room for one sequence's KV cache"] = (
                    f"trl.vllm_gpu_memory_utilization (its {share:.1f} GiB hold {vllm_weights:.1f} GiB of bf16 "
                    f"weights per GPU at tensor parallel {tp}; one {vllm_len or tokens}-token sequence needs "
                    f"{need:.2f} GiB of KV cache), or trl.vllm_tensor_parallel_size")
            out.notes.append(f"vLLM colocate: {util:.2f} x {gpu_gib:.1f} GiB = {share:.1f} GiB, of which bf16 "
                             f"weights {vllm_weights:.1f} GiB (tensor parallel {tp}), KV cache room "
                             f"{max(kv_room, 0):.1f} GiB = {int(max(kv_room, 0) * GIB / (kv_token / tp)):,} tokens")
            label = f"vLLM colocated ({util:.2f} of the GPU)"
            if trl.get("vllm_enable_sleep_mode"):
                static = {k: v for k, v in out.rows.items() if not k.startswith(("activations", "completion"))}
                out.generation = {**static, label: share, "CUDA context, allocator slack": RUNTIME_ALLOWANCE_GIB}
                out.rows["vLLM asleep while training (allowance)"] = VLLM_ASLEEP_GIB
                out.notes.append("vLLM sleep mode: its weights and KV cache are freed while the trainer steps")
            else:
                out.rows[label] = share
                out.knobs[label] = "trl.vllm_gpu_memory_utilization (smaller), or trl.vllm_enable_sleep_mode: true"
        else:
            out.notes.append("vLLM server mode: generation runs on other GPUs (trl vllm-serve), none here")
        if g.use_lora and zero3:
            # TRL gathers every parameter at once to merge the adapters before pushing weights to vLLM
            # (trl/generation/vllm_generation.py, _iter_named_params); activations are gone by then.
            out.sync = {"all weights gathered (LoRA merge)": weights / GIB,
                        label_state: out.rows[label_state], "CUDA context, allocator slack": RUNTIME_ALLOWANCE_GIB}
    else:
        gen_rows = micro * accumulation
        label = f"generate(): KV cache, {gen_rows} x {tokens} tokens"
        out.rows[label] = gen_rows * tokens * kv_token / GIB
        out.knobs[label] = "trl.use_vllm: true, or fewer completions per rank (num_prompts / processes)"
    out.rows["CUDA context, allocator slack (allowance)"] = RUNTIME_ALLOWANCE_GIB
    return out


def check_fits(cfg, where: str, gpu_gib: float | None = None) -> Plan | None:
    """Refuse (``PlanError``) a config whose plan exceeds the device, before anything loads.

    The device is ``gpu_gib``, else the visible CUDA GPU's memory; on a machine without CUDA
    nothing is checked (a CPU run's memory is the machine's, not a GPU's), and ``None`` is returned.
    """
    if gpu_gib is None:
        import torch
        if not torch.cuda.is_available():
            return None
        gpu_gib = torch.cuda.get_device_properties(0).total_memory / GIB
    p = plan(cfg, gpu_gib=gpu_gib, where=where)
    if not p.fits:
        raise PlanError(f"{where}: {p.verdict()}. See `qwqlab plan {where}`.")
    return p
