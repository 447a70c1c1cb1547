"""GRPO and its relatives: advantages, KL estimators, the clipped loss, and a training loop.

The pieces, each a small function tested against a hand-computed case:

- ``compute_advantages``: how a group of ``num_generations`` rewards for one prompt becomes
  one number per completion (GRPO, Dr. GRPO, RLOO, batch-normalised).
- ``kl_estimate``: Schulman's k1, k2, k3 estimators of KL(policy || reference) per token.
- ``clipped_surrogate``: PPO's clipped objective with separate low/high clip (DAPO's
  clip-higher) per token.
- ``aggregate_loss``: per-token losses to one scalar: per token (DAPO), per sequence
  (original GRPO) or by a constant (Dr. GRPO).

Then ``GRPOConfig`` (every knob, checked) and ``train_grpo``, the loop: sample, reward,
advantages, loss, step, with per-step logs, a progress bar, checkpoints and resume, and LoRA
(on a 4-bit model: QLoRA) through peft. ``evaluate_policy`` measures held-out pass@1;
``qwqlab.trl_bridge`` runs the same experiment in TRL's ``GRPOTrainer``; checkpoints and
recorded runs live in ``qwqlab.runs``, the rewards and their weighted sum in ``qwqlab.rewards``,
the log-probs of the completions (plain, prompt shared, prefix tree) in ``qwqlab.logprobs``.

>>> from qwqlab.models import load_model                           # doctest: +SKIP
>>> model, tok = load_model("qwq-nano")  # doctest: +SKIP
>>> log = train_grpo(model, tok, ArithmeticTask(split="train"), config=GRPOConfig(steps=50))  # doctest: +SKIP
"""
from __future__ import annotations

import json
import math
import time
import uuid
import warnings
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

from qwqlab.logprobs import prefix_tree, shared_prefix_logprobs, tree_attention_ok, tree_logprobs, tree_pays
from qwqlab.models import prepare_for_training
from qwqlab.rewards import MAX_ABS_REWARD, reward_name, score_rewards, task_reward
from qwqlab.runs import CheckpointError, check_resumable, latest_checkpoint, load_checkpoint, save_checkpoint, write_log
from qwqlab.validate import check_fields

if TYPE_CHECKING:  # torch is imported where it is used, so that importing qwqlab stays fast
    import torch

ESTIMATORS = ("grpo", "dr_grpo", "rloo", "batch")


def _as_float_array(rewards):
    import numpy as np

    if hasattr(rewards, "detach"):  # a torch tensor
        return rewards.detach().cpu().double().numpy()
    return np.array([np.nan if r is None else float(r) for r in rewards], dtype=float)


def compute_advantages(rewards, num_generations: int, estimator: str = "grpo", eps: float = 1e-4):
    """One advantage per completion from the rewards of groups of ``num_generations`` completions.

    ``rewards`` is prompt-major: the first ``num_generations`` entries belong to the first
    prompt, and so on. With ``r`` a group's rewards, ``mean``/``std`` its mean and sample
    standard deviation (Bessel-corrected, as TRL computes it) and ``n`` its size:

    - ``"grpo"``: ``(r_i - mean) / (std + eps)`` (Shao et al. 2024, DeepSeekMath).
    - ``"dr_grpo"``: ``r_i - mean``; no division by the std, which over-weights groups that
      are almost all right or all wrong (Dr. GRPO, Liu et al. 2025, "Understanding R1-Zero-Like
      Training").
    - ``"rloo"``: ``r_i - mean of the other n-1 rewards`` = ``n/(n-1) * (r_i - mean)``
      (REINFORCE leave-one-out, Ahmadian et al. 2024).
    - ``"batch"``: ``(r_i - mean) / (std of every reward in the batch + eps)``: centred per
      group, scaled by the whole batch (REINFORCE++ style; TRL's ``scale_rewards="batch"``).

    Rewards that are ``None`` (or NaN) mean "cannot be judged": they are left out of the
    group statistics and get advantage 0, so they neither push nor pull the policy. A group
    with fewer than two judged rewards gives 0 to all its members (no baseline to compare to).

    Returns a torch tensor if ``rewards`` is one, else a numpy array of floats.

    >>> compute_advantages([1, 0, 0, 1], num_generations=2, estimator="dr_grpo").tolist()
    [0.5, -0.5, -0.5, 0.5]
    """
    import numpy as np

    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, not {estimator!r}")
    if num_generations < 1:
        raise ValueError(f"num_generations must be >= 1, got {num_generations}")
    r = _as_float_array(rewards)
    if r.size % num_generations:
        raise ValueError(f"got {r.size} rewards, not a multiple of num_generations={num_generations}: "
                         "rewards must come in whole groups, prompt-major")
    groups = r.reshape(-1, num_generations)
    valid = ~np.isnan(groups)
    n = valid.sum(axis=1, keepdims=True)
    filled = np.where(valid, groups, 0.0)
    mean = filled.sum(axis=1, keepdims=True) / np.maximum(n, 1)
    centred = np.where(valid, groups - mean, 0.0)
    if estimator == "grpo":
        std = np.sqrt((centred ** 2).sum(axis=1, keepdims=True) / np.maximum(n - 1, 1))
        adv = centred / (std + eps)
    elif estimator == "dr_grpo":
        adv = centred
    elif estimator == "rloo":
        adv = centred * n / np.maximum(n - 1, 1)
    else:  # batch
        judged = r[~np.isnan(r)]
        std = judged.std(ddof=1) if judged.size > 1 else 0.0
        adv = centred / (std + eps)
    adv = np.where(valid & (n >= 2), adv, 0.0).reshape(-1)
    if hasattr(rewards, "detach"):
        import torch
        return torch.as_tensor(adv, dtype=torch.float32, device=rewards.device)
    return adv


# ----------------------------------------------------------------------------- KL and loss

KL_ESTIMATORS = ("k1", "k2", "k3")
LOSS_AGGREGATIONS = ("token", "sequence", "constant")


def kl_estimate(logp, ref_logp, estimator: str = "k3"):
    """Per-token estimate of KL(policy || reference) from log-probs of tokens sampled from the policy.

    With ``log_r = ref_logp - logp`` (Schulman 2020, "Approximating KL Divergence"):

    - ``"k1"``: ``-log_r``; unbiased, high variance, can be negative.
    - ``"k2"``: ``log_r**2 / 2``; biased, low variance, always >= 0.
    - ``"k3"``: ``exp(log_r) - 1 - log_r``; unbiased and always >= 0 (what GRPO uses).

    >>> import torch
    >>> kl_estimate(torch.tensor([0.0]), torch.tensor([0.0]), "k3").item()
    0.0
    """
    import torch

    if estimator not in KL_ESTIMATORS:
        raise ValueError(f"KL estimator must be one of {KL_ESTIMATORS}, not {estimator!r}")
    log_r = ref_logp - logp
    if estimator == "k1":
        return -log_r
    if estimator == "k2":
        return 0.5 * log_r ** 2
    return torch.exp(log_r) - 1 - log_r


def clipped_surrogate(logp, old_logp, advantages, clip_low: float = 0.2, clip_high: float = 0.28):
    """PPO's clipped surrogate per token, as a loss (negated objective), with separate clip bounds.

    ``ratio = exp(logp - old_logp)``; per token the loss is
    ``-min(ratio * A, clip(ratio, 1 - clip_low, 1 + clip_high) * A)``. A ``clip_high`` above
    ``clip_low`` is DAPO's clip-higher (Yu et al. 2025): it lets unlikely tokens with positive
    advantage grow further, which keeps exploration (entropy) from collapsing.

    Args:
        logp, old_logp: ``(batch, tokens)`` log-probs of the sampled tokens now and when sampled.
        advantages: ``(batch,)`` one advantage per completion, or ``(batch, tokens)``.

    Returns:
        ``(loss, is_clipped)``: per-token losses and a bool mask of tokens whose gradient
        the clip removed (ratio out of range on the side the advantage pushes towards).
    """
    import torch

    adv = advantages if advantages.dim() == logp.dim() else advantages.unsqueeze(-1)
    ratio = torch.exp(logp - old_logp)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1 - clip_low, 1 + clip_high) * adv
    loss = -torch.minimum(unclipped, clipped)
    is_clipped = ((ratio < 1 - clip_low) & (adv < 0)) | ((ratio > 1 + clip_high) & (adv > 0))
    return loss, is_clipped


def aggregate_loss(per_token_loss, mask, aggregation: str = "token", max_tokens: int | None = None):
    """Reduce ``(batch, tokens)`` losses over the completion tokens in ``mask`` to one scalar.

    - ``"token"``: sum over every token of the batch / number of tokens (DAPO, Yu et al. 2025):
      each token weighs the same, so long completions are not diluted.
    - ``"sequence"``: mean over completions of each completion's token mean (original GRPO,
      Shao et al. 2024): a long wrong answer is penalised less per token than a short one,
      the length bias Dr. GRPO points out.
    - ``"constant"``: sum over every token / (batch x ``max_tokens``) (Dr. GRPO, Liu et al.
      2025): an unbiased sum divided by a constant such as ``max_new_tokens``.
    """
    if aggregation not in LOSS_AGGREGATIONS:
        raise ValueError(f"loss aggregation must be one of {LOSS_AGGREGATIONS}, not {aggregation!r}")
    mask = mask.to(per_token_loss.dtype)
    masked = per_token_loss * mask
    if aggregation == "token":
        return masked.sum() / mask.sum().clamp(min=1.0)
    if aggregation == "sequence":
        return (masked.sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    if max_tokens is None or max_tokens <= 0:
        raise ValueError("aggregation='constant' needs max_tokens (e.g. max_new_tokens), a positive number")
    return masked.sum() / (per_token_loss.shape[0] * max_tokens)


def token_weights(advantages, lengths, aggregation: str = "sequence", max_tokens: int | None = None):
    """The weight each token of each completion gets in the policy-gradient loss.

    With per-token loss ``-A_i * x_it``, the weight of token ``t`` of completion ``i`` is
    ``d loss / d x_it``, read off by autograd through ``aggregate_loss`` itself
    (so this shows what the training code really does). Under ``"sequence"`` (GRPO) it is
    ``A_i / (G * |o_i|)``: a long completion's tokens each count less. Under ``"constant"``
    (Dr. GRPO) it is ``A_i / (G * max_tokens)``, the same for every token. Under ``"token"``
    (DAPO) ``A_i / sum_j |o_j|``.

    Returns a list with one per-token weight per completion (every token of a completion
    gets the same weight, in all three schemes).
    """
    import torch

    lengths = [int(n) for n in lengths]
    width = max(max(lengths), 1)
    adv = torch.tensor([float(a) for a in advantages], dtype=torch.float64)
    mask = torch.tensor([[1.0] * n + [0.0] * (width - n) for n in lengths], dtype=torch.float64)
    x = torch.ones(len(lengths), width, dtype=torch.float64, requires_grad=True)
    loss = aggregate_loss(-adv[:, None] * x, mask, aggregation=aggregation, max_tokens=max_tokens)
    loss.backward()
    grad = -x.grad  # weight on the advantage-weighted log-probability, not on the loss
    return [float(grad[i, 0]) if n else 0.0 for i, n in enumerate(lengths)]


# ----------------------------------------------------------------------------- configuration

GROUP_OBJECTIVE, GROUP_SPEED, GROUP_BOOKKEEPING = "objective", "speed", "bookkeeping"


def _knob(group: str, text: str, default=None):
    return field(default=default, metadata={"help": text, "group": group})


def _objective(text: str, default=None):
    return _knob(GROUP_OBJECTIVE, text, default)


def _speed(text: str, default=None):
    return _knob(GROUP_SPEED, text, default)


def _bookkeeping(text: str, default=None):
    return _knob(GROUP_BOOKKEEPING, text, default)


@dataclass
class GRPOConfig:
    """Every knob of ``train_grpo``; the defaults train qwq-nano on 2 CPU cores.

    The knobs come in three groups (``GRPOConfig.knobs(group)``):

    - **objective**: what is learned: the batch each step sees, the loss, the optimizer, LoRA,
      the seed. Two runs that differ here are different experiments (a resume refuses them).
    - **speed**: how the same update is computed (micro-batches, length buckets, threads); the
      update is the same up to float rounding (tested).
    - **bookkeeping**: how long to run, where to log, how often to checkpoint, the progress bar.

    ``GRPOConfig.help()`` prints each field with its help text, group by group.
    """
    # ===== objective =====
    # what one step sees
    num_prompts: int = _objective("Prompts per step; each gets num_generations completions.", 16)
    num_generations: int = _objective("Completions per prompt (G in the GRPO paper); at least 2, "
                                      "since advantages compare completions of the same prompt.", 8)
    max_new_tokens: int = _objective("Longest completion; longer ones are cut and counted as truncated.", 96)
    temperature: float = _objective("Sampling temperature for rollouts (1.0 samples the policy itself).", 1.0)
    top_p: float = _objective("Nucleus sampling for rollouts; 1.0 = off, which keeps log-probs exact.", 1.0)
    top_k: int = _objective("Top-k sampling for rollouts; 0 = off.", 0)
    # the objective
    estimator: str = _objective("Advantage estimator: 'grpo' (group mean/std), 'dr_grpo' (no std), "
                                "'rloo' (leave-one-out) or 'batch' (group mean, batch std).", "grpo")
    loss_aggregation: str = _objective("'token' (DAPO), 'sequence' (original GRPO) or 'constant' "
                                       "(Dr. GRPO: divide by max_new_tokens).", "token")
    beta: float = _objective("KL penalty weight against a frozen reference model; 0 = no reference "
                             "model (DAPO, Dr. GRPO).", 0.0)
    kl_estimator: str = _objective("KL estimator when beta > 0: 'k1', 'k2' or 'k3' (Schulman). As a loss term on "
                                   "samples from the policy, k1 (log ratio) has zero expected gradient: it "
                                   "reports the KL but does not pull towards the reference; use k3 or k2.", "k3")
    clip_low: float = _objective("Lower clip: ratio may fall to 1 - clip_low.", 0.2)
    clip_high: float = _objective("Upper clip: ratio may rise to 1 + clip_high (> clip_low is DAPO's "
                                  "clip-higher).", 0.28)
    num_iterations: int = _objective("Updates per batch of rollouts (mu in the GRPO paper). 1 = on-policy: "
                                     "the ratio is 1, so no old log-probs are computed.", 1)
    scale_eps: float = _objective("Added to the std in the 'grpo'/'batch' advantage.", 1e-4)
    reward_weights: list | None = _objective("One weight per reward function (default all 1).", None)
    # the optimizer
    learning_rate: float = _objective("AdamW learning rate.", 2e-4)
    warmup_steps: int = _objective("Linear learning-rate warm-up steps.", 0)
    weight_decay: float = _objective("AdamW weight decay.", 0.0)
    max_grad_norm: float | None = _objective("Clip the gradient norm to this; None = no clipping.", 1.0)
    # LoRA (peft), e.g. on a 4-bit model on a GPU
    use_lora: bool = _objective("Train LoRA adapters (peft) instead of all weights; on a 4-bit model "
                                "(load_model(..., bits=4)) this is QLoRA.", False)
    lora_r: int = _objective("LoRA rank.", 8)
    lora_alpha: int = _objective("LoRA scaling alpha.", 16)
    lora_dropout: float = _objective("LoRA dropout.", 0.0)
    lora_target_modules: str | list = _objective("Modules LoRA adapts ('all-linear' or a list of names).",
                                                 "all-linear")
    # randomness
    seed: int = _objective("Seed for the problem order and sampling.", 0)
    # ===== speed =====
    # speed and memory: the same update, computed in other pieces
    micro_batch_size: int | None = _speed("Completions per forward/backward (gradient accumulation) "
                                          "to bound memory on a GPU; None = split the batch into "
                                          "length_buckets groups instead. The update is the same either way.",
                                          None)
    length_buckets: int = _speed("Run the forward/backward in at most this many groups, cut where they "
                                 "save the most padding (completions sorted by length, or prompts by the "
                                 "size of their samples' prefix tree; 1 = one group); used when "
                                 "micro_batch_size is None.", 4)
    num_threads: int | None = _speed("torch CPU threads (2 on the lab's machines); None = leave as is.", 2)
    # ===== bookkeeping =====
    # how long, logs and checkpoints
    steps: int = _bookkeeping("Optimizer steps (at most; see max_seconds).", 50)
    max_seconds: float | None = _bookkeeping("Stop after this many seconds of training, if set.", None)
    log_file: str | None = _bookkeeping("Append one JSON line per step here (.jsonl), or a CSV (.csv).", None)
    checkpoint_dir: str | None = _bookkeeping("Save checkpoints here; a run started again resumes from "
                                              "the latest one.", None)
    checkpoint_every: int = _bookkeeping("Save a checkpoint every this many steps (0 = only at the end "
                                         "and on interruption).", 25)
    keep_checkpoints: int = _bookkeeping("How many recent checkpoints to keep.", 2)
    resume: bool = _bookkeeping("Resume from the latest checkpoint in checkpoint_dir if there is one (it must be "
                                "the same experiment: only the speed and bookkeeping knobs may change). False "
                                "starts a new run, which needs a checkpoint_dir without another run's "
                                "checkpoints.", True)
    progress: bool = _bookkeeping("Show a tqdm progress bar.", True)

    def __post_init__(self):
        check_fields(self)  # types, and every float finite, before the ranges below (NaN passes any `<`)

        def bad(msg):
            raise ValueError(f"GRPOConfig: {msg}")
        if self.num_generations < 2:
            bad(f"GRPO needs at least 2 generations per prompt to compare them (advantages are "
                f"relative to the group); you gave num_generations={self.num_generations}. Use 2 or more "
                "(8 is typical).")
        if self.num_prompts < 1:
            bad(f"num_prompts must be >= 1, got {self.num_prompts}.")
        if self.max_new_tokens < 1:
            bad(f"max_new_tokens must be >= 1, got {self.max_new_tokens}.")
        if self.temperature <= 0:
            bad(f"temperature must be > 0 for RL rollouts (0 is greedy: every completion of a group "
                f"would be the same, so there is nothing to compare), got {self.temperature}.")
        if not 0 < self.top_p <= 1:
            bad(f"top_p must be in (0, 1], got {self.top_p}; use 1.0 to switch it off.")
        if self.top_k < 0:
            bad(f"top_k must be >= 0 (0 = off), got {self.top_k}.")
        if self.steps < 1:
            bad(f"steps must be >= 1, got {self.steps}.")
        if self.max_seconds is not None and self.max_seconds <= 0:
            bad(f"max_seconds must be positive or None, got {self.max_seconds}.")
        if self.estimator not in ESTIMATORS:
            bad(f"estimator must be one of {ESTIMATORS}, got {self.estimator!r}.")
        if self.loss_aggregation not in LOSS_AGGREGATIONS:
            bad(f"loss_aggregation must be one of {LOSS_AGGREGATIONS}, got {self.loss_aggregation!r}.")
        if self.kl_estimator not in KL_ESTIMATORS:
            bad(f"kl_estimator must be one of {KL_ESTIMATORS}, got {self.kl_estimator!r}.")
        if self.beta < 0:
            bad(f"beta (KL weight) must be >= 0, got {self.beta}; use 0 to train without a reference model.")
        if not 0 <= self.clip_low < 1:
            bad(f"clip_low must be in [0, 1) so that 1 - clip_low stays positive, got {self.clip_low} "
                "(0.2 is usual).")
        if self.clip_high < 0:
            bad(f"clip_high must be >= 0, got {self.clip_high} (0.2, or 0.28 for DAPO's clip-higher).")
        if self.num_iterations < 1:
            bad(f"num_iterations must be >= 1, got {self.num_iterations}.")
        if self.scale_eps < 0:
            bad(f"scale_eps must be >= 0, got {self.scale_eps}.")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            bad(f"learning_rate must be a positive number, got {self.learning_rate} (try 1e-4 for qwq-nano, "
                "1e-6 for a 7B+ model).")
        if self.warmup_steps < 0:
            bad(f"warmup_steps must be >= 0, got {self.warmup_steps}.")
        if self.weight_decay < 0:
            bad(f"weight_decay must be >= 0, got {self.weight_decay}.")
        if self.max_grad_norm is not None and self.max_grad_norm <= 0:
            bad(f"max_grad_norm must be positive or None (no clipping), got {self.max_grad_norm}.")
        if self.micro_batch_size is not None and self.micro_batch_size < 1:
            bad(f"micro_batch_size must be >= 1 or None, got {self.micro_batch_size}.")
        if self.length_buckets < 1:
            bad(f"length_buckets must be >= 1, got {self.length_buckets}.")
        if self.lora_r < 1 or self.lora_alpha <= 0 or not 0 <= self.lora_dropout < 1:
            bad("LoRA needs lora_r >= 1, lora_alpha > 0 and 0 <= lora_dropout < 1 "
                f"(got {self.lora_r}, {self.lora_alpha}, {self.lora_dropout}).")
        if self.checkpoint_every < 0 or self.keep_checkpoints < 1:
            bad(f"checkpoint_every must be >= 0 and keep_checkpoints >= 1 "
                f"(got {self.checkpoint_every}, {self.keep_checkpoints}).")
        if self.reward_weights is not None and any(not math.isfinite(w) for w in self.reward_weights):
            bad(f"reward_weights must be finite numbers, got {self.reward_weights}.")

    @classmethod
    def knobs(cls, group: str) -> tuple[str, ...]:
        """The names of one group's fields: ``"objective"``, ``"speed"`` or ``"bookkeeping"``."""
        groups = (GROUP_OBJECTIVE, GROUP_SPEED, GROUP_BOOKKEEPING)
        if group not in groups:
            raise ValueError(f"unknown group {group!r}; one of {groups}")
        return tuple(f.name for f in fields(cls) if f.metadata["group"] == group)

    @classmethod
    def help(cls) -> str:
        """Each field, its default and its help text, one per line, under its group's name."""
        lines = []
        for group in (GROUP_OBJECTIVE, GROUP_SPEED, GROUP_BOOKKEEPING):
            lines.append(f"[{group}]")
            for f in fields(cls):
                if f.metadata["group"] == group:
                    default = f.default if f.default is not MISSING else f.default_factory()
                    lines.append(f"{f.name} (default {default!r}): {f.metadata.get('help', '')}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------- LoRA

def is_quantized(model) -> bool:
    """Whether ``model`` was loaded in 8 or 4 bits by bitsandbytes."""
    return bool(getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False)
                or getattr(getattr(model, "config", None), "quantization_config", None))


def add_lora(model, config: GRPOConfig):
    """Wrap ``model`` with LoRA adapters (peft); a 4/8-bit model is prepared for k-bit training first.

    Only the adapters train; the frozen base doubles as the reference model (adapters off),
    so a KL penalty needs no second copy of the weights.
    """
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if is_quantized(model):
        prepare_for_training(model)  # bitsandbytes' CPU inference packing cannot train
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=config.lora_target_modules, task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


def _is_peft(model) -> bool:
    return hasattr(model, "disable_adapter") and hasattr(model, "peft_config")


# ----------------------------------------------------------------------------- evaluation

def _think_token_counts(tokenizer, texts: list[str]) -> tuple[list[int], list[bool]]:
    from qwqlab.chat import extract_boxed, split_think

    parts = [split_think(t) for t in texts]
    thinking = [p.thinking for p in parts]
    counts = [len(ids) for ids in tokenizer(thinking, add_special_tokens=False)["input_ids"]] if texts else []
    formatted = [p.case == "closed" and extract_boxed(p.answer) is not None for p in parts]
    return counts, formatted


def evaluate_policy(model, tokenizer, task, num_problems: int = 200, temperature: float = 1.0,
                    max_new_tokens: int = 96, seed: int = 0, batch_size: int = 200,
                    top_p: float = 1.0, top_k: int = 0, scores: dict | None = None) -> dict:
    """Held-out accuracy: pass@1 with one sample per problem at ``temperature`` (1.0 by default).

    Pass a held-out task (``ArithmeticTask(split="test")``). Plain sampling (no top-p/top-k)
    measures the policy RL actually trains. Returns accuracy, mean completion and thinking
    tokens, truncation rate and the share of well-formed completions (closed thinking,
    then a boxed answer); ``scores`` (name -> reward function) adds each reward's mean over
    the same completions as ``<name>_score``.
    """
    import statistics as st

    from qwqlab.decoding import generate

    problems = task.problems(num_problems)
    correct, tokens, think, truncated, formatted = [], [], [], [], []
    scored: dict = {name: [] for name in (scores or {})}
    was_training = model.training
    model.eval()
    for i in range(0, len(problems), batch_size):
        chunk = problems[i:i + batch_size]
        gens = generate(model, tokenizer, [task.prompt(tokenizer, p) for p in chunk], 1, temperature=temperature,
                        top_p=top_p, top_k=top_k, max_new_tokens=max_new_tokens, seed=seed * 100003 + i)
        texts = [g.text for g in gens]
        counts, ok = _think_token_counts(tokenizer, texts)
        correct += [float(task.grade(g.text, chunk[g.prompt_index]) or 0.0) for g in gens]
        tokens += [g.num_tokens for g in gens]
        truncated += [g.finish_reason == "length" for g in gens]
        think += counts
        formatted += ok
        for name, f in (scores or {}).items():
            scored[name] += f([task.prompt(tokenizer, chunk[g.prompt_index]) for g in gens], texts,
                              answer=[chunk[g.prompt_index].answer for g in gens],
                              completion_ids=[g.token_ids for g in gens])
    if was_training:
        model.train()
    return {"num_problems": len(problems), "temperature": temperature, "seed": seed,
            "accuracy": st.mean(correct), "completion_tokens_mean": st.mean(tokens),
            "think_tokens_mean": st.mean(think), "truncation_rate": st.mean(truncated),
            "format_rate": st.mean(formatted),
            **{f"{name}_score": st.mean([float(v) for v in vals if v is not None] or [float("nan")])
               for name, vals in scored.items()}}


# ----------------------------------------------------------------------------- runs

#: GRPOConfig fields a resumed run may change: the speed and bookkeeping knobs (how long, how
#: often to save, where to log, how fast or how memory-hungry), not what is learned.
RESUME_MAY_CHANGE = GRPOConfig.knobs(GROUP_SPEED) + GRPOConfig.knobs(GROUP_BOOKKEEPING)


def run_settings(config: GRPOConfig, task, reward_funcs) -> dict:
    """What makes a GRPO run the experiment it is: every config field outside ``RESUME_MAY_CHANGE``,
    the task and the reward functions' names (as JSON values, the way a checkpoint stores them)."""
    settings = {k: v for k, v in config.to_dict().items() if k not in RESUME_MAY_CHANGE}
    settings["task"] = getattr(task, "name", type(task).__name__)
    settings["rewards"] = [reward_name(f, i) for i, f in enumerate(reward_funcs)]
    return json.loads(json.dumps(settings, default=str))


# ----------------------------------------------------------------------------- training, in stages

@dataclass
class RolloutBatch:
    """One step's rollouts, scored: what stage 1 of ``train_grpo`` hands to the others.

    ``completion_ids``/``completion_mask`` are ``(rows, tokens)`` right-padded, ``prompt_ids``/
    ``prompt_mask`` ``(prompts, tokens)`` left-padded as the decoder saw them; row ``i`` continues
    prompt ``i // num_generations``. ``total`` is the weighted reward (``None``: cannot be
    judged), ``rewards`` the same as a tensor with NaN for ``None``.
    """
    problems: list
    prompts: list[str]
    completions: list            # qwqlab.decoding.Completion, one per row
    total: list
    per_func: dict
    rewards: torch.Tensor
    prompt_ids: torch.Tensor
    prompt_mask: torch.Tensor
    completion_ids: torch.Tensor
    completion_mask: torch.Tensor
    lengths: torch.Tensor
    generation_seconds: float

    @property
    def texts(self) -> list[str]:
        return [c.text for c in self.completions]

    @property
    def row_problems(self) -> list:
        return [self.problems[c.prompt_index] for c in self.completions]


def roll_out_and_score(model, tokenizer, task, problems, reward_funcs, cfg: GRPOConfig, step: int) -> RolloutBatch:
    """Stage 1: sample ``num_generations`` completions of each problem (the one decoder,
    seeded by ``seed`` and ``step``) and score them with the rewards (``rewards.score_rewards``)."""
    import torch

    from qwqlab.decoding import encode_left, generate

    device = next(model.parameters()).device
    t0 = time.perf_counter()
    prompts = [task.prompt(tokenizer, p) for p in problems]
    gens, (seqs, plen) = generate(model, tokenizer, prompts, cfg.num_generations, temperature=cfg.temperature,
                                  top_p=cfg.top_p, top_k=cfg.top_k, max_new_tokens=cfg.max_new_tokens,
                                  seed=cfg.seed * 1_000_003 + step, return_tensors=True)
    t_gen = time.perf_counter() - t0
    rep = [problems[g.prompt_index] for g in gens]
    total, per_func = score_rewards(
        reward_funcs, [prompts[g.prompt_index] for g in gens], [g.text for g in gens], cfg.reward_weights,
        answer=[p.answer for p in rep], question=[p.question for p in rep],
        problem_id=[p.id for p in rep], completion_ids=[g.token_ids for g in gens])
    rewards = torch.tensor([float("nan") if r is None else r for r in total], dtype=torch.float32)
    # The prompts as the decoder padded them, and the completions right-padded after them.
    enc = encode_left(tokenizer, prompts, device)
    seqs = seqs.to(device).clone()  # generate ran under inference_mode; autograd needs a normal tensor
    lengths = torch.tensor([g.num_tokens for g in gens], device=device)
    cmask = torch.arange(seqs.shape[1] - plen, device=device).unsqueeze(0) < lengths.unsqueeze(1)
    return RolloutBatch(problems, prompts, gens, total, per_func, rewards, enc["input_ids"], enc["attention_mask"],
                        seqs[:, plen:], cmask, lengths, t_gen)


def micro_batches(batch: RolloutBatch, advantages, cfg: GRPOConfig, tree: bool = True) -> list:
    """The rows the policy loss runs on, in micro-batches that waste the least padding.

    Rows with advantage 0 (a group whose completions all scored the same, or an unjudged
    completion) give exactly zero policy gradient: without a KL term they need no forward pass.
    They still count in the loss's denominators (``policy_update``), so the update is the same
    as on the whole batch (tested), at a fraction of the cost.

    With ``micro_batch_size`` the rows are sorted by length and cut into pieces of that size.
    Otherwise into at most ``length_buckets`` pieces (``length_split``), either of rows sorted
    by length, or, where the samples of a prompt share enough tokens that its prefix tree
    (``tree_logprobs``) is the cheaper layout, of whole prompts sorted by tree size (``tree=False``:
    rows only, for a model whose attention takes no tree mask, see ``tree_attention_ok``).
    """
    import torch

    rows = (torch.nonzero(advantages != 0).squeeze(-1) if cfg.beta == 0
            else torch.arange(len(advantages), device=advantages.device))
    rows = rows[torch.argsort(batch.lengths[rows], stable=True)]  # similar lengths share a chunk
    if cfg.micro_batch_size:
        size = cfg.micro_batch_size
        return [rows[i:i + size] for i in range(0, len(rows), size)]
    if not rows.numel():
        return []

    def split(sizes, groups):
        cuts = length_split(sizes, groups)
        bounds = list(zip([0] + cuts, cuts + [len(sizes)]))
        return bounds, sum((b - a) * sizes[b - 1] for a, b in bounds)

    lengths = batch.lengths[rows].tolist()
    row_bounds, row_cost = split(lengths, cfg.length_buckets)
    if tree:
        owners = torch.div(rows, cfg.num_generations, rounding_mode="floor")
        _, inverse = torch.unique(owners, return_inverse=True)
        _, _, depths, _ = prefix_tree(batch.completion_ids[rows], batch.completion_mask[rows], inverse)
        nodes = (depths >= 0).sum(-1)
        order = torch.argsort(nodes, stable=True)
        tree_sizes = nodes[order].tolist()
        tree_bounds, tree_cost = split(tree_sizes, cfg.length_buckets)
        if tree_pays(max(tree_sizes), tree_cost, row_cost):
            order = order.to(inverse.device)
            return [rows[torch.isin(inverse, order[a:b])] for a, b in tree_bounds]
    return [rows[a:b] for a, b in row_bounds if b > a]


def length_split(lengths: list[int], groups: int) -> list[int]:
    """Where to cut ascending ``lengths`` into at most ``groups`` runs so that padding each
    run to its longest costs the fewest tokens (the sum over runs of rows x longest length).

    Exact, by dynamic programming over the places where the length changes. Returns the
    cut positions, ascending (no cuts: one run).

    >>> length_split([10, 10, 11, 12, 40, 41, 96], 3)
    [4, 6]
    """
    import torch

    n = len(lengths)
    if groups <= 1 or n < 2 or lengths[0] == lengths[-1]:
        return []
    # Candidate ends of a run: the last row of each distinct length.
    ends = [i + 1 for i in range(n) if i == n - 1 or lengths[i + 1] != lengths[i]]
    if len(ends) > 4096:  # a (very) large batch: equal row counts, close enough
        size = math.ceil(n / groups)
        return list(range(size, n, size))
    pos = torch.tensor([0] + ends, dtype=torch.float64)            # run boundaries, 0 first
    width = torch.tensor([lengths[e - 1] for e in ends], dtype=torch.float64)
    # cost[j, i]: one run from boundary j to end i (rows pos[j]..ends[i]), padded to width[i].
    cost = (pos[1:][None, :] - pos[:-1][:, None]) * width[None, :]
    cost = cost.masked_fill(torch.ones_like(cost, dtype=torch.bool).tril(-1), float("inf"))
    best = cost[0].clone()                                          # best[i]: rows up to ends[i], 1 run
    choices, totals = [], [best[-1]]
    for _ in range(groups - 1):
        # best over the last run's start j (after boundary j, which ends a cheapest prefix)
        prev = torch.cat([torch.zeros(1, dtype=best.dtype), best[:-1]])
        total = prev[:, None] + cost
        best, arg = total.min(dim=0)
        choices.append(arg)
        totals.append(best[-1])
    k = min(range(len(totals)), key=lambda i: (float(totals[i]), i))  # fewest runs among the cheapest
    cuts, i = [], len(ends) - 1
    for arg in reversed(choices[:k]):
        j = int(arg[i])  # the last run starts after boundary j (pos[j])
        cuts.append(int(pos[j]))
        i = j - 1
    return sorted(c for c in cuts if 0 < c < n)


def batch_logprobs(model, batch: RolloutBatch, rows, cfg: GRPOConfig):
    """Per-token log-probs (and entropies) of the completions in ``rows``, each prompt run once."""
    import torch

    prompt_index = torch.div(rows, cfg.num_generations, rounding_mode="floor")
    prompts_used, inverse = torch.unique(prompt_index, return_inverse=True)
    pmask = batch.prompt_mask[prompts_used]
    lead = int((pmask.sum(0) == 0).sum())  # left-padding columns no prompt of this chunk needs
    width = int(batch.lengths[rows].max().clamp(min=1))
    ids, mask = batch.completion_ids[rows, :width], batch.completion_mask[rows, :width]
    args = (model, batch.prompt_ids[prompts_used, lead:], pmask[:, lead:], inverse, ids, mask, cfg.temperature)
    if tree_attention_ok(model):
        tree = prefix_tree(ids, mask, inverse)
        nodes = (tree[2] >= 0).sum(-1)
        if tree_pays(int(nodes.max()), len(nodes) * int(nodes.max()), len(rows) * width):
            return tree_logprobs(*args, tree=tree)
    return shared_prefix_logprobs(*args)


def policy_update(model, optimizer, params, batch: RolloutBatch, advantages, chunks, cfg: GRPOConfig,
                  reference=None, before_step=None) -> dict:
    """Stage 3: the clipped surrogate (+ ``beta`` x KL) over the micro-batches, then the optimizer step.

    ``num_iterations`` updates on the same rollouts (the first on-policy, so its ratio is 1);
    ``reference(batch, rows)`` gives the frozen reference's log-probs when ``beta > 0``;
    ``before_step()`` is called just before each optimizer step. Each
    micro-batch's loss is scaled so their sum is the loss of the whole batch. An update whose
    loss or gradient is not finite is skipped, with a warning: it never reaches the weights.

    Returns ``loss``, ``kl`` (summed over tokens), ``clipped`` (tokens), ``grad_norm`` and
    ``skipped`` (updates refused).
    """
    import torch

    mask = batch.completion_mask
    n_rows, total_tokens = mask.shape[0], mask.sum().clamp(min=1)
    old = None
    if cfg.num_iterations > 1:
        with torch.no_grad():
            old = [batch_logprobs(model, batch, c, cfg)[0] for c in chunks]
    ref = [reference(batch, c) for c in chunks] if cfg.beta > 0 else None
    stats = {"loss": 0.0, "kl": 0.0, "clipped": 0.0, "grad_norm": float("nan"), "skipped": 0}
    for it in range(cfg.num_iterations):
        optimizer.zero_grad(set_to_none=True)
        for k, c in enumerate(chunks):
            logp, _ = batch_logprobs(model, batch, c, cfg)
            m = mask[c, :logp.shape[1]]
            old_logp = old[k] if old is not None else logp.detach()
            per_token, is_clipped = clipped_surrogate(logp, old_logp, advantages[c], cfg.clip_low, cfg.clip_high)
            if cfg.beta > 0:
                kl = kl_estimate(logp, ref[k], cfg.kl_estimator)
                per_token = per_token + cfg.beta * kl
                if it == 0:
                    stats["kl"] += float((kl.detach() * m).sum())
            loss = aggregate_loss(per_token, m, cfg.loss_aggregation, cfg.max_new_tokens)
            # Scale each micro-batch so the sum equals the loss on the whole batch.
            if cfg.loss_aggregation == "token":
                loss = loss * m.sum().clamp(min=1) / total_tokens
            else:
                loss = loss * len(c) / n_rows
            loss.backward()
            if it == cfg.num_iterations - 1:
                stats["loss"] += float(loss.detach())
                stats["clipped"] += float((is_clipped & m).sum())
        for p in params:  # no trained rows: a zero gradient, exactly as the full batch gives
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        grad_norm = (torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm) if cfg.max_grad_norm
                     else torch.sqrt(sum((p.grad.detach() ** 2).sum() for p in params)))
        stats["grad_norm"] = float(grad_norm)
        if not (math.isfinite(stats["grad_norm"]) and math.isfinite(stats["loss"])):
            stats["skipped"] += 1
            warnings.warn(f"the loss ({stats['loss']}) or gradient norm ({stats['grad_norm']}) is not finite, so "
                          "this update was skipped; the weights did not change", RuntimeWarning, stacklevel=3)
            optimizer.zero_grad(set_to_none=True)
            continue
        if before_step is not None:
            before_step()
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return stats


def step_log(step: int, batch: RolloutBatch, update: dict, trained_rows: int, timing: dict, tokenizer, task,
             cfg: GRPOConfig) -> dict:
    """Stage 4: one row of the log: rewards, accuracy, lengths, KL, clipping, entropy, loss, and
    ``timing`` (``learning_rate``, ``seconds``, ``elapsed_seconds``)."""
    import torch

    texts, rep, gens = batch.texts, batch.row_problems, batch.completions
    think, formatted = _think_token_counts(tokenizer, texts)
    grades = [task.grade(t, p) for t, p in zip(texts, rep)]
    judged = [r for r in batch.total if r is not None]
    groups = batch.rewards.view(-1, cfg.num_generations)
    spread = [float(torch.nan_to_num(g[~torch.isnan(g)].std(), nan=0.0)) if (~torch.isnan(g)).sum() > 1
              else 0.0 for g in groups]
    n_tok = float(batch.completion_mask.sum().clamp(min=1))
    row = {
        "step": step,
        "reward_mean": sum(judged) / len(judged) if judged else float("nan"),
        "reward_std": float(torch.tensor(judged).std()) if len(judged) > 1 else 0.0,
        "accuracy": sum(g or 0.0 for g in grades) / len(grades),
        "format_rate": sum(formatted) / len(formatted),
        "completion_tokens_mean": float(batch.lengths.float().mean()),
        "think_tokens_mean": sum(think) / len(think),
        "truncation_rate": sum(g.finish_reason == "length" for g in gens) / len(gens),
        "kl": update["kl"] / n_tok if cfg.beta > 0 else float("nan"),
        "clip_fraction": update["clipped"] / n_tok,
        "zero_spread_share": sum(s < 1e-8 for s in spread) / len(spread),
        # The sampler's per-token entropy over every completion (rollouts are never
        # greedy here: GRPOConfig refuses temperature 0, so the decoder always reports it).
        "entropy": sum(g.entropy * g.num_tokens for g in gens) / n_tok,
        "trained_share": trained_rows / len(gens),
        "loss": update["loss"],
        "grad_norm": update["grad_norm"],
        "unjudged_share": 1 - len(judged) / len(batch.total),
        "learning_rate": timing["learning_rate"],
        "generation_seconds": batch.generation_seconds,
        "seconds": timing["seconds"],
        "elapsed_seconds": timing["elapsed_seconds"],
        "skipped_updates": update["skipped"],
    }
    for name, vals in batch.per_func.items():
        ok = [float(v) for v in vals if v is not None and math.isfinite(float(v))]
        row[f"reward/{name}"] = sum(ok) / len(ok) if ok else float("nan")
        # None (a failed sandbox, no gold answer), NaN, inf or absurd: what the weighted sum skipped
        row[f"unjudged/{name}"] = sum(v is None or not abs(float(v)) <= MAX_ABS_REWARD for v in vals)
    return row


def train_grpo(model, tokenizer, task, reward_funcs=None, config: GRPOConfig | None = None,
               ref_model=None, callback=None):
    """Train ``model`` with GRPO on ``task``'s problems; returns the per-step log as a DataFrame.

    Each step draws ``num_prompts`` problems and runs four stages, each a function of its own:

    1. ``roll_out_and_score``: ``num_generations`` completions each (``qwqlab.decoding.generate``),
       scored with ``reward_funcs`` (TRL signature; default the task's grader).
    2. ``compute_advantages``: each reward against its group's.
    3. ``policy_update``: the clipped surrogate (+ ``beta`` x KL to a frozen reference) over the
       micro-batches of ``micro_batches``, log-probs from ``batch_logprobs``, then an AdamW step.
    4. ``step_log``: one row of the log.

    Args:
        model, tokenizer: a causal LM (full precision, or 4-bit with ``config.use_lora``).
        task: a qwqlab task (``problems``, ``prompt``, ``grade``); use its training split.
        reward_funcs: a reward or list of rewards ``(prompts, completions, **kwargs)``; they
            receive the dataset columns ``answer``, ``question``, ``problem_id`` and
            ``completion_ids``, as under TRL.
        config: a ``GRPOConfig``.
        ref_model: the KL reference; by default a frozen copy of ``model`` (LoRA: the model
            with its adapters switched off), made only when ``config.beta > 0``.
        callback: called with each step's log row (a dict); return ``True`` to stop early.

    Returns:
        A ``pandas.DataFrame``, one row per step (columns: ``reward_mean``, ``reward_std``,
        ``accuracy``, ``format_rate``, ``completion_tokens_mean``, ``think_tokens_mean``,
        ``truncation_rate``, ``kl``, ``clip_fraction``, ``zero_spread_share``, ``entropy``,
        ``loss``, ``grad_norm``, ``seconds``, ``reward/<name>`` ...).

    With ``config.use_lora`` peft injects the adapters into ``model`` in place, so ``model``
    generates with them afterwards; call ``add_lora`` yourself first to keep the
    ``PeftModel`` (to ``save_pretrained`` the adapters alone).

    With ``num_iterations=1`` the update is on-policy: the ratio is exactly 1, so the "old"
    log-probs are the current ones detached and no extra forward pass is spent on them.
    """
    import copy

    import pandas as pd
    import torch
    from tqdm.auto import tqdm

    cfg = config or GRPOConfig()
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    if reward_funcs is None:
        reward_funcs = [task_reward(task)]
    elif callable(reward_funcs):
        reward_funcs = [reward_funcs]
    reward_funcs = list(reward_funcs)
    if cfg.use_lora and not _is_peft(model):
        model = add_lora(model, cfg)
    elif is_quantized(model) and not _is_peft(model):
        raise ValueError("A 4/8-bit model cannot be trained directly: set GRPOConfig(use_lora=True) "
                         "to train LoRA adapters on it (QLoRA), or load it in full precision.")
    device = next(model.parameters()).device
    G, P = cfg.num_generations, cfg.num_prompts

    ref_ctx = None
    if cfg.beta > 0 and ref_model is None:
        if _is_peft(model):
            ref_ctx = model.disable_adapter
        else:
            ref_model = copy.deepcopy(model)
    if ref_model is not None:
        ref_model.eval()
        for p in ref_model.parameters():
            p.requires_grad_(False)

    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)

    start_step, history = 0, []
    run = {"run_id": uuid.uuid4().hex[:12], "settings": run_settings(cfg, task, reward_funcs)}
    ckpt = latest_checkpoint(cfg.checkpoint_dir)
    if ckpt is not None and not cfg.resume:
        raise CheckpointError(
            f"train_grpo: resume=False starts a new run, but {cfg.checkpoint_dir} already holds a run's checkpoints "
            f"(latest {ckpt.name}); sharing the folder, one run's rotation would delete the other's checkpoints "
            "and 'latest' would mix them. Pass another checkpoint_dir, delete that folder, or resume=True to "
            "continue that run.")
    if ckpt is not None:
        run["run_id"] = check_resumable(ckpt, run["settings"], RESUME_MAY_CHANGE) or run["run_id"]
        start_step, history = load_checkpoint(ckpt, model, optimizer)
        print(f"train_grpo: resumed from {ckpt} (step {start_step})")
    if cfg.log_file:
        if start_step == 0 and Path(cfg.log_file).exists():
            Path(cfg.log_file).unlink()
        write_log(cfg.log_file, history)

    pool = task.problems(cfg.steps * P)
    if not pool:
        raise ValueError(f"task {getattr(task, 'name', task)!r} returned no problems")

    def lr_at(step):
        return cfg.learning_rate * min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else cfg.learning_rate

    def reference(batch, rows):
        with torch.no_grad():
            if ref_ctx is not None:  # LoRA: the reference is the model with its adapters off
                with ref_ctx():
                    return batch_logprobs(model, batch, rows, cfg)[0]
            return batch_logprobs(ref_model, batch, rows, cfg)[0]

    def mark_updating():  # from the first optimizer step on, weights and log disagree until the row is written
        nonlocal updating
        updating = True

    elapsed = sum(r.get("seconds", 0.0) for r in history)
    bar = tqdm(total=cfg.steps, initial=start_step, desc="GRPO", disable=not cfg.progress)
    step, updating = start_step, False
    model.eval()  # no dropout: the log-probs trained on must be those the rollouts were sampled from
    try:
        while step < cfg.steps:
            t0 = time.perf_counter()
            problems = [pool[(step * P + i) % len(pool)] for i in range(P)]
            # 1. Roll out and score: G completions per prompt, one weighted reward each.
            batch = roll_out_and_score(model, tokenizer, task, problems, reward_funcs, cfg, step)
            # 2. Advantages: each reward against its group's (compute_advantages).
            advantages = compute_advantages(batch.rewards, G, cfg.estimator, cfg.scale_eps).to(device)
            # 3. Policy loss over micro-batches (clipped surrogate + beta x KL), then the optimizer step.
            chunks = micro_batches(batch, advantages, cfg, tree=tree_attention_ok(model))
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
            update = policy_update(model, optimizer, params, batch, advantages, chunks, cfg, reference, mark_updating)
            seconds = time.perf_counter() - t0
            elapsed += seconds
            step += 1
            # 4. Log.
            row = step_log(step, batch, update, sum(len(c) for c in chunks),
                           {"learning_rate": lr_at(step - 1), "seconds": seconds, "elapsed_seconds": elapsed},
                           tokenizer, task, cfg)
            history.append(row)
            updating = False
            write_log(cfg.log_file, history, append_row=row)
            bar.update(1)
            bar.set_postfix(reward=f"{row['reward_mean']:.2f}", acc=f"{row['accuracy']:.2f}",
                            tokens=f"{row['completion_tokens_mean']:.0f}")
            if cfg.checkpoint_dir and cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                save_checkpoint(cfg.checkpoint_dir, step, model, optimizer, history, cfg, cfg.keep_checkpoints, run)
            stop = callback(row) if callback is not None else False
            if stop is True:
                break
            if cfg.max_seconds is not None and elapsed + seconds > cfg.max_seconds:
                break  # the next step would end past the budget
    except KeyboardInterrupt:
        # Interrupted between steps (or inside one, before its update): weights, optimizer and
        # log agree, so save them. Inside an update they may not: keep the last checkpoint.
        if cfg.checkpoint_dir and history and not updating:
            path = save_checkpoint(cfg.checkpoint_dir, step, model, optimizer, history, cfg, cfg.keep_checkpoints,
                                   run)
            print(f"train_grpo: interrupted; saved {path}; run again with the same checkpoint_dir to resume")
        elif cfg.checkpoint_dir:
            print(f"train_grpo: interrupted; resume from the latest checkpoint in {cfg.checkpoint_dir}")
        raise
    finally:
        bar.close()
    last = latest_checkpoint(cfg.checkpoint_dir, run["run_id"])
    if cfg.checkpoint_dir and history and (last is None or int(last.name.split("-")[1]) != step):
        save_checkpoint(cfg.checkpoint_dir, step, model, optimizer, history, cfg, cfg.keep_checkpoints, run)
    df = pd.DataFrame(history)
    df.attrs["log_file"] = cfg.log_file
    return df
