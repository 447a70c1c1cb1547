"""Sampling throughput: qwqlab's ``sample`` against a per-prompt, per-sample ``generate`` loop.

Both run in this one process on the same model, problems and sampling settings
(temperature, top_p, top_k, max_new_tokens; KV cache on in both). The baseline is the loop
people write first: one ``model.generate`` call per problem per sample. Throughput is
completion tokens (end-of-turn token included) per second of wall time; each side is
warmed up on one problem first. The two are timed in alternating rounds, so that a change
in machine load hits both alike: each round qwqlab samples all the problems and the loop a
slice of them, the slices covering every problem once over the rounds. The printed ratio is
the median of the rounds' ratios.
Goal (issue 9): qwqlab's decoder at least 25x the loop's tokens/s on qwq-nano on 2 CPU cores.
It also prints the decoder's useful arithmetic as a share of this CPU's measured matmul
throughput (2 x parameters FLOPs per generated token, against a large float32 matmul timed in
the same run): how far a tiny model's decoding is from compute-bound. Samples that have drawn
the same tokens so far are computed once, so it also prints the share of tokens computed.

    .venv/bin/python benchmarks/bench_sampling.py                 # ~1 min on 2 quiet CPU cores
    .venv/bin/python benchmarks/bench_sampling.py --num-problems 32 --json out.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time


def matmul_flops_per_second(threads: int, n: int = 1024, repeats: int = 10) -> float:
    """This CPU's float32 matmul throughput (FLOP/s), best of ``repeats`` n x n products."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best


def naive_loop(model, tok, prompts, num_generations, temperature, top_p, top_k, max_new_tokens, seed) -> int:
    """One ``generate`` per prompt per sample; returns completion tokens generated."""
    import torch

    from qwqlab.decoding import stop_token_ids

    stops = stop_token_ids(tok)
    tokens = 0
    for i, prompt in enumerate(prompts):
        enc = tok(prompt, return_tensors="pt", add_special_tokens=False).to(model.device)
        for s in range(num_generations):
            torch.manual_seed(seed * 1_000_003 + i * 1009 + s)
            with torch.inference_mode():
                out = model.generate(**enc, do_sample=True, temperature=temperature, top_p=top_p, top_k=top_k,
                                     max_new_tokens=max_new_tokens, eos_token_id=stops,
                                     pad_token_id=tok.pad_token_id, use_cache=True)
            new = out[0, enc["input_ids"].shape[1]:].tolist()
            end = next((j for j, t in enumerate(new) if t in stops), None)
            tokens += len(new) if end is None else end + 1
    return tokens


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] + " Prints tokens/s of each and the ratio.",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="qwq-nano", help="qwq-nano, a local folder or a hub id")
    p.add_argument("--num-problems", type=int, default=16)
    p.add_argument("--num-generations", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=96)
    p.add_argument("--temperature", type=float, default=0.6)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--top-k", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=128, help="qwqlab's completions per generate call")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads, both sides (1: qwq-nano gains little from a second thread, and on a "
                        "shared 2-core machine a second one makes timings swing by 10x)")
    p.add_argument("--rounds", type=int, default=4,
                   help="alternating timing rounds; the loop samples 1/rounds of the problems in each")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the result here")
    args = p.parse_args(argv)

    import torch

    from qwqlab.models import load_model
    from qwqlab.rollouts import sample
    from qwqlab.tasks import ArithmeticTask

    torch.set_num_threads(args.threads)
    model, tok = load_model(args.model, verbose=False)
    task = ArithmeticTask(seed=args.seed)
    problems = task.problems(args.num_problems)
    prompts = [task.prompt(tok, q) for q in problems]
    settings = dict(temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
                    max_new_tokens=args.max_new_tokens)
    print(f"sampling {args.num_problems} problems x {args.num_generations} samples, up to {args.max_new_tokens} new "
          f"tokens, T={args.temperature}, top_p={args.top_p}, top_k={args.top_k}, {args.threads} threads, "
          f"model {args.model}", flush=True)

    # warm-up: one problem each, untimed
    sample(model, tok, problems[:1], task, num_generations=2, progress=False, seed=args.seed, **settings)
    naive_loop(model, tok, prompts[:1], 1, seed=args.seed, **settings)

    import statistics as st

    rounds = max(1, min(args.rounds, len(prompts)))
    slices = [prompts[r * len(prompts) // rounds:(r + 1) * len(prompts) // rounds] for r in range(rounds)]
    totals = {"qwqlab": [0, 0.0], "loop": [0, 0.0]}
    ratios, accuracy = [], []
    for r, loop_prompts in enumerate(slices):
        seed = args.seed
        t = time.perf_counter()
        df = sample(model, tok, problems, task, num_generations=args.num_generations, batch_size=args.batch_size,
                    seed=seed, progress=False, **settings)
        q_s, q_tokens = time.perf_counter() - t, int(df["completion_tokens"].sum())
        t = time.perf_counter()
        l_tokens = naive_loop(model, tok, loop_prompts, args.num_generations, seed=seed, **settings)
        l_s = time.perf_counter() - t
        ratios.append((q_tokens / q_s) / (l_tokens / l_s))
        accuracy.append(float(df["correct"].mean()))
        for name, (n, s_) in (("qwqlab", (q_tokens, q_s)), ("loop", (l_tokens, l_s))):
            totals[name][0] += n
            totals[name][1] += s_
        print(f"round {r + 1}/{rounds}: qwqlab {q_tokens} tokens in {q_s:.2f} s ({q_tokens / q_s:,.0f} tokens/s); loop "
              f"{l_tokens} tokens in {l_s:.2f} s ({l_tokens / l_s:,.0f} tokens/s); ratio {ratios[-1]:.1f}x", flush=True)
    q_rate = totals["qwqlab"][0] / totals["qwqlab"][1]
    l_rate = totals["loop"][0] / totals["loop"][1]
    ratio = st.median(ratios)
    print(f"qwqlab sample (batch {args.batch_size}, {len(problems)} problems): {q_rate:,.0f} tokens/s")
    print(f"per-prompt, per-sample generate loop (the same problems, over the rounds): {l_rate:,.0f} tokens/s")
    print(f"ratio qwqlab / loop: {ratio:.1f}x tokens/s (median of {rounds} rounds; goal >= 25x)")
    flops = matmul_flops_per_second(args.threads)
    params = sum(p.numel() for p in model.parameters())
    share = q_rate * 2 * params / flops
    print(f"matmul throughput of this CPU ({args.threads} threads, float32 1024x1024): {flops / 1e9:,.1f} GFLOP/s; "
          f"the decoder's 2 x {params:,} FLOPs per token at {q_rate:,.0f} tokens/s use {share:.2%} of it")
    # The decoder runs samples that have drawn the same tokens so far once: the tokens it
    # computed are the distinct prefixes of each prompt's samples (untimed, same seed).
    from qwqlab.decoding import generate

    gens = generate(model, tok, prompts, args.num_generations, seed=args.seed, **settings)
    prefixes = {(g.prompt_index, tuple(g.token_ids[:k])) for g in gens for k in range(1, g.num_tokens + 1)}
    computed = len(prefixes) / sum(g.num_tokens for g in gens)
    print(f"tokens the decoder computed: {computed:.1%} of those it generated (the rest shared a prefix with "
          f"another sample of their prompt); computed tokens use {share * computed:.2%} of the matmul throughput")
    result = {"num_problems": args.num_problems,
              "num_generations": args.num_generations, **settings, "batch_size": args.batch_size,
              "threads": args.threads, "model": args.model, "rounds": rounds,
              "qwqlab_tokens": totals["qwqlab"][0], "qwqlab_seconds": round(totals["qwqlab"][1], 3),
              "qwqlab_tokens_per_s": round(q_rate, 1), "loop_tokens": totals["loop"][0],
              "loop_seconds": round(totals["loop"][1], 3), "loop_tokens_per_s": round(l_rate, 1),
              "round_ratios": [round(x, 2) for x in ratios], "ratio": round(ratio, 2),
              "accuracy": round(st.mean(accuracy), 4), "matmul_gflops": round(flops / 1e9, 2),
              "share_of_matmul_throughput": round(share, 5), "computed_share_of_tokens": round(computed, 4)}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
