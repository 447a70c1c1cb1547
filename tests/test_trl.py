"""The scale-out path: TRL's GRPOTrainer trains qwq-nano on CPU with qwqlab's rewards, unchanged."""
import copy

import pytest
import torch


def test_trl_grpo_trainer_two_steps_on_qwq_nano_with_qwqlab_rewards(nano, tmp_path):
    trl = pytest.importorskip("trl")
    from qwqlab.grpo import GRPOConfig
    from qwqlab.trl_bridge import to_trl_config, trl_dataset
    from qwqlab.rewards import get_reward
    from qwqlab.tasks import ArithmeticTask

    model, tok = nano
    model = copy.deepcopy(model)  # the session fixture is shared with other tests
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    # Tiny on purpose (2 prompts x 4 samples, 48 new tokens, 2 steps): this checks that the
    # pieces fit together in TRL, not that TRL learns; a high lr so one step visibly moves weights.
    cfg = GRPOConfig(steps=2, num_prompts=2, num_generations=4, max_new_tokens=48, learning_rate=1e-3,
                     progress=False)
    args = to_trl_config(cfg, str(tmp_path / "trl"))
    assert (args.bf16, args.activation_checkpointing) == (False, False)  # TRL's defaults are slow on a CPU
    assert args.use_cpu == (not torch.cuda.is_available())
    rewards = [get_reward("accuracy"), get_reward("format")]  # the same callables train_grpo takes
    trainer = trl.GRPOTrainer(model=model, reward_funcs=rewards, args=args,
                              train_dataset=trl_dataset(ArithmeticTask(split="train"), tok, 16),
                              processing_class=tok)
    out = trainer.train()
    assert out.global_step == 2
    logs = [h for h in trainer.state.log_history if "reward" in h]
    assert len(logs) == 2
    for h in logs:
        assert 0.0 <= h["rewards/accuracy_reward/mean"] <= 1.0
        assert 0.0 <= h["rewards/format_reward/mean"] <= 1.0
        assert h["completions/mean_length"] > 0
    # qwq-nano writes thinking, </think> and a boxed answer, so the format reward sees some
    # well-formed completions; TRL decodes with skip_special_tokens and </think> survives.
    assert max(h["rewards/format_reward/mean"] for h in logs) > 0
    after = dict(trainer.model.named_parameters())
    if any(h["reward_std"] > 0 for h in logs):  # with no reward spread there is no gradient
        assert any(not torch.equal(after[n], v) for n, v in before.items())


def test_to_trl_config_maps_the_objective():
    pytest.importorskip("trl")
    from qwqlab.grpo import GRPOConfig
    from qwqlab.trl_bridge import to_trl_config

    args = to_trl_config(GRPOConfig(estimator="dr_grpo", loss_aggregation="constant", clip_high=0.3),
                         "unused-dir")
    assert (args.loss_type, args.scale_rewards, args.epsilon_high) == ("dr_grpo", "none", 0.3)
    assert args.per_device_train_batch_size == 16 * 8 and args.num_generations == 8
    with pytest.raises(ValueError, match="RLOOTrainer"):
        to_trl_config(GRPOConfig(estimator="rloo"), "unused-dir")
    # TRL multiplies its KL by the policy ratio by default; qwqlab's KL has no such weight
    assert to_trl_config(GRPOConfig(beta=0.04), "unused-dir").use_bias_correction_kl is False
