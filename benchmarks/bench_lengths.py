"""Benchmark: qwqlab.lengths.analyze on 1,000,000 rollouts against a row-by-row pandas baseline.

Both run in this one process on the same synthetic rollouts (qwq-nano's trace generator,
``tests/fixtures/synthetic.py``). The baseline is what an analysis written row by
row looks like: ``DataFrame.apply(axis=1)`` with Python's ``re`` for the markers and the
overthinking search, then the same pandas group-bys. It is timed on a subsample and
extrapolated linearly to the full size (its cost is linear in rows; running it on a million
rows would take minutes), and the printout says so. The two are also checked to agree on
that subsample.

Target (issue 5): the full analysis of 1,000,000 rollouts in at most 10 s on 2 CPU cores.

    python benchmarks/bench_lengths.py [--rows 1000000] [--baseline-rows 20000]
"""
from __future__ import annotations

import argparse
import math
import os
import re
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "fixtures")]  # the synthetic table is a test fixture

from synthetic import synthetic_rollouts  # noqa: E402

from qwqlab.lengths import (DEFAULT_MARKERS, accuracy_by_length, analyze,  # noqa: E402
                            length_by_correctness, length_vs_pass_rate, marker_regex)


def baseline_analyze(df: pd.DataFrame, markers=DEFAULT_MARKERS, bins: int = 5) -> dict:
    """The same analysis written row by row: per-row features with ``apply``, then group-bys."""
    patterns = {m: re.compile(marker_regex(m), re.IGNORECASE) for m in markers}
    union = re.compile("|".join(f"(?:{marker_regex(m)})" for m in sorted(markers, key=len, reverse=True)),
                       re.IGNORECASE)

    def per_row(row):
        thinking = row["thinking"] if isinstance(row["thinking"], str) else ""
        out = {m: len(p.findall(thinking)) for m, p in patterns.items()}
        out["reflections"] = len(union.findall(thinking))
        out["reflections_per_1k"] = (out["reflections"] / row["think_tokens"] * 1000
                                     if row["think_tokens"] > 0 else math.nan)
        answer = row["extracted_answer"]
        over = math.nan
        if isinstance(answer, str) and answer.strip() and thinking:
            a = answer.strip()
            hit = re.search(r"(?<![A-Za-z0-9_])" + re.escape(a) + r"(?![A-Za-z0-9_])(?!\.\d)", thinking)
            if hit:
                over = row["think_tokens"] * (len(thinking) - hit.end()) / len(thinking)
        out["overthinking_tokens"] = over
        out["no_thinking"] = float(row["think_tokens"] == 0)
        return pd.Series(out)

    per = df.apply(per_row, axis=1)
    summary = {
        "think_tokens_mean": df["think_tokens"].mean(), "answer_tokens_mean": df["answer_tokens"].mean(),
        "completion_tokens_mean": df["completion_tokens"].mean(),
        "truncation_rate": df["is_truncated"].mean(), "no_thinking_share": per["no_thinking"].mean(),
    }
    return {"summary": summary, "marker_totals": per[[*markers, "reflections"]].sum().to_dict(),
            "overthinking_tokens_mean": per["overthinking_tokens"].mean(),
            "by_bucket": accuracy_by_length(df, bins), "by_correctness": length_by_correctness(df),
            "by_problem": length_vs_pass_rate(df)}


def check_agreement(df: pd.DataFrame) -> None:
    fast = analyze(df)
    slow = baseline_analyze(df)
    totals = fast.markers.set_index("marker")["count"].to_dict()
    assert totals == {k: int(v) for k, v in slow["marker_totals"].items()}, (totals, slow["marker_totals"])
    for k, v in slow["summary"].items():
        assert math.isclose(fast.summary[k].iloc[0], v, rel_tol=1e-9), k
    assert math.isclose(fast.overthinking["overthinking_tokens_mean"].iloc[0], slow["overthinking_tokens_mean"],
                        rel_tol=1e-9)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000, help="rollouts for the vectorised analysis")
    p.add_argument("--baseline-rows", type=int, default=10_000,
                   help="subsample the row-by-row baseline is timed on (then extrapolated)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeat-thinking", type=int, default=1,
                   help="repeat each thinking text this many times (traces longer than qwq-nano's)")
    args = p.parse_args(argv)

    print(f"CPU cores visible: {os.cpu_count()}")
    t = time.perf_counter()
    df = synthetic_rollouts(args.rows, seed=args.seed)
    if args.repeat_thinking > 1:
        df["thinking"] = (df["thinking"] + "\n") * args.repeat_thinking
        df["think_tokens"] *= args.repeat_thinking
    print(f"built {len(df):,} synthetic rollouts in {time.perf_counter() - t:.1f} s "
          f"(mean thinking {df['thinking'].str.len().mean():.0f} characters)")

    t = time.perf_counter()
    report = analyze(df)
    fast_s = time.perf_counter() - t
    print(f"qwqlab.lengths.analyze, {len(df):,} rollouts: {fast_s:.2f} s (target <= 10 s) "
          f"[{len(report.tables())} tables, skipped: {report.skipped or 'none'}]")

    sub = df.sample(n=min(args.baseline_rows, len(df)), random_state=args.seed).reset_index(drop=True)
    check_agreement(sub)
    t = time.perf_counter()
    baseline_analyze(sub)
    slow_s = time.perf_counter() - t
    extrapolated = slow_s * len(df) / len(sub)
    print(f"row-by-row pandas baseline, {len(sub):,}-row subsample: {slow_s:.2f} s; "
          f"extrapolated linearly to {len(df):,} rows: {extrapolated:.0f} s (estimate, not run)")
    print(f"speed-up: {extrapolated / fast_s:.0f}x (baseline extrapolated / vectorised measured); "
          f"results agree on the subsample")
    return 0


if __name__ == "__main__":
    sys.exit(main())
