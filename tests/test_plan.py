"""qwqlab plan: per-rank memory of a training run, checked against peaks measured on a CPU,
a table for every shipped training file, every GPU file fitting an 80 GB GPU, and `qwqlab train`
refusing an oversized variant before it loads anything."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qwqlab.config import load_train_config, read_file
from qwqlab.plan import GPU_80GB_GIB, PlanError, activation_bytes, check_fits, plan

REPO = Path(__file__).resolve().parent.parent
TRAIN_FILES = sorted(p for p in (REPO / "configs" / "experiments").glob("*.yaml") if "sampling" not in read_file(p))
GPU_FILES = [p for p in TRAIN_FILES if "gpu" in p.name]

# One forward and backward of TRL's log-prob path (the model's logits for the completion positions,
# tempered, trl's selective_log_softmax) in a fresh process; prints the peak resident memory above
# what the process held before it. MALLOC_MMAP_THRESHOLD_ keeps glibc from holding freed tensors,
# so the peak is what was alive.
PEAK = r"""
import gc, json, os, sys
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM
from trl.trainer.utils import selective_log_softmax
torch.set_num_threads(1)
m, prompt, completion, ckpt, layers = (int(a) for a in sys.argv[1:])
cfg = Qwen2Config(hidden_size=256, intermediate_size=768, num_hidden_layers=layers, num_attention_heads=4,
                  num_key_value_heads=2, vocab_size=8192, max_position_embeddings=4096, tie_word_embeddings=False)
torch.manual_seed(0)
model = Qwen2ForCausalLM(cfg).train()
if ckpt:
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
ids = torch.randint(0, cfg.vocab_size, (m, prompt + completion))
gc.collect()
base = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
with open("/proc/self/clear_refs", "w") as f:  # the peak so far (imports, building the model) is forgotten
    f.write("5")
logits = model(input_ids=ids, attention_mask=torch.ones_like(ids), logits_to_keep=completion + 1).logits
logps = selective_log_softmax(logits[:, :-1] / 0.9, ids[:, -completion:])
logps.mean().backward()
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")) * 1024
grads = sum(p.numel() * 4 for p in model.parameters())
print(json.dumps({"activations": peak - base - grads, "config": cfg.to_dict()}))
"""


@pytest.mark.slow  # about 30 s: four fresh processes, each one forward and backward of a 4-block model
@pytest.mark.parametrize("sequences, completion", [(2, 896), (1, 1920)])
@pytest.mark.parametrize("checkpointing", [False, True])
def test_planned_activations_match_measured_cpu_peaks(tmp_path, sequences, completion, checkpointing):
    pytest.importorskip("trl")
    script = tmp_path / "peak.py"
    script.write_text(PEAK)
    prompt = 128
    proc = subprocess.run([sys.executable, str(script), str(sequences), str(prompt), str(completion),
                           str(int(checkpointing)), "4"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    measured = json.loads(proc.stdout.strip().splitlines()[-1])
    blocks, logits = activation_bytes(measured["config"], sequences, prompt + completion, completion, 4,
                                      checkpointing)
    ratio = (blocks + logits) / measured["activations"]
    print(f"{sequences} x {prompt + completion} tokens, checkpointing={checkpointing}: planned "
          f"{(blocks + logits) / 1e6:.0f} MB, measured {measured['activations'] / 1e6:.0f} MB, ratio {ratio:.2f}")
    # Seen (2 cores, AMD EPYC): ratios 0.99, 0.86, 1.21, 0.96. The plan may count more than the peak
    # (checkpointed: the logits and the recomputed block are summed, though their peaks come one after
    # the other); it misses small transients (causal mask, attention scratch: about 60 MB at 2,048
    # tokens here), which on a GPU the plan's runtime allowance covers, so at most 20% less.
    assert 0.8 <= ratio <= (1.6 if checkpointing else 1.25)


@pytest.mark.parametrize("path", TRAIN_FILES, ids=lambda p: p.name)
def test_plan_prints_a_table_for_every_training_file(path, capsys):
    from qwqlab.cli import main

    code = main(["plan", str(path)])
    out = capsys.readouterr().out
    assert "memory per rank (GiB)" in out and ("fits:" in out or "does not fit:" in out)
    assert code == (0 if "fits:" in out.splitlines()[-1] else 1)


@pytest.mark.parametrize("path", GPU_FILES, ids=lambda p: p.name)
def test_every_gpu_file_fits_an_80gb_gpu(path):
    cfg = load_train_config(path)
    assert cfg.accelerate, "a GPU file names the Accelerate file it is launched with"
    p = plan(cfg, where=path.name)
    print(p.table())
    assert p.fits, p.verdict()
    assert p.peak_gib <= GPU_80GB_GIB


def test_train_refuses_an_oversized_variant_before_loading(tmp_path):
    text = (REPO / "configs/experiments/qwq32b_lora_server_8gpu.yaml").read_text()
    assert "micro_batch_size: 1" in text
    big = tmp_path / "big.yaml"
    big.write_text(text.replace("micro_batch_size: 1", "micro_batch_size: 16"))
    with pytest.raises(PlanError, match="micro_batch_size"):
        check_fits(load_train_config(big), str(big), gpu_gib=GPU_80GB_GIB)
    # The command line: refused with the knob named, in well under the time a 32B model takes to load
    # (the model is not even on this machine).
    proc = subprocess.run([sys.executable, "-m", "qwqlab", "train", str(big), "--engine", "trl", "--gpu-gib", "79.6"],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode != 0 and "micro_batch_size" in proc.stderr and "does not fit" in proc.stderr
