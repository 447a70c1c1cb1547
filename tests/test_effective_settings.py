"""Every training file in configs/ gets what it asks for, read from the objects TRL, transformers,
Accelerate and DeepSpeed build (not from the YAML): activation checkpointing on the model when the
file asks for it, the micro-batches and accumulation steps that keep the global batch, checkpoints
saved, the Accelerate launch the plan counts, and DeepSpeed's "auto" values filled to agree."""
import copy
import json
from pathlib import Path

import pytest
import torch

from qwqlab.config import load_train_config, read_file

pytest.importorskip("trl")

REPO = Path(__file__).resolve().parent.parent
TRAIN_FILES = sorted(p for p in (REPO / "configs" / "experiments").glob("*.yaml") if "sampling" not in read_file(p))


@pytest.fixture(scope="module")
def tiny_family(tmp_path_factory):
    """A tiny random Qwen2 with qwq-nano's tokenizer (qwqlab.rehearse.tiny_model): the family of every
    shipped model, small enough to build a trainer per file in a second."""
    from qwqlab.models import load_model
    from qwqlab.rehearse import tiny_model

    folder = tiny_model("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", tmp_path_factory.mktemp("tiny") / "model")
    return load_model(folder, device="cpu", verbose=False)


@pytest.mark.slow  # about 10 s a file: TRL builds a GRPOTrainer around the tiny model
@pytest.mark.parametrize("path", TRAIN_FILES, ids=lambda p: p.name)
def test_trainer_built_from_each_file_has_the_files_settings(path, tiny_family, tmp_path, monkeypatch):
    import trl
    from transformers import TrainerCallback

    from qwqlab.launch import add_lora_for_trl
    from qwqlab.plan import read_launch
    from qwqlab.rehearse import CPU_DROPS
    from qwqlab.tasks import ArithmeticTask
    from qwqlab.trl_bridge import to_trl_config, trl_dataset

    monkeypatch.chdir(REPO)
    cfg = load_train_config(path)
    g = cfg.grpo
    launch = read_launch(cfg.accelerate)
    n = launch.num_processes
    asked_checkpointing = bool(cfg.trl.get("gradient_checkpointing") or cfg.trl.get("activation_checkpointing"))
    # vLLM and bf16 cannot be built on a CPU; everything else of trl: goes in as the file says
    trl_kwargs = {k: v for k, v in cfg.trl.items() if k not in CPU_DROPS}
    args = to_trl_config(g, str(tmp_path), world_size=n, **trl_kwargs)
    model, tok = tiny_family
    trainer = trl.GRPOTrainer(model=add_lora_for_trl(copy.deepcopy(model), g), args=args,
                              reward_funcs=cfg.reward_funcs()[0],
                              train_dataset=trl_dataset(ArithmeticTask(), tok, 8), processing_class=tok)
    eff = trainer.args

    # checkpointing: on the model itself, as transformers' Trainer switches it on when train() starts
    assert eff.activation_checkpointing == eff.gradient_checkpointing == asked_checkpointing
    seen = {}

    class Stop(Exception):
        pass

    class Look(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            base = model.get_base_model() if g.use_lora else model
            seen.update(on=base.is_activation_checkpointing,
                        accumulation=getattr(trainer, "current_gradient_accumulation_steps", None))
            raise Stop  # before any step: only the settings are read

    trainer.add_callback(Look())
    with pytest.raises(Stop):
        trainer.train()
    assert seen["on"] == asked_checkpointing

    # micro-batches: the same global batch, one generation per optimizer step (on-policy)
    micro, accumulation = eff.per_device_train_batch_size, eff.gradient_accumulation_steps
    assert micro * accumulation * n == g.num_prompts * g.num_generations
    assert micro == min(g.micro_batch_size or micro, micro) and eff.steps_per_generation == accumulation
    assert seen["accumulation"] in (None, accumulation)  # what Trainer.train divides each micro-batch's loss by
    assert eff.generation_batch_size == micro * accumulation  # one rank's share (this test is one process)
    assert (eff.loss_type, eff.num_generations, eff.max_steps) == (
        {"token": "dapo", "sequence": "grpo", "constant": "dr_grpo"}[g.loss_aggregation], g.num_generations, g.steps)

    # saving: every checkpoint_every steps (and at the end, qwqlab.launch), optimizer state kept for --resume
    assert eff.save_strategy == ("steps" if g.checkpoint_every else "no") and not eff.save_only_model
    if g.checkpoint_every:
        assert eff.save_steps == g.checkpoint_every
    print(f"{path.name}: {n} rank(s) x {micro} x {accumulation} accumulation, checkpointing "
          f"{eff.activation_checkpointing}, save every {eff.save_steps}")

    if cfg.accelerate:
        from accelerate.commands.config.config_args import load_config_from_file

        acc = load_config_from_file(str(REPO / cfg.accelerate))  # Accelerate's own reader
        assert acc.num_processes == n and g.num_prompts % n == 0 and acc.use_cpu is False
        if launch.zero_stage:
            pytest.importorskip("deepspeed", reason=(
                "deepspeed is the optional `deepspeed` extra (an sdist built against torch, not in make test's pins); "
                "transformers fills ZeRO's 'auto' values only with it: pip install -e '.[deepspeed]' to check them"))
            from transformers.integrations.deepspeed import HfTrainerDeepSpeedConfig

            ds = HfTrainerDeepSpeedConfig(json.loads((REPO / acc.deepspeed_config["deepspeed_config_file"]).read_text()))
            ds.trainer_config_process(eff)  # how Trainer fills DeepSpeed's "auto" values from its arguments
            assert ds.config["zero_optimization"]["stage"] == 3
            assert ds.config["train_micro_batch_size_per_gpu"] == micro
            assert ds.config["gradient_accumulation_steps"] == accumulation
            assert ds.config["gradient_clipping"] == eff.max_grad_norm


def test_checkpointing_is_honoured_under_either_name():
    from qwqlab.grpo import GRPOConfig
    from qwqlab.trl_bridge import to_trl_config

    for key in ("gradient_checkpointing", "activation_checkpointing"):
        args = to_trl_config(GRPOConfig(), "unused-dir", **{key: True})
        assert args.activation_checkpointing is True and args.gradient_checkpointing is True
    off = to_trl_config(GRPOConfig(), "unused-dir")
    assert off.activation_checkpointing is False and off.gradient_checkpointing is False
    with pytest.raises(ValueError, match="disagree"):
        to_trl_config(GRPOConfig(), "unused-dir", gradient_checkpointing=True, activation_checkpointing=False)


def test_micro_batches_keep_the_global_batch():
    from qwqlab.grpo import GRPOConfig
    from qwqlab.trl_bridge import micro_batching

    assert micro_batching(GRPOConfig(num_prompts=16, num_generations=8), 1) == (128, 1)
    assert micro_batching(GRPOConfig(num_prompts=16, num_generations=8, micro_batch_size=4), 2) == (4, 16)
    assert micro_batching(GRPOConfig(num_prompts=16, num_generations=8, micro_batch_size=999), 8) == (16, 1)
    with pytest.raises(ValueError, match="micro_batch_size=5"):
        micro_batching(GRPOConfig(num_prompts=16, num_generations=8, micro_batch_size=5), 2)
    with pytest.raises(ValueError, match="multiple of 3"):
        micro_batching(GRPOConfig(num_prompts=16, num_generations=8), 3)


def test_trl_section_may_not_set_the_micro_batches(tmp_path):
    from qwqlab.config import ConfigError, check_trl_keys

    for key in ("per_device_train_batch_size", "gradient_accumulation_steps", "steps_per_generation"):
        with pytest.raises(ConfigError, match="micro_batch_size"):
            check_trl_keys("exp.yaml", {key: 2})


@pytest.mark.slow  # about 20 s: two one-step TRL runs of qwq-nano
def test_micro_batches_give_the_same_trl_update(nano, tmp_path):
    """One TRL step on the whole batch and on micro-batches of 2 (4 accumulation steps) move the
    weights the same, up to float rounding (the sums run in other pieces)."""
    import trl

    from qwqlab.grpo import GRPOConfig
    from qwqlab.tasks import ArithmeticTask
    from qwqlab.trl_bridge import to_trl_config, trl_dataset

    def by_length(completions, **kwargs):  # a spread in every group, whatever the untrained model writes
        return [float(len(c) % 5) for c in completions]

    model, tok = nano
    results = {}
    for micro in (None, 2):
        # Tiny on purpose (2 prompts x 4, 40 tokens, one step): the update arithmetic, not learning
        cfg = GRPOConfig(steps=1, num_prompts=2, num_generations=4, max_new_tokens=40, learning_rate=1e-3,
                         micro_batch_size=micro, checkpoint_every=0, progress=False, seed=5)
        trainer = trl.GRPOTrainer(model=copy.deepcopy(model), reward_funcs=[by_length],
                                  args=to_trl_config(cfg, str(tmp_path / str(micro))),
                                  train_dataset=trl_dataset(ArithmeticTask(split="train"), tok, 8), processing_class=tok)
        trainer.train()
        results[micro] = ({n: p.detach().clone() for n, p in trainer.model.named_parameters()},
                          [h for h in trainer.state.log_history if "reward" in h][0])
    (whole, log_whole), (split, log_split) = results[None], results[2]
    assert log_whole["reward"] == log_split["reward"]  # same rollouts
    assert log_whole["reward_std"] > 0, "no reward spread: the step moved nothing, so nothing was compared"
    moved = max(float((whole[n] - model.state_dict()[n]).abs().max()) for n in whole)
    assert moved > 1e-5
    # fp32, the same update computed in 1 or 4 pieces. AdamW's first step is lr x g / (|g| + eps): where
    # |g| is near eps, the last bits of g move the step by a visible share of lr (0.15% seen), so the
    # tolerance is 1% of the learning rate, far below the lr-sized step each weight takes.
    for n in whole:
        torch.testing.assert_close(split[n], whole[n], rtol=0, atol=1e-2 * 1e-3)
