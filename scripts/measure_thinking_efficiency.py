"""Measure the thinking-efficiency metrics of the bundled traces once, into data/traces/.

``qwqlab.traces.efficiency_table`` on every row of the ``normal`` split of
``data/traces/mip_math52.jsonl.gz`` (the missing-premise questions have no correct answer to
find): reasoning tokens in QwQ-32B's tokenizer, first-correct tokens found with qwqlab's
grader, reflection tokens, token efficiency, thought switches. It takes about a minute of
sympy on 2 cores, which is why notebook 05 reads the result (``traces.load_efficiency``)
instead of recomputing it; ``tests/test_traces.py`` recomputes sampled rows and checks they
equal the file.

    .venv/bin/python scripts/measure_thinking_efficiency.py
"""
from __future__ import annotations

import argparse
import time

from qwqlab.traces import EFFICIENCY_COLUMNS, efficiency_path, efficiency_table, load_mip_traces


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=None, help=f"where to write (default {efficiency_path()})")
    args = p.parse_args()
    traces = load_mip_traces(markers=())
    normal = traces[traces["split"] == "normal"]
    start = time.perf_counter()
    table = normal[["model", "split", "problem_index"]].join(efficiency_table(normal))
    out = args.out or efficiency_path()
    table[["model", "split", "problem_index", *EFFICIENCY_COLUMNS]].to_csv(out, index=False, float_format="%.6g")
    print(f"{len(table)} rows in {time.perf_counter() - start:.0f} s -> {out}")


if __name__ == "__main__":
    main()
