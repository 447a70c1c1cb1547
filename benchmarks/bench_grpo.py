"""Seconds per GRPO step: qwqlab's ``train_grpo`` against TRL's ``GRPOTrainer``, in one run.

Both train the same model (qwq-nano by default) on the same batch (prompts x generations),
the same generation length, reward (qwqlab's accuracy reward) and optimizer settings; TRL
in its fair CPU setting (``bf16=False``, no gradient checkpointing, ``use_cpu=True``; its
defaults are ~10x slower on a CPU, see the lab notes). The first step of each is a warm-up
and is not timed; the two alternate over rounds and the medians are compared. Goal (issue 9): qwqlab
at most 0.45 of TRL's time per step (ratio <= 0.45).

    .venv/bin/python benchmarks/bench_grpo.py            # ~1.5 min on 2 CPU cores
    .venv/bin/python benchmarks/bench_grpo.py --steps 10 --json out.json
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics as st
import sys
import time


def time_qwqlab(model, tok, task, reward, cfg) -> list[float]:
    from qwqlab.grpo import train_grpo

    df = train_grpo(copy.deepcopy(model), tok, task, [reward], cfg)
    return df["seconds"].tolist()[1:]  # the first step pays one-off costs (imports, Math-Verify)


def time_trl(model, tok, task, reward, cfg, out_dir) -> list[float]:
    from transformers import TrainerCallback
    from trl import GRPOTrainer

    from qwqlab.trl_bridge import to_trl_config, trl_dataset

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times, self.t0 = [], None

        def on_step_begin(self, args, state, control, **kwargs):
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append(time.perf_counter() - self.t0)

    timer = StepTimer()
    trainer = GRPOTrainer(model=copy.deepcopy(model), reward_funcs=[reward], args=to_trl_config(cfg, out_dir),
                          train_dataset=trl_dataset(task, tok, cfg.steps * cfg.num_prompts), processing_class=tok,
                          callbacks=[timer])
    trainer.train()
    return timer.times[1:]


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="qwq-nano")
    p.add_argument("--steps", type=int, default=21,
                   help="steps per trainer, the first one untimed (both learn as they go, so a longer window is "
                        "closer to a real run: qwqlab skips groups with no reward spread, TRL does not)")
    p.add_argument("--num-prompts", type=int, default=16)
    p.add_argument("--num-generations", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=96)
    p.add_argument("--learning-rate", type=float, default=1e-4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=1, help="alternating rounds of each trainer")
    p.add_argument("--json", help="also write the result here")
    args = p.parse_args(argv)

    import tempfile

    import torch

    from qwqlab.grpo import GRPOConfig
    from qwqlab.models import load_model
    from qwqlab.rewards import get_reward
    from qwqlab.tasks import ArithmeticTask

    torch.set_num_threads(args.threads)
    model, tok = load_model(args.model, verbose=False)
    task = ArithmeticTask(split="train")
    reward = get_reward("accuracy")
    cfg = GRPOConfig(steps=args.steps, num_prompts=args.num_prompts, num_generations=args.num_generations,
                     max_new_tokens=args.max_new_tokens, learning_rate=args.learning_rate,
                     num_threads=args.threads, progress=False)
    print(f"GRPO step: {args.num_prompts} prompts x {args.num_generations} samples, up to {args.max_new_tokens} "
          f"new tokens, {args.model}, {args.threads} threads; {args.rounds} rounds of {args.steps - 1} timed "
          "steps each, alternating", flush=True)
    q, t = [], []
    for _ in range(args.rounds):  # alternate, so a change in machine load hits both alike
        q += time_qwqlab(model, tok, task, reward, cfg)
        with tempfile.TemporaryDirectory() as d:
            t += time_trl(model, tok, task, reward, cfg, d)
    result = {"qwqlab_s_per_step": round(st.median(q), 3), "trl_s_per_step": round(st.median(t), 3),
              "ratio": round(st.median(q) / st.median(t), 3),
              "ratio_of_means": round(st.mean(q) / st.mean(t), 3),
              "ratio_first_5_steps": round(st.median(q[:5]) / st.median(t[:5]), 3),
              "qwqlab_steps": [round(x, 3) for x in q], "trl_steps": [round(x, 3) for x in t],
              "settings": vars(args)}
    print(f"qwqlab train_grpo: {result['qwqlab_s_per_step']:.3f} s/step (median)")
    print(f"TRL GRPOTrainer:   {result['trl_s_per_step']:.3f} s/step (median)")
    print(f"ratio qwqlab/TRL:  {result['ratio']:.2f} (goal <= 0.45); of the means {result['ratio_of_means']:.2f}, "
          f"over the first 5 timed steps {result['ratio_first_5_steps']:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
    sys.exit(0)
