"""A prepared check for a machine with one CUDA GPU: what qwqlab claims about GPUs, measured there.

Needs only PyTorch and transformers (bitsandbytes used when it imports; no network, no vLLM).
Four parts, each timed and recorded even when another fails:

1. ``nano``: the bundled qwq-nano on the device in bf16, and in 4-bit (NF4) and 8-bit
   (LLM.int8) when bitsandbytes is there: memory footprint against ``estimate_memory``,
   greedy accuracy on a few held-out sums, and decode speed.
2. ``qwq32b``: QwQ-32B's architecture (``data/model_configs/Qwen--QwQ-32B.json``) built on the
   device with random bf16 weights (no download): memory against ``estimate_memory``, and
   decode tokens/s at batch 1 and 64 against the memory-bandwidth limit (each decode step
   reads every weight, but of the input embeddings only the rows looked up, and the KV cache
   once: ``limit = batch x bandwidth / bytes read per step``, with the bandwidth measured by a
   device-to-device copy). The prompt's prefill computes logits at its last position only.
3. ``train_grpo``: five steps of ``qwqlab.grpo.train_grpo`` on qwq-nano on the device (it needs
   pandas for its returned table; without pandas this part says so and is skipped).
4. One JSON of results (``--out``), rewritten after every part, with the library versions (and
   where they differ from constraints.txt), which decode path ran (the fast step only when it
   verified against the model's own forward), and each part's error or timeout (``--part-timeout``).

``--dry-run`` runs the same code on the CPU with a tiny config (QwQ-32B's structure cut to
2 layers of width 80, 2 GRPO steps), which CI runs; on an H100/H200 the full check takes a
few minutes (most of it building 32B random weights and the bf16 decode runs).

    python scripts/gpu_check.py --out gpu_check.json       # on the GPU machine
    python scripts/gpu_check.py --dry-run --out /tmp/g.json
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

GiB = 2**30
QWQ_CONFIG = Path(__file__).resolve().parent.parent / "data" / "model_configs" / "Qwen--QwQ-32B.json"


def _sync(device: str) -> None:
    import torch
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure_bandwidth(device: str, mib: int) -> float:
    """Device memory bandwidth in bytes/s from timing a copy of ``mib`` MiB (read + write)."""
    import torch

    src = torch.empty(mib * 2**20, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)  # warm-up
    _sync(device)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        dst.copy_(src)
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * src.numel() / best


def qwq32b_config(dry_run: bool):
    """QwQ-32B's transformers config; in a dry run the same structure (qwen2, GQA 5:1, q/k/v bias,
    untied head) at a width a CPU builds in a second."""
    from transformers import Qwen2Config

    raw = {k: v for k, v in json.loads(QWQ_CONFIG.read_text()).items() if not k.startswith("_")}
    raw.pop("torch_dtype", None)
    if dry_run:
        raw.update(hidden_size=80, intermediate_size=216, num_hidden_layers=2, num_attention_heads=5,
                   num_key_value_heads=1, vocab_size=1024, max_position_embeddings=512)
    return Qwen2Config(**raw)


def decode_speed(model, batch: int, prompt_tokens: int, new_tokens: int, device: str) -> dict:
    """Greedy decode ``new_tokens`` after a random prompt with the KV cache; tokens/s of the decode steps."""
    import torch
    from transformers import DynamicCache

    vocab = model.config.vocab_size
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (batch, prompt_tokens), generator=g).to(device)
    with torch.inference_mode():
        cache = DynamicCache(config=model.config)
        # the prompt's logits are needed at its last position only (a vocabulary-wide row per token otherwise)
        out = model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
        nxt = out.logits[:, -1:].argmax(-1)
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(new_tokens):
            out = model(input_ids=nxt, past_key_values=out.past_key_values, use_cache=True)
            nxt = out.logits[:, -1:].argmax(-1)
        _sync(device)
        seconds = time.perf_counter() - t0
    return {"batch": batch, "prompt_tokens": prompt_tokens, "new_tokens": new_tokens, "seconds": round(seconds, 4),
            "tokens_per_s": round(batch * new_tokens / seconds, 2)}


def bytes_read_per_step(weight_bytes: int, cfg, batch: int, context: int, dtype_bytes: int = 2) -> int:
    """Bytes a decode step must read: every weight once, except the input embedding table, of which
    only the ``batch`` rows looked up are read (a 152064 x 5120 table is 1.5 GiB of QwQ-32B's 61),
    plus the KV cache of ``context`` tokens per sequence."""
    embedding = cfg.vocab_size * cfg.hidden_size * dtype_bytes
    rows = batch * cfg.hidden_size * dtype_bytes
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    kv = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * head_dim * context * batch * dtype_bytes
    if getattr(cfg, "tie_word_embeddings", False):  # the table is also the output head: read whole
        embedding = rows = 0
    return weight_bytes - embedding + rows + kv


def bandwidth_limit(weight_bytes: int, cfg, batch: int, context: int, bandwidth: float) -> float:
    """Decode tokens/s if a step cost only reading what it must (``bytes_read_per_step``) once."""
    return batch * bandwidth / bytes_read_per_step(weight_bytes, cfg, batch, context)


def decode_path(model) -> dict:
    """Which of the decoder's paths ran for ``model``: the fast one-token step (only once it matched the
    model's own forward on this transformers, dtype and device) or the model's own forward."""
    import qwqlab.decoding as decoding

    out = {"fast_switch": getattr(decoding, "FAST", None)}
    try:  # qwqlab.fast_decoding records its self-check per model, dtype and device
        from qwqlab import fast_decoding
        checked = fast_decoding._checked.get(model) or {}
        out["self_check"] = {f"{k[0]}@{k[1]}": bool(v) for k, v in checked.items()}
        out["path"] = ("fast step" if checked and all(checked.values())
                       else "model forward (fast step did not verify)" if checked else "model forward")
    except ImportError:  # before that module: decoding's _PlainStep, when the model is a plain Qwen2
        plain = getattr(decoding, "_PlainStep", None)
        out["path"] = "fused one-token step (_PlainStep)" if plain is not None and getattr(
            model.config, "model_type", "") == "qwen2" and not getattr(model, "is_loaded_in_4bit", False) \
            and not getattr(model, "is_loaded_in_8bit", False) else "model forward"
    return out


def check_nano(device: str, dry_run: bool, have_bnb: bool) -> dict:
    import torch

    from qwqlab.models import estimate_memory, load_model
    from qwqlab.decoding import generate
    from qwqlab.tasks import ArithmeticTask

    task = ArithmeticTask(split="test")
    problems = task.problems(4 if dry_run else 64)
    out = {}
    for bits in (None, 4, 8):
        name = "bf16" if bits is None else f"{bits}bit"
        if bits is not None and not have_bnb:
            out[name] = {"skipped": "bitsandbytes does not import here"}
            continue
        t0 = time.perf_counter()
        model, tok = load_model("qwq-nano", bits=bits, device=device, dtype=torch.bfloat16, verbose=False)
        measured = model.get_memory_footprint()
        est = estimate_memory(model, bits=16 if bits is None else bits, context_tokens=0, dtype_bits=16,
                              overhead_fraction=0)
        prompts = [task.prompt(tok, p) for p in problems]
        _sync(device)
        t1 = time.perf_counter()
        gens = generate(model, tok, prompts, 1, temperature=0, max_new_tokens=64 if dry_run else 96)
        _sync(device)
        gen_s = time.perf_counter() - t1
        path = decode_path(model)
        acc = sum(task.grade(g.text, problems[g.prompt_index]) or 0.0 for g in gens) / len(gens)
        out[name] = {"footprint_bytes": measured, "estimated_bytes": est.weights_bytes,
                     "error_pct": round(100 * (est.weights_bytes - measured) / measured, 2),
                     "greedy_accuracy": round(acc, 4), "problems": len(problems),
                     "generated_tokens": sum(g.num_tokens for g in gens),
                     "tokens_per_s": round(sum(g.num_tokens for g in gens) / gen_s, 1),
                     "decode_path": path, "seconds": round(time.perf_counter() - t0, 2)}
        del model
    return out


def check_qwq32b(device: str, dry_run: bool, bandwidth: float) -> dict:
    import torch
    from transformers import Qwen2ForCausalLM

    from qwqlab.models import estimate_memory

    cfg = qwq32b_config(dry_run)
    t0 = time.perf_counter()
    before = torch.cuda.memory_allocated() if device.startswith("cuda") else 0
    with torch.device(device):
        model = Qwen2ForCausalLM._from_config(cfg, dtype=torch.bfloat16)
    model.eval()
    _sync(device)
    build_s = time.perf_counter() - t0
    footprint = model.get_memory_footprint()
    allocated = (torch.cuda.memory_allocated() - before) if device.startswith("cuda") else footprint
    est = estimate_memory(cfg.to_dict(), bits=16, context_tokens=0, overhead_fraction=0)
    prompt, new = (16, 8) if dry_run else (128, 64)
    decode = []
    for batch in (1, 64):
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        row = decode_speed(model, batch, prompt, new, device)
        limit = bandwidth_limit(footprint, cfg, batch, prompt + new, bandwidth)
        row.update(limit_tokens_per_s=round(limit, 2), share_of_limit=round(row["tokens_per_s"] / limit, 4))
        if device.startswith("cuda"):
            row["peak_allocated_gib"] = round(torch.cuda.max_memory_allocated() / GiB, 3)
        decode.append(row)
    del model
    return {"layers": cfg.num_hidden_layers, "hidden_size": cfg.hidden_size, "parameters": est.parameters,
            "build_seconds": round(build_s, 2), "footprint_bytes": footprint, "allocated_bytes": allocated,
            "estimated_bytes": est.weights_bytes,
            "error_pct": round(100 * (est.weights_bytes - footprint) / footprint, 3), "decode": decode}


def check_train(device: str, dry_run: bool) -> dict:
    if importlib.util.find_spec("pandas") is None:
        return {"skipped": "train_grpo returns a pandas DataFrame and pandas is not installed here"}
    import torch

    from qwqlab.grpo import GRPOConfig, train_grpo
    from qwqlab.models import load_model
    from qwqlab.tasks import ArithmeticTask

    # fp32 weights for training: AdamW on bf16 weights loses small updates.
    model, tok = load_model("qwq-nano", device=device, dtype=torch.float32, verbose=False)
    steps = 2 if dry_run else 5
    cfg = GRPOConfig(steps=steps, num_prompts=2 if dry_run else 16, num_generations=4 if dry_run else 8,
                     max_new_tokens=64 if dry_run else 96, progress=False, num_threads=None)
    rows = []
    t0 = time.perf_counter()
    train_grpo(model, tok, ArithmeticTask(split="train"), config=cfg, callback=rows.append)
    keep = ("step", "reward_mean", "accuracy", "completion_tokens_mean", "loss", "grad_norm", "seconds")
    return {"steps": len(rows), "seconds": round(time.perf_counter() - t0, 2),
            "rows": [{k: r[k] for k in keep} for r in rows]}


class PartTimeout(Exception):
    """A part ran past ``--part-timeout``."""


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise ``PartTimeout`` in the main thread after ``seconds`` (SIGALRM; a CUDA kernel already
    running finishes first, then Python stops the part)."""
    def expire(signum, frame):
        raise PartTimeout(f"stopped after {seconds:.0f} s (--part-timeout)")

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def versions(have_bnb: bool) -> dict:
    """The versions this check ran with: a GPU machine may carry other ones than constraints.txt pins."""
    from importlib import metadata

    import torch

    out = {"python": platform.python_version(), "cuda": torch.version.cuda}
    for name in ("torch", "transformers", "accelerate", "peft", "trl", "bitsandbytes", "vllm", "deepspeed"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    if not have_bnb and out["bitsandbytes"]:
        out["bitsandbytes"] += " (installed, does not import)"
    pins = Path(__file__).resolve().parent.parent / "constraints.txt"
    if pins.exists():
        pinned = dict(line.split("==", 1) for line in pins.read_text().splitlines() if "==" in line and
                      not line.startswith("#"))
        out["differs_from_pins"] = {k: [pinned[k], v] for k, v in out.items() if k in pinned and v and pinned[k] != v}
    try:
        out["qwqlab_commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                              cwd=Path(__file__).resolve().parent, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        out["qwqlab_commit"] = None
    return out


def write(results: dict, out) -> None:
    """The JSON so far, replaced atomically (a reader never sees half a file)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=2))
    os.replace(tmp, out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dry-run", action="store_true", help="the same code on the CPU with a tiny config (CI)")
    p.add_argument("--out", default="gpu_check.json", help="where to write the JSON of results")
    p.add_argument("--device", default=None, help="force a device (default: qwqlab.models.get_device; cpu with --dry-run)")
    p.add_argument("--part-timeout", type=float, default=None,
                   help="seconds each part may take before it is stopped and recorded as timed out (default 900; "
                   "300 with --dry-run); the JSON is rewritten after every part, so a run cut short keeps what finished")
    args = p.parse_args(argv)
    part_timeout = args.part_timeout or (300 if args.dry_run else 900)

    import torch

    from qwqlab.models import get_device

    device = "cpu" if args.dry_run else get_device(args.device)
    if not args.dry_run and not device.startswith("cuda"):
        print("gpu_check: no CUDA GPU here; run with --dry-run to check the code on the CPU", file=sys.stderr)
        return 2
    try:
        import bitsandbytes  # noqa: F401
        have_bnb = True
    except Exception:  # noqa: BLE001 - a broken install raises more than ImportError
        have_bnb = False
    t_start = time.perf_counter()
    results = {
        "dry_run": args.dry_run, "device": device,
        "device_name": torch.cuda.get_device_name(0) if device.startswith("cuda") else platform.processor() or "cpu",
        "device_memory_gib": round(torch.cuda.get_device_properties(0).total_memory / GiB, 2)
        if device.startswith("cuda") else None,
        "versions": versions(have_bnb),
        "errors": {}, "finished": [], "part_timeout_s": part_timeout,
    }
    write(results, args.out)
    bandwidth = measure_bandwidth(device, 64 if args.dry_run else 2048)
    results["bandwidth_gb_s"] = round(bandwidth / 1e9, 2)
    parts = {"nano": lambda: check_nano(device, args.dry_run, have_bnb),
             "qwq32b": lambda: check_qwq32b(device, args.dry_run, bandwidth),
             "train_grpo": lambda: check_train(device, args.dry_run)}
    for name, run in parts.items():
        t0 = time.perf_counter()
        print(f"gpu_check: {name} ...", file=sys.stderr, flush=True)
        try:
            with time_limit(part_timeout):
                results[name] = run()
            results["finished"].append(name)
        except Exception as e:  # noqa: BLE001 - record it and go on to the next part
            results[name] = None
            results["errors"][name] = f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=5)}"
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
        print(f"gpu_check: {name} done in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
        results["seconds"] = round(time.perf_counter() - t_start, 2)
        write(results, args.out)  # after every part: a run killed at a time limit keeps what finished
    print(json.dumps(results, indent=2))
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
