"""Sample rollouts: k completions per problem, batched and KV-cached, as a tidy table.

``sample`` is the lab's workhorse: every later notebook (rewards, RL, reasoning length)
reads the table it returns, one row per completion, with the columns of the glossary in
CONTRIBUTING.md. The completions come from a backend (``qwqlab.backends``): qwqlab's one
decoder, ``qwqlab.decoding.decode`` (``backend="hf"``), vLLM (``backend="vllm"``), or any
OpenAI-compatible server (``backend="openai"``), behind the same interface and into the same
resumable file.

Each completion is keyed by ``(seed, sample_index, prompt)`` (``decoding.row_key``), so the
table is deterministic for a seed (on CPU bit for bit), independent of ``batch_size`` and
of where an interrupted run stopped, and equal to what ``decoding.generate`` draws for the
same prompt: see ``qwqlab.decoding`` for how.
"""
from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

from qwqlab.backends import DEFAULT_MAX_NEW_TOKENS, TextCompletion, is_oom, make_backend  # noqa: F401
from qwqlab.chat import extract_boxed, split_think, think_answer_tokens
from qwqlab.decoding import Completion, check_sampling, row_key
from qwqlab.rollout_table import (COLUMNS, PROBLEM_FIELDS, RUN_SETTINGS, ResumeError, RolloutFileBusy,  # noqa: F401
                                  RolloutStore, check_resumable, to_frame)
from qwqlab.tasks.base import Problem


# ----------------------------------------------------------------------------- which weights

def weights_fingerprint(model, per_tensor: int = 4096) -> str | None:
    """A short hash of which weights a model holds: its config and a strided sample of every tensor.

    Cheap even for QwQ-32B (at most ``per_tensor`` elements read from each parameter), and
    changed by any training step worth the name: full fine-tuning moves every linear layer,
    LoRA moves its adapters, and each of them is sampled. ``None`` for a model whose
    weights cannot be read here (a ``vllm.LLM``); its ``model`` name is all there is.

    >>> weights_fingerprint(model)                                          # doctest: +SKIP
    '3f9c0e6a1b2d4c58'
    """
    named = getattr(model, "named_parameters", None)
    if not callable(named):
        return None
    import torch

    digest = hashlib.blake2b(digest_size=8)
    config = getattr(model, "config", None)
    if hasattr(config, "to_dict"):  # the architecture too, minus where it was loaded from
        cfg = {k: v for k, v in config.to_dict().items() if not k.startswith("_") and k != "transformers_version"}
        digest.update(json.dumps(cfg, sort_keys=True, default=str).encode())
    seen = 0
    with torch.no_grad():
        for name, param in named():
            digest.update(f"{name}{tuple(param.shape)}{param.dtype}".encode())
            flat = param.detach().reshape(-1)
            if flat.is_meta:  # offloaded by device_map: only its name and shape are here
                continue
            if flat.numel() > per_tensor:
                flat = flat[::flat.numel() // per_tensor][:per_tensor]
            digest.update(flat.contiguous().cpu().view(torch.uint8).numpy().tobytes())
            seen += 1
    return digest.hexdigest() if seen else None


def files_fingerprint(source, blocks: int = 1024, block: int = 256) -> str | None:
    """A short hash of the weight files a served model was loaded from (vLLM reads files, not tensors).

    ``source``: a local model folder or a hub id already in the local Hugging Face cache (vLLM
    has downloaded it by the time this runs). Each ``*.safetensors``/``*.bin`` file, its
    ``config.json`` and any adapter files count by name, size, header and ``blocks`` strided
    samples of ``block`` bytes, so a folder re-saved after training, re-quantized or replaced
    hashes differently. About 0.3 MB read per file: cheap for QwQ-32B's 14 shards. ``None``
    when the files cannot be found here (a remote server's model: its name is all there is).
    """
    folder = Path(str(source)).expanduser()
    if not folder.is_dir():
        try:
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(str(source), local_files_only=True))
        except Exception:  # noqa: BLE001 - not a hub id, or not in the local cache
            return None
    files = sorted(f for f in folder.iterdir() if f.is_file() and (
        f.suffix in (".safetensors", ".bin") or f.name in ("config.json", "adapter_config.json")))
    if not any(f.suffix in (".safetensors", ".bin") for f in files):
        return None
    digest = hashlib.blake2b(digest_size=8)
    for f in files:
        size = f.stat().st_size
        digest.update(f"{f.name}:{size}".encode())
        with open(f, "rb") as handle:
            digest.update(handle.read(min(size, 1 << 16)))  # the safetensors header (names, shapes, offsets)
            step = max(block, size // blocks)
            for offset in range(0, size, step):
                handle.seek(offset)
                digest.update(handle.read(block))
    return digest.hexdigest()


# ----------------------------------------------------------------------------- sample

def as_problems(problems) -> list[Problem]:
    """Problems given as ``Problem`` objects, dicts (``id``/``problem``/``question``/``answer``) or strings."""
    out = []
    for i, p in enumerate(problems):
        if isinstance(p, Problem):
            out.append(p)
        elif isinstance(p, str):
            out.append(Problem(id=f"problem-{i}", question=p, answer=None))
        elif isinstance(p, dict):
            question = p.get("question", p.get("problem"))
            if question is None:
                raise ValueError(f"problem {i} has neither a 'question' nor a 'problem' field: {sorted(p)}")
            answer = p.get("answer")
            out.append(Problem(id=str(p.get("id", f"problem-{i}")), question=str(question),
                               answer=None if answer is None else str(answer)))
        else:
            raise TypeError(f"problem {i} is a {type(p).__name__}; pass Problem objects, dicts or strings.")
    ids = [p.id for p in out]
    if len(set(ids)) != len(ids):
        dup = next(x for x in ids if ids.count(x) > 1)
        raise ValueError(f"problem ids must be unique (rows are keyed by them); {dup!r} appears twice.")
    return out


def model_name_of(model) -> str:
    """A readable name for a model: ``"qwq-nano"`` for the bundled one, else its hub id or path."""
    from qwqlab.paths import nano_dir

    name = (str(model) if isinstance(model, (str, Path)) else getattr(model, "name_or_path", None)
            or getattr(getattr(model, "config", None), "_name_or_path", None))
    if name is None:
        name = model_source(model) or type(model).__name__  # a vllm.LLM
    try:
        if Path(name).resolve() == nano_dir().resolve():
            return "qwq-nano"
    except (OSError, ValueError):
        pass
    return str(name)


def model_source(llm) -> str | None:
    """Where a ``vllm.LLM`` loaded its weights from (its engine's ``model_config.model``)."""
    engine = getattr(llm, "llm_engine", None)
    return getattr(getattr(engine, "model_config", None), "model", None)


def _make_row(c: Completion | TextCompletion, problem: Problem, sample_index: int, prompt: str, tokenizer, task,
              settings: dict) -> dict:
    if isinstance(c, TextCompletion):  # a server's text
        text = c.text
    else:
        text = tokenizer.decode(c.token_ids, skip_special_tokens=False)
    parts = split_think(text)
    if tokenizer is None:  # a server's text and no tokenizer to count with
        think_tokens = answer_tokens = None
    else:  # the one counter: the tokens of the thinking and of the answer text
        (think_tokens,), (answer_tokens,) = think_answer_tokens([text], tokenizer)
        think_tokens, answer_tokens = int(think_tokens), int(answer_tokens)
    extracted = task.extract_answer(text) if task is not None else extract_boxed(parts.answer)
    # the server's own reasoning_content, verbatim, where it split the thinking off
    thinking = c.thinking if isinstance(c, TextCompletion) and c.thinking is not None else parts.thinking
    row = {
        "problem_id": problem.id, "sample_index": sample_index, "question": problem.question,
        "gold_answer": problem.answer, "prompt": prompt, "completion": text, "thinking": thinking,
        "answer_text": parts.answer, "extracted_answer": extracted, "completion_tokens": c.num_tokens,
        "think_tokens": think_tokens, "answer_tokens": answer_tokens, "finish_reason": c.finish_reason,
        "is_truncated": c.finish_reason == "length",
    }
    if task is not None:
        row["correct"], row["grade_note"] = task.judge(text, problem)
    row.update(settings)
    return row


def sample(model, tokenizer, problems, task=None, num_generations: int = 8, temperature: float = 0.6,
           top_p: float = 0.95, top_k: int | None = 40, max_new_tokens: int | None = None, seed: int | None = 0,
           batch_size: int = 64, out: str | Path | None = None, resume: bool = False, backend: str = "hf",
           progress: bool = True, model_name: str | None = None, overwrite: bool = False, desc: str | None = None,
           server=None):
    """Sample ``num_generations`` completions per problem and return them as a tidy table.

    QwQ-32B is evaluated this way: 64 samples per AIME problem at temperature 0.6, top_p
    0.95, top_k 20 to 40, never greedily. Sampling is batched (``batch_size`` completions per
    decoder call, prompts left-padded, KV cache on) and keyed per completion (see the
    module docstring), so the table depends on the seed only: not on ``batch_size``, not on
    where an interrupted run stopped.

    Args:
        model, tokenizer: from ``qwqlab.models.load_model``; with ``backend="vllm"`` the model
            is a ``vllm.LLM`` or a model id, and ``tokenizer`` may be ``None`` (vLLM's is used);
            with ``backend="openai"`` the model is the served model's id (``None``: the server's
            only one) and ``tokenizer`` is optional (it counts ``think_tokens``/``answer_tokens``).
        problems: ``Problem`` objects (``task.problems(n)``), dicts with ``question``/``problem``
            and ``answer``, or question strings.
        task: a ``qwqlab.tasks`` task: builds the prompts, extracts and grades answers
            (adds ``correct`` and ``grade_note``). Without one, prompts are
            ``qwqlab.chat.build_prompt(tokenizer, question)`` and nothing is graded.
        num_generations: completions per problem (k).
        temperature, top_p, top_k: the sampling distribution; ``temperature=0`` is greedy and
            ``top_k=None`` (or 0) keeps every token.
        max_new_tokens: a completion that reaches it is cut off: ``finish_reason="length"``,
            ``is_truncated=True``. ``None``: the model's own ``generation_config.max_new_tokens``
            (qwq-nano: 96), else 32768 (QwQ's evaluation budget), within the model's context.
        seed: fixes every completion. ``None`` is a seed like any other, not "random".
        batch_size: completions per decoder call; halved automatically on out-of-memory.
        out: a ``.jsonl`` or ``.parquet`` file that grows by one batch at a time.
        resume: continue ``out`` where a previous (possibly killed) run left it: rows already
            there are kept and not sampled again. Without it an existing ``out`` is an error.
            A row is reused only if its problem has the same question, gold answer and prompt
            and it was made by the same weights (``weights_fingerprint``: of the tensors with
            ``"hf"``, of the weight files with ``"vllm"``; with ``"openai"`` only the served model's
            id can be checked) and settings;
            otherwise ``ResumeError`` says what differs and the file is left untouched.
            While a call writes ``out`` it holds a lock on it: a second writer gets
            ``RolloutFileBusy``.
        overwrite: delete an existing ``out`` and sample it afresh.
        backend: ``"hf"`` (transformers models on any device, qwqlab's decoder), ``"vllm"``
            (CUDA; imported only when asked for) or ``"openai"`` (any OpenAI-compatible server;
            ``qwqlab.backends.OpenAIBackend``). Every backend writes the same table.
        server: backend="openai" only: ``qwqlab.backends.ServerSettings`` or a dict of its fields
            (``base_url``, ``api_key_env``, ``endpoint``, ``concurrency``, ``extra_body`` ...).
        progress: show a tqdm progress bar (labelled ``desc``, default "sampling <model>").
        model_name: the ``model`` column (default: the model's hub id, path, or "qwq-nano").

    Returns:
        A pandas DataFrame, one row per completion, in problem order then ``sample_index``,
        with the columns in ``COLUMNS``. ``completion_tokens`` counts every generated token
        including the end-of-turn token; ``think_tokens`` and ``answer_tokens`` are the tokens of
        the ``thinking`` and ``answer_text`` columns (``qwqlab.chat.think_answer_tokens``, the one
        counter; neither counts the tags or the end-of-turn token).

    >>> model, tok = load_model("qwq-nano")                                  # doctest: +SKIP
    >>> task = ArithmeticTask()                                              # doctest: +SKIP
    >>> df = sample(model, tok, task.problems(20), task, num_generations=8)  # doctest: +SKIP
    """
    from tqdm.auto import tqdm

    if not isinstance(num_generations, int) or num_generations < 1:
        raise ValueError(f"num_generations must be an integer >= 1 (completions per problem), got {num_generations!r}.")
    if max_new_tokens is not None and (not isinstance(max_new_tokens, int) or max_new_tokens < 1):
        raise ValueError(f"max_new_tokens must be an integer >= 1 (or None for the model's default), "
                         f"got {max_new_tokens!r}.")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}.")
    check_sampling(temperature, top_p, top_k)  # the decoder's one validation, for either backend
    problems = as_problems(problems) if problems is not None else []
    if not problems:
        raise ValueError("No problems to sample: the problem list is empty. Pass e.g. task.problems(20).")
    if resume and out is None:
        raise ValueError("resume=True needs out=: the file to continue.")
    if resume and overwrite:
        raise ValueError("resume=True keeps the rows in out= and overwrite=True deletes them: pass one of them.")

    engine = make_backend(backend, model, tokenizer, temperature, top_p, top_k, max_new_tokens, seed, server)
    tokenizer = engine.tokenizer
    if tokenizer is None and backend != "openai":
        raise ValueError(f"backend={backend!r} needs the model's tokenizer.")

    prompts = [engine.prompt(task, p) for p in problems]
    max_new_tokens = engine.check_context(prompts, max_new_tokens)
    served = {"vllm": getattr(engine, "llm", None), "openai": getattr(engine, "model", None)}
    settings = {"model": model_name or model_name_of(served.get(backend, model)),
                "weights_fingerprint": (weights_fingerprint(model) if backend == "hf" else
                                        files_fingerprint(model_source(served["vllm"])) if backend == "vllm" else None),
                "task": getattr(task, "name", None) if task is not None else None, "backend": backend,
                "num_generations": num_generations, "temperature": float(temperature), "top_p": float(top_p),
                "top_k": int(top_k) if top_k else 0, "max_new_tokens": max_new_tokens, "seed": seed}

    if task is not None:
        unanswered = [p.id for p in problems if p.answer is None]
        if unanswered:
            warnings.warn(
                f"{len(unanswered)} of {len(problems)} problems have no gold answer (e.g. {unanswered[0]!r}): "
                "they are sampled, but their `correct` is NaN (grade_note 'no gold answer') because there is "
                "nothing to grade against.", UserWarning, stacklevel=2)

    store, done_rows = None, []
    if out is not None:
        store = RolloutStore(out)
        store.lock()
        try:
            if store.path.exists() and store.path.stat().st_size > 0 and not (resume or overwrite):
                raise FileExistsError(f"{store.path} already exists. Pass resume=True to continue it, "
                                      "overwrite=True to replace it, or another out= to start afresh.")
            if overwrite:
                store.clear()
            if resume:
                done_rows = store.load()
                check_resumable(store.given, done_rows, settings, problems, prompts, graded=task is not None)
                store.repair()  # only now, once nothing refuses the file
        except BaseException:
            store.unlock()
            raise
    done = {(str(r["problem_id"]), int(r["sample_index"])) for r in done_rows}
    units = [(i, s) for i, p in enumerate(problems) for s in range(num_generations) if (p.id, s) not in done]

    total = len(problems) * num_generations
    bar = tqdm(total=total, initial=total - len(units), desc=desc or f"sampling {settings['model']}", unit="rollout",
               disable=not progress)
    new_rows, pos, size, tokens = [], 0, batch_size, 0
    try:
        while pos < len(units):
            chunk = units[pos:pos + size]
            chunk_prompts = [prompts[i] for i, _ in chunk]
            keys = [row_key(seed, s, prompts[i]) for i, s in chunk]
            try:
                completions = engine.run(chunk_prompts, keys, [i for i, _ in chunk])
            except Exception as e:  # noqa: BLE001 - only out-of-memory is handled, the rest re-raised
                if not is_oom(e):
                    raise
                if size == 1:
                    raise RuntimeError("Out of memory even at batch_size=1: lower max_new_tokens, load the "
                                       "model in 4-bit (load_model(..., bits=4)), or use a bigger GPU.") from e
                _free_cuda_cache()
                size = max(1, size // 2)
                msg = f"CUDA out of memory at batch_size={size * 2}; halving it to {size} and going on."
                warnings.warn(msg, RuntimeWarning, stacklevel=2)
                bar.write(f"qwqlab: {msg}")
                continue
            rows = [_make_row(c, problems[i], s, prompts[i], tokenizer, task, settings)
                    for (i, s), c in zip(chunk, completions)]
            if store is not None:
                store.append(rows)
            new_rows += rows
            pos += len(chunk)
            tokens += sum(c.num_tokens or 0 for c in completions)
            bar.update(len(chunk))
            bar.set_postfix(tokens=tokens)
    finally:
        bar.close()
        if store is not None:
            store.unlock()

    order = {p.id: i for i, p in enumerate(problems)}
    rows = sorted(done_rows + new_rows, key=lambda r: (order[str(r["problem_id"])], int(r["sample_index"])))
    return to_frame(rows)


def _free_cuda_cache() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
