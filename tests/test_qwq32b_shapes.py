"""estimate_memory against bitsandbytes on QwQ-32B's real shapes (one decoder layer), on the CPU."""
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))


def _free_ram_gib() -> float:
    with open("/proc/meminfo") as f:
        info = dict(line.split(":", 1) for line in f)
    return int(info["MemAvailable"].split()[0]) / 2**20


@pytest.mark.slow  # about 2 min on 2 CPU cores and 8 GB of RAM: a 1.56B+0.49B-parameter model, quantized twice
@pytest.mark.skipif(not os.path.exists("/proc/meminfo") or _free_ram_gib() < 9,
                    reason="needs about 9 GB of free RAM (a 1-layer QwQ-32B cut is 4.1 GB in bf16)")
def test_qwq32b_one_layer_footprint_within_3_percent(tmp_path):
    pytest.importorskip("bitsandbytes")
    from bench_qwq32b_shapes import TOLERANCE_PCT, measure

    r = measure(layers=(1,), bits=(4, 8), workdir=str(tmp_path))
    assert [(c["layers"], c["bits"]) for c in r["cuts"]] == [(1, 4), (1, 8)]
    for c in r["cuts"]:
        assert abs(c["error_pct"]) <= TOLERANCE_PCT, c
    four, eight = (c["measured_gib"] for c in r["cuts"])
    assert 2.9 < four < eight < 3.6  # 2.9 GiB of bf16 embeddings + head, then one layer at 4 or 8 bits
    assert r["full_model"]["4bit"]["total_gib"] < r["full_model"]["8bit"]["total_gib"]
