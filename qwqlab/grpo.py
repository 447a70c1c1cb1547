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
``to_trl_config`` and ``trl_dataset`` run the same experiment in TRL's ``GRPOTrainer``.

>>> from qwqlab.models import load_model                           # doctest: +SKIP
>>> model, tok = load_model("qwq-nano")  # doctest: +SKIP
>>> log = train_grpo(model, tok, ArithmeticTask(split="train"), config=GRPOConfig(steps=50))  # doctest: +SKIP
"""
from __future__ import annotations

import json
import math
import os
import shutil
import time
import uuid
import warnings
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

from qwqlab.models import prepare_for_training
from qwqlab.rewards import weighted_sum

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


# ----------------------------------------------------------------------------- configuration

def _help(text: str, default=None, factory=None):
    if factory is not None:
        return field(default_factory=factory, metadata={"help": text})
    return field(default=default, metadata={"help": text})


@dataclass
class GRPOConfig:
    """Every knob of ``train_grpo``; the defaults train qwq-nano on 2 CPU cores.

    ``GRPOConfig.help()`` prints each field with its help text.
    """
    # what one step sees
    num_prompts: int = _help("Prompts per step; each gets num_generations completions.", 16)
    num_generations: int = _help("Completions per prompt (G in the GRPO paper); at least 2, "
                                 "since advantages compare completions of the same prompt.", 8)
    max_new_tokens: int = _help("Longest completion; longer ones are cut and counted as truncated.", 96)
    temperature: float = _help("Sampling temperature for rollouts (1.0 samples the policy itself).", 1.0)
    top_p: float = _help("Nucleus sampling for rollouts; 1.0 = off, which keeps log-probs exact.", 1.0)
    top_k: int = _help("Top-k sampling for rollouts; 0 = off.", 0)
    # how long
    steps: int = _help("Optimizer steps (at most; see max_seconds).", 50)
    max_seconds: float | None = _help("Stop after this many seconds of training, if set.", None)
    # the objective
    estimator: str = _help("Advantage estimator: 'grpo' (group mean/std), 'dr_grpo' (no std), "
                           "'rloo' (leave-one-out) or 'batch' (group mean, batch std).", "grpo")
    loss_aggregation: str = _help("'token' (DAPO), 'sequence' (original GRPO) or 'constant' "
                                  "(Dr. GRPO: divide by max_new_tokens).", "token")
    beta: float = _help("KL penalty weight against a frozen reference model; 0 = no reference "
                        "model (DAPO, Dr. GRPO).", 0.0)
    kl_estimator: str = _help("KL estimator when beta > 0: 'k1', 'k2' or 'k3' (Schulman). As a loss term on "
                              "samples from the policy, k1 (log ratio) has zero expected gradient: it "
                              "reports the KL but does not pull towards the reference; use k3 or k2.", "k3")
    clip_low: float = _help("Lower clip: ratio may fall to 1 - clip_low.", 0.2)
    clip_high: float = _help("Upper clip: ratio may rise to 1 + clip_high (> clip_low is DAPO's "
                             "clip-higher).", 0.28)
    num_iterations: int = _help("Updates per batch of rollouts (mu in the GRPO paper). 1 = on-policy: "
                                "the ratio is 1, so no old log-probs are computed.", 1)
    scale_eps: float = _help("Added to the std in the 'grpo'/'batch' advantage.", 1e-4)
    reward_weights: list | None = _help("One weight per reward function (default all 1).", None)
    # the optimizer
    learning_rate: float = _help("AdamW learning rate.", 2e-4)
    warmup_steps: int = _help("Linear learning-rate warm-up steps.", 0)
    weight_decay: float = _help("AdamW weight decay.", 0.0)
    max_grad_norm: float | None = _help("Clip the gradient norm to this; None = no clipping.", 1.0)
    micro_batch_size: int | None = _help("Completions per forward/backward (gradient accumulation) "
                                         "to bound memory on a GPU; None = split the batch into "
                                         "length_buckets groups instead. The update is the same either way.",
                                         None)
    length_buckets: int = _help("Sort the completions by length and run the forward/backward in this "
                                "many groups, so short ones are not padded to the longest (1 = one group); "
                                "used when micro_batch_size is None.", 2)
    # LoRA (peft), e.g. on a 4-bit model on a GPU
    use_lora: bool = _help("Train LoRA adapters (peft) instead of all weights; on a 4-bit model "
                           "(load_model(..., bits=4)) this is QLoRA.", False)
    lora_r: int = _help("LoRA rank.", 8)
    lora_alpha: int = _help("LoRA scaling alpha.", 16)
    lora_dropout: float = _help("LoRA dropout.", 0.0)
    lora_target_modules: str | list = _help("Modules LoRA adapts ('all-linear' or a list of names).",
                                            "all-linear")
    # bookkeeping
    seed: int = _help("Seed for the problem order and sampling.", 0)
    log_file: str | None = _help("Append one JSON line per step here (.jsonl), or a CSV (.csv).", None)
    checkpoint_dir: str | None = _help("Save checkpoints here; a run started again resumes from "
                                       "the latest one.", None)
    checkpoint_every: int = _help("Save a checkpoint every this many steps (0 = only at the end "
                                  "and on interruption).", 25)
    keep_checkpoints: int = _help("How many recent checkpoints to keep.", 2)
    resume: bool = _help("Resume from the latest checkpoint in checkpoint_dir if there is one (it must be "
                         "the same experiment: see RESUME_MAY_CHANGE). False starts a new run, which needs "
                         "a checkpoint_dir without another run's checkpoints.", True)
    num_threads: int | None = _help("torch CPU threads (2 on the lab's machines); None = leave as is.", 2)
    progress: bool = _help("Show a tqdm progress bar.", True)

    def __post_init__(self):
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
    def help(cls) -> str:
        """Each field, its default and its help text, one per line."""
        lines = []
        for f in fields(cls):
            default = f.default if f.default is not MISSING else f.default_factory()
            lines.append(f"{f.name} (default {default!r}): {f.metadata.get('help', '')}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------- rewards

def task_reward(task):
    """The task's own grader as a reward with TRL's signature (the default correctness reward).

    Reads the gold ``answer`` (and ``question``/``problem_id`` if given) from the keyword
    arguments, as ``train_grpo`` and TRL pass dataset columns. ``None`` when the gold answer
    is missing (cannot be judged).
    """
    from qwqlab.tasks.base import Problem

    def correctness(prompts, completions, answer=None, question=None, problem_id=None, **kwargs):
        n = len(completions)
        answers = answer if answer is not None else [None] * n
        questions = question if question is not None else [""] * n
        ids = problem_id if problem_id is not None else [str(i) for i in range(n)]
        return [task.grade(c, Problem(id=str(i), question=q, answer=a))
                for c, a, q, i in zip(completions, answers, questions, ids)]

    correctness.__name__ = f"{getattr(task, 'name', 'task')}_correctness"
    return correctness


def _reward_name(func, i: int) -> str:
    return getattr(func, "__name__", None) or getattr(getattr(func, "func", None), "__name__", None) or f"reward_{i}"


def score_rewards(reward_funcs, prompts, completions, weights=None, **kwargs):
    """Call each reward (TRL signature) and sum them with ``weights`` (``rewards.weighted_sum``).

    Returns ``(total, per_func)``: ``total`` a list of floats or ``None`` (``None`` only when
    every reward said "cannot be judged"; otherwise the ``None`` ones are skipped, as TRL
    does; inf, NaN and absurd magnitudes count as "cannot be judged", with a warning),
    ``per_func`` a dict name -> list of values as the rewards returned them.
    """
    weights = list(weights) if weights is not None else [1.0] * len(reward_funcs)
    if len(weights) != len(reward_funcs):
        raise ValueError(f"{len(weights)} reward_weights for {len(reward_funcs)} reward functions")
    per_func = {}
    for i, f in enumerate(reward_funcs):
        values = list(f(prompts=prompts, completions=completions, **kwargs))
        if len(values) != len(completions):
            raise ValueError(f"reward {_reward_name(f, i)} returned {len(values)} values for "
                             f"{len(completions)} completions")
        name = _reward_name(f, i)
        per_func[name if name not in per_func else f"{name}_{i}"] = values
    total = weighted_sum(list(per_func.values()), weights, names=list(per_func), n=len(completions))
    return total, per_func


#: The reward set-ups notebook 04 and ``scripts/record_runs.py`` train with (see ``reward_setup``).
REWARD_SETUPS = {
    "correctness": "correctness only: 1 for the right boxed answer, 0 otherwise (qwqlab.rewards accuracy)",
    "length_penalty": "correctness plus Kimi k1.5's length penalty at weight 2: the longest correct "
                      "completion of a group scores no more than a wrong one",
    "format": "format only: thinking, </think>, then a boxed answer; the answer itself is never checked",
}


def reward_setup(name: str, num_generations: int = 8, length_weight: float = 2.0):
    """The reward functions and weights of a named set-up in ``REWARD_SETUPS``.

    Returns ``(reward_funcs, weights)`` for ``train_grpo(..., reward_funcs, GRPOConfig(
    reward_weights=weights))``; each function is qwqlab.rewards' own, unchanged.
    ``length_weight`` scales the Kimi length penalty (in [-0.5, 0.5] per completion): at 2
    qwq-nano still learns to reason but less; from about 3 it learns to stop answering at all.
    """
    from qwqlab.rewards import get_reward

    if name == "correctness":
        return [get_reward("accuracy")], [1.0]
    if name == "length_penalty":
        return [get_reward("accuracy"), get_reward("kimi_length", num_generations=num_generations)], \
            [1.0, float(length_weight)]
    if name == "format":
        return [get_reward("format")], [1.0]
    raise ValueError(f"unknown reward set-up {name!r}; known: {sorted(REWARD_SETUPS)}")


# ----------------------------------------------------------------------------- log-probs

def completion_logprobs(model, input_ids, attention_mask, prompt_length: int, temperature: float = 1.0,
                        with_entropy: bool = False):
    """Log-probs of each completion token (and optionally the policy's entropy there).

    ``input_ids`` are left-padded prompts followed by completions; positions come from the
    attention mask so that they match what ``generate`` used. Logits are divided by the
    sampling ``temperature``, so the log-probs are those of the distribution sampled from.

    Returns ``(logp, entropy)``, each ``(batch, tokens - prompt_length)``; entropy is
    ``None`` unless asked for (it is computed without gradient).
    """
    position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                use_cache=False, logits_to_keep=input_ids.shape[1] - prompt_length + 1)
    return _token_logprobs(out.logits[:, :-1], input_ids[:, prompt_length:], temperature, with_entropy)


def _token_logprobs(logits, targets, temperature: float, with_entropy: bool):
    import torch

    logits = logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    log_norm = torch.logsumexp(logits, dim=-1)
    logp = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - log_norm
    entropy = None
    if with_entropy:
        with torch.no_grad():
            lp = logits.detach() - log_norm.detach().unsqueeze(-1)
            entropy = -(lp.exp() * lp).sum(-1)
    return logp, entropy


def shared_prefix_logprobs(model, prompt_ids, prompt_mask, prompt_index, completion_ids, completion_mask,
                           temperature: float = 1.0, with_entropy: bool = False):
    """``completion_logprobs`` with each prompt run through the model once for all its completions.

    GRPO scores ``num_generations`` completions of every prompt: the prompt's keys and
    values are computed once (with gradient), then indexed out to its completions through the
    KV cache, so the prompt tokens cost ``1/num_generations`` of a plain forward pass. Same
    log-probs and gradients as ``completion_logprobs`` (tested).

    Args:
        prompt_ids, prompt_mask: ``(prompts, prompt_length)``, left-padded.
        prompt_index: ``(rows,)`` which prompt each completion continues.
        completion_ids, completion_mask: ``(rows, tokens)``, right-padded.

    Returns ``(logp, entropy)``, each ``(rows, tokens)``.
    """
    import torch
    from transformers import DynamicCache

    from qwqlab.decoding import cache_kwarg

    cache_kw = cache_kwarg(model)
    cache = DynamicCache()
    out = model(input_ids=prompt_ids, attention_mask=prompt_mask,
                position_ids=(prompt_mask.long().cumsum(-1) - 1).clamp(min=0), use_cache=True,
                logits_to_keep=1, **{cache_kw: cache})
    first = out.logits[:, -1][prompt_index].unsqueeze(1)  # predicts each completion's first token
    if completion_ids.shape[1] == 1:
        return _token_logprobs(first, completion_ids, temperature, with_entropy)
    cache.batch_select_indices(prompt_index)  # differentiable indexing: gradients flow back to the prompt
    rest = completion_ids[:, :-1]
    mask = torch.cat([prompt_mask[prompt_index], completion_mask[:, :-1].to(prompt_mask.dtype)], dim=1)
    start = prompt_mask.sum(-1)[prompt_index].unsqueeze(1)
    position_ids = start + torch.arange(rest.shape[1], device=rest.device).unsqueeze(0)
    out = model(input_ids=rest, attention_mask=mask, position_ids=position_ids, use_cache=True,
                **{cache_kw: cache})
    return _token_logprobs(torch.cat([first, out.logits], dim=1), completion_ids, temperature, with_entropy)


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


# ----------------------------------------------------------------------------- checkpoints

#: GRPOConfig fields a resumed run may change: how long, how often to save, where to log,
#: how fast or how memory-hungry, but not what is learned. Any other difference stops a resume.
RESUME_MAY_CHANGE = ("steps", "max_seconds", "log_file", "checkpoint_dir", "checkpoint_every", "keep_checkpoints",
                     "resume", "num_threads", "progress", "micro_batch_size", "length_buckets")


class CheckpointError(ValueError):
    """A checkpoint folder cannot be used for this run; the message says why and what to do."""


def run_settings(config: GRPOConfig, task, reward_funcs) -> dict:
    """What makes a GRPO run the experiment it is: every config field outside ``RESUME_MAY_CHANGE``,
    the task and the reward functions' names (as JSON values, the way a checkpoint stores them)."""
    settings = {k: v for k, v in config.to_dict().items() if k not in RESUME_MAY_CHANGE}
    settings["task"] = getattr(task, "name", type(task).__name__)
    settings["rewards"] = [_reward_name(f, i) for i, f in enumerate(reward_funcs)]
    return json.loads(json.dumps(settings, default=str))


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


def check_resumable(checkpoint: Path, settings: dict) -> str | None:
    """The run id to continue from ``checkpoint``; ``CheckpointError`` naming each difference
    (``"learning_rate: 0.01 -> 0.5"``) if this run is another experiment."""
    run = _run_of(checkpoint)
    if run is not None:
        saved = run.get("settings", {})
    else:  # saved before runs had ids: its config.json still says how it was trained
        try:
            saved = {k: v for k, v in json.loads((checkpoint / "config.json").read_text()).items()
                     if k not in RESUME_MAY_CHANGE}
        except (OSError, ValueError):
            saved = {}
        saved = {**{k: settings[k] for k in ("task", "rewards")}, **saved}
    diff = _differences(saved, settings)
    if diff:
        raise CheckpointError(
            f"train_grpo: {checkpoint} belongs to a run with other settings ({'; '.join(diff)}). Resuming would "
            "continue that run as another experiment in the middle of its log. Use that run's settings to "
            "continue it, or another checkpoint_dir to start a new run. (Only "
            f"{', '.join(RESUME_MAY_CHANGE)} may change on a resume.)")
    return (run or {}).get("run_id")


def _trainable_state(model) -> dict:
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(checkpoint_dir, step: int, model, optimizer, history: list[dict], config: GRPOConfig,
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


def _write_log(log_file, history: list[dict], append_row: dict | None = None) -> None:
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


# ----------------------------------------------------------------------------- training

def train_grpo(model, tokenizer, task, reward_funcs=None, config: GRPOConfig | None = None,
               ref_model=None, callback=None):
    """Train ``model`` with GRPO on ``task``'s problems; returns the per-step log as a DataFrame.

    Each step: draw ``num_prompts`` problems, sample ``num_generations`` completions each
    (``qwqlab.decoding.generate``), score them with ``reward_funcs`` (TRL signature; default
    the task's grader), turn rewards into advantages (``compute_advantages``), and take one
    AdamW step on the clipped surrogate (+ ``beta`` x KL to a frozen reference).

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

    from qwqlab.decoding import encode_left, generate

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
        run["run_id"] = check_resumable(ckpt, run["settings"]) or run["run_id"]
        start_step, history = load_checkpoint(ckpt, model, optimizer)
        print(f"train_grpo: resumed from {ckpt} (step {start_step})")
    if cfg.log_file:
        if start_step == 0 and Path(cfg.log_file).exists():
            Path(cfg.log_file).unlink()
        _write_log(cfg.log_file, history)

    pool = task.problems(cfg.steps * P)
    if not pool:
        raise ValueError(f"task {getattr(task, 'name', task)!r} returned no problems")

    def lr_at(step):
        return cfg.learning_rate * min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else cfg.learning_rate

    def chunk_logps(net, batch, idx):
        """Log-probs of the completions in rows ``idx``, each prompt run once (shared prefix)."""
        prompt_index = torch.div(idx, G, rounding_mode="floor")
        prompts_used, inverse = torch.unique(prompt_index, return_inverse=True)
        pmask = batch["prompt_mask"][prompts_used]
        lead = int((pmask.sum(0) == 0).sum())  # left-padding columns no prompt of this chunk needs
        width = int(batch["lengths"][idx].max().clamp(min=1))
        return shared_prefix_logprobs(net, batch["prompt_ids"][prompts_used, lead:], pmask[:, lead:], inverse,
                                      batch["completion_ids"][idx, :width], batch["completion_mask"][idx, :width],
                                      cfg.temperature)

    def ref_logps(batch, idx):
        with torch.no_grad():
            if ref_ctx is not None:
                with ref_ctx():
                    return chunk_logps(model, batch, idx)[0]
            return chunk_logps(ref_model, batch, idx)[0]

    elapsed = sum(r.get("seconds", 0.0) for r in history)
    bar = tqdm(total=cfg.steps, initial=start_step, desc="GRPO", disable=not cfg.progress)
    step, updating = start_step, False
    model.eval()  # no dropout: the log-probs trained on must be those the rollouts were sampled from
    try:
        while step < cfg.steps:
            t0 = time.perf_counter()
            problems = [pool[(step * P + i) % len(pool)] for i in range(P)]
            prompts = [task.prompt(tokenizer, p) for p in problems]
            gens, (seqs, plen) = generate(model, tokenizer, prompts, G, temperature=cfg.temperature,
                                          top_p=cfg.top_p, top_k=cfg.top_k, max_new_tokens=cfg.max_new_tokens,
                                          seed=cfg.seed * 1_000_003 + step, return_tensors=True)
            t_gen = time.perf_counter() - t0
            texts = [g.text for g in gens]
            rep = [problems[g.prompt_index] for g in gens]
            total, per_func = score_rewards(
                reward_funcs, [prompts[g.prompt_index] for g in gens], texts, cfg.reward_weights,
                answer=[p.answer for p in rep], question=[p.question for p in rep],
                problem_id=[p.id for p in rep], completion_ids=[g.token_ids for g in gens])
            rewards = torch.tensor([float("nan") if r is None else r for r in total], dtype=torch.float32)
            advantages = compute_advantages(rewards, G, cfg.estimator, cfg.scale_eps).to(device)

            # The prompts as the decoder padded them, and the completions right-padded after them.
            enc = encode_left(tokenizer, prompts, device)
            seqs = seqs.to(device).clone()  # generate ran under inference_mode; autograd needs a normal tensor
            n_new = seqs.shape[1] - plen
            lengths = torch.tensor([g.num_tokens for g in gens], device=device)
            cmask = torch.arange(n_new, device=device).unsqueeze(0) < lengths.unsqueeze(1)
            batch = {"prompt_ids": enc["input_ids"], "prompt_mask": enc["attention_mask"],
                     "completion_ids": seqs[:, plen:], "completion_mask": cmask, "lengths": lengths}
            # Rows with advantage 0 (a group whose completions all scored the same, or an
            # unjudged completion) give exactly zero policy gradient: without a KL term they need
            # no forward pass. They still count in the loss's denominators, so the update is the
            # same as on the whole batch (tested), at a fraction of the cost.
            n_rows = seqs.shape[0]
            rows = (torch.nonzero(advantages != 0).squeeze(-1) if cfg.beta == 0
                    else torch.arange(n_rows, device=device))
            total_tokens = cmask.sum().clamp(min=1)
            rows = rows[torch.argsort(lengths[rows], stable=True)]  # similar lengths share a chunk
            mb = cfg.micro_batch_size or max(1, math.ceil(len(rows) / cfg.length_buckets))
            chunks = [rows[i:i + mb] for i in range(0, len(rows), mb)]

            old = None
            if cfg.num_iterations > 1:
                with torch.no_grad():
                    old = [chunk_logps(model, batch, c)[0] for c in chunks]
            ref = [ref_logps(batch, c) for c in chunks] if cfg.beta > 0 else None

            for g_ in optimizer.param_groups:
                g_["lr"] = lr_at(step)
            stats = {"loss": 0.0, "kl": 0.0, "clipped": 0.0}
            skipped = 0  # updates of this step refused for a non-finite loss or gradient
            for it in range(cfg.num_iterations):
                optimizer.zero_grad(set_to_none=True)
                for k, c in enumerate(chunks):
                    logp, _ = chunk_logps(model, batch, c)
                    m = cmask[c, :logp.shape[1]]
                    old_logp = old[k] if old is not None else logp.detach()
                    per_token, is_clipped = clipped_surrogate(logp, old_logp, advantages[c],
                                                              cfg.clip_low, cfg.clip_high)
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
                if not (math.isfinite(float(grad_norm)) and math.isfinite(stats["loss"])):
                    # A non-finite loss or gradient must never reach the weights: skip this update.
                    skipped += 1
                    warnings.warn(f"step {step + 1}: the loss ({stats['loss']}) or gradient norm ({float(grad_norm)}) "
                                  "is not finite, so this update was skipped; the weights did not change",
                                  RuntimeWarning, stacklevel=2)
                    optimizer.zero_grad(set_to_none=True)
                    continue
                updating = True  # weights and log disagree until this step's row is written
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            seconds = time.perf_counter() - t0
            elapsed += seconds
            step += 1

            think, formatted = _think_token_counts(tokenizer, texts)
            grades = [task.grade(t, p) for t, p in zip(texts, rep)]
            judged = [r for r in total if r is not None]
            groups = rewards.view(-1, G)
            spread = [float(torch.nan_to_num(g[~torch.isnan(g)].std(), nan=0.0)) if (~torch.isnan(g)).sum() > 1
                      else 0.0 for g in groups]
            n_tok = float(total_tokens)
            row = {
                "step": step,
                "reward_mean": sum(judged) / len(judged) if judged else float("nan"),
                "reward_std": float(torch.tensor(judged).std()) if len(judged) > 1 else 0.0,
                "accuracy": sum(g or 0.0 for g in grades) / len(grades),
                "format_rate": sum(formatted) / len(formatted),
                "completion_tokens_mean": float(lengths.float().mean()),
                "think_tokens_mean": sum(think) / len(think),
                "truncation_rate": sum(g.finish_reason == "length" for g in gens) / len(gens),
                "kl": stats["kl"] / n_tok if cfg.beta > 0 else float("nan"),
                "clip_fraction": stats["clipped"] / n_tok,
                "zero_spread_share": sum(s < 1e-8 for s in spread) / len(spread),
                # The sampler's per-token entropy over every completion (rollouts are never
                # greedy here: GRPOConfig refuses temperature 0, so the decoder always reports it).
                "entropy": sum(g.entropy * g.num_tokens for g in gens) / n_tok,
                "trained_share": len(rows) / n_rows,
                "loss": stats["loss"],
                "grad_norm": float(grad_norm),
                "unjudged_share": 1 - len(judged) / len(total),
                "learning_rate": lr_at(step - 1),
                "generation_seconds": t_gen,
                "seconds": seconds,
                "elapsed_seconds": elapsed,
            }
            row["skipped_updates"] = skipped
            for name, vals in per_func.items():
                ok = [float(v) for v in vals if v is not None and math.isfinite(float(v))]
                row[f"reward/{name}"] = sum(ok) / len(ok) if ok else float("nan")
            history.append(row)
            updating = False
            _write_log(cfg.log_file, history, append_row=row)
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


# ----------------------------------------------------------------------------- TRL, the scale-out path

#: qwqlab's names -> TRL's: loss aggregation -> ``loss_type``, estimator -> ``scale_rewards``.
TRL_LOSS_TYPES = {"token": "dapo", "sequence": "grpo", "constant": "dr_grpo"}
TRL_SCALE_REWARDS = {"grpo": "group", "dr_grpo": "none", "batch": "batch"}


def trl_dataset(task, tokenizer, num_problems: int):
    """A ``datasets.Dataset`` for TRL's ``GRPOTrainer``: the chat-templated ``prompt`` plus the
    columns qwqlab's rewards read (``answer``, ``question``, ``problem_id``)."""
    from datasets import Dataset

    problems = task.problems(num_problems)
    return Dataset.from_list([{"prompt": task.prompt(tokenizer, p), "answer": p.answer, "question": p.question,
                               "problem_id": p.id} for p in problems])


def to_trl_config(config: GRPOConfig, output_dir: str, **overrides):
    """The TRL ``GRPOConfig`` that runs the same experiment as ``config`` in TRL's ``GRPOTrainer``.

    One TRL step then sees the same batch (``num_prompts x num_generations`` completions in
    one optimizer step). On a CPU it sets what TRL would otherwise get wrong there
    (``bf16=False``, no gradient (activation) checkpointing, ``use_cpu=True``; see lab notes).
    RLOO has no ``scale_rewards`` equivalent (TRL has a separate ``RLOOTrainer``), and TRL's
    KL is always k3.
    """
    import torch
    from trl import GRPOConfig as TRLConfig

    if config.estimator not in TRL_SCALE_REWARDS:
        raise ValueError(f"TRL's GRPOTrainer has no {config.estimator!r} estimator; use trl.RLOOTrainer, or "
                         f"one of {sorted(TRL_SCALE_REWARDS)}")
    if config.beta > 0 and config.kl_estimator != "k3":
        raise ValueError("TRL's GRPOTrainer estimates the KL with k3 only; set kl_estimator='k3'")
    on_cpu = not torch.cuda.is_available()
    kwargs = dict(
        output_dir=output_dir, learning_rate=config.learning_rate, num_generations=config.num_generations,
        per_device_train_batch_size=config.num_prompts * config.num_generations, gradient_accumulation_steps=1,
        max_completion_length=config.max_new_tokens, temperature=config.temperature, top_p=config.top_p,
        top_k=config.top_k, beta=config.beta, epsilon=config.clip_low, epsilon_high=config.clip_high,
        num_iterations=config.num_iterations, loss_type=TRL_LOSS_TYPES[config.loss_aggregation],
        scale_rewards=TRL_SCALE_REWARDS[config.estimator], max_steps=config.steps,
        max_grad_norm=config.max_grad_norm or 0.0, weight_decay=config.weight_decay,
        warmup_steps=config.warmup_steps, lr_scheduler_type="constant_with_warmup", seed=config.seed,
        reward_weights=config.reward_weights, bf16=False, activation_checkpointing=False, use_cpu=on_cpu,
        report_to="none", save_strategy="no", logging_steps=1, disable_tqdm=not config.progress,
        shuffle_dataset=False,
        # qwqlab's KL term has no importance weight; TRL's default multiplies it by the policy
        # ratio, which leaves the loss the same on-policy but changes its gradient (issue 9).
        use_bias_correction_kl=False)
    kwargs.update(overrides)
    return TRLConfig(**kwargs)


# ----------------------------------------------------------------------------- recorded runs

def runs_dir() -> Path:
    """Where ``scripts/record_runs.py`` writes its recorded runs: ``data/runs``."""
    from qwqlab.paths import data_dir
    return data_dir() / "runs"


def load_runs(folder=None):
    """The recorded runs: ``(summary, logs)``, ``summary`` the parsed ``summary.json`` and ``logs``
    a dict run name -> per-step log (DataFrame). ``(None, {})`` when nothing was recorded."""
    import pandas as pd

    folder = Path(folder) if folder is not None else runs_dir()
    path = folder / "summary.json"
    if not path.exists():
        return None, {}
    summary = json.loads(path.read_text())
    logs = {}
    for name, run in summary.get("runs", {}).items():
        log = folder / run.get("log", f"{name}/log.jsonl")
        if log.exists():
            logs[name] = pd.read_json(log, lines=True)
    return summary, logs
