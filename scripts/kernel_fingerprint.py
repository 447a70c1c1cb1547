"""Print what the CPU's kernels make of one fixed piece of qwqlab work, to compare settings.

``make test-kernels`` runs this under each kernel setting (``ATEN_CPU_CAPABILITY``,
``ONEDNN_MAX_CPU_ISA``, thread counts, ``MKL_CBWR``) next to the tests, then ``--compare``
says which settings changed any number against the machine's defaults: the token ids of 24
qwq-nano samples (integers: equal everywhere but at near-ties), their entropies, and the
completions' log-probs from one batched forward (floats: the last bits may move).

    python scripts/kernel_fingerprint.py --out fp.json          # one setting
    python scripts/kernel_fingerprint.py --compare fp-*.json    # which ones differ
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys

SETTINGS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR", "QWQLAB_TEST_THREADS", "OMP_NUM_THREADS")


def fingerprint() -> dict:
    import torch

    from qwqlab.decoding import generate
    from qwqlab.logprobs import completion_logprobs
    from qwqlab.models import load_model
    from qwqlab.tasks import ArithmeticTask

    torch.set_num_threads(int(os.environ.get("QWQLAB_TEST_THREADS", "2")))
    model, tok = load_model("qwq-nano", verbose=False)
    task = ArithmeticTask(split="test")
    prompts = [task.prompt(tok, p) for p in task.problems(6)]
    gens, (sequences, prompt_length) = generate(model, tok, prompts, 4, temperature=0.6, max_new_tokens=48,
                                                seed=0, return_tensors=True)
    mask = (sequences != tok.pad_token_id).long()
    with torch.no_grad():
        logp, _ = completion_logprobs(model, sequences, mask, prompt_length)
    logp = logp.masked_fill(mask[:, prompt_length:] == 0, 0.0)
    return {
        "settings": {k: os.environ[k] for k in SETTINGS if k in os.environ},
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "tokens_sha256": hashlib.sha256(json.dumps([g.token_ids for g in gens]).encode()).hexdigest(),
        "entropies": [g.entropy for g in gens],
        "logprob_sums": logp.sum(-1).tolist(),
    }


def compare(paths: list[str]) -> int:
    runs = [json.load(open(p)) for p in paths]
    base = runs[0]
    print(f"baseline: {paths[0]} ({base['cpu_capability']}, {base['threads']} threads)")
    for path, run in zip(paths[1:], runs[1:]):
        same_tokens = run["tokens_sha256"] == base["tokens_sha256"]
        diff = max(abs(a - b) for key in ("entropies", "logprob_sums") for a, b in zip(run[key], base[key]))
        what = "tokens differ" if not same_tokens else ("bit for bit" if diff == 0 else f"same tokens, floats differ by up to {diff:.3g}")
        print(f"{path}: {run['settings'] or 'defaults'} ({run['cpu_capability']}, {run['threads']} threads): {what}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="write this setting's fingerprint here (JSON)")
    ap.add_argument("--compare", nargs="+", metavar="JSON", help="compare fingerprints; the first is the baseline")
    args = ap.parse_args(argv)
    if args.compare:
        return compare(args.compare)
    fp = fingerprint()
    text = json.dumps(fp, indent=1)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
