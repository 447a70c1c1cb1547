"""scripts/gpu_check.py: the prepared GPU check, run here as --dry-run (the same code on the CPU)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_gpu_check_help():
    out = subprocess.run([sys.executable, str(REPO / "scripts/gpu_check.py"), "--help"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and "--dry-run" in out.stdout


@pytest.mark.slow  # about 40 s on 2 CPU cores: qwq-nano three times, a tiny QwQ-32B cut, 2 GRPO steps
def test_gpu_check_dry_run_writes_every_part(tmp_path):
    out = tmp_path / "gpu_check.json"
    proc = subprocess.run([sys.executable, str(REPO / "scripts/gpu_check.py"), "--dry-run", "--out", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["dry_run"] is True and r["device"] == "cpu" and r["errors"] == {}
    assert r["bandwidth_gb_s"] > 0
    for name in ("bf16", "4bit", "8bit"):
        part = r["nano"][name]
        if "skipped" in part:
            continue
        assert part["footprint_bytes"] > 0 and abs(part["error_pct"]) < 5
        assert part["generated_tokens"] > 0 and 0 <= part["greedy_accuracy"] <= 1
    big = r["qwq32b"]
    assert big["layers"] == 2 and abs(big["error_pct"]) < 1  # bf16: the estimate is exact up to buffers
    assert [d["batch"] for d in big["decode"]] == [1, 64]
    for d in big["decode"]:
        assert 0 < d["tokens_per_s"] and 0 < d["share_of_limit"] < 1  # nothing beats the bandwidth limit
    assert r["train_grpo"]["steps"] == 2 and [row["step"] for row in r["train_grpo"]["rows"]] == [1, 2]
    assert r["finished"] == ["nano", "qwq32b", "train_grpo"]
    assert r["versions"]["transformers"] and r["versions"]["torch"] and "differs_from_pins" in r["versions"]
    assert r["nano"]["bf16"]["decode_path"]["path"]  # which decode path ran is recorded


def test_bandwidth_limit_counts_the_embedding_rows_read_not_the_table():
    sys.path.insert(0, str(REPO / "scripts"))
    from gpu_check import bytes_read_per_step, qwq32b_config

    cfg = qwq32b_config(dry_run=False)
    weights = 61 * 2**30
    table = cfg.vocab_size * cfg.hidden_size * 2  # 1.45 GiB of bf16 embeddings, one row per sequence read
    assert bytes_read_per_step(weights, cfg, 1, 0) == weights - table + cfg.hidden_size * 2
    assert bytes_read_per_step(weights, cfg, 64, 0) - bytes_read_per_step(weights, cfg, 1, 0) == 63 * cfg.hidden_size * 2


@pytest.mark.slow  # about 15 s: parts stopped by a very short --part-timeout
def test_gpu_check_writes_what_finished_when_parts_time_out(tmp_path):
    out = tmp_path / "gpu_check.json"
    proc = subprocess.run([sys.executable, str(REPO / "scripts/gpu_check.py"), "--dry-run", "--out", str(out),
                           "--part-timeout", "0.3"], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 1  # parts failed, and said so
    r = json.loads(out.read_text())
    assert "nano" in r["errors"] and "part-timeout" in r["errors"]["nano"]
    assert set(r["finished"]) | set(r["errors"]) == {"nano", "qwq32b", "train_grpo"}
