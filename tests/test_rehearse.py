"""`qwqlab train CONFIG --rehearse`: every GPU training file runs on 2 CPU processes with a tiny
random model of its family, through the code paths its GPU run takes (LoRA or full weights,
activation checkpointing, micro-batches with accumulation, a save, a resume); what a CPU cannot
run (vLLM, bf16, DeepSpeed ZeRO-3 without deepspeed) is named. With deepspeed installed, a ZeRO-3
file runs under ZeRO-3 (DeepSpeed's CPU accelerator, gloo)."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from qwqlab.config import load_train_config, read_file

REPO = Path(__file__).resolve().parent.parent
GPU_FILES = sorted(p for p in (REPO / "configs" / "experiments").glob("*gpu*.yaml") if "sampling" not in read_file(p))


@pytest.mark.slow  # about 1-2 min a file on 2 CPU cores: two 2-process launches (step 1, then resume to step 2)
@pytest.mark.parametrize("path", GPU_FILES, ids=lambda p: p.name)
def test_gpu_file_rehearses_on_two_cpu_processes(path, tmp_path):
    pytest.importorskip("trl")
    cfg = load_train_config(path)
    config = tmp_path / path.name
    config.write_text(path.read_text().replace(f"out: {cfg.out}", f"out: {tmp_path / 'run'}"))
    port = 29570 + 10 * GPU_FILES.index(path)
    proc = subprocess.run([sys.executable, "-m", "qwqlab", "train", str(config), "--rehearse", "--master-port",
                           str(port)], capture_output=True, text=True, timeout=900, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    result = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert [p["steps"] for p in result["phases"]] == [1, 2]
    out = Path(result["out"])
    assert [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()] == [1, 2]
    zero3 = "zero3" in (cfg.accelerate or "") and importlib.util.find_spec("deepspeed") is not None
    summaries = [json.loads((out / f"summary-rank{r}.json").read_text()) for r in (0, 1)]
    assert [(s["world_size"], s["steps"]) for s in summaries] == [(2, 2), (2, 2)]
    if not zero3:  # DDP: the ranks agree; under ZeRO-3 each holds its own shard
        assert summaries[0]["weights_sha256"] == summaries[1]["weights_sha256"]

    last = out / "trl" / "checkpoint-2"
    args = torch.load(last / "training_args.bin", weights_only=False)  # the arguments the run trained with
    asked = bool(cfg.trl.get("gradient_checkpointing") or cfg.trl.get("activation_checkpointing"))
    assert args.activation_checkpointing == asked
    # micro-batches of 2 and 2 accumulation steps a rank: 2 prompts x 4 completions over 2 ranks
    assert (args.per_device_train_batch_size, args.gradient_accumulation_steps) == (2, 2)
    saved = {p.name for p in last.iterdir()}
    assert {"trainer_state.json", "rng_state_0.pth", "rng_state_1.pth"} <= saved
    # the optimizer state: Trainer's file, or under ZeRO-3 DeepSpeed's sharded checkpoint (global_stepN)
    assert ("global_step2" in saved and bool(args.deepspeed)) if zero3 else "optimizer.pt" in saved
    assert ("adapter_model.safetensors" in saved) == cfg.grpo.use_lora  # LoRA saves its adapters only
    state = json.loads((last / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    # What a CPU cannot rehearse is said, not silently skipped.
    if cfg.trl.get("use_vllm"):
        assert "use_vllm" in result["dropped"]
    if "zero3" in (cfg.accelerate or ""):
        assert ("deepspeed" in result["dropped"]) != zero3  # rehearsed under ZeRO-3, or said why not
