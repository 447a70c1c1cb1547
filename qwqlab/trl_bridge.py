"""The scale-out path: the same GRPO experiment in TRL's ``GRPOTrainer`` (and from there vLLM, DeepSpeed, many GPUs).

``to_trl_config`` maps a qwqlab ``GRPOConfig`` onto TRL's, field by field; ``trl_dataset`` is the
task's problems as the dataset TRL reads, with the columns qwqlab's rewards take. qwqlab's
rewards have TRL's signature, so they plug into ``GRPOTrainer(reward_funcs=...)`` unchanged.
``tests/test_trl_bridge.py`` checks that one TRL step computes the same loss and gradient as
``train_grpo``'s.

>>> trainer = GRPOTrainer(model=model, reward_funcs=[task_reward(task)], processing_class=tok,  # doctest: +SKIP
...                       args=to_trl_config(GRPOConfig(), "out"), train_dataset=trl_dataset(task, tok, 800))
"""
from __future__ import annotations

from qwqlab.grpo import GRPOConfig

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


#: The one name qwqlab gives activation checkpointing in ``trl:``, and the alias transformers still takes.
CHECKPOINTING_KEYS = ("activation_checkpointing", "gradient_checkpointing")


def micro_batching(config: GRPOConfig, world_size: int = 1) -> tuple[int, int]:
    """``(per_device_train_batch_size, gradient_accumulation_steps)`` for ``config`` on ``world_size`` ranks.

    One optimizer step sees ``num_prompts x num_generations`` completions whatever the split:
    each rank gets ``1/world_size`` of them, in micro-batches of ``micro_batch_size`` (None: one
    micro-batch per rank). TRL's ``steps_per_generation`` is set to the accumulation steps, so
    one generation batch is one optimizer step (on-policy, as ``train_grpo``). TRL's losses
    divide each micro-batch by the accumulation steps (and ``dapo`` by the whole batch's
    tokens), so the update is the one-batch update (tested).
    """
    total = config.num_prompts * config.num_generations
    if total % world_size:
        raise ValueError(f"num_prompts x num_generations = {total} completions a step do not split over "
                         f"{world_size} processes; make num_prompts a multiple of {world_size}")
    per_rank = total // world_size
    micro = min(config.micro_batch_size or per_rank, per_rank)
    if per_rank % micro:
        raise ValueError(f"micro_batch_size={config.micro_batch_size} does not divide the {per_rank} completions "
                         f"each of {world_size} process(es) trains on a step; pick a divisor of {per_rank}")
    return micro, per_rank // micro


def to_trl_config(config: GRPOConfig, output_dir: str, world_size: int = 1, **overrides):
    """The TRL ``GRPOConfig`` that runs the same experiment as ``config`` in TRL's ``GRPOTrainer``.

    One TRL step then sees the same batch (``num_prompts x num_generations`` completions in
    one optimizer step) on ``world_size`` ranks, cut into micro-batches by ``micro_batching``.
    Activation checkpointing is what ``overrides`` ask for under either name
    (``activation_checkpointing`` or its deprecated alias ``gradient_checkpointing``), else off:
    transformers uses the alias only when the new name is unset and then copies the new name
    over it, so passing one of them as False silently switched a requested True off. On a CPU
    it sets what TRL would otherwise get wrong there (``bf16=False``, ``use_cpu=True``; see lab
    notes). Checkpoints are saved every ``checkpoint_every`` steps (``keep_checkpoints`` kept),
    with optimizer, scheduler and RNG states, so ``trainer.train(resume_from_checkpoint=...)``
    continues the run. RLOO has no ``scale_rewards`` equivalent (TRL has a separate
    ``RLOOTrainer``), and TRL's KL is always k3.
    """
    import torch
    from trl import GRPOConfig as TRLConfig

    if config.estimator not in TRL_SCALE_REWARDS:
        raise ValueError(f"TRL's GRPOTrainer has no {config.estimator!r} estimator; use trl.RLOOTrainer, or "
                         f"one of {sorted(TRL_SCALE_REWARDS)}")
    if config.beta > 0 and config.kl_estimator != "k3":
        raise ValueError("TRL's GRPOTrainer estimates the KL with k3 only; set kl_estimator='k3'")
    overrides = dict(overrides)
    asked = {k: overrides.pop(k) for k in CHECKPOINTING_KEYS if overrides.get(k) is not None}
    if len(set(map(bool, asked.values()))) > 1:
        raise ValueError(f"activation_checkpointing and gradient_checkpointing disagree ({asked}); set one of them")
    checkpointing = bool(next(iter(asked.values()), False))
    ckpt_kwargs = overrides.pop("activation_checkpointing_kwargs", None) or overrides.pop(
        "gradient_checkpointing_kwargs", None)
    micro, accumulation = micro_batching(config, world_size)
    on_cpu = not torch.cuda.is_available()
    kwargs = dict(
        output_dir=output_dir, learning_rate=config.learning_rate, num_generations=config.num_generations,
        per_device_train_batch_size=micro, gradient_accumulation_steps=accumulation,
        steps_per_generation=accumulation,
        max_completion_length=config.max_new_tokens, temperature=config.temperature, top_p=config.top_p,
        top_k=config.top_k, beta=config.beta, epsilon=config.clip_low, epsilon_high=config.clip_high,
        num_iterations=config.num_iterations, loss_type=TRL_LOSS_TYPES[config.loss_aggregation],
        scale_rewards=TRL_SCALE_REWARDS[config.estimator], max_steps=config.steps,
        max_grad_norm=config.max_grad_norm or 0.0, weight_decay=config.weight_decay,
        warmup_steps=config.warmup_steps, lr_scheduler_type="constant_with_warmup", seed=config.seed,
        reward_weights=config.reward_weights, bf16=False, activation_checkpointing=checkpointing,
        activation_checkpointing_kwargs=ckpt_kwargs, use_cpu=on_cpu,
        report_to="none", logging_steps=1, disable_tqdm=not config.progress,
        save_strategy="steps" if config.checkpoint_every else "no", save_steps=config.checkpoint_every or 500,
        save_total_limit=config.keep_checkpoints, shuffle_dataset=False,
        # qwqlab's KL term has no importance weight; TRL's default multiplies it by the policy
        # ratio, which leaves the loss the same on-policy but changes its gradient (issue 9).
        use_bias_correction_kl=False)
    kwargs.update(overrides)
    return TRLConfig(**kwargs)
