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
