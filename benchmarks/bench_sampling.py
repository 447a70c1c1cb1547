"""Sampling throughput: qwqlab's ``generate`` against transformers' batched ``generate``.

All sides run in this one process on the same model, prompts and sampling settings
(temperature, top_p, top_k, max_new_tokens; KV cache on everywhere). Throughput is completion
tokens (end-of-turn token included) per second of wall time.

* **qwqlab**: ``qwqlab.decoding.generate``, all prompts and samples in one call, with the
  speed-ups of ``qwqlab.fast_decoding`` (``FAST`` on).
* **qwqlab plain**: the same loop with ``FAST`` off (``RowBatch``: no prefix sharing, the
  model's own forward): what the speed-ups add.
* **qwqlab no fused step**: ``FAST`` on, but the fused Qwen2 step switched off (prefix sharing
  and the cache only): what the fused step adds on top.
* **HF batched generate** (the baseline): one ``model.generate`` call for all prompts with
  ``num_return_sequences=num_generations``, as TRL's ``GRPOTrainer`` samples without vLLM.
* **loop** (second line): one ``model.generate`` per prompt per sample, the loop people write first.

The sides are timed in alternating rounds, so that a change in machine load hits them alike;
each round every side samples all the prompts, except the loop, which samples a slice of
them (the slices cover every prompt once over the rounds). Each printed ratio is the median
of the rounds' ratios. Each side is warmed up on one prompt first.

Two models of one shape: qwq-nano (a confident policy: its samples share long prefixes) and
``--model random``, qwq-nano's architecture with random weights (a diffuse policy: its samples
share almost nothing, so prefix sharing cannot help there).
Goal (issue 22): qwqlab at least 3x HF's batched generate on both, at T=0.6 and T=1.0.

    .venv/bin/python benchmarks/bench_sampling.py                          # qwq-nano, T=0.6
    .venv/bin/python benchmarks/bench_sampling.py --model random --temperature 1.0 --json out.json
"""
from __future__ import annotations

import argparse
import contextlib
import json
import statistics as st
import sys
import time


def random_model(like):
    """``like``'s architecture and config with random weights (seeded): a diffuse policy."""
    import torch

    torch.manual_seed(0)
    model = type(like)(like.config)
    return model.eval()


def hf_batched(model, tok, prompts, num_generations, temperature, top_p, top_k, max_new_tokens, seed) -> int:
    """One transformers ``generate`` for all prompts, ``num_return_sequences`` samples each; tokens generated."""
    import torch

    from qwqlab.decoding import encode_left, stop_token_ids

    stops = stop_token_ids(tok)
    enc = encode_left(tok, prompts, model.device)
    torch.manual_seed(seed)
    with torch.inference_mode():
        out = model.generate(**enc, do_sample=True, temperature=temperature, top_p=top_p, top_k=top_k,
                             num_return_sequences=num_generations, max_new_tokens=max_new_tokens,
                             eos_token_id=stops, pad_token_id=tok.pad_token_id, use_cache=True)
    return sum(_length(row, stops) for row in out[:, enc["input_ids"].shape[1]:].tolist())


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
            tokens += _length(out[0, enc["input_ids"].shape[1]:].tolist(), stops)
    return tokens


def _length(row, stops) -> int:
    end = next((j for j, t in enumerate(row) if t in stops), None)
    return len(row) if end is None else end + 1


@contextlib.contextmanager
def variant(name):
    """Switch qwqlab's decoder to one of the measured variants for the duration."""
    import qwqlab.decoding as decoding
    import qwqlab.fast_decoding as fast

    fast_was, build = decoding.FAST, fast._PlainStep.build
    try:
        if name == "qwqlab plain":
            decoding.FAST = False
        elif name == "qwqlab no fused step":
            fast._PlainStep.build = classmethod(lambda cls, model, cache: None)
        yield
    finally:
        decoding.FAST, fast._PlainStep.build = fast_was, build


def qwqlab_side(name):
    def run(model, tok, prompts, num_generations, seed, **settings):
        from qwqlab.decoding import generate

        with variant(name):
            gens = generate(model, tok, prompts, num_generations, seed=seed, **settings)
        return sum(g.num_tokens for g in gens)
    return run


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] + " Prints tokens/s of each and the ratios.",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="qwq-nano", help="qwq-nano, 'random' (qwq-nano's shape, random weights), "
                                                       "a local folder or a hub id")
    p.add_argument("--num-problems", type=int, default=16)
    p.add_argument("--num-generations", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=96)
    p.add_argument("--temperature", type=float, default=0.6)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--top-k", type=int, default=40)
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads, every side (1: qwq-nano gains little from a second thread, and on a "
                        "shared 2-core machine a second one makes timings swing by 10x)")
    p.add_argument("--rounds", type=int, default=3, help="alternating timing rounds")
    p.add_argument("--no-loop", action="store_true", help="skip the per-sample loop (the slowest side)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the result here")
    args = p.parse_args(argv)

    import torch

    from qwqlab.models import load_model
    from qwqlab.tasks import ArithmeticTask

    torch.set_num_threads(args.threads)
    model, tok = load_model("qwq-nano" if args.model == "random" else args.model, verbose=False)
    if args.model == "random":
        model = random_model(model)
    task = ArithmeticTask(seed=args.seed)
    prompts = [task.prompt(tok, q) for q in task.problems(args.num_problems)]
    settings = dict(temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
                    max_new_tokens=args.max_new_tokens)
    print(f"sampling {args.num_problems} problems x {args.num_generations} samples, up to {args.max_new_tokens} new "
          f"tokens, T={args.temperature}, top_p={args.top_p}, top_k={args.top_k}, {args.threads} threads, "
          f"model {args.model}", flush=True)
    sides = {"qwqlab": qwqlab_side("qwqlab"), "qwqlab no fused step": qwqlab_side("qwqlab no fused step"),
             "qwqlab plain": qwqlab_side("qwqlab plain"), "HF batched generate": hf_batched}
    if not args.no_loop:
        sides["loop"] = naive_loop
    for run in sides.values():  # warm-up: one prompt each, untimed
        run(model, tok, prompts[:1], 2, seed=args.seed, **settings)

    rounds = max(1, min(args.rounds, len(prompts)))
    slices = [prompts[r * len(prompts) // rounds:(r + 1) * len(prompts) // rounds] for r in range(rounds)]
    totals = {name: [0, 0.0] for name in sides}
    rates: dict = {name: [] for name in sides}
    for r in range(rounds):
        for name, run in sides.items():
            t = time.perf_counter()
            n = run(model, tok, slices[r] if name == "loop" else prompts, args.num_generations,
                    seed=args.seed + r, **settings)
            s = time.perf_counter() - t
            totals[name][0] += n
            totals[name][1] += s
            rates[name].append(n / s)
        print(f"round {r + 1}/{rounds}: " + "; ".join(f"{k} {v[-1]:,.0f} tokens/s" for k, v in rates.items()),
              flush=True)
    base = "HF batched generate"
    ratio = {name: st.median(a / b for a, b in zip(rates[name], rates[base])) for name in sides}
    for name in sides:
        print(f"{name:>22}: {totals[name][0] / totals[name][1]:8,.0f} tokens/s   {ratio[name]:5.2f}x HF batched generate")
    loop_ratio = st.median(a / b for a, b in zip(rates["qwqlab"], rates["loop"])) if "loop" in sides else None
    print(f"ratio qwqlab / HF batched generate: {ratio['qwqlab']:.2f}x (median of {rounds} rounds; goal >= 3x)")
    if loop_ratio is not None:
        print(f"ratio qwqlab / per-sample generate loop: {loop_ratio:.1f}x")
    # The decoder runs samples that have drawn the same tokens so far once: the tokens it
    # computed are the distinct prefixes of each prompt's samples (untimed, same seed).
    from qwqlab.decoding import generate

    gens = generate(model, tok, prompts, args.num_generations, seed=args.seed, **settings)
    prefixes = {(g.prompt_index, tuple(g.token_ids[:k])) for g in gens for k in range(1, g.num_tokens + 1)}
    computed = len(prefixes) / sum(g.num_tokens for g in gens)
    print(f"tokens the decoder computed: {computed:.1%} of those it generated (the rest shared a prefix with "
          f"another sample of their prompt)")
    result = {"model": args.model, "num_problems": args.num_problems, "num_generations": args.num_generations,
              **settings, "threads": args.threads, "rounds": rounds,
              "tokens_per_s": {k: round(v[0] / v[1], 1) for k, v in totals.items()},
              "ratio_to_hf_batched": {k: round(v, 3) for k, v in ratio.items()},
              "ratio_to_loop": round(loop_ratio, 2) if loop_ratio is not None else None,
              "computed_share_of_tokens": round(computed, 4)}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
