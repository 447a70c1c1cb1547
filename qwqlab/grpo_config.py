"""``GRPOConfig``: every knob of ``qwqlab.grpo.train_grpo``, with a default that works, its help
text and its group (what is learned, how fast, bookkeeping), checked in ``__post_init__``.

``GRPOConfig.help()`` prints them all; a resumed run may change only the speed and bookkeeping
knobs (``RESUME_MAY_CHANGE``).
"""
from __future__ import annotations

import json
import math
from dataclasses import MISSING, asdict, dataclass, field, fields

from qwqlab.validate import check_fields

ESTIMATORS = ("grpo", "dr_grpo", "rloo", "batch")  # qwqlab.grpo.compute_advantages
KL_ESTIMATORS = ("k1", "k2", "k3")  # qwqlab.grpo.kl_estimate
LOSS_AGGREGATIONS = ("token", "sequence", "constant")  # qwqlab.grpo.aggregate_loss
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


#: GRPOConfig fields a resumed run may change: the speed and bookkeeping knobs (how long, how
#: often to save, where to log, how fast or how memory-hungry), not what is learned.
RESUME_MAY_CHANGE = GRPOConfig.knobs(GROUP_SPEED) + GRPOConfig.knobs(GROUP_BOOKKEEPING)


def run_settings(config: GRPOConfig, task, reward_funcs) -> dict:
    """What makes a GRPO run the experiment it is: every config field outside ``RESUME_MAY_CHANGE``,
    the task and the reward functions' names (as JSON values, the way a checkpoint stores them)."""
    settings = {k: v for k, v in config.to_dict().items() if k not in RESUME_MAY_CHANGE}
    settings["task"] = getattr(task, "name", type(task).__name__)
    from qwqlab.rewards import reward_name

    settings["rewards"] = [reward_name(f, i) for i, f in enumerate(reward_funcs)]
    return json.loads(json.dumps(settings, default=str))
