"""``qwqlab eval CONFIG``: a published evaluation protocol as one command, ending in one results row.

The protocol is QwQ-32B's own (github:QwenLM/QwQ, ``eval/``; the R1 paper uses the same):
temperature 0.6, top-p 0.95, top-k 40, at most 32,768 new tokens, 64 samples per problem, and
the score is pass@1 averaged over the samples (each problem's share of correct samples, averaged
over problems). ``run_eval``:

1. samples through the resumable rollout table (``qwqlab.rollouts.sample``, keyed by
   ``problem_id``/``sample_index``; ``--shard I/N`` splits the problems over machines) on any
   backend: ``hf`` (qwqlab's decoder), ``vllm``, or ``openai`` (any OpenAI-compatible server);
2. grades every completion with the package's one grader, the task's ``judge``
   (``qwqlab.metrics.evaluate(..., regrade=True)``, so a table sampled earlier is graded by
   today's grader);
3. writes one results row (``eval_row``) in the shape of ``qwqlab.results``' own rows, with a
   percentile-bootstrap interval over problems and the grader and protocol named on it, so
   notebook 06 draws it beside the published row of the same model and benchmark.

What it leaves out: cons@64 (majority vote) is in ``evaluate``'s summary but not on the row,
since the headline figures it is compared with are pass@1; and the row is not a reproduction
of a published number unless the model, the problems and the protocol all match.
"""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path

#: QwQ-32B's evaluation settings (QwenLM/QwQ eval/README.md; the R1 paper's are the same but top-k).
QWQ_PROTOCOL = {"num_generations": 64, "temperature": 0.6, "top_p": 0.95, "top_k": 40, "max_new_tokens": 32768,
                "seed": 0}

#: The published table's name for each task's benchmark (``qwqlab.results.BENCHMARKS``).
BENCHMARK_NAMES = {"aime24": "AIME24", "aime25": "AIME25", "math500": "MATH-500", "gpqa_diamond": "GPQA-Diamond",
                   "arithmetic": "arithmetic (held-out)"}

#: How the grader is named on a row: the one grader, reached through the task.
GRADER = "qwqlab.grading via task {task}'s judge (last \\boxed{{}} after the thinking; truncated thinking is unanswered)"


def protocol_text(settings: dict, backend: str) -> str:
    """The protocol in words, as a row carries it."""
    top_k = settings.get("top_k") or "none"
    return (f"temperature {settings['temperature']:g}, top-p {settings['top_p']:g}, top-k {top_k}, "
            f"{settings['max_new_tokens']} max new tokens, {settings['num_generations']} samples per problem, "
            f"pass@1 averaged over the samples, seed {settings.get('seed')}; backend {backend}")


def eval_row(table, task, name: str, benchmark: str, settings: dict, backend: str, confidence: float = 0.95,
             source: str = "this lab: qwqlab eval", seconds: float | None = None) -> dict:
    """One results row for a graded rollout table: pass@1 averaged over samples, with a bootstrap CI.

    ``model`` is ``"<name> (this lab, k=<k>)"`` and ``published_model`` is ``name``, the model as
    the published table names it, so ``qwqlab.results.lab_against_published`` can pair them.
    Scores are percent, as in the published table.
    """
    from qwqlab.metrics import evaluate

    per_problem, summary = evaluate(table, task=task, ks=[1], confidence=confidence, regrade=True)
    pass1 = summary[(summary["metric"] == "pass@k") & (summary["k"] == 1)].iloc[0]
    k = int(per_problem["num_samples"].min())
    graded = int(per_problem["num_graded"].sum())
    return {
        "model": f"{name} (this lab, k={k})", "published_model": name, "benchmark": benchmark, "metric": "pass@1",
        "score": 100 * float(pass1["value"]), "ci_low": 100 * float(pass1["ci_low"]),
        "ci_high": 100 * float(pass1["ci_high"]), "n": int(pass1["num_problems"]), "num_samples": int(len(table)),
        "samples_per_problem": k, "graded_samples": graded,
        "truncation_rate": float(table["is_truncated"].astype(float).mean()),
        "mean_completion_tokens": float(table["completion_tokens"].astype(float).mean()),
        "grader": GRADER.format(task=getattr(task, "name", task)),
        "protocol": protocol_text(settings, backend),
        "source": source,
        "note": (f"{int(pass1['num_problems'])} problems x {k} samples, {confidence:.0%} percentile bootstrap CI "
                 "over problems"),
        "backend": backend, "seconds": None if seconds is None else round(seconds, 1),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
    }


def _load(cfg, backend: str, progress: bool):
    """(model, tokenizer) for the backend: weights here (hf), a vllm.LLM, or a served model id (openai)."""
    from qwqlab.models import load_model, load_tokenizer, resolve_model_path

    if backend == "hf":
        return load_model(cfg.model, bits=cfg.bits, verbose=progress)
    if backend == "vllm":
        try:
            import vllm
        except ImportError as e:
            raise ImportError("backend vllm needs vLLM, which runs on CUDA GPUs: `pip install 'qwqlab[vllm]'` "
                              "there, or use backend openai against a server.") from e
        seed = cfg.sampling.get("seed", 0) or 0
        return vllm.LLM(model=resolve_model_path(cfg.model), seed=seed, **cfg.vllm), None
    tok = load_tokenizer(cfg.tokenizer) if cfg.tokenizer else None
    return cfg.model, tok  # the id the server knows the model by


def run_eval(cfg, shard: str | None = None, overwrite: bool = False, grade_only: bool = False,
             progress: bool = True) -> dict | None:
    """Run a ``qwqlab.config.EvalConfig``: sample (resuming ``out``), grade, write and return the row.

    With ``shard="I/N"`` only that shard is sampled (``OUT.shard-I-of-N.jsonl``) and nothing is
    graded; ``grade_only=True`` then reads all shards (or the one file) and writes the row.
    """
    from qwqlab import rollouts
    from qwqlab.launch import parse_shard, read_shards, shard_path

    task = cfg.build_task()
    settings = {**QWQ_PROTOCOL, **cfg.sampling}
    index, count = parse_shard(shard)
    t0 = time.perf_counter()
    if not grade_only:
        problems = task.problems(cfg.num_problems)[index::count]
        if not problems:
            raise ValueError(f"shard {index}/{count} of {cfg.num_problems} problems is empty; use fewer shards")
        model, tok = _load(cfg, cfg.backend, progress)
        out = shard_path(cfg.out, index, count)
        resume = Path(out).exists() and not overwrite
        table = rollouts.sample(model, tok, problems, task, out=out, resume=resume, overwrite=overwrite,
                                backend=cfg.backend, progress=progress,
                                model_name=cfg.name,
                                server=cfg.openai if cfg.backend == "openai" else None, **settings)
        if count > 1:
            return None
    else:
        table = read_shards(cfg.out)
    name = cfg.name or str(table["model"].iloc[0])
    benchmark = cfg.benchmark or BENCHMARK_NAMES.get(cfg.task, cfg.task)
    row = eval_row(table, task, name, benchmark, settings, cfg.backend,
                   source=f"this lab: qwqlab eval {cfg.path}" if cfg.path else "this lab: qwqlab eval",
                   seconds=None if grade_only else time.perf_counter() - t0)
    row["rollouts"] = str(cfg.out)
    results = Path(cfg.results_path())
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(row, indent=2) + "\n")
    return row
