"""Record the four GRPO runs on qwq-nano that notebook 04 plots, with their logs, in data/runs/.

1. ``correctness``: the correctness reward alone, at most 3 minutes of training: held-out
   accuracy (pass@1 at temperature 1.0) should rise by at least 15 points, and the mean
   thinking length with it (the model learns to stop skipping the reasoning).
2. ``length_penalty``: correctness plus a strong length penalty (Kimi k1.5's, at weight 2: the
   longest correct completion of a group scores no more than a wrong one): shorter
   completions and lower accuracy than run 1.
3. ``format``: the format reward alone: the format score goes to ~1 while accuracy does not
   improve (reward hacking: the reward never looks at the answer).
4. ``high_lr``: run 1 with a learning rate ten times too high: collapse.

Each run starts from the same checkpoint, trains for the same time budget, and is
evaluated before and after on the same held-out problems. Writes ``data/runs/<run>/log.jsonl``
(one row per step) and ``data/runs/summary.json`` (settings, evaluations, the checks above
with their numbers, machine). Run it on a quiet machine: the budget is wall-clock time.

    .venv/bin/python scripts/record_runs.py                 # all four, ~13 min on 2 CPU cores
    .venv/bin/python scripts/record_runs.py --runs correctness --max-seconds 60 --out /tmp/runs
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path

#: The recorded experiment. Tuned on qwq-nano; every run shares it except where noted.
BASE = dict(num_prompts=16, num_generations=8, max_new_tokens=96, learning_rate=1e-4,
            estimator="grpo", loss_aggregation="token", beta=0.0)
RUNS = {
    "correctness": dict(setup="correctness"),
    "length_penalty": dict(setup="length_penalty"),
    "format": dict(setup="format"),
    "high_lr": dict(setup="correctness", lr_factor=10.0),
}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def checks(summary: dict) -> dict:
    """The four claims, each with the numbers it rests on and whether it holds."""
    runs, out = summary["runs"], {}
    before = summary["baseline"]
    if "correctness" in runs:
        r = runs["correctness"]
        gain = r["after"]["accuracy"] - before["accuracy"]
        out["correctness"] = {
            "accuracy_before": before["accuracy"], "accuracy_after": r["after"]["accuracy"],
            "accuracy_gain_points": round(100 * gain, 1),
            "think_tokens_before": before["think_tokens_mean"], "think_tokens_after": r["after"]["think_tokens_mean"],
            "train_seconds": r["train_seconds"],
            "holds": gain >= 0.15 and r["after"]["think_tokens_mean"] > before["think_tokens_mean"]
            and r["train_seconds"] <= 180}
    if "length_penalty" in runs and "correctness" in runs:
        r, c = runs["length_penalty"]["after"], runs["correctness"]["after"]
        out["length_penalty"] = {
            "completion_tokens": r["completion_tokens_mean"], "completion_tokens_correctness_run": c["completion_tokens_mean"],
            "accuracy": r["accuracy"], "accuracy_correctness_run": c["accuracy"],
            "holds": r["completion_tokens_mean"] < c["completion_tokens_mean"] and r["accuracy"] < c["accuracy"]}
    if "format" in runs:
        r = runs["format"]
        gain = r["after"]["accuracy"] - before["accuracy"]
        out["format"] = {
            "format_score_before": before["format_score"], "format_score_after": r["after"]["format_score"],
            "accuracy_before": before["accuracy"], "accuracy_after": r["after"]["accuracy"],
            "accuracy_gain_points": round(100 * gain, 1),
            # "does not improve": within two standard errors of a 0-points change
            "holds": r["after"]["format_score"] >= 0.95 and gain <= 2 * summary["eval"]["accuracy_standard_error"]}
    if "high_lr" in runs:
        r = runs["high_lr"]
        out["high_lr"] = {
            "learning_rate": r["config"]["learning_rate"], "accuracy_before": before["accuracy"],
            "accuracy_after": r["after"]["accuracy"], "format_rate_after": r["after"]["format_rate"],
            "holds": r["after"]["accuracy"] <= 0.5 * before["accuracy"]}
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--out", default=None, help="folder to write to (default data/runs)")
    p.add_argument("--runs", default=",".join(RUNS), help=f"comma-separated subset of {','.join(RUNS)}")
    p.add_argument("--max-seconds", type=float, default=170.0,
                   help="training time budget per run (the claim is at most 3 minutes)")
    p.add_argument("--max-steps", type=int, default=1000, help="step cap per run (the time budget usually ends it)")
    p.add_argument("--eval-problems", type=int, default=500, help="held-out problems (pass@1, one sample each)")
    p.add_argument("--eval-seed", type=int, default=1)
    p.add_argument("--learning-rate", type=float, default=BASE["learning_rate"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--model", default="qwq-nano")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args(argv)

    import torch

    from qwqlab.grpo import GRPOConfig, evaluate_policy, train_grpo
    from qwqlab.rewards import reward_setup
    from qwqlab.runs import runs_dir
    from qwqlab.models import load_model, resolve_model_path
    from qwqlab.rewards import get_reward
    from qwqlab.tasks import ArithmeticTask

    torch.set_num_threads(args.threads)
    out = Path(args.out) if args.out else runs_dir()
    out.mkdir(parents=True, exist_ok=True)
    names = [n.strip() for n in args.runs.split(",") if n.strip()]
    unknown = set(names) - set(RUNS)
    if unknown:
        p.error(f"unknown runs {sorted(unknown)}; known: {list(RUNS)}")
    train_task, test_task = ArithmeticTask(split="train", seed=args.seed), ArithmeticTask(split="test", seed=0)
    eval_kw = dict(num_problems=args.eval_problems, temperature=1.0, max_new_tokens=BASE["max_new_tokens"],
                   seed=args.eval_seed, scores={"format": get_reward("format")})

    model_path = Path(resolve_model_path(args.model))
    weights = next(iter(sorted(model_path.glob("*.safetensors"))), None)
    model, tok = load_model(args.model, verbose=False)
    t = time.perf_counter()
    baseline = evaluate_policy(model, tok, test_task, **eval_kw)
    eval_seconds = time.perf_counter() - t
    print(f"before RL: accuracy {baseline['accuracy']:.3f}, thinking {baseline['think_tokens_mean']:.1f} tokens, "
          f"format {baseline['format_score']:.3f} ({eval_seconds:.0f} s)", flush=True)

    old = {}
    if (out / "summary.json").exists():
        old = json.loads((out / "summary.json").read_text()).get("runs", {})
    summary = {
        "created": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": " ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:])),
        "model": {"name": args.model, "weights_sha256": _sha256(weights) if weights else None},
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                    "python": platform.python_version(), "load_average": list(os.getloadavg())},
        "eval": {"split": "test", "num_problems": args.eval_problems, "temperature": 1.0, "pass_at": 1,
                 "seed": args.eval_seed, "max_new_tokens": BASE["max_new_tokens"],
                 "accuracy_standard_error": round((baseline["accuracy"] * (1 - baseline["accuracy"])
                                                   / args.eval_problems) ** 0.5, 4)},
        "baseline": baseline,
        "runs": {k: v for k, v in old.items() if k not in names},
    }
    for name in names:
        spec = RUNS[name]
        funcs, weights_ = reward_setup(spec["setup"], BASE["num_generations"])
        cfg = GRPOConfig(**{k: v for k, v in BASE.items() if k != "learning_rate"},
                         learning_rate=args.learning_rate * spec.get("lr_factor", 1.0), reward_weights=weights_,
                         steps=args.max_steps, max_seconds=args.max_seconds, seed=args.seed,
                         num_threads=args.threads, log_file=str(out / name / "log.jsonl"), checkpoint_dir=None,
                         progress=not args.quiet)
        model, tok = load_model(args.model, verbose=False)
        print(f"\n== {name}: {spec['setup']} reward, lr {cfg.learning_rate:g}, budget {args.max_seconds:.0f} s", flush=True)
        t = time.perf_counter()
        log = train_grpo(model, tok, train_task, funcs, cfg)
        wall = time.perf_counter() - t
        after = evaluate_policy(model, tok, test_task, **eval_kw)
        summary["runs"][name] = {
            "reward_setup": spec["setup"], "reward_functions": [getattr(f, "__name__", "?") for f in funcs],
            "reward_weights": weights_, "config": cfg.to_dict(), "steps": int(len(log)),
            "train_seconds": round(float(log["seconds"].sum()), 1), "wall_seconds": round(wall, 1),
            "before": baseline, "after": after, "log": f"{name}/log.jsonl",
            "last_10_steps": {k: round(float(log[k].tail(10).mean()), 4) for k in
                              ("reward_mean", "accuracy", "format_rate", "completion_tokens_mean",
                               "think_tokens_mean", "entropy", "zero_spread_share")},
        }
        print(f"{name}: {len(log)} steps in {summary['runs'][name]['train_seconds']} s; accuracy "
              f"{baseline['accuracy']:.3f} -> {after['accuracy']:.3f}, thinking {baseline['think_tokens_mean']:.1f} -> "
              f"{after['think_tokens_mean']:.1f} tokens, completion {baseline['completion_tokens_mean']:.1f} -> "
              f"{after['completion_tokens_mean']:.1f}, format {baseline['format_score']:.3f} -> "
              f"{after['format_score']:.3f}", flush=True)
        summary["checks"] = checks(summary)
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print("\n" + json.dumps(summary["checks"], indent=2))
    return summary


if __name__ == "__main__":
    main()
