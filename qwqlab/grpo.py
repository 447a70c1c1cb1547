"""GRPO and its relatives: advantages, KL estimators, the clipped loss, and a training loop.

The pieces, each a small function tested against a hand-computed case: ``compute_advantages``
(a group of ``num_generations`` rewards to one number per completion: GRPO, Dr. GRPO, RLOO,
batch-normalised), ``kl_estimate`` (Schulman's k1, k2, k3 per token), ``clipped_surrogate``
(PPO's clipped objective with DAPO's clip-higher), ``aggregate_loss`` (per token (DAPO), per
sequence (GRPO) or by a constant (Dr. GRPO)).

Then ``train_grpo``, one step in eight stages numbered as in notebook 04 (sample, reward,
advantages, log-probs, surrogate + KL, aggregate, optimizer step, log), with checkpoints, resume
and LoRA (on a 4-bit model: QLoRA); ``evaluate_policy`` measures held-out pass@1. Elsewhere: every
knob in ``qwqlab.grpo_config``, the log-prob layouts and micro-batches in ``qwqlab.logprobs``,
checkpoints in ``qwqlab.runs``, rewards in ``qwqlab.rewards``, the same experiment in TRL's
``GRPOTrainer`` in ``qwqlab.trl_bridge``.

>>> model, tok = load_model("qwq-nano")  # doctest: +SKIP
>>> log = train_grpo(model, tok, ArithmeticTask(split="train"), config=GRPOConfig(steps=50))  # doctest: +SKIP
"""
from __future__ import annotations

import math
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from qwqlab.chat import is_well_formed, think_answer_tokens
from qwqlab.decoding import step_seed
from qwqlab.grpo_config import (ESTIMATORS, GROUP_BOOKKEEPING, GROUP_OBJECTIVE, GROUP_SPEED,  # noqa: F401
                                KL_ESTIMATORS, LOSS_AGGREGATIONS, RESUME_MAY_CHANGE, GRPOConfig, run_settings)
from qwqlab.logprobs import batch_logprobs, micro_batches, tree_attention_ok
from qwqlab.models import add_lora, is_peft, is_quantized  # noqa: F401  (add_lora: grpo.add_lora reads on)
from qwqlab.rewards import MAX_ABS_REWARD, score_rewards, task_reward
from qwqlab.runs import CheckpointError, check_resumable, latest_checkpoint, load_checkpoint, save_checkpoint, write_log

if TYPE_CHECKING:  # torch is imported where it is used, so that importing qwqlab stays fast
    import torch



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


# ----------------------------------------------------------------------------- training, in stages

@dataclass
class RolloutBatch:
    """One step's rollouts, scored: what stages 1-2 of ``train_grpo`` hand to the others.

    ``completion_ids``/``completion_mask`` are ``(rows, tokens)`` right-padded, ``prompt_ids``/
    ``prompt_mask`` ``(prompts, tokens)`` left-padded as the decoder saw them; row ``i`` continues
    prompt ``i // num_generations``. ``total`` is the weighted reward (``None``: cannot be
    judged), ``rewards`` the same as a tensor with NaN for ``None``.
    """
    problems: list
    prompts: list[str]
    completions: list            # qwqlab.decoding.Generation, one per row
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
    """Stages 1-2: sample ``num_generations`` completions of each problem (the one decoder,
    seeded by ``step_seed``), and reward them (``rewards.score_rewards``)."""
    import torch

    from qwqlab.decoding import encode_left, generate

    device = next(model.parameters()).device
    t0 = time.perf_counter()
    prompts = [task.prompt(tokenizer, p) for p in problems]
    gens, (seqs, plen) = generate(model, tokenizer, prompts, cfg.num_generations, temperature=cfg.temperature,
                                  top_p=cfg.top_p, top_k=cfg.top_k, max_new_tokens=cfg.max_new_tokens,
                                  seed=step_seed(cfg.seed, step), return_tensors=True)
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


def policy_update(model, optimizer, params, batch: RolloutBatch, advantages, chunks, cfg: GRPOConfig,
                  reference=None, before_step=None) -> dict:
    """Stages 4-7: log-probs, the clipped surrogate (+ ``beta`` x KL), the aggregate over the
    micro-batches, then the optimizer step.

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
            logp, _ = batch_logprobs(model, batch, c, cfg)  # 4. log-probs (the reference's: ref[k])
            m = mask[c, :logp.shape[1]]
            old_logp = old[k] if old is not None else logp.detach()
            # 5. the clipped surrogate, plus beta x KL
            per_token, is_clipped = clipped_surrogate(logp, old_logp, advantages[c], cfg.clip_low, cfg.clip_high)
            if cfg.beta > 0:
                kl = kl_estimate(logp, ref[k], cfg.kl_estimator)
                per_token = per_token + cfg.beta * kl
                if it == 0:
                    stats["kl"] += float((kl.detach() * m).sum())
            # 6. aggregate, each micro-batch scaled so the sum equals the loss on the whole batch
            loss = aggregate_loss(per_token, m, cfg.loss_aggregation, cfg.max_new_tokens)
            if cfg.loss_aggregation == "token":
                loss = loss * m.sum().clamp(min=1) / total_tokens
            else:
                loss = loss * len(c) / n_rows
            loss.backward()
            if it == cfg.num_iterations - 1:
                stats["loss"] += float(loss.detach())
                stats["clipped"] += float((is_clipped & m).sum())
        # 7. the optimizer step (no trained rows: a zero gradient, exactly as the full batch gives)
        for p in params:
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
    """Stage 8: one row of the log: rewards, accuracy, lengths, KL, clipping, entropy, loss, and
    ``timing`` (``learning_rate``, ``seconds``, ``elapsed_seconds``)."""
    import torch

    texts, rep, gens = batch.texts, batch.row_problems, batch.completions
    think = think_answer_tokens(texts, tokenizer)[0].tolist()  # the one thinking-token counter
    formatted = [is_well_formed(t) for t in texts]  # the format reward's rule
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

    Each step draws ``num_prompts`` problems and runs eight stages (numbered as in notebook 04's
    step by hand), each group a function of its own:

    1-2. ``roll_out_and_score``: **sample** ``num_generations`` completions each
       (``qwqlab.decoding.generate``, seed ``step_seed(seed, step)``) and **reward** them with
       ``reward_funcs`` (TRL signature; default the task's grader).
    3. ``compute_advantages``: each reward against its group's (the **advantage**).
    4-7. ``policy_update``: over the ``micro_batches`` (``qwqlab.logprobs``), the completions'
       **log-probs** (``batch_logprobs``; the frozen reference's too when ``beta > 0``), the
       **clipped surrogate** + ``beta`` x KL, the **aggregate** loss, then one **AdamW step**.
    8. ``step_log``: one row of the **log**.

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
    if cfg.use_lora and not is_peft(model):
        model = add_lora(model, cfg)
    elif is_quantized(model) and not is_peft(model):
        raise ValueError("A 4/8-bit model cannot be trained directly: set GRPOConfig(use_lora=True) "
                         "to train LoRA adapters on it (QLoRA), or load it in full precision.")
    device = next(model.parameters()).device
    G, P = cfg.num_generations, cfg.num_prompts

    ref_ctx = None
    if cfg.beta > 0 and ref_model is None:
        if is_peft(model):
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
            # 1-2. Sample G completions per prompt and reward each (one weighted reward).
            batch = roll_out_and_score(model, tokenizer, task, problems, reward_funcs, cfg, step)
            # 3. Advantages: each reward against its group's.
            advantages = compute_advantages(batch.rewards, G, cfg.estimator, cfg.scale_eps).to(device)
            # 4-7. Log-probs, clipped surrogate + beta x KL, aggregate, optimizer step (over micro-batches).
            chunks = micro_batches(batch, advantages, cfg, tree=tree_attention_ok(model))
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
            update = policy_update(model, optimizer, params, batch, advantages, chunks, cfg, reference, mark_updating)
            seconds = time.perf_counter() - t0
            elapsed += seconds
            step += 1
            # 8. Log.
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


# ----------------------------------------------------------------------------- evaluation

def evaluate_policy(model, tokenizer, task, num_problems: int = 200, temperature: float = 1.0,
                    max_new_tokens: int = 96, seed: int = 0, batch_size: int = 200,
                    top_p: float = 1.0, top_k: int = 0, scores: dict | None = None) -> dict:
    """Held-out accuracy: pass@1 with one sample per problem at ``temperature`` (1.0 by default).

    Pass a held-out task (``ArithmeticTask(split="test")``). Plain sampling (no top-p/top-k)
    measures the policy RL actually trains. Returns accuracy, mean completion and thinking
    tokens, truncation rate and the share of well-formed completions (``chat.is_well_formed``,
    the format reward's rule); ``scores`` (name -> reward function) adds each reward's mean over
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
                        top_p=top_p, top_k=top_k, max_new_tokens=max_new_tokens, seed=step_seed(seed, i))
        texts = [g.text for g in gens]
        counts, ok = think_answer_tokens(texts, tokenizer)[0].tolist(), [is_well_formed(t) for t in texts]
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
