"""Keep live RL live: notebook 04's run, on a time budget, still teaches qwq-nano to add.

Runs notebook 04's own settings (read from its ``parameters`` cell, so this follows the
notebook) with ``MAX_SECONDS`` of training (default 10 s), and prints the first step's time,
the steps done and the held-out pass@1 before and after (one sample per problem at
temperature 1.0). Goal (issue 21): at least +40 points after 10 s on 2 quiet CPU cores
(measured +40.8 there, 23 steps; +49.4 after 20 s). A busy machine does fewer steps in the
same budget, so say how loaded it was when you quote the number.

    .venv/bin/python benchmarks/bench_live_rl.py                 # ~1 min on 2 CPU cores
    .venv/bin/python benchmarks/bench_live_rl.py --max-seconds 20 --json out.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

GOAL_POINTS = 40.0


def notebook_parameters() -> dict:
    """The knobs of notebook 04's ``parameters`` cell, as the notebook sets them."""
    import nbformat

    from qwqlab.figures import NOTEBOOK_DIR

    nb = nbformat.read(NOTEBOOK_DIR / "04_rl_training.ipynb", as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", []))
    values: dict = {}
    exec(cell.source, {}, values)  # the repository's own notebook, not user input
    return values


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--max-seconds", type=float, default=10.0, help="training budget (notebook 04's MAX_SECONDS)")
    p.add_argument("--eval-problems", type=int, default=500, help="held-out problems, one sample each at T=1")
    p.add_argument("--json", help="also write the numbers to this file")
    args = p.parse_args(argv)

    import torch

    from qwqlab import grpo, models, rewards
    from qwqlab.tasks import ArithmeticTask

    nbp = notebook_parameters()
    torch.manual_seed(nbp["SEED"])
    torch.set_num_threads(2)  # the notebook's laptop budget
    model, tok = models.load_model(nbp["MODEL"], verbose=False)
    train_task, test_task = ArithmeticTask(split="train", seed=nbp["SEED"]), ArithmeticTask(split="test")

    def held_out() -> float:
        return grpo.evaluate_policy(model, tok, test_task, num_problems=args.eval_problems,
                                    max_new_tokens=nbp["MAX_NEW_TOKENS"], seed=nbp["SEED"])["accuracy"]

    before = held_out()
    funcs, weights = rewards.reward_setup(nbp["REWARD_SETUP"], nbp["NUM_GENERATIONS"])
    cfg = grpo.GRPOConfig(num_prompts=nbp["NUM_PROMPTS"], num_generations=nbp["NUM_GENERATIONS"],
                          max_new_tokens=nbp["MAX_NEW_TOKENS"], learning_rate=nbp["LEARNING_RATE"],
                          estimator=nbp["ESTIMATOR"], loss_aggregation=nbp["LOSS_AGGREGATION"], beta=nbp["BETA"],
                          steps=nbp["STEPS"], max_seconds=args.max_seconds, reward_weights=weights, seed=nbp["SEED"])
    t = time.perf_counter()
    history = grpo.train_grpo(model, tok, train_task, funcs, cfg)
    wall = time.perf_counter() - t
    after = held_out()
    gain = 100 * (after - before)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    result = {"max_seconds": args.max_seconds, "steps": len(history),
              "first_step_seconds": round(float(history["seconds"].iloc[0]), 2),
              "median_step_seconds": round(float(history["seconds"].median()), 2), "train_wall_seconds": round(wall, 1),
              "held_out_before": round(before, 3), "held_out_after": round(after, 3), "gain_points": round(gain, 1),
              "eval_problems": args.eval_problems, "load_average_1min": round(load, 2), "cpus": os.cpu_count()}
    print(f"notebook 04's live run, {args.max_seconds:g} s of training: {result['steps']} steps, first step "
          f"{result['first_step_seconds']} s (median {result['median_step_seconds']} s)")
    print(f"held-out pass@1 ({args.eval_problems} problems, T=1): {before:.3f} -> {after:.3f}, {gain:+.1f} points "
          f"(goal >= +{GOAL_POINTS:g} on 2 quiet cores; load average now {load:.2f} on {os.cpu_count()} CPUs)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
