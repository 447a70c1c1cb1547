"""The ``qwqlab`` command: train qwq-nano, measure it, regenerate every figure, run experiment files."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


class UsageError(ValueError):
    """A command-line mistake (a missing file, a bad value); the message names it and the fix."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a wrong option is one line naming the fix (not a usage block), exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def _train_nano(args):
    from qwqlab.nano import NanoConfig, train_nano

    cfg = NanoConfig(seed=args.seed, steps=args.steps)
    summary = train_nano(args.out, cfg, progress=not args.quiet)
    print(json.dumps({k: v for k, v in summary.items() if k != "recipe"}, indent=2))
    if not args.no_measure:
        from qwqlab.nano import measure, write_model_card
        report = measure(args.out, num_problems=args.eval_problems)
        write_model_card(args.out, summary, report)
        print(json.dumps(report, indent=2))


def _measure_nano(args):
    from qwqlab.nano import measure, write_model_card
    from qwqlab.paths import nano_dir

    report = measure(args.model, num_problems=args.eval_problems, seed=args.seed)
    print(json.dumps(report, indent=2))
    if args.write:
        folder = nano_dir() if args.model == "qwq-nano" else Path(args.model)
        summary = json.loads((folder / "training_summary.json").read_text())
        print(f"model card rewritten: {write_model_card(folder, summary, report)}")


def _figures(args):
    from qwqlab.figures import run_notebooks

    missing = [p for p in args.notebooks if not Path(p).is_file()]
    if missing:  # said before anything is run or any folder is made
        raise UsageError(f"no such notebook: {', '.join(missing)} (give paths such as "
                         "notebooks/02_rollout_sampling.ipynb, or none to run all)")
    manifest = run_notebooks(args.out, notebooks=args.notebooks or None)
    for name, entry in manifest["notebooks"].items():
        print(f"{name}: {len(entry['figures'])} figures in {entry['seconds']} s")
        for problem in entry.get("page_problems", []):  # what a class would see that it should not
            print(f"  not clean: {problem}")
    print(f"all notebooks: {manifest['total_seconds']} s; manifest at {args.out}/manifest.json")


def _book(args):
    from qwqlab.book import build_book

    if args.executed is None:  # run every notebook first, as `qwqlab figures` does
        _figures(argparse.Namespace(out=args.figures, notebooks=[]))
    pages = build_book(args.executed or args.figures, args.out, figures=args.figures)
    print(f"the book: {len(pages)} pages; open {Path(args.out).resolve() / 'index.html'}")


def _info(args):
    from qwqlab.models import estimate_memory, get_device, known_configs

    get_device()
    for name in known_configs():
        try:
            est = estimate_memory(name, bits=args.bits, context_tokens=args.context)
        except Exception as e:  # a missing config file should not hide the others
            print(f"{name}: {e}")
            continue
        print(f"{name:45s} {est.parameters / 1e9:7.3f}B params  {est.total_gib:8.2f} GiB at "
              f"{args.bits}-bit, {args.context} tokens")


def _dashboard(args):
    from qwqlab.dashboard import DASHBOARDS, serve

    if args.name is None:
        for name, d in DASHBOARDS.items():
            print(f"{name:12s} {d.title}")
        return 0
    return serve(args.name, port=args.port, ip=args.ip, open_browser=args.open)


def _train(args):
    from qwqlab.config import load_train_config
    from qwqlab.plan import check_fits

    cfg = load_train_config(args.config)  # checked before any process is started
    if args.rehearse:
        from qwqlab.rehearse import rehearse

        result = rehearse(args.config, Path(cfg.out + "-rehearsal"), nproc=max(2, args.nproc_per_node),
                          master_port=args.master_port)
        failed = [p for p in result["phases"] if p["returncode"]]
        for p in result["phases"]:
            p.pop("stderr_tail") if not p["returncode"] else None
        print(json.dumps(result, indent=2))
        return 1 if failed else 0
    check_fits(cfg, args.config, gpu_gib=args.gpu_gib)  # on a GPU: refused before anything loads
    if args.nproc_per_node > 1:
        import os
        import subprocess
        if args.engine != "trl":
            print("qwqlab: several processes need --engine trl (qwqlab's own loop is one process)", file=sys.stderr)
            return 2
        # torchrun, not `accelerate launch`: on a CPU the latter started one process here (lab notes).
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(args.nproc_per_node),
               "--master_port", str(args.master_port), "-m", "qwqlab", "train", args.config, "--engine", "trl"]
        cmd += ["--resume"] if args.resume else []
        return subprocess.call(cmd, env=dict(os.environ))
    from qwqlab.launch import train

    summary = train(cfg, engine=args.engine, resume=args.resume)
    print(json.dumps(summary, indent=2))


def _plan(args):
    from qwqlab.config import load_train_config
    from qwqlab.plan import GPU_80GB_GIB, plan

    cfg = load_train_config(args.config)
    p = plan(cfg, gpu_gib=args.gpu_gib or GPU_80GB_GIB, world_size=args.processes, where=args.config)
    print(p.table())
    return 0 if p.fits else 1


def _sample(args):
    from qwqlab.config import load_sample_config
    from qwqlab.launch import parse_shard, sample, shard_path

    cfg = load_sample_config(args.config)
    index, count = parse_shard(args.shard)
    df = sample(cfg, backend=args.backend, shard=args.shard, resume=args.resume, progress=not args.quiet)
    summary = {"out": str(shard_path(cfg.out, index, count)), "shard": f"{index}/{count}", "rows": len(df),
               "problems": int(df["problem_id"].nunique()), "backend": args.backend}
    if "correct" in df.columns:
        summary["accuracy"] = round(float(df["correct"].mean()), 4)
    print(json.dumps(summary, indent=2))


def _eval(args):
    from qwqlab.config import load_eval_config
    from qwqlab.evaluation import run_eval

    cfg = load_eval_config(args.config)
    if args.backend and args.backend != cfg.backend:
        from dataclasses import replace
        if (cfg.vllm and args.backend != "vllm") or (cfg.openai and args.backend != "openai"):
            print(f"qwqlab: {args.config} has {cfg.backend} settings; --backend {args.backend} would drop them. "
                  "Edit backend: in the file instead.", file=sys.stderr)
            return 2
        cfg = replace(cfg, backend=args.backend)
    row = run_eval(cfg, shard=args.shard, overwrite=args.overwrite, grade_only=args.grade_only,
                   progress=not args.quiet)
    if row is None:
        print(f"shard {args.shard} sampled; when every shard is done: qwqlab eval {args.config} --grade-only")
        return 0
    print(json.dumps(row, indent=2))
    print(f"{row['model']} on {row['benchmark']}: {row['metric']} {row['score']:.1f} "
          f"[{row['ci_low']:.1f}, {row['ci_high']:.1f}]; row written to {cfg.results_path()}")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="qwqlab", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    p.commands = sub.choices  # name -> its parser

    t = sub.add_parser("train-nano", help="train qwq-nano from scratch (about 10 min on 2 CPU cores)")
    t.add_argument("--out", default="data/models/qwq-nano", help="folder to write the checkpoint to")
    t.add_argument("--steps", type=int, default=1200, help="optimizer steps")
    t.add_argument("--seed", type=int, default=0, help="random seed of the training data and initial weights")
    t.add_argument("--eval-problems", type=int, default=1000, help="held-out problems for the model card")
    t.add_argument("--no-measure", action="store_true", help="skip the evaluation and model card")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=_train_nano)

    m = sub.add_parser("measure-nano", help="re-measure a qwq-nano checkpoint's model-card figures")
    m.add_argument("--model", default="qwq-nano", help="'qwq-nano' (bundled) or a checkpoint folder")
    m.add_argument("--eval-problems", type=int, default=1000, help="held-out problems to measure on")
    m.add_argument("--seed", type=int, default=0, help="sampling seed of the measurement")
    m.add_argument("--write", action="store_true",
                   help="rewrite the checkpoint's measured.json and model card (README.md) with the new figures")
    m.set_defaults(func=_measure_nano)

    f = sub.add_parser("figures", help="run every notebook headless and write its figures")
    f.add_argument("--out", default="figures", help="folder for the figures and manifest.json (made when the run starts)")
    f.add_argument("notebooks", nargs="*", help="notebooks to run (default: all in notebooks/)")
    f.set_defaults(func=_figures)

    b = sub.add_parser("book", help="the executed notebooks as a static HTML site (make book)",
                       description="Run every notebook (as `qwqlab figures`), then write a static HTML book of "
                       "the executed notebooks, their figures, the exercises and a glossary; it opens from file://.")
    b.add_argument("--out", default="build/book", help="folder for the book (index.html and one page per notebook)")
    b.add_argument("--figures", default="figures", help="folder the notebooks' figures and executed copies go to")
    b.add_argument("--executed", default=None, help="build from the executed notebooks already in this folder "
                   "(a `qwqlab figures --out` folder) instead of running them again")
    b.set_defaults(func=_book)

    i = sub.add_parser("info", help="device and memory estimates for the known models")
    i.add_argument("--bits", type=int, default=4, choices=(4, 8, 16, 32), help="weight precision of the estimate")
    i.add_argument("--context", type=int, default=32768, help="context length in tokens (KV cache)")
    i.set_defaults(func=_info)

    r = sub.add_parser("train", help="GRPO from an experiment file, on qwqlab's loop or TRL's GRPOTrainer",
                       description="Train with GRPO from a YAML/JSON/TOML experiment file (model, task, rewards "
                       "and weights, grpo: knobs named as qwqlab.grpo.GRPOConfig). With --engine trl it runs TRL's "
                       "GRPOTrainer; for several processes launch it with torchrun (CPU: gloo) or, on GPUs, "
                       "accelerate launch --config_file configs/accelerate/....yaml -m qwqlab train CONFIG --engine trl.")
    r.add_argument("config", help="the experiment file (see configs/)")
    r.add_argument("--engine", choices=("qwqlab", "trl"), default="qwqlab",
                   help="qwqlab: the lab's single-process loop; trl: TRL's GRPOTrainer (DDP/DeepSpeed under a launcher)")
    r.add_argument("--nproc-per-node", type=int, default=1,
                   help="start this many processes with torchrun (needs --engine trl)")
    r.add_argument("--master-port", type=int, default=29513, help="torchrun's rendezvous port")
    r.add_argument("--resume", action="store_true",
                   help="continue the run in out: from its last checkpoint (refused if the experiment changed; "
                   "only grpo's speed and bookkeeping knobs may); without it a folder holding a run is refused")
    r.add_argument("--rehearse", action="store_true",
                   help="a CPU rehearsal of a GPU file: a tiny random model of the same family, 2 steps on 2 "
                   "processes (torchrun, gloo) with the file's LoRA/bits/checkpointing, micro-batches, a save and "
                   "a resume (qwqlab.rehearse); written next to out: (OUT-rehearsal)")
    r.add_argument("--gpu-gib", type=float, default=None,
                   help="check the memory plan against this many GiB per GPU (default: the visible GPU's; "
                   "no check without CUDA)")
    r.set_defaults(func=_train)

    pl = sub.add_parser("plan", help="memory per rank of an experiment file's training run, and whether it fits",
                        description="Count what each rank of `qwqlab train CONFIG --engine trl` holds (weights at "
                        "their bits, LoRA/optimizer state, activations of one micro-batch, reference model, "
                        "vLLM's share) for the file's Accelerate launch, and say whether it fits. Exit 1 if not.")
    pl.add_argument("config", help="the experiment file (see configs/)")
    pl.add_argument("--gpu-gib", type=float, default=None, help="memory per GPU (default 79.6 GiB: an 80 GB GPU)")
    pl.add_argument("--processes", type=int, default=None, help="ranks (default: the accelerate: file's num_processes)")
    pl.set_defaults(func=_plan)

    s = sub.add_parser("sample", help="the resumable rollout table from an experiment file, one shard of N",
                       description="Sample num_generations completions per problem (qwqlab.rollouts.sample) into a "
                       "resumable .jsonl/.parquet table. With --shard I/N, N machines write disjoint files "
                       "(OUT.shard-I-of-N.jsonl) that qwqlab.launch.read_shards(OUT) reads as one table.")
    s.add_argument("config", help="a sampling file (see configs/)")
    s.add_argument("--backend", choices=("hf", "vllm", "openai"), default="hf",
                   help="hf: qwqlab's decoder, transformers models on any device; vllm: vLLM on CUDA GPUs (vllm: settings "
                   "passed to vllm.LLM); openai: any OpenAI-compatible server (openai: base_url, api_key_env, endpoint ...)")
    s.add_argument("--shard", default=None, metavar="I/N", help="this machine's share: problems I, I+N, ... (0 <= I < N)")
    s.add_argument("--resume", action="store_true", help="continue this shard's file where a killed run left it")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_sample)

    e = sub.add_parser("eval", help="a published evaluation protocol (QwQ's by default) as one command: one results row",
                       description="Sample a task under QwQ-32B's evaluation protocol (temperature 0.6, top-p 0.95, "
                       "top-k 40, 32768 max new tokens, 64 samples per problem; the file's sampling: overrides it) "
                       "into the resumable rollout table (out:, continued if it exists), grade it with the task's "
                       "grader, and write one results row (pass@1 averaged over samples, bootstrap CI) that "
                       "notebook 06 draws beside the published row. backend: hf, vllm or openai (any "
                       "OpenAI-compatible server; openai: base_url, api_key_env, endpoint ...).")
    e.add_argument("config", help="an evaluation file (see configs/experiments/*_eval.yaml)")
    e.add_argument("--backend", choices=("hf", "vllm", "openai"), default=None,
                   help="override the file's backend: (openai: an OpenAI-compatible server, settings under openai:)")
    e.add_argument("--shard", default=None, metavar="I/N", help="sample only problems I, I+N, ... (then --grade-only)")
    e.add_argument("--grade-only", action="store_true", help="grade the rollouts already sampled (all shards) and write the row")
    e.add_argument("--overwrite", action="store_true", help="sample out: afresh instead of continuing it")
    e.add_argument("--quiet", action="store_true", help="no progress bar")
    e.set_defaults(func=_eval)

    from qwqlab.dashboard import DASHBOARDS
    d = sub.add_parser("dashboard", help="serve one explorer as a page with no code (Voila), for a projector")
    d.add_argument("name", nargs="?", choices=list(DASHBOARDS), help="which explorer; none lists them")
    d.add_argument("--port", type=int, default=8866, help="port of the page (http://127.0.0.1:PORT/)")
    d.add_argument("--ip", default="127.0.0.1", help="address to listen on (127.0.0.1: this machine only)")
    d.add_argument("--open", action="store_true", help="open it in the default web browser")
    d.set_defaults(func=_dashboard)
    return p


#: What a user can fix is answered in one line and exit code 2; anything else is a bug and keeps its
#: traceback. ``QWQLAB_TRACEBACK=1`` shows the traceback of the first kind too.
_USER_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError, UsageError)


def _user_errors() -> tuple:
    from qwqlab.config import ConfigError
    from qwqlab.models import ModelLoadError

    return (*_USER_ERRORS, ConfigError, ModelLoadError)


def _one_line(e: BaseException) -> str:
    if isinstance(e, OSError) and e.filename is not None:
        return (f"{e.filename}: {e.strerror or e} (the path is taken relative to {Path.cwd()}; "
                "check its spelling, or give an absolute path)")
    return " ".join(str(e).split())


def main(argv: list[str] | None = None) -> int:
    """Run one ``qwqlab`` command. Every command's user errors (a missing file, a bad config, a wrong
    option) end here as one line on stderr naming the file and the fix, with exit code 2."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # said by the command's own parser, so the hint names its --help
        parser.commands[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.func(args) or 0
    except Exception as e:
        if not isinstance(e, _user_errors()) or os.environ.get("QWQLAB_TRACEBACK"):
            raise
        print(f"qwqlab {args.command}: {_one_line(e)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
