"""qwqlab.grpo: each formula against a hand-computed case, the config's checks, and the loop
on a small deterministic fake (tests/fixtures/fake_lm.py) plus one step on qwq-nano."""
import contextlib
import json
import math

import numpy as np
import pytest
import torch

from layouts import assert_close_in_norm

from qwqlab.grpo import (GRPOConfig, aggregate_loss, clipped_surrogate, compute_advantages,
                         evaluate_policy, kl_estimate, step_seed, token_weights, train_grpo)
from qwqlab.runs import CheckpointError, latest_checkpoint
from qwqlab.tasks import ArithmeticTask

torch.set_num_threads(2)


# ----------------------------------------------------------------------------- advantages

def test_grpo_advantage_hand_computed():
    # one right out of four: mean 1/4; sample std sqrt((9/16 + 3/16) / 3) = 1/2
    adv = compute_advantages([1.0, 0.0, 0.0, 0.0], num_generations=4, estimator="grpo", eps=0.0)
    np.testing.assert_allclose(adv, [1.5, -0.5, -0.5, -0.5])


def test_grpo_advantage_eps_in_denominator():
    adv = compute_advantages([1.0, 0.0, 0.0, 0.0], 4, "grpo", eps=0.5)
    np.testing.assert_allclose(adv, [0.75 / 1.0, -0.25, -0.25, -0.25])


def test_dr_grpo_advantage_is_mean_centred_only():
    adv = compute_advantages([1.0, 0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 0.0], 4, "dr_grpo")
    np.testing.assert_allclose(adv, [0.75, -0.25, -0.25, -0.25, 0.5, 0.5, 0.5, -1.5])


def test_rloo_advantage_leaves_one_out():
    rewards = [1.0, 0.0, 0.0, 0.0]
    adv = compute_advantages(rewards, 4, "rloo")
    # r_i minus the mean of the other three, written out
    expected = [rewards[i] - sum(r for j, r in enumerate(rewards) if j != i) / 3 for i in range(4)]
    np.testing.assert_allclose(adv, expected)
    np.testing.assert_allclose(adv, [1.0, -1 / 3, -1 / 3, -1 / 3])


def test_batch_advantage_centres_per_group_and_scales_by_batch_std():
    # batch [1, 0, 1, 1]: mean 3/4, sample std sqrt((3/16 + 9/16) / 3) = 1/2
    adv = compute_advantages([1.0, 0.0, 1.0, 1.0], 2, "batch", eps=0.0)
    np.testing.assert_allclose(adv, [1.0, -1.0, 0.0, 0.0])


def test_advantage_none_is_excluded_from_group_and_gets_zero():
    # the judged rewards of the group are [1, 0, 0]: mean 1/3, sample std sqrt(1/3)
    adv = compute_advantages([1.0, None, 0.0, 0.0], 4, "grpo", eps=0.0)
    s = math.sqrt(1 / 3)
    np.testing.assert_allclose(adv, [(2 / 3) / s, 0.0, (-1 / 3) / s, (-1 / 3) / s])
    # a group with one judged reward has no baseline: all zero; NaN means the same as None
    np.testing.assert_allclose(compute_advantages([1.0, float("nan"), None, None], 2, "rloo"), [0, 0, 0, 0])


def test_advantage_equal_rewards_give_zero_and_tensor_in_tensor_out():
    t = compute_advantages(torch.tensor([1.0, 1.0, 0.0, 0.0]), 2)
    assert isinstance(t, torch.Tensor) and t.tolist() == [0.0, 0.0, 0.0, 0.0]


def test_advantage_rejects_bad_input():
    with pytest.raises(ValueError, match="estimator"):
        compute_advantages([1, 0], 2, "ppo")
    with pytest.raises(ValueError, match="multiple of num_generations"):
        compute_advantages([1, 0, 1], 2)


# ----------------------------------------------------------------------------- KL

def test_kl_estimators_hand_computed():
    logp, ref = torch.log(torch.tensor([0.5])), torch.log(torch.tensor([0.25]))
    log_r = math.log(0.25 / 0.5)
    assert kl_estimate(logp, ref, "k1").item() == pytest.approx(-log_r)
    assert kl_estimate(logp, ref, "k2").item() == pytest.approx(0.5 * log_r ** 2)
    assert kl_estimate(logp, ref, "k3").item() == pytest.approx(0.5 - 1 - log_r)


def test_k1_and_k3_are_unbiased_for_the_true_kl():
    p, q = torch.tensor([0.7, 0.2, 0.1]), torch.tensor([0.5, 0.3, 0.2])
    true_kl = float((p * (p / q).log()).sum())
    for kind in ("k1", "k3"):  # the expectation under p, taken exactly over the 3 outcomes
        assert float((p * kl_estimate(p.log(), q.log(), kind)).sum()) == pytest.approx(true_kl, rel=1e-5)
    assert (kl_estimate(p.log(), q.log(), "k3") >= 0).all()
    with pytest.raises(ValueError):
        kl_estimate(p, q, "k4")


# ----------------------------------------------------------------------------- surrogate and aggregation

def test_clipped_surrogate_hand_computed():
    old = torch.zeros(1, 4)
    logp = torch.log(torch.tensor([[1.5, 1.5, 0.5, 0.5]]))
    adv = torch.tensor([[1.0, -1.0, -1.0, 1.0]])
    loss, clipped = clipped_surrogate(logp, old, adv, clip_low=0.2, clip_high=0.28)
    # ratio 1.5, A=+1: min(1.5, 1.28) -> -1.28 (clipped); A=-1: min(-1.5, -1.28) -> 1.5
    # ratio 0.5, A=-1: min(-0.5, -0.8) -> 0.8 (clipped); A=+1: min(0.5, 0.8) -> -0.5
    torch.testing.assert_close(loss, torch.tensor([[-1.28, 1.5, 0.8, -0.5]]))
    assert clipped.tolist() == [[True, False, True, False]]


def test_on_policy_surrogate_gradient_is_policy_gradient():
    logp = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    loss, clipped = clipped_surrogate(logp, logp.detach(), torch.tensor([2.0]))
    loss.sum().backward()
    assert not clipped.any()
    torch.testing.assert_close(logp.grad, torch.tensor([[-2.0, -2.0]]))  # -A * d logp


def test_loss_aggregations_hand_computed():
    per_token = torch.tensor([[1.0, 2.0, 3.0], [4.0, 9.0, 9.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    assert aggregate_loss(per_token, mask, "token").item() == pytest.approx((1 + 2 + 3 + 4) / 4)
    assert aggregate_loss(per_token, mask, "sequence").item() == pytest.approx((2 + 4) / 2)
    assert aggregate_loss(per_token, mask, "constant", max_tokens=5).item() == pytest.approx(10 / (2 * 5))
    with pytest.raises(ValueError, match="max_tokens"):
        aggregate_loss(per_token, mask, "constant")


# ----------------------------------------------------------------------------- config

def test_config_defaults_work_and_every_field_has_help():
    from dataclasses import fields
    cfg = GRPOConfig()
    assert cfg.num_generations >= 2 and cfg.learning_rate > 0
    assert all(f.metadata.get("help") for f in fields(GRPOConfig))
    assert "num_generations (default 8)" in GRPOConfig.help()


def test_config_knobs_are_the_objective_apart_from_speed_and_bookkeeping():
    """What a run learns (objective) is apart from how fast it is computed and how it is kept:
    a resume may change only the latter, and a checkpoint's run settings hold only the former."""
    from dataclasses import fields

    from qwqlab.grpo import RESUME_MAY_CHANGE, run_settings

    groups = {g: GRPOConfig.knobs(g) for g in ("objective", "speed", "bookkeeping")}
    assert sorted(sum(groups.values(), ())) == sorted(f.name for f in fields(GRPOConfig))  # each knob in one group
    assert {"micro_batch_size", "length_buckets", "num_threads"} == set(groups["speed"])
    assert {"learning_rate", "beta", "clip_high", "num_generations", "seed"} <= set(groups["objective"])
    assert set(RESUME_MAY_CHANGE) == set(groups["speed"]) | set(groups["bookkeeping"])
    settings = run_settings(GRPOConfig(), ArithmeticTask(), [lambda prompts, completions, **kw: [0.0]])
    assert set(settings) == set(groups["objective"]) | {"task", "rewards"}
    text = GRPOConfig.help()
    assert text.index("[objective]") < text.index("learning_rate") < text.index("[speed]") < \
        text.index("micro_batch_size") < text.index("[bookkeeping]") < text.index("checkpoint_dir")
    with pytest.raises(ValueError, match="unknown group"):
        GRPOConfig.knobs("fast")


@pytest.mark.parametrize("kwargs, hint", [
    (dict(num_generations=1), "at least 2 generations"),
    (dict(learning_rate=0.0), "learning_rate must be a positive"),
    (dict(learning_rate=float("nan")), "learning_rate"),
    (dict(clip_low=1.0), "clip_low must be in"),
    (dict(clip_high=-0.1), "clip_high"),
    (dict(temperature=0.0), "temperature must be > 0"),
    (dict(estimator="ppo"), "estimator must be one of"),
    (dict(loss_aggregation="mean"), "loss_aggregation"),
    (dict(kl_estimator="k9"), "kl_estimator"),
    (dict(beta=-1.0), "use 0 to train without"),
    (dict(top_p=0.0), "top_p"),
    (dict(steps=0), "steps"),
    (dict(num_iterations=0), "num_iterations"),
    (dict(micro_batch_size=0), "micro_batch_size"),
    (dict(lora_r=0), "LoRA"),
])
def test_config_rejects_impossible_settings_with_a_fix(kwargs, hint):
    with pytest.raises(ValueError, match=hint):
        GRPOConfig(**kwargs)


# ----------------------------------------------------------------------------- the loop on the fake

TINY = dict(num_prompts=2, num_generations=3, max_new_tokens=12, progress=False)  # small for speed


def _skip_reward(prompts, completions, **kwargs):
    """1.0 when the completion skips the thinking: a behaviour a bigram model can learn fast."""
    return [float(c.lstrip().startswith("</think>")) for c in completions]


def _parity_reward(prompts, completions, **kwargs):
    """Parity of the text's character codes: arbitrary, but it spreads the rewards of most groups."""
    return [float(sum(map(ord, c)) % 2) for c in completions]


def test_train_grpo_logs_every_column_to_table_and_file(fake, tmp_path):
    model, tok = fake
    import copy
    model = copy.deepcopy(model)
    log = tmp_path / "log.jsonl"
    df = train_grpo(model, tok, ArithmeticTask(split="train"), config=GRPOConfig(
        steps=2, beta=0.1, log_file=str(log), **TINY))
    for col in ("reward_mean", "reward_std", "accuracy", "completion_tokens_mean", "think_tokens_mean", "truncation_rate",
                "kl", "clip_fraction", "zero_spread_share", "entropy", "seconds", "format_rate"):
        assert col in df.columns and df[col].notna().all(), col
    assert list(df["step"]) == [1, 2]
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert df["kl"].iloc[0] == pytest.approx(0.0, abs=1e-6)  # the reference is the policy before step 1


def test_train_grpo_learns_a_reward_the_fake_can_express(fake):
    import copy
    model, tok = fake
    model = copy.deepcopy(model)
    task = ArithmeticTask(split="train")
    cfg = GRPOConfig(steps=8, num_prompts=4, num_generations=4, max_new_tokens=8, learning_rate=0.03,
                     progress=False)  # a large lr: the fake is a lookup table, not a network
    df = train_grpo(model, tok, task, _skip_reward, cfg)
    first, last = df["reward_mean"].iloc[:3].mean(), df["reward_mean"].iloc[-3:].mean()
    assert last > first + 0.3, (first, last)


def test_one_step_is_the_hand_written_full_batch_gradient(fake, tmp_path):
    """train_grpo's gradient (zero-advantage rows skipped, left padding, masks, micro-batches)
    equals that of the token-mean loss -A * logp over every completion, each one run through
    the model alone and unpadded. train_grpo's gradient is read by a hook on each parameter
    (after each micro-batch's backward, the gradient accumulated so far: the last is the step's)."""
    import copy
    from qwqlab.decoding import generate
    model, tok = fake
    task = ArithmeticTask(split="train")
    cfg = GRPOConfig(steps=1, learning_rate=0.01, max_grad_norm=None, num_prompts=3, num_generations=4,
                     max_new_tokens=10, micro_batch_size=3, progress=False)
    first_prompt = task.prompt(tok, task.problems(1)[0])

    def reward(prompts, completions, **kwargs):  # the first group has no spread, the others some
        return [1.0 if p == first_prompt else float(len(c) % 2) for p, c in zip(prompts, completions)]

    trained = copy.deepcopy(model)
    params = list(trained.parameters())
    grads = [torch.zeros_like(p) for p in params]  # a parameter no trained row reaches keeps a zero gradient

    def keep(i):
        def hook(p):
            grads[i] = p.grad.detach().clone()
        return hook
    handles = [p.register_post_accumulate_grad_hook(keep(i)) for i, p in enumerate(params)]
    df = train_grpo(trained, tok, task, reward, cfg)
    for h in handles:
        h.remove()
    assert 0 < df["trained_share"].iloc[0] < 1  # the skip path was taken

    by_hand = copy.deepcopy(model)
    prompts = [task.prompt(tok, p) for p in task.problems(cfg.steps * cfg.num_prompts)[:cfg.num_prompts]]
    gens, (seqs, plen) = generate(by_hand, tok, prompts, cfg.num_generations, temperature=1.0, top_p=1.0, top_k=0,
                                  max_new_tokens=cfg.max_new_tokens, seed=step_seed(cfg.seed, 0), return_tensors=True)
    adv = compute_advantages(reward([prompts[g.prompt_index] for g in gens], [g.text for g in gens]),
                             cfg.num_generations)
    total_tokens = sum(g.num_tokens for g in gens)
    loss = 0.0
    for g, a, row in zip(gens, adv, seqs):
        prompt_ids = tok(prompts[g.prompt_index], add_special_tokens=False)["input_ids"]
        comp = row[plen:plen + g.num_tokens].tolist()  # the kept tokens, plus the stop token if it stopped
        assert comp[:len(g.token_ids)] == g.token_ids
        logits = by_hand(torch.tensor([prompt_ids + comp])).logits[0, len(prompt_ids) - 1:-1]
        logp = torch.log_softmax(logits, -1).gather(-1, torch.tensor(comp).unsqueeze(-1)).sum()
        loss = loss - float(a) * logp / total_tokens
    loss.backward()
    params = [p for p in by_hand.parameters()]
    assert len(params) == len(grads)
    for (name, p), g in zip(by_hand.named_parameters(), grads):
        torch.testing.assert_close(g, p.grad, atol=1e-6, rtol=1e-4, msg=name)
    assert any(float(g.abs().max()) > 1e-4 for g in grads)


def _checkpoint_listing(folder):
    return {p.name: (p / "state.pt").stat().st_mtime_ns for p in sorted(folder.glob("step-*"))}


def test_checkpoint_dir_of_another_run_is_refused_by_a_fresh_run(fake, tmp_path):
    """resume=False into a folder holding a longer earlier run: rotation deleted the new run's
    checkpoints and "latest" became the old run's."""
    import copy
    model, tok = fake
    task = ArithmeticTask(split="train")
    ckdir = tmp_path / "ck"
    train_grpo(copy.deepcopy(model), tok, task, config=GRPOConfig(
        steps=4, checkpoint_dir=str(ckdir), checkpoint_every=1, keep_checkpoints=2, **TINY))
    before = _checkpoint_listing(ckdir)
    assert list(before) == ["step-000003", "step-000004"]
    with pytest.raises(CheckpointError, match=r"resume=False starts a new run.*step-000004.*another checkpoint_dir"):
        train_grpo(copy.deepcopy(model), tok, task, config=GRPOConfig(
            steps=2, checkpoint_dir=str(ckdir), checkpoint_every=1, resume=False, **TINY))
    assert _checkpoint_listing(ckdir) == before  # nothing of the old run was touched
    run_id = json.loads((ckdir / "step-000004" / "run.json").read_text())["run_id"]
    assert json.loads((ckdir / "step-000003" / "run.json").read_text())["run_id"] == run_id


def test_resume_with_another_experiment_names_the_differences(fake, tmp_path):
    """Resuming with another estimator, learning rate or reward continued silently (lr 0.01 -> 0.5 mid-log)."""
    import copy
    model, tok = fake
    task = ArithmeticTask(split="train")
    ckdir = tmp_path / "ck"
    cfg = dict(TINY, checkpoint_dir=str(ckdir), learning_rate=0.01)
    train_grpo(copy.deepcopy(model), tok, task, _skip_reward, config=GRPOConfig(steps=2, **cfg))
    before = _checkpoint_listing(ckdir)

    def other_reward(prompts, completions, **kwargs):
        return [0.0 for _ in completions]

    for change, reward, message in [
            ({"learning_rate": 0.5}, _skip_reward, r"learning_rate: 0\.01 -> 0\.5"),
            ({"estimator": "rloo", "beta": 0.1}, _skip_reward, r"estimator: 'grpo' -> 'rloo'; beta: 0\.0 -> 0\.1"),
            ({}, other_reward, r"rewards: \['_skip_reward'\] -> \['other_reward'\]")]:
        with pytest.raises(CheckpointError, match=rf"step-000002 belongs to a run with other settings \({message}\)"):
            train_grpo(copy.deepcopy(model), tok, task, reward, config=GRPOConfig(steps=3, **{**cfg, **change}))
        assert _checkpoint_listing(ckdir) == before
    # a checkpoint saved before runs had ids (no run.json) is judged by its config.json
    import shutil
    legacy = tmp_path / "legacy"
    shutil.copytree(ckdir, legacy)
    for f in legacy.glob("step-*/run.json"):
        f.unlink()
    with pytest.raises(CheckpointError, match=r"learning_rate: 0\.01 -> 0\.5"):
        train_grpo(copy.deepcopy(model), tok, task, _skip_reward, config=GRPOConfig(
            steps=3, **{**cfg, "checkpoint_dir": str(legacy), "learning_rate": 0.5}))
    # knobs that do not change the experiment do not block: more steps, a log, no progress bar, saving often
    df = train_grpo(copy.deepcopy(model), tok, task, _skip_reward, config=GRPOConfig(
        steps=3, **{**cfg, "progress": False, "log_file": str(tmp_path / "log.jsonl"), "checkpoint_every": 1,
                    "num_threads": None, "micro_batch_size": 2}))
    assert list(df["step"]) == [1, 2, 3]
    runs = {json.loads((p / "run.json").read_text())["run_id"] for p in ckdir.glob("step-*")}
    assert len(runs) == 1  # the resumed run kept its id


def test_checkpoint_resume_reproduces_an_uninterrupted_run(fake, tmp_path):
    import copy
    model, tok = fake
    task = ArithmeticTask(split="train")
    cfg = dict(TINY, learning_rate=0.01)
    full = train_grpo(copy.deepcopy(model), tok, task, config=GRPOConfig(steps=3, **cfg))

    class Stop(KeyboardInterrupt):
        pass

    def interrupt(row):
        if row["step"] == 2:
            raise Stop()

    ckdir = tmp_path / "ck"
    m2 = copy.deepcopy(model)
    with pytest.raises(Stop):
        train_grpo(m2, tok, task, config=GRPOConfig(steps=3, checkpoint_dir=str(ckdir), checkpoint_every=0,
                                                    log_file=str(tmp_path / "l.csv"), **cfg), callback=interrupt)
    assert latest_checkpoint(ckdir).name == "step-000002"  # saved on the interruption
    resumed = train_grpo(copy.deepcopy(model), tok, task, config=GRPOConfig(
        steps=3, checkpoint_dir=str(ckdir), log_file=str(tmp_path / "l.csv"), **cfg))
    assert list(resumed["step"]) == [1, 2, 3]
    cols = ["reward_mean", "completion_tokens_mean", "loss", "grad_norm"]
    np.testing.assert_allclose(resumed[cols].to_numpy(), full[cols].to_numpy(), rtol=1e-4, atol=1e-6)
    import pandas as pd
    assert list(pd.read_csv(tmp_path / "l.csv")["step"]) == [1, 2, 3]


def test_callback_can_stop_and_max_seconds_bounds_the_run(fake):
    import copy
    model, tok = fake
    df = train_grpo(copy.deepcopy(model), tok, ArithmeticTask(split="train"),
                    config=GRPOConfig(steps=5, **TINY), callback=lambda row: row["step"] >= 2)
    assert len(df) == 2
    df = train_grpo(copy.deepcopy(model), tok, ArithmeticTask(split="train"),
                    config=GRPOConfig(steps=50, max_seconds=1e-3, **TINY))
    assert len(df) == 1


def test_length_split_is_the_cheapest_split():
    import itertools
    import random
    from qwqlab.logprobs import length_split

    def padded(lengths, cuts):
        bounds = [0] + cuts + [len(lengths)]
        return sum((b - a) * lengths[b - 1] for a, b in zip(bounds, bounds[1:]))

    rng = random.Random(0)
    for _ in range(300):
        lengths = sorted(rng.randint(1, 30) for _ in range(rng.randint(1, 9)))
        groups = rng.randint(1, 4)
        cuts = length_split(lengths, groups)
        assert cuts == sorted(set(cuts)) and len(cuts) < groups or not cuts
        best = min(padded(lengths, list(c)) for k in range(groups)
                   for c in itertools.combinations(range(1, len(lengths)), k))
        assert padded(lengths, cuts) == best, (lengths, groups, cuts)


def test_micro_batches_pick_the_prefix_tree_when_samples_share():
    from types import SimpleNamespace
    from qwqlab.logprobs import micro_batches
    cfg = GRPOConfig(num_generations=4, length_buckets=2)
    advantages = torch.ones(8)
    same = torch.arange(1, 41).repeat(8, 1)  # every sample of a prompt the same 40 tokens
    lengths = torch.tensor([40, 38, 40, 40, 10, 10, 10, 10])
    batch = SimpleNamespace(completion_ids=same, lengths=lengths,
                            completion_mask=torch.arange(40)[None] < lengths[:, None])
    chunks = micro_batches(batch, advantages, cfg)
    owners = [set((c // 4).tolist()) for c in chunks]
    assert sorted(int(r) for c in chunks for r in c) == list(range(8))
    assert owners == [{1}, {0}]  # whole prompts, the smaller tree first (10 nodes against 40)
    distinct = torch.arange(8)[:, None] * 100 + torch.arange(40)[None]  # nothing shared
    batch.completion_ids = distinct
    chunks = micro_batches(batch, advantages, cfg)
    assert [c.tolist() for c in chunks] == [[4, 5, 6, 7], [1, 0, 2, 3]]  # rows by length
    batch.completion_ids = same
    assert [c.tolist() for c in micro_batches(batch, advantages, cfg, tree=False)] == [[4, 5, 6, 7], [1, 0, 2, 3]]


def test_micro_batches_give_the_same_update_as_one_batch(fake, tmp_path):
    """The gradient, read back from AdamW's first moment (exp_avg = (1 - beta1) * grad after one
    step): compared as weights, Adam's first step divides by |grad| and turns float rounding in
    a near-zero gradient into a visible difference."""
    import copy
    model, tok = fake
    task = ArithmeticTask(split="train")
    for agg in ("token", "sequence"):
        grads = []
        for micro in (None, 2):
            folder = tmp_path / f"{agg}-{micro}"
            train_grpo(copy.deepcopy(model), tok, task, _skip_reward, GRPOConfig(
                steps=1, loss_aggregation=agg, learning_rate=0.01, micro_batch_size=micro,
                checkpoint_dir=str(folder), **TINY))
            state = torch.load(latest_checkpoint(folder) / "state.pt", weights_only=True)["optimizer"]["state"]
            grads.append([state[i]["exp_avg"] / 0.1 for i in range(len(state))])
        assert any(float(g.abs().max()) > 1e-4 for g in grads[0])
        for ga, gb in zip(*grads):
            # Another batch layout sums in another order, and a gradient's rounding grows through
            # the layers it is back-propagated through: 1.5e-5 of the norm measured under
            # MKL_CBWR=COMPATIBLE (make test-kernels). A wrong micro-batch weight is off by ~0.5.
            assert_close_in_norm(ga, gb, rel=1e-4)


# ----------------------------------------------------------------------------- LoRA (peft)

def test_lora_trains_only_the_adapters(fake):
    import copy
    from qwqlab.grpo import add_lora
    model, tok = fake
    # The fake's decoder layers are zero (no gradient reaches them): adapt its output head.
    peft_model = add_lora(copy.deepcopy(model), GRPOConfig(lora_r=4, lora_target_modules=["lm_head"]))
    base = {n: p.detach().clone() for n, p in peft_model.named_parameters() if not p.requires_grad}
    lora = {n: p.detach().clone() for n, p in peft_model.named_parameters() if p.requires_grad}
    assert lora and all("lora_" in n for n in lora)
    df = train_grpo(peft_model, tok, ArithmeticTask(split="train"), _parity_reward,
                    GRPOConfig(steps=1, beta=0.05, learning_rate=0.05, **TINY))
    assert df["kl"].notna().all()  # the reference is the model with its adapters off
    after = dict(peft_model.named_parameters())
    assert all(torch.equal(after[n], v) for n, v in base.items())
    assert any(not torch.equal(after[n], v) for n, v in lora.items())


def test_4bit_lora_train_step_on_cpu(tmp_path):
    """QLoRA: bitsandbytes 0.50 runs 4-bit layers on CPU, and peft trains adapters on them."""
    pytest.importorskip("bitsandbytes")
    from qwqlab.models import load_model
    q, qtok = load_model("qwq-nano", bits=4, device="cpu", verbose=False)
    assert any(type(m).__name__ == "Linear4bit" for m in q.modules())
    with pytest.raises(ValueError, match="use_lora=True"):
        train_grpo(q, qtok, ArithmeticTask(split="train"), _parity_reward, GRPOConfig(steps=1, **TINY))
    frozen = {n: p.detach().clone() for n, p in q.named_parameters()}
    # 4 x 4 full-length completions graded for correctness: some group has a reward spread
    df = train_grpo(q, qtok, ArithmeticTask(split="train"), None,
                    GRPOConfig(steps=1, use_lora=True, learning_rate=0.05, max_grad_norm=None, num_prompts=4,
                               num_generations=4, max_new_tokens=64, progress=False))
    assert len(df) == 1 and math.isfinite(df["loss"].iloc[0]) and df["grad_norm"].iloc[0] > 0
    after = dict(q.named_parameters())
    lora = [n for n, p in after.items() if "lora_" in n]
    assert lora and any(not torch.equal(after[n], torch.zeros_like(after[n])) for n in lora if "lora_B" in n)
    for n, v in frozen.items():  # peft injected the adapters in place; the 4-bit base did not move
        head, _, leaf = n.rpartition(".")
        assert torch.equal(after[n] if n in after else after[f"{head}.base_layer.{leaf}"], v), n


# ----------------------------------------------------------------------------- qwq-nano

def test_one_step_on_qwq_nano_and_held_out_evaluation(nano, tmp_path):
    import copy
    model, tok = nano
    model = copy.deepcopy(model)
    ev = evaluate_policy(model, tok, ArithmeticTask(split="test"), num_problems=16, max_new_tokens=64)
    assert 0 <= ev["accuracy"] <= 1 and ev["num_problems"] == 16 and ev["completion_tokens_mean"] > 0
    df = train_grpo(model, tok, ArithmeticTask(split="train"), config=GRPOConfig(
        steps=1, num_prompts=4, num_generations=4, max_new_tokens=64, progress=False,
        checkpoint_dir=str(tmp_path / "ck")))
    assert len(df) == 1 and 0 <= df["accuracy"].iloc[0] <= 1
    assert df["completion_tokens_mean"].iloc[0] > 0 and latest_checkpoint(tmp_path / "ck") is not None


# ----------------------------------------------------------------------------- set-ups, recorded runs, scripts


@pytest.mark.parametrize("script", ["scripts/record_runs.py", "benchmarks/bench_grpo.py"])
def test_command_line_help(script):
    import subprocess
    import sys
    from qwqlab.paths import REPO_ROOT
    out = subprocess.run([sys.executable, str(REPO_ROOT / script), "--help"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and "usage:" in out.stdout


def test_record_runs_checks_say_which_claims_hold():
    import importlib.util
    from qwqlab.paths import REPO_ROOT
    spec = importlib.util.spec_from_file_location("record_runs", REPO_ROOT / "scripts" / "record_runs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    ev = lambda acc, think, comp, fmt: {"accuracy": acc, "think_tokens_mean": think, "completion_tokens_mean": comp,  # noqa: E731
                                        "format_rate": 1.0, "format_score": fmt}
    summary = {"baseline": ev(0.4, 28, 43, 0.8), "eval": {"accuracy_standard_error": 0.02}, "runs": {
        "correctness": {"after": ev(0.9, 36, 51, 1.0), "train_seconds": 170},
        "length_penalty": {"after": ev(0.0, 0.1, 5, 0.0)},
        "format": {"after": ev(0.43, 35, 50, 0.99)},
        "high_lr": {"after": ev(0.0, 40, 56, 0.9), "config": {"learning_rate": 1e-3}}}}
    checks = mod.checks(summary)
    assert all(c["holds"] for c in checks.values()), checks
    summary["runs"]["format"]["after"] = ev(0.6, 35, 50, 0.99)  # accuracy improved: not reward hacking
    summary["runs"]["correctness"]["train_seconds"] = 200       # over the 3-minute budget
    checks = mod.checks(summary)
    assert not checks["format"]["holds"] and not checks["correctness"]["holds"]


# ----------------------------------------------------------------------------- bad numbers (issue 10)

@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), 1e300, 1e39, float("nan")])
def test_a_non_finite_or_absurd_reward_never_reaches_the_weights(fake, bad):
    """One reward of inf, 1e300 or 1e39 used to turn every weight into NaN: it is now 'cannot be judged'."""
    model, tok = fake

    def hostile(prompts, completions, **kwargs):
        return [bad] + [float(sum(map(ord, c)) % 2) for c in completions[1:]]

    with pytest.warns(RuntimeWarning, match="cannot be judged") if bad == bad else contextlib.nullcontext():
        df = train_grpo(model, tok, ArithmeticTask(split="train"), hostile, GRPOConfig(steps=2, **TINY))
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert df["unjudged_share"].min() > 0 and df["loss"].map(math.isfinite).all()
    assert (df["unjudged/hostile"] == 1).all()  # counted per reward in the step log (issue 22)


def test_a_non_finite_loss_skips_the_update_and_is_logged(fake, monkeypatch):
    """A NaN in the policy loss (here injected into the surrogate) skips the update: logged, warned, weights kept."""
    import qwqlab.grpo as G
    model, tok = fake
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    real = G.clipped_surrogate

    def poisoned(*args, **kwargs):
        per_token, clipped = real(*args, **kwargs)
        return per_token * float("nan"), clipped

    monkeypatch.setattr(G, "clipped_surrogate", poisoned)
    with pytest.warns(RuntimeWarning, match="update was skipped"):
        df = train_grpo(model, tok, ArithmeticTask(split="train"), _parity_reward,
                        GRPOConfig(steps=2, max_grad_norm=None, **TINY))
    # every step that trained any row was refused (a step whose groups all tied has no loss to poison)
    assert df["skipped_updates"].sum() >= 1 and (df["skipped_updates"] == (df["trained_share"] > 0)).all()
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


# ----------------------------------------------------------------------------- checkpoint identity (issue 10)

def test_checkpoints_belong_to_one_run(fake, tmp_path):
    """resume=False into a folder of a longer earlier run let rotation delete the new run's checkpoints;
    resuming with another learning rate, estimator or reward continued silently (lr 0.01 -> 0.5 mid-log)."""
    import copy
    model, tok = fake
    task = ArithmeticTask(split="train")
    ck = str(tmp_path / "ck")
    base = dict(TINY, learning_rate=0.01, checkpoint_dir=ck, checkpoint_every=1)
    train_grpo(copy.deepcopy(model), tok, task, _parity_reward, GRPOConfig(steps=2, **base))
    with pytest.raises(ValueError, match="already holds a run's checkpoints.*resume=True"):
        train_grpo(copy.deepcopy(model), tok, task, _parity_reward, GRPOConfig(steps=1, resume=False, **base))
    with pytest.raises(ValueError, match=r"learning_rate: 0\.01 -> 0\.5"):
        train_grpo(copy.deepcopy(model), tok, task, _parity_reward, GRPOConfig(steps=3, **{**base, "learning_rate": 0.5}))
    with pytest.raises(ValueError, match="estimator: 'grpo' -> 'dr_grpo'"):
        train_grpo(copy.deepcopy(model), tok, task, _parity_reward, GRPOConfig(steps=3, estimator="dr_grpo", **base))
    with pytest.raises(ValueError, match="rewards:"):
        train_grpo(copy.deepcopy(model), tok, task, _skip_reward, GRPOConfig(steps=3, **base))
    assert latest_checkpoint(ck).name == "step-000002"  # nothing above touched the run's checkpoints
    # bookkeeping may change: more steps, another log file, no progress bar
    df = train_grpo(copy.deepcopy(model), tok, task, _parity_reward,
                    GRPOConfig(steps=3, **{**base, "log_file": str(tmp_path / "other.jsonl")}))
    assert df["step"].tolist() == [1, 2, 3] and latest_checkpoint(ck).name == "step-000003"


def test_token_weights_match_the_loss_formulas():
    adv, lengths = [1.0, -1.0, 0.5], [10, 40, 20]
    g = len(adv)
    seq = token_weights(adv, lengths, "sequence")
    assert seq == pytest.approx([a / (g * n) for a, n in zip(adv, lengths)])          # GRPO: A_i / (G |o_i|)
    const = token_weights(adv, lengths, "constant", max_tokens=64)
    assert const == pytest.approx([a / (g * 64) for a in adv])                        # Dr. GRPO: A_i / (G L)
    tok = token_weights(adv, lengths, "token")
    assert tok == pytest.approx([a / sum(lengths) for a in adv])                      # DAPO: A_i / sum |o_j|
