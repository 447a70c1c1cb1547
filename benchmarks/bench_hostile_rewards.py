"""Seconds each reward takes on hostile completions (issue 10): none may stall training.

Two inputs: 8,000 unclosed ``\\boxed{`` (55 KB, about 24k qwq-nano tokens: 31-38 s per reward
before ``extract_boxed`` was made linear) and a 10 MB completion. The baseline, measured in the
same run, is the same reward on an ordinary 200-character completion; the goal is every reward
under 1 s on each hostile input.

    .venv/bin/python benchmarks/bench_hostile_rewards.py        # about 20 s on 2 CPU cores
"""
from __future__ import annotations

import json
import sys
import time

from qwqlab.rewards import DEFAULT_TABLE_REWARDS, get_reward

PROMPT = "<|im_start|>user\nWhat is 12+35?<|im_end|>\n<|im_start|>assistant\n<think>\n"
INPUTS = {
    "ordinary (200 chars)": "12+35: 2+5=7, 1+3=4, so 47.\n</think>\nThe answer is \\boxed{47}." + " ok" * 45,
    "8,000 unclosed \\boxed{": "\\boxed{" * 8000,
    "10 MB, boxes and words": ("think about it \\boxed{1} " * 400_000)[:10_000_000] + "</think>\\boxed{47}",
}


def main() -> int:
    results = {}
    for name in DEFAULT_TABLE_REWARDS:
        reward = get_reward(name)
        reward([PROMPT], [INPUTS["ordinary (200 chars)"]], answer=["47"])  # warm-up (imports, Math-Verify)
        for label, text in INPUTS.items():
            t = time.perf_counter()
            reward([PROMPT], [text], answer=["47"])
            results.setdefault(name, {})[label] = time.perf_counter() - t
    width = max(map(len, INPUTS))
    print(f"{'reward':<16}" + "".join(f"{k:>{width + 2}}" for k in INPUTS) + "   worst/ordinary")
    worst = 0.0
    for name, row in results.items():
        base = max(row["ordinary (200 chars)"], 1e-6)
        w = max(v for k, v in row.items() if k != "ordinary (200 chars)")
        worst = max(worst, w)
        print(f"{name:<16}" + "".join(f"{v:>{width + 1}.3f}s" for v in row.values()) + f"   {w / base:,.0f}x")
    print(f"slowest reward on a hostile input: {worst:.2f} s (goal: under 1 s)")
    if "--json" in sys.argv:
        json.dump(results, open(sys.argv[sys.argv.index("--json") + 1], "w"), indent=1)
    return 0 if worst < 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
