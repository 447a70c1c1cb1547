"""qwqlab.trl_bridge runs the same experiment in TRL: one ``train_grpo`` step and TRL's ``GRPOTrainer._compute_loss``
under ``to_trl_config`` give the same loss and the same gradient on the same batch.

The qwqlab side is ``train_grpo`` itself, not a copy of its loss: its rollouts are recorded
(``qwqlab.decoding.generate`` wrapped), and each update's weights and gradient are read just
before ``AdamW.step``. With ``num_iterations=2`` the first update is on-policy (ratio 1) and
the second off-policy (old log-probs from before the first update), so the clipped ratio is
seen too. TRL's ``_compute_loss`` is then fed that batch, the same weights, advantages, old
and reference log-probs, the way ``GRPOTrainer`` would after generating it. Last, TRL's
``GRPOTrainer`` trains qwq-nano for two steps with qwqlab's rewards, unchanged.
"""
import copy

import pytest
import torch

pytest.importorskip("trl")

# Tiny on purpose (2 prompts x 4 completions, at most 40 new tokens, one step): this checks the
# loss arithmetic, which any batch exercises; 40 tokens let some completions stop and others be cut,
# so the completions differ in length and the three aggregations give different losses. The
# learning rate is high so that the second update is clearly off-policy (a few % of tokens clipped);
# temperature 0.9 checks that both sides score the tempered distribution; max_grad_norm=None so the
# gradient read before AdamW.step is the raw one TRL's backward gives (clipping is not the loss).
SETTINGS = dict(num_prompts=2, num_generations=4, max_new_tokens=40, steps=1, temperature=0.9,
                num_iterations=2, learning_rate=1e-3, max_grad_norm=None, progress=False, seed=3)
REWARDS = [0.0, 1.0, 0.5, 0.0, 1.0, 0.2, 0.0, 0.7]  # fixed per row: every group has a spread


def fixed_rewards(prompts, completions, **kwargs):
    return REWARDS[:len(completions)]


def perturbed(model, scale=0.02, seed=0):
    """A copy of ``model`` with its weights moved a little: a reference the policy is not equal to,
    so the KL term and its gradient are not zero from the first step."""
    ref = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen))
    return ref


def run_train_grpo(model, tok, cfg, ref_model, monkeypatch):
    """One ``train_grpo`` step; returns its rollouts, its logged loss, and per update the weights
    it was computed on and the gradient it applied."""
    import qwqlab.decoding
    from qwqlab.grpo import train_grpo
    from qwqlab.tasks import ArithmeticTask

    rollouts, updates = {}, []
    generate = qwqlab.decoding.generate

    def recording_generate(model, tokenizer, prompts, *args, **kwargs):
        out = generate(model, tokenizer, prompts, *args, **kwargs)
        rollouts.update(prompts=prompts, gens=out[0], seqs=out[1][0].clone(), plen=out[1][1])
        return out

    step = torch.optim.AdamW.step

    def recording_step(self, *args, **kwargs):
        updates.append({n: (p.detach().clone(), p.grad.detach().clone()) for n, p in model.named_parameters()})
        return step(self, *args, **kwargs)

    monkeypatch.setattr(qwqlab.decoding, "generate", recording_generate)
    monkeypatch.setattr(torch.optim.AdamW, "step", recording_step)
    history = train_grpo(model, tok, ArithmeticTask(split="train"), [fixed_rewards], cfg, ref_model=ref_model)
    monkeypatch.undo()
    assert len(updates) == cfg.num_iterations
    return rollouts, float(history["loss"].iloc[0]), updates


def trl_loss_and_grad(trainer, weights, inputs):
    """TRL's loss on ``inputs`` with the policy at ``weights``, and its gradient."""
    model = trainer.model
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.copy_(weights[n])
    model.zero_grad(set_to_none=True)
    loss = trainer._compute_loss(model, inputs)
    loss.backward()
    grads = {n: p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)
             for n, p in model.named_parameters()}
    return float(loss.detach()), grads


def max_grad_diff(a, b):
    """Largest difference between two gradients, relative to the norm of the first."""
    norm = torch.sqrt(sum((g ** 2).sum() for g in a.values()))
    return float(max((a[n] - b[n]).abs().max() for n in a) / norm)


@pytest.mark.parametrize("beta", [0.0, 0.1])
@pytest.mark.parametrize("aggregation", ["token", "sequence", "constant"])
def test_train_grpo_step_equals_trl_compute_loss(nano, tmp_path, monkeypatch, aggregation, beta):
    import trl

    from qwqlab.decoding import encode_left
    from qwqlab.grpo import GRPOConfig, compute_advantages
    from qwqlab.logprobs import completion_logprobs
    from qwqlab.trl_bridge import to_trl_config, trl_dataset
    from qwqlab.tasks import ArithmeticTask

    base, tok = nano
    cfg = GRPOConfig(loss_aggregation=aggregation, beta=beta, **SETTINGS)
    ref_model = perturbed(base) if beta > 0 else None
    rollouts, qwq_loss, updates = run_train_grpo(copy.deepcopy(base), tok, cfg, ref_model, monkeypatch)

    # The batch train_grpo trained on, as GRPOTrainer hands it to _compute_loss.
    gens, seqs, plen = rollouts["gens"], rollouts["seqs"], rollouts["plen"]
    enc = encode_left(tok, rollouts["prompts"])
    G = cfg.num_generations
    lengths = torch.tensor([g.num_tokens for g in gens])
    assert len(set(lengths.tolist())) > 1  # else token, sequence and constant aggregation coincide
    completion_ids = seqs[:, plen:]
    completion_mask = (torch.arange(completion_ids.shape[1]) < lengths.unsqueeze(1)).long()
    prompt_ids, prompt_mask = enc["input_ids"].repeat_interleave(G, 0), enc["attention_mask"].repeat_interleave(G, 0)
    ids, mask = torch.cat([prompt_ids, completion_ids], 1), torch.cat([prompt_mask, completion_mask], 1)

    def logps(net, weights=None):
        if weights is not None:
            net = copy.deepcopy(net)
            with torch.no_grad():
                for n, p in net.named_parameters():
                    p.copy_(weights[n])
        with torch.no_grad():
            return completion_logprobs(net, ids, mask, prompt_ids.shape[1], cfg.temperature)[0]

    first = {n: w for n, (w, _) in updates[0].items()}
    inputs = {"prompt_ids": prompt_ids, "prompt_mask": prompt_mask, "completion_ids": completion_ids,
              "completion_mask": completion_mask,
              "advantages": compute_advantages(torch.tensor(REWARDS), G, cfg.estimator, cfg.scale_eps),
              "num_items_in_batch": completion_mask.sum(),
              # GRPOTrainer computes these with num_iterations > 1: the policy before this batch's first update
              "old_per_token_logps": logps(base, first)}
    if beta > 0:
        inputs["ref_per_token_logps"] = logps(ref_model)

    model = copy.deepcopy(base)
    trainer = trl.GRPOTrainer(model=model, reward_funcs=[fixed_rewards], args=to_trl_config(cfg, str(tmp_path)),
                              train_dataset=trl_dataset(ArithmeticTask(split="train"), tok, 4), processing_class=tok)
    trainer.model.train()  # as Trainer.train leaves it; qwq-nano has no dropout, so the log-probs are the same
    trainer.current_gradient_accumulation_steps = trainer.args.gradient_accumulation_steps  # set by Trainer.train

    for k, update in enumerate(updates):
        weights = {n: w for n, (w, _) in update.items()}
        qwq_grad = {n: g for n, (_, g) in update.items()}
        trl_loss, trl_grad = trl_loss_and_grad(trainer, weights, inputs)
        diff = max_grad_diff(qwq_grad, trl_grad)
        print(f"{aggregation} beta={beta} update {k + 1}: TRL loss {trl_loss:.8f}, max grad diff {diff:.2e}")
        assert diff < 1e-5
    assert trl_loss == pytest.approx(qwq_loss, abs=1e-6)  # train_grpo logs the last update's loss
    # The second update is off-policy: some ratios left the clip range (learning_rate is high for that),
    # so the comparison saw both branches of the clipped surrogate, and epsilon/epsilon_high.
    ratio = torch.exp(logps(base, weights) - inputs["old_per_token_logps"])[completion_mask.bool()]
    outside = ((ratio < 1 - cfg.clip_low) | (ratio > 1 + cfg.clip_high)).float().mean()
    print(f"  ratio in [{ratio.min():.3f}, {ratio.max():.3f}], {outside:.1%} of tokens outside the clip range")
    assert 0 < outside < 0.5

    if beta > 0:
        # TRL's default weighs the KL by the policy ratio: same loss, another gradient. The
        # comparison must see that (it is what the bridge switches off).
        trainer.args.use_bias_correction_kl = True  # to_trl_config(..., use_bias_correction_kl=True); a second
        # TrainingArguments would reset accelerate's state under the trainer
        _, biased = trl_loss_and_grad(trainer, weights, inputs)
        print(f"  with use_bias_correction_kl=True: max grad diff {max_grad_diff(qwq_grad, biased):.2e}")
        assert max_grad_diff(qwq_grad, biased) > 1e-3


# ----------------------------------------------------------------------------- the bridge end to end

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
