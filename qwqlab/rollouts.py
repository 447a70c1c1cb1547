"""Sample rollouts: k completions per problem, batched and KV-cached, as a tidy table.

``sample`` is the lab's workhorse: every later notebook (rewards, RL, reasoning length)
reads the table it returns, one row per completion, with the columns of the glossary in
CONTRIBUTING.md. The tokens come from qwqlab's one decoder, ``qwqlab.decoding.decode``
(``backend="hf"``), or from vLLM (``backend="vllm"``) behind the same interface.

Each completion is keyed by ``(seed, sample_index, prompt)`` (``decoding.row_key``), so the
table is deterministic for a seed (on CPU bit for bit), independent of ``batch_size`` and
of where an interrupted run stopped, and equal to what ``decoding.generate`` draws for the
same prompt: see ``qwqlab.decoding`` for how.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from pathlib import Path

from qwqlab.chat import build_prompt, extract_boxed, split_think, think_answer_tokens
from qwqlab.decoding import (Completion, KeyedChooser, check_sampling, cut_at_stop, decode, row_key,
                             stop_token_ids)
from qwqlab.tasks.base import Problem


# ----------------------------------------------------------------------------- the table

#: Columns of a rollout table, in order (``correct`` and ``grade_note`` only when a task grades).
COLUMNS = [
    "problem_id", "sample_index", "question", "gold_answer", "prompt", "completion", "thinking",
    "answer_text", "extracted_answer", "completion_tokens", "think_tokens", "answer_tokens",
    "finish_reason", "is_truncated", "correct", "grade_note",
    "model", "weights_fingerprint", "task", "backend", "num_generations", "temperature", "top_p", "top_k",
    "max_new_tokens", "seed",
]
#: Settings that must match for a resumed run to continue a file.
RUN_SETTINGS = ("model", "weights_fingerprint", "task", "backend", "num_generations", "temperature", "top_p",
                "top_k", "max_new_tokens", "seed")
#: What a row's problem must still be for the row to be reused: the same id with another
#: question, gold answer or prompt is another problem, whose old rows would be wrong.
PROBLEM_FIELDS = ("question", "gold_answer", "prompt")
#: ``sample(max_new_tokens=None)`` for a model without its own default: QwQ-32B's evaluation budget.
DEFAULT_MAX_NEW_TOKENS = 32768
_INT_COLUMNS = ("sample_index", "completion_tokens", "think_tokens", "answer_tokens", "num_generations",
                "max_new_tokens")


def to_frame(rows: list[dict]):
    """Rows (dicts) as a rollout table with the standard column order and dtypes."""
    import pandas as pd

    df = pd.DataFrame.from_records(rows)
    cols = [c for c in COLUMNS if c in df.columns] + [c for c in df.columns if c not in COLUMNS]
    df = df[cols] if len(df.columns) else pd.DataFrame(columns=[c for c in COLUMNS if c not in ("correct", "grade_note")])
    for c in _INT_COLUMNS:
        if c in df.columns and len(df):
            df[c] = df[c].astype("int64")
    if "is_truncated" in df.columns and len(df):
        df["is_truncated"] = df["is_truncated"].astype(bool)
    for c in ("correct", "temperature", "top_p"):
        if c in df.columns:
            df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    if "top_k" in df.columns:  # None means "no top-k"; stored as 0 so the column stays integer
        df["top_k"] = pd.to_numeric(df["top_k"], errors="coerce").fillna(0).astype("int64")
    if "seed" in df.columns:
        df["seed"] = pd.to_numeric(df["seed"], errors="coerce").astype("Int64")
    return df.reset_index(drop=True)


# ----------------------------------------------------------------------------- backends

def _is_oom(err: BaseException) -> bool:
    import torch

    return isinstance(err, torch.OutOfMemoryError) or (
        isinstance(err, RuntimeError) and "out of memory" in str(err).lower())


class _HFBackend:
    """transformers models on any device, through qwqlab's one decoder (``qwqlab.decoding.decode``)."""
    name = "hf"

    def __init__(self, model, tokenizer, temperature, top_p, top_k, max_new_tokens):
        self.model, self.tokenizer = model, tokenizer
        self.chooser = KeyedChooser(temperature, top_k, top_p, entropy=False)  # the table has no entropy column
        self.max_new_tokens = max_new_tokens

    def check_context(self, prompts: list[str], max_new_tokens: int | None) -> int:
        """``max_new_tokens`` (resolved when ``None``), checked against the model's context."""
        limit = getattr(getattr(self.model, "config", None), "max_position_embeddings", None)
        longest = max(len(self.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in set(prompts))
        if max_new_tokens is None:
            own = getattr(getattr(self.model, "generation_config", None), "max_new_tokens", None)
            max_new_tokens = own if isinstance(own, int) and own > 0 else DEFAULT_MAX_NEW_TOKENS
            if isinstance(limit, int):
                max_new_tokens = max(1, min(max_new_tokens, limit - longest))
        self.max_new_tokens = max_new_tokens
        if isinstance(limit, int) and longest + self.max_new_tokens > limit:
            raise ValueError(
                f"The longest prompt is {longest} tokens and max_new_tokens is {self.max_new_tokens}, "
                f"together more than the model's context of {limit} positions. Lower max_new_tokens "
                f"to at most {limit - longest}.")
        return max_new_tokens

    def run(self, prompts: list[str], keys: list[int], groups: list[int]) -> list[Completion]:
        return decode(self.model, self.tokenizer, prompts, keys, self.max_new_tokens, self.chooser)


class _VLLMBackend:
    """vLLM's ``LLM.generate`` with ``SamplingParams(n=...)``: one request per problem in a batch."""
    name = "vllm"

    def __init__(self, model, tokenizer, temperature, top_p, top_k, max_new_tokens, seed):
        try:
            import vllm
        except ImportError as e:
            raise ImportError("backend='vllm' needs vLLM, which runs on CUDA GPUs: "
                              "`pip install 'qwqlab[vllm]'` there, or use backend='hf'.") from e
        self.vllm = vllm
        self.llm = vllm.LLM(model=model, seed=seed or 0) if isinstance(model, (str, Path)) else model
        self.tokenizer = tokenizer if tokenizer is not None else self.llm.get_tokenizer()
        self.temperature, self.top_p, self.top_k, self.max_new_tokens = temperature, top_p, top_k, max_new_tokens
        self.stops = stop_token_ids(self.tokenizer)

    def check_context(self, prompts: list[str], max_new_tokens: int | None) -> int:
        # vLLM checks the context itself
        self.max_new_tokens = max_new_tokens or DEFAULT_MAX_NEW_TOKENS
        return self.max_new_tokens

    def run(self, prompts: list[str], keys: list[int], groups: list[int]) -> list[Completion]:
        # Consecutive rows of one problem become one request with n samples, seeded from
        # the keys of those rows, so a batch's content fixes its randomness.
        requests: list[tuple[str, list[int]]] = []
        for i, g in enumerate(groups):
            if requests and groups[i - 1] == g:
                requests[-1][1].append(i)
            else:
                requests.append((prompts[i], [i]))
        params = []
        for _, rows in requests:
            seed = int.from_bytes(hashlib.blake2b(",".join(str(keys[r]) for r in rows).encode(),
                                                  digest_size=4).digest(), "little") & 0x7FFFFFFF
            params.append(self.vllm.SamplingParams(
                n=len(rows), temperature=self.temperature, top_p=self.top_p,
                top_k=self.top_k if self.top_k and self.top_k > 0 else -1, max_tokens=self.max_new_tokens,
                seed=seed, stop_token_ids=self.stops))
        outputs = self.llm.generate([p for p, _ in requests], params, use_tqdm=False)
        stops, result = set(self.stops), [None] * len(prompts)
        for (_, rows), request_out in zip(requests, outputs):
            for r, o in zip(rows, request_out.outputs):
                reason = "length" if o.finish_reason == "length" else "stop"
                done = cut_at_stop(list(o.token_ids), stops, reason)
                if done.finish_reason == "length" and reason == "stop":  # stopped by a stop string
                    done = Completion(done.token_ids, done.num_tokens, "stop")
                result[r] = done
        return result


# ----------------------------------------------------------------------------- storage

class ResumeError(ValueError):
    """A rollout file cannot be continued; the message says why and what to do. The file is untouched."""


class RolloutFileBusy(ResumeError):
    """Another process (or another ``sample`` call) is writing the same rollout file right now."""


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


class RolloutStore:
    """A rollout file that grows one batch at a time and survives being killed mid-write.

    ``.jsonl``: each batch is appended as lines and flushed to disk; a line cut short by a
    kill is moved to ``FILE.torn-N`` on resume and the file continues from the last whole row.
    ``.parquet``: the whole table is rewritten to a temporary file and renamed over the old
    one after each batch (a rename is atomic), so the file on disk is always a complete table.
    Prefer jsonl for very long runs: its appends cost nothing.

    One writer at a time: ``lock()`` takes an exclusive ``flock`` on the sidecar
    ``.FILE.lock`` (released by the kernel if the process dies), so a second process resuming
    the same file gets ``RolloutFileBusy`` instead of sampling the same rows twice. ``load``
    only reads; ``repair`` (called once every check has passed) is what sets a torn line aside.
    """

    def __init__(self, path):
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in (".jsonl", ".parquet"):
            raise ValueError(f"out={str(path)!r}: rollouts are written as .jsonl or .parquet, not {suffix or 'no suffix'!r}.")
        self.format = suffix[1:]
        self._rows: list[dict] = []
        self._tmp = self.path.with_name(f".{self.path.name}.qwqlab-tmp")
        self._lock_path = self.path.with_name(f".{self.path.name}.lock")
        self._lock_fd: int | None = None
        self._torn: tuple[int, bytes] | None = None  # (offset, bytes) of a partial last jsonl line

    def lock(self) -> None:
        """Become the file's only writer, or raise ``RolloutFileBusy`` at once naming the holder."""
        try:
            import fcntl
        except ImportError:  # Windows has no flock; one writer per file is then up to the user
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RolloutFileBusy(
                f"{self.path} is being written by another process right now (pid {holder} holds "
                f"{self._lock_path}). Two writers would sample the same rows twice. Wait for that run to "
                "finish (then resume=True continues it), or pass another out=.") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def unlock(self) -> None:
        if getattr(self, "_lock_fd", None) is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def __del__(self):  # a store dropped by an exception still lets the next writer in
        self.unlock()

    def clear(self) -> None:
        """Delete the file (``sample(..., overwrite=True)``): the next append starts it afresh."""
        for p in (self.path, self._tmp):
            p.unlink(missing_ok=True)
        self._rows, self._torn = [], None

    def repair(self) -> None:
        """Set a torn last line aside (``FILE.torn-N``) and drop a half-written parquet rewrite.

        Called only after every resume check has passed: a file that is refused stays byte
        for byte as it was.
        """
        if self._tmp.exists():
            self._tmp.unlink()  # a parquet rewrite that a kill interrupted; the real file is intact
        if self._torn is None:
            return
        cut, torn = self._torn
        n = 0
        while self.path.with_name(f"{self.path.name}.torn-{n}").exists():
            n += 1
        aside = self.path.with_name(f"{self.path.name}.torn-{n}")
        aside.write_bytes(torn)
        with open(self.path, "r+b") as f:
            f.truncate(cut)
            f.flush()
            os.fsync(f.fileno())
        self._torn = None
        warnings.warn(f"{self.path} ended in a partial line ({len(torn)} bytes), left by a run killed "
                      f"while writing; it was moved to {aside} and those rows will be sampled again.",
                      RuntimeWarning, stacklevel=3)

    def load(self) -> list[dict]:
        """The rows already written (without a torn last jsonl line); raises ``ResumeError`` if unreadable.

        Reads only: the file is not changed (see ``repair``).
        """
        self._torn = None
        if not self.path.exists() or self.path.stat().st_size == 0:
            self._rows = []
            return []
        rows = self._load_jsonl() if self.format == "jsonl" else self._load_parquet()
        for n, row in enumerate(rows, start=1):
            missing = [c for c in ("problem_id", "sample_index", "completion") if row.get(c) is None]
            if missing:
                raise ResumeError(f"{self.path}, row {n}, has no {missing}: it is not a qwqlab rollout file, or "
                                  "it is damaged. It was left untouched; pass another out=.")
        self._rows = rows
        return rows

    def _load_jsonl(self) -> list[dict]:
        data = self.path.read_bytes()
        cut = data.rfind(b"\n") + 1
        if cut < len(data):
            self._torn = (cut, data[cut:])
            data = data[:cut]
        rows = []
        for n, line in enumerate(data.decode("utf-8", errors="replace").split("\n"), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ResumeError(f"{self.path}, line {n}, is not a JSON row ({e}); the file is corrupt. It was "
                                  "left untouched: fix or delete that line, or pass another out=.") from e
            if not isinstance(row, dict):
                raise ResumeError(f"{self.path}, line {n}, is not a JSON object; the file is corrupt. "
                                  "It was left untouched: fix that line, or pass another out=.")
            rows.append(row)
        return rows

    def _load_parquet(self) -> list[dict]:
        import pandas as pd

        try:
            df = pd.read_parquet(self.path)
        except Exception as e:  # pyarrow raises several types for a damaged file
            raise ResumeError(f"{self.path} cannot be read as parquet ({type(e).__name__}: {e}). It was left "
                              "untouched: move it aside, or pass another out=.") from e
        df = df.astype(object).where(df.notna(), None)
        return df.to_dict("records")

    def append(self, rows: list[dict]) -> None:
        """Add one batch of rows durably."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.format == "jsonl":
            payload = "".join(json.dumps(r, ensure_ascii=False, default=_json_default) + "\n" for r in rows)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
            return
        self._rows = self._rows + rows
        to_frame(self._rows).to_parquet(self._tmp, index=False)
        with open(self._tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(self._tmp, self.path)


def _json_default(x):
    if hasattr(x, "item"):  # numpy scalars
        return x.item()
    raise TypeError(f"cannot write {type(x).__name__} to JSON")


def _same(a, b) -> bool:
    def norm(v):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return None
        if hasattr(v, "item"):
            v = v.item()
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v
    return norm(a) == norm(b)


def _check_resumable(path, rows: list[dict], settings: dict, problems: list[Problem], prompts: list[str]) -> None:
    known = {p.id: (p.question, p.answer, prompt) for p, prompt in zip(problems, prompts)}
    seen, foreign = set(), []
    for r in rows:
        key = (str(r["problem_id"]), int(r["sample_index"]))
        if key in seen:
            raise ResumeError(f"{path} holds problem {key[0]!r}, sample {key[1]} twice: it is not one run's "
                              "output. It was left untouched; pass another out=.")
        seen.add(key)
        if key[0] not in known:
            foreign.append(key[0])
    if foreign:
        raise ResumeError(f"{path} holds rows for problems not in this run (e.g. {foreign[0]!r}): it belongs "
                          "to another run. It was left untouched; pass the same problems, another out=, or "
                          "overwrite=True to sample it afresh.")
    for r in rows:
        for column, want in zip(PROBLEM_FIELDS, known[str(r["problem_id"])]):
            if column in r and not _same(r[column], want):
                raise ResumeError(
                    f"{path} holds problem {str(r['problem_id'])!r} with another {column}: the file has "
                    f"{_short(r[column])}, this run has {_short(want)}. The same id now means another problem, "
                    "so its old rows cannot be reused. Pass another out=, or overwrite=True to sample the file "
                    "afresh. (The file was left untouched.)")
    for name in RUN_SETTINGS:
        want = settings[name]
        for r in rows:
            if name not in r or _same(r[name], want):
                continue
            if name == "weights_fingerprint":
                raise ResumeError(
                    f"{path} was written by other weights (weights_fingerprint {r[name]!r}; this model's is "
                    f"{want!r}): the model was trained, re-quantized or swapped since, so its old rows are "
                    "not this model's. Pass another out=, or overwrite=True to sample the file afresh. "
                    "(The file was left untouched.)")
            raise ResumeError(
                f"{path} was written with {name}={r[name]!r}, but this run has {name}={want!r}. Resuming "
                "would mix two runs in one table. Use the same settings, another out=, or overwrite=True "
                "to sample the file afresh. (The file was left untouched.)")


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 5] + "...'"


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

    name = getattr(model, "name_or_path", None) or getattr(getattr(model, "config", None), "_name_or_path", None)
    if name is None:
        engine = getattr(model, "llm_engine", None)  # a vllm.LLM
        name = getattr(getattr(engine, "model_config", None), "model", None) or type(model).__name__
    try:
        if Path(name).resolve() == nano_dir().resolve():
            return "qwq-nano"
    except (OSError, ValueError):
        pass
    return str(name)


def _make_row(c: Completion, problem: Problem, sample_index: int, prompt: str, tokenizer, task,
              settings: dict) -> dict:
    text = tokenizer.decode(c.token_ids, skip_special_tokens=False)
    parts = split_think(text)
    (think_tokens,), (answer_tokens,) = think_answer_tokens([text], tokenizer)  # the one counter
    think_tokens, answer_tokens = int(think_tokens), int(answer_tokens)
    extracted = task.extract_answer(text) if task is not None else extract_boxed(parts.answer)
    row = {
        "problem_id": problem.id, "sample_index": sample_index, "question": problem.question,
        "gold_answer": problem.answer, "prompt": prompt, "completion": text, "thinking": parts.thinking,
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
           progress: bool = True, model_name: str | None = None, overwrite: bool = False, desc: str | None = None):
    """Sample ``num_generations`` completions per problem and return them as a tidy table.

    QwQ-32B is evaluated this way: 64 samples per AIME problem at temperature 0.6, top_p
    0.95, top_k 20 to 40, never greedily. Sampling is batched (``batch_size`` completions per
    decoder call, prompts left-padded, KV cache on) and keyed per completion (see the
    module docstring), so the table depends on the seed only: not on ``batch_size``, not on
    where an interrupted run stopped.

    Args:
        model, tokenizer: from ``qwqlab.models.load_model``; with ``backend="vllm"`` the model
            is a ``vllm.LLM`` or a model id, and ``tokenizer`` may be ``None`` (vLLM's is used).
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
            and it was made by the same weights (``weights_fingerprint``) and settings;
            otherwise ``ResumeError`` says what differs and the file is left untouched.
            While a call writes ``out`` it holds a lock on it: a second writer gets
            ``RolloutFileBusy``.
        overwrite: delete an existing ``out`` and sample it afresh.
        backend: ``"hf"`` (transformers models on any device, qwqlab's decoder) or
            ``"vllm"`` (CUDA; imported only when asked for).
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

    if backend == "hf":
        engine = _HFBackend(model, tokenizer, temperature, top_p, top_k, max_new_tokens)
    elif backend == "vllm":
        engine = _VLLMBackend(model, tokenizer, temperature, top_p, top_k, max_new_tokens, seed)
        tokenizer = engine.tokenizer
    else:
        raise ValueError(f"backend must be 'hf' (qwqlab's decoder) or 'vllm', not {backend!r}.")
    if tokenizer is None:
        raise ValueError(f"backend={backend!r} needs the model's tokenizer.")

    prompts = [task.prompt(tokenizer, p) if task is not None else build_prompt(tokenizer, p.question)
               for p in problems]
    max_new_tokens = engine.check_context(prompts, max_new_tokens)
    settings = {"model": model_name or model_name_of(engine.llm if backend == "vllm" else model),
                "weights_fingerprint": weights_fingerprint(model) if backend != "vllm" else None,
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
                _check_resumable(store.path, done_rows, settings, problems, prompts)
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
                if not _is_oom(e):
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
            tokens += sum(c.num_tokens for c in completions)
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
