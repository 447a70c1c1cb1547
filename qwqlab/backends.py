"""Where a rollout table's completions come from: qwqlab's decoder, vLLM, or any OpenAI-compatible server.

``qwqlab.rollouts.sample`` asks a backend for the completions of one batch of rows and writes
them into its resumable table; the table, its keys and its resume rules are the same whichever
backend fills it. Each backend has the same three methods:

- ``prompt(task, problem)``: the prompt text stored in the row's ``prompt`` column;
- ``check_context(prompts, max_new_tokens)``: the completion budget, resolved and checked;
- ``run(prompts, keys, groups)``: one completion per row (``decoding.Completion`` with token ids,
  or ``TextCompletion`` where a server returns text).

Backends: ``"hf"`` (transformers models on any device, through ``qwqlab.decoding.decode``),
``"vllm"`` (``vllm.LLM`` in this process, CUDA) and ``"openai"`` (an HTTP server that speaks
OpenAI's API: ``vllm serve``, SGLang, llama.cpp's server, Ollama, ``transformers serve``, hosted
APIs), through the ``openai`` client library.
"""
from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from qwqlab.chat import THINK_CLOSE, THINK_OPEN, build_prompt
from qwqlab.decoding import Completion, KeyedChooser, cut_at_stop, decode, stop_token_ids

#: ``sample(max_new_tokens=None)`` for a model without its own default: QwQ-32B's evaluation budget.
DEFAULT_MAX_NEW_TOKENS = 32768


@dataclass(frozen=True)
class TextCompletion:
    """A completion a server returned as text, with what its response said about it.

    ``text`` is the completion as the table stores it (thinking, ``</think>``, answer);
    ``thinking`` the server's own ``reasoning_content`` where it split the thinking off
    (``None`` where it did not); ``num_tokens`` the response's ``usage.completion_tokens``
    (``None`` where the server reports no usage).
    """
    text: str
    num_tokens: int | None
    finish_reason: str
    thinking: str | None = None


def is_oom(err: BaseException) -> bool:
    """Whether ``err`` is an accelerator running out of memory (``sample`` then halves its batch)."""
    import torch

    return isinstance(err, torch.OutOfMemoryError) or (
        isinstance(err, RuntimeError) and "out of memory" in str(err).lower())


def request_seed(keys: list[int]) -> int:
    """One request's seed from the keys of the rows it samples (a batch's content fixes its randomness)."""
    digest = hashlib.blake2b(",".join(str(k) for k in keys).encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little") & 0x7FFFFFFF


def _task_prompt(task, tokenizer, problem) -> str:
    return task.prompt(tokenizer, problem) if task is not None else build_prompt(tokenizer, problem.question)


# ----------------------------------------------------------------------------- in-process

class HFBackend:
    """transformers models on any device, through qwqlab's one decoder (``qwqlab.decoding.decode``)."""
    name = "hf"

    def __init__(self, model, tokenizer, temperature, top_p, top_k, max_new_tokens):
        self.model, self.tokenizer = model, tokenizer
        self.chooser = KeyedChooser(temperature, top_k, top_p, entropy=False)  # the table has no entropy column
        self.max_new_tokens = max_new_tokens

    def prompt(self, task, problem) -> str:
        return _task_prompt(task, self.tokenizer, problem)

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


def _requests(groups: list[int]) -> list[list[int]]:
    """Consecutive rows of one problem as one request (the rows' positions in the batch)."""
    out: list[list[int]] = []
    for i, g in enumerate(groups):
        if out and groups[i - 1] == g:
            out[-1].append(i)
        else:
            out.append([i])
    return out


class VLLMBackend:
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

    def prompt(self, task, problem) -> str:
        return _task_prompt(task, self.tokenizer, problem)

    def check_context(self, prompts: list[str], max_new_tokens: int | None) -> int:
        # vLLM checks the context itself
        self.max_new_tokens = max_new_tokens or DEFAULT_MAX_NEW_TOKENS
        return self.max_new_tokens

    def run(self, prompts: list[str], keys: list[int], groups: list[int]) -> list[Completion]:
        requests = _requests(groups)
        params = [self.vllm.SamplingParams(
            n=len(rows), temperature=self.temperature, top_p=self.top_p,
            top_k=self.top_k if self.top_k and self.top_k > 0 else -1, max_tokens=self.max_new_tokens,
            seed=request_seed([keys[r] for r in rows]), stop_token_ids=self.stops) for rows in requests]
        outputs = self.llm.generate([prompts[rows[0]] for rows in requests], params, use_tqdm=False)
        stops, result = set(self.stops), [None] * len(prompts)
        for rows, request_out in zip(requests, outputs):
            for r, o in zip(rows, request_out.outputs):
                reason = "length" if o.finish_reason == "length" else "stop"
                done = cut_at_stop(list(o.token_ids), stops, reason)
                if done.finish_reason == "length" and reason == "stop":  # stopped by a stop string
                    done = Completion(done.token_ids, done.num_tokens, "stop")
                result[r] = done
        return result


# ----------------------------------------------------------------------------- OpenAI-compatible servers

@dataclass
class ServerSettings:
    """How to reach an OpenAI-compatible server (``qwqlab eval``'s ``openai:`` section; ``sample(server=...)``).

    Attributes:
        base_url: the API's root, e.g. ``http://127.0.0.1:8000/v1`` (``vllm serve``, ``transformers
            serve``), ``http://localhost:11434/v1`` (Ollama). Default: the ``OPENAI_BASE_URL``
            environment variable, else OpenAI's.
        api_key_env: the name of the environment variable that holds the key. The key itself is
            never written to a config, a row, a log or an error message. Local servers take any
            key; when the variable is unset, ``"EMPTY"`` is sent (as vLLM's docs do).
        endpoint: ``"chat"`` (``/v1/chat/completions``: the server applies its chat template;
            ``reasoning_content`` is kept as the thinking where returned) or ``"completions"``
            (``/v1/completions``: the prompt text qwqlab builds with the model's tokenizer, the same
            text the in-process backends are given).
        samples_per_request: ``n`` of one request. Default 1: each row is its own request, seeded
            from its own key, so on a server that honours ``seed`` (vLLM) a row's sample does not
            depend on the batch or on where a killed run stopped, and ``usage`` gives each row's own
            token count (prefix caching makes the repeated prompt cheap). With ``n > 1`` one
            response's ``usage`` counts all its choices together, so each row's
            ``completion_tokens`` is its text re-tokenized. A server that returns fewer choices than
            asked (``transformers serve`` ignores ``n``) is asked again for the rest.
        concurrency: requests in flight at once.
        max_retries, timeout: the ``openai`` client's own retries, with exponential backoff
            (0.5 s doubling to 8 s, honouring ``Retry-After``) on 408/409/429, 5xx, timeouts and
            refused connections; ``timeout`` is seconds per request (a 32k-token completion is slow).
        send_top_k: send ``top_k`` (not part of OpenAI's API) in the request body, as vLLM, SGLang
            and llama.cpp read it. A server that refuses unknown fields (``transformers serve``
            answers 422) needs ``top_k: null`` in the sampling settings, or ``send_top_k: false``;
            it then samples with its own top-k.
        extra_body: more request fields, passed through unchanged (``{"repetition_penalty": 1.05}``,
            ``{"chat_template_kwargs": {...}}``).
    """
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    endpoint: str = "chat"
    samples_per_request: int = 1
    concurrency: int = 8
    max_retries: int = 6
    timeout: float = 3600.0
    send_top_k: bool = True
    extra_body: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.endpoint not in ("chat", "completions"):
            raise ValueError(f"endpoint must be 'chat' or 'completions', not {self.endpoint!r}.")
        for name in ("concurrency", "samples_per_request"):
            v = getattr(self, name)
            if (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}.")
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise ValueError(f"max_retries must be an integer >= 0, got {self.max_retries!r}.")
        if not isinstance(self.extra_body, dict):
            raise ValueError(f"extra_body must be a mapping of request fields, got {type(self.extra_body).__name__}.")
        if not (isinstance(self.api_key_env, str) and self.api_key_env):
            raise ValueError("api_key_env names the environment variable holding the key (e.g. OPENAI_API_KEY); "
                             "put the key itself in that variable, never in a config.")


class _Messages:
    """Stands in for a tokenizer to read the chat messages a task's ``prompt`` would template.

    Every task builds its prompt with ``qwqlab.chat.build_prompt`` (the one place a question
    becomes a prompt), which calls ``apply_chat_template(messages, ...)``; the chat endpoint
    sends those messages and the server applies its own template.
    """
    chat_template = "the server's"

    def __init__(self):
        self.messages = None

    def apply_chat_template(self, messages, **kwargs):
        self.messages = [dict(m) for m in messages]
        return THINK_OPEN  # ends with <think>, so build_prompt adds nothing


def completion_text(content: str | None, reasoning: str | None) -> str:
    """The completion as the table stores it, from a chat response's ``content`` and ``reasoning_content``.

    Where the server split the thinking off, it is put back in front of ``</think>`` (so the
    one grader and ``split_think`` read every backend's rows alike); thinking with no answer
    after it stays unclosed (a completion cut inside its thinking has no answer).

    >>> completion_text("The answer is 4.", "2+2=4")
    '2+2=4\\n</think>\\n\\nThe answer is 4.'
    >>> completion_text("", "2+2=")
    '2+2='
    """
    content = content or ""
    if not reasoning:
        return content
    if not content.strip():
        return reasoning
    return f"{reasoning.rstrip()}\n{THINK_CLOSE}\n\n{content.lstrip()}"


class OpenAIBackend:
    """Any OpenAI-compatible server, through the ``openai`` client: ``n`` samples, concurrency, retries.

    ``model`` is the served model's id (``None``: the server's only model, from ``/v1/models``).
    ``tokenizer`` (optional) builds the prompt text for the completions endpoint and counts
    ``think_tokens``/``answer_tokens``; without one those counts are missing (``<NA>``).
    """
    name = "openai"

    def __init__(self, model, tokenizer, temperature, top_p, top_k, max_new_tokens, settings: ServerSettings):
        try:
            import openai
        except ImportError as e:
            raise ImportError("backend='openai' needs the openai client: `pip install openai`.") from e
        self.openai, self.settings = openai, settings
        self.tokenizer = tokenizer
        if settings.endpoint == "completions" and tokenizer is None:
            raise ValueError("endpoint='completions' sends the prompt text qwqlab builds with the model's chat "
                             "template, so it needs the model's tokenizer (a local folder or hub id): pass "
                             "tokenizer=, or use endpoint='chat' (the server applies its template).")
        key = os.environ.get(settings.api_key_env) or "EMPTY"
        self.client = openai.OpenAI(base_url=settings.base_url, api_key=key, max_retries=settings.max_retries,
                                    timeout=settings.timeout)
        self.model = str(model) if model is not None else self._only_model()
        self.temperature, self.top_p, self.top_k, self.max_new_tokens = temperature, top_p, top_k, max_new_tokens

    def _only_model(self) -> str:
        ids = [m.id for m in self.client.models.list().data]
        if len(ids) != 1:
            raise ValueError(f"the server at {self.client.base_url} serves {len(ids)} models {ids[:5]}: name one "
                             "as model=.")
        return ids[0]

    def prompt(self, task, problem) -> str:
        if self.settings.endpoint == "completions":
            return _task_prompt(task, self.tokenizer, problem)
        recorder = _Messages()
        _task_prompt(task, recorder, problem)
        if recorder.messages is None:
            raise ValueError(f"task {getattr(task, 'name', task)!r} builds its prompt without "
                             "qwqlab.chat.build_prompt, so its chat messages are unknown: use endpoint='completions'.")
        return json.dumps(recorder.messages, ensure_ascii=False)  # the row's prompt: the messages sent

    def check_context(self, prompts: list[str], max_new_tokens: int | None) -> int:
        # the server checks the context itself (a 400 names the limit)
        self.max_new_tokens = max_new_tokens or DEFAULT_MAX_NEW_TOKENS
        return self.max_new_tokens

    def _body(self, n: int, seed: int) -> dict:
        body = {"model": self.model, "temperature": self.temperature, "top_p": self.top_p,
                "max_tokens": self.max_new_tokens, "seed": seed}
        if n > 1:
            body["n"] = n
        extra = dict(self.settings.extra_body)
        if self.settings.send_top_k and self.top_k:
            extra.setdefault("top_k", int(self.top_k))
        if extra:
            body["extra_body"] = extra
        return body

    def _ask(self, prompt: str, n: int, seed: int) -> list[TextCompletion]:
        body = self._body(n, seed)
        try:
            if self.settings.endpoint == "chat":
                response = self.client.chat.completions.create(messages=json.loads(prompt), **body)
            else:
                response = self.client.completions.create(prompt=prompt, **body)
        except self.openai.UnprocessableEntityError as e:
            raise ValueError(f"the server refused the request (422: {e.message}). If it names top_k, this server "
                             "does not take it: set top_k: null in the sampling settings (it then samples with "
                             "its own top-k), or send_top_k: false.") from e
        usage = getattr(response, "usage", None)
        total = getattr(usage, "completion_tokens", None)
        choices = sorted(response.choices, key=lambda c: c.index)
        out = []
        for c in choices:
            reason = "length" if c.finish_reason == "length" else "stop"
            if self.settings.endpoint == "chat":
                thinking = getattr(c.message, "reasoning_content", None) or getattr(c.message, "reasoning", None)
                text = completion_text(c.message.content, thinking)
            else:
                thinking, text = None, c.text or ""
            out.append(TextCompletion(text, total if len(choices) == 1 else self._count(c, text, reason),
                                      reason, thinking))
        return out

    def _count(self, choice, text: str, reason: str) -> int | None:
        """One choice's tokens when a response holds several (``usage`` counts them all together):
        its text re-tokenized, plus the end-of-turn token when it stopped; ``None`` without a tokenizer."""
        if self.tokenizer is None:
            return None
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"]) + (reason == "stop")

    def _one_request(self, prompt: str, keys: list[int]) -> list[TextCompletion]:
        """``len(keys)`` completions of one prompt, asking again while the server returns fewer than asked."""
        got: list[TextCompletion] = []
        while len(got) < len(keys):
            want = keys[len(got):]
            answer = self._ask(prompt, len(want), request_seed(want))
            if not answer:
                raise RuntimeError(f"the server at {self.client.base_url} returned no choices.")
            got += answer[:len(want)]
        return got

    def run(self, prompts: list[str], keys: list[int], groups: list[int]) -> list[TextCompletion]:
        per = self.settings.samples_per_request
        units = [rows[i:i + per] for rows in _requests(groups) for i in range(0, len(rows), per)]
        result = [None] * len(prompts)
        pool = ThreadPoolExecutor(max_workers=min(self.settings.concurrency, len(units)))
        try:
            futures = [pool.submit(self._one_request, prompts[rows[0]], [keys[r] for r in rows]) for rows in units]
            for rows, fut in zip(units, futures):
                for r, c in zip(rows, fut.result()):
                    result[r] = c
        except BaseException:  # a failed request or Ctrl-C: send nothing more (the batch is sampled again on resume)
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
        return result


BACKENDS = ("hf", "vllm", "openai")


def make_backend(backend: str, model, tokenizer, temperature, top_p, top_k, max_new_tokens, seed, server=None):
    """The backend named ``backend`` (one of ``BACKENDS``); ``server``: ``ServerSettings`` or a dict (openai only)."""
    if server is not None and backend != "openai":
        raise ValueError(f"server= settings are for backend='openai', not {backend!r}.")
    if backend == "hf":
        return HFBackend(model, tokenizer, temperature, top_p, top_k, max_new_tokens)
    if backend == "vllm":
        return VLLMBackend(model, tokenizer, temperature, top_p, top_k, max_new_tokens, seed)
    if backend == "openai":
        settings = server if isinstance(server, ServerSettings) else ServerSettings(**(server or {}))
        return OpenAIBackend(model, tokenizer, temperature, top_p, top_k, max_new_tokens, settings)
    raise ValueError(f"backend must be one of {BACKENDS} ('hf': qwqlab's decoder; 'vllm'; 'openai': an "
                     f"OpenAI-compatible server), not {backend!r}.")
