"""The one decoder: every sampled token in qwqlab comes out of ``decode``.

``decode`` is one batched, KV-cached loop, small enough to read in one sitting: prefill the
prompts (each distinct prompt once), then per step **choose** a token for every unfinished row,
**append** it, **stop** the rows that drew an end-of-turn token (they leave the batch), and run
the rest one token further. ``generate``, ``rollouts.sample`` (so notebooks 02, 03, 05 and the
dashboards), ``grpo.train_grpo``, ``grpo.evaluate_policy``, ``nano.measure`` and the chat widget
all call it. The speed-ups (samples that share a prefix run once, a fused one-token step for
Qwen2) live behind one door, ``qwqlab.fast_decoding``, switched on by ``FAST`` below; they give
the same tokens (their floats differ from the plain loop's by round-off only, so a token can
differ only at a near-tie), and check themselves against the model's own forward.

How the chooser draws its random numbers (keyed: deterministic for a seed, resumable,
independent of batching and of the caller) is ``qwqlab.keys``: each completion has its own key
(``row_key``), and each token is a Gumbel-max draw with noise hashed from ``(key, step, token)``.

>>> model, tok = load_model("qwq-nano")                                     # doctest: +SKIP
>>> gens = generate(model, tok, [task.prompt(tok, p) for p in task.problems(4)], 8)  # doctest: +SKIP
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from qwqlab.keys import keyed_uniform, row_key, step_seed  # noqa: F401  (read on as decoding.*)

#: The one switch for ``qwqlab.fast_decoding`` (prefix sharing, the fused Qwen2 step). Off, or
#: where that module cannot be imported, ``decode`` runs the plain ``RowBatch``: same tokens.
FAST = True


@dataclass
class Completion:
    """What ``decode`` returns for one row."""
    token_ids: list[int]        # generated tokens, the end-of-turn token removed
    num_tokens: int             # tokens generated, the end-of-turn token included
    finish_reason: str          # "stop" (end of turn) or "length" (hit max_new_tokens)
    entropy: float | None = None  # mean entropy (nats) of the sampling distribution per token


@dataclass
class Generation:
    """One completion from ``generate``: which prompt and sample it is, its text and tokens."""
    prompt_index: int
    sample_index: int
    text: str
    num_tokens: int
    finish_reason: str  # "stop" (end of turn) or "length" (hit max_new_tokens)
    token_ids: list[int]
    entropy: float | None = None  # mean entropy of the sampling distribution per token (None when greedy)


def cut_at_stop(ids: list[int], stops: set[int], finish_reason: str | None = None) -> Completion:
    """A row of generated ids cut at its first end-of-turn token (``finish_reason`` "stop"),
    else kept whole (``finish_reason``, default "length")."""
    end = next((i for i, t in enumerate(ids) if t in stops), None)
    if end is not None:
        return Completion(ids[:end], end + 1, "stop")
    return Completion(ids, len(ids), finish_reason or "length")


def stop_token_ids(tokenizer) -> list[int]:
    """Token ids that end a turn: the tokenizer's eos, plus ``<|im_end|>``/``<|endoftext|>`` if present."""
    ids = set()
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    for t in ("<|im_end|>", "<|endoftext|>"):
        i = tokenizer.convert_tokens_to_ids(t)
        if isinstance(i, int) and i != getattr(tokenizer, "unk_token_id", None) and i >= 0:
            ids.add(i)
    return sorted(ids)


# ----------------------------------------------------------------------------- the token chooser

def filter_logits(logits, temperature: float, top_k: int | None, top_p: float):
    """Temperature, then top-k, then top-p, as transformers' and vLLM's samplers do.

    Returns ``(scores, token_ids)``: per row the surviving candidates' scaled logits
    (``-inf`` for those top-p removes), best first, and their token ids.
    """
    import torch

    scores = logits.float() / temperature
    k = scores.shape[-1] if not top_k or top_k <= 0 else min(int(top_k), scores.shape[-1])
    values, ids = torch.topk(scores, k, dim=-1)  # sorted, best first
    if top_p is not None and top_p < 1.0:
        probs = torch.softmax(values, dim=-1)
        mass_before = torch.cumsum(probs, dim=-1) - probs
        # Keep the smallest prefix whose mass reaches top_p (the best token always survives).
        values = values.masked_fill(mass_before >= top_p, float("-inf"))
    return values, ids


class KeyedChooser:
    """Greedy (``temperature=0``) or a keyed draw from the filtered ``softmax(logits / T)``.

    ``chooser(logits, keys, step)`` returns ``(tokens, entropy)``: one token per row and the
    entropy of the distribution it was drawn from (``None`` when greedy, or when
    ``entropy=False``: a caller that does not use it saves a softmax per step). Any callable
    with that signature can be passed to ``decode`` instead.
    """

    def __init__(self, temperature: float = 0.6, top_k: int | None = None, top_p: float = 1.0,
                 entropy: bool = True):
        check_sampling(temperature, top_p, top_k)
        self.temperature, self.top_k, self.top_p, self.entropy = temperature, top_k, top_p, entropy
        self.greedy = temperature == 0
        # No top-k and no top-p: every token is a candidate, so no sort is needed (the keyed
        # noise depends on the token id, not its rank, so the draw is the same).
        self.plain = not self.greedy and (not top_k or top_k <= 0) and (top_p is None or top_p >= 1.0)

    def __call__(self, logits, keys, step: int):
        import torch

        if self.greedy:
            return logits.argmax(dim=-1), None
        if self.plain:  # every row's candidates are the whole vocabulary, in id order
            values = logits.float() / self.temperature
            ids = torch.arange(values.shape[-1], device=values.device)[None]
        else:
            values, ids = filter_logits(logits, self.temperature, self.top_k, self.top_p)
        gumbel = keyed_uniform(keys, step, ids).log_().neg_().log_().neg_()  # -log(-log(u)), in place
        choice = (values + gumbel).argmax(dim=-1, keepdim=True)
        tokens = choice.squeeze(-1) if self.plain else ids.gather(-1, choice).squeeze(-1)
        if not self.entropy:
            return tokens, None
        logp = torch.log_softmax(values, dim=-1)
        return tokens, -(logp.exp() * logp.clamp(min=-1e4)).sum(-1)


def sample_next_tokens(logits, keys, step: int, temperature: float = 0.6, top_k: int | None = None,
                       top_p: float = 1.0):
    """One token per row drawn from the filtered ``softmax(logits / temperature)``, keyed by ``keys``.

    Gumbel-max: ``argmax(score + G)``, ``G = -log(-log(U))``, is a draw from ``softmax(score)``.
    ``temperature=0`` is greedy.
    """
    return KeyedChooser(temperature, top_k, top_p, entropy=False)(logits, keys, step)[0]


# ----------------------------------------------------------------------------- the one validation

def check_sampling(temperature, top_p, top_k) -> None:
    """Refuse sampling settings no distribution comes from, with a ``ValueError`` saying which.

    Every caller goes through it (``KeyedChooser``, so ``generate`` and ``decode``; and
    ``rollouts.sample`` for either backend): a NaN temperature would pick one token forever,
    a negative one would silently be greedy, ``top_p=0`` would be greedy with a NaN entropy.
    """
    def number(x):
        return isinstance(x, (int, float)) and not isinstance(x, bool)

    if not number(temperature) or not math.isfinite(temperature) or temperature < 0:
        raise ValueError(f"temperature must be a finite number >= 0 (0 is greedy), got {temperature!r}.")
    if top_p is not None and (not number(top_p) or not 0 < top_p <= 1):  # NaN fails the comparison
        raise ValueError(f"top_p must be in (0, 1] (1 keeps every token), got {top_p!r}.")
    if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 0):
        raise ValueError(f"top_k must be an integer >= 0 (0 or None keeps every token), got {top_k!r}.")


def check_context(model, prompt_tokens: int, max_new_tokens: int) -> None:
    """Refuse a prompt (plus ``max_new_tokens``) longer than the model's context, saying how to fix it."""
    limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if not isinstance(limit, int):
        return
    if prompt_tokens >= limit:
        raise ValueError(f"The longest prompt is {prompt_tokens} tokens, longer than the model's context of {limit} "
                         f"positions: shorten the prompt (or use a model with a longer context).")
    if prompt_tokens + max_new_tokens > limit:
        raise ValueError(f"The longest prompt is {prompt_tokens} tokens and max_new_tokens is {max_new_tokens}, "
                         f"together more than the model's context of {limit} positions. Lower max_new_tokens "
                         f"to at most {limit - prompt_tokens}.")


# ----------------------------------------------------------------------------- the loop

def encode_left(tokenizer, prompts: list[str], device=None):
    """Tokenize ``prompts`` padded on the left, so every row's new tokens start at the same column."""
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    finally:
        tokenizer.padding_side = old_side
    return enc.to(device) if device is not None else enc


def model_device(model):
    dev = getattr(model, "device", None)
    return dev if dev is not None else next(model.parameters()).device


def cache_kwarg(model) -> str:
    """transformers renamed ``past_key_values`` to ``cache`` (5.x); the name this model takes."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


class RowBatch:
    """The plain batch: one KV-cache row per unfinished completion, run through the model's forward.

    ``prefill`` runs the distinct prompts and gives each row a copy of its prompt's cache;
    ``step`` drops the rows that finished (they leave the cache) and runs one token for the rest.
    A "state" is a row of the cache; here each live row is its own state.
    """

    def __init__(self, model, cache_kw: str):
        self.model, self.cache_kw = model, cache_kw

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def prefill(self, input_ids, attention_mask, expand):
        """Returns ``(logits per state, state of each row)``; ``expand[row]`` is the row's prompt."""
        import torch
        from transformers import DynamicCache

        self.cache = DynamicCache()
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=True, logits_to_keep=1,
                         position_ids=(attention_mask.cumsum(-1) - 1).clamp(min=0), **{self.cache_kw: self.cache})
        self.cache.batch_select_indices(expand)  # one cache row per completion
        self.mask, self.position = attention_mask[expand], attention_mask[expand].sum(-1)
        return out.logits[:, -1][expand].float(), torch.arange(len(expand), device=input_ids.device)

    def step(self, state, token):
        """Feed ``token`` to the rows whose states are ``state``; returns ``(new states, logits per state)``."""
        import torch

        if len(state) < self.mask.shape[0]:  # finished rows leave the batch
            self.cache.batch_select_indices(state)
            self.mask, self.position = self.mask[state], self.position[state]
        self.mask = torch.cat([self.mask, self.mask.new_ones(len(state), 1)], dim=1)
        out = self.model(input_ids=token[:, None], attention_mask=self.mask, position_ids=self.position[:, None],
                         use_cache=True, **{self.cache_kw: self.cache})
        self.position = self.position + 1
        return torch.arange(len(state), device=token.device), out.logits[:, -1].float()


def new_batch(model):
    """The one door: ``fast_decoding.SharedBatch`` when ``FAST`` is on and importable, else ``RowBatch``."""
    if FAST:
        try:
            from qwqlab.fast_decoding import SharedBatch
        except ImportError:
            pass
        else:
            return SharedBatch(model, cache_kwarg(model))
    return RowBatch(model, cache_kwarg(model))


def decode(model, tokenizer, prompts: list[str], keys: list[int], max_new_tokens: int, chooser=None,
           return_sequences: bool = False):
    """Decode one completion per entry of ``prompts`` (repeat a prompt for several samples).

    Args:
        prompts: the rendered prompts, one per completion; equal prompts are prefilled once.
        keys: one ``row_key`` per completion: what ``chooser`` draws with.
        max_new_tokens: a completion that reaches it ends with ``finish_reason="length"``.
        chooser: ``chooser(logits, keys, step) -> (tokens, entropy or None)``; default
            ``KeyedChooser()`` (temperature 0.6, no top-k or top-p).
        return_sequences: also return ``(sequences, prompt_length)``: the left-padded prompts
            and the new tokens (padded after the end of turn), for computing log-probs.

    Returns:
        A ``Completion`` per prompt, in order (and the sequences, if asked).
    """
    import torch

    if len(keys) != len(prompts):
        raise ValueError(f"decode needs one key per prompt: {len(prompts)} prompts, {len(keys)} keys")
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be an integer >= 1, got {max_new_tokens!r}")
    chooser = chooser or KeyedChooser()
    distinct = list(dict.fromkeys(prompts))
    enc = encode_left(tokenizer, distinct, model_device(model))
    check_context(model, int(enc["attention_mask"].sum(-1).max()), max_new_tokens)
    device = enc["input_ids"].device
    position_of = {p: i for i, p in enumerate(distinct)}
    expand = torch.tensor([position_of[p] for p in prompts], device=device)
    stops = stop_token_ids(tokenizer)
    stop_t, key_t = torch.tensor(stops, device=device), torch.tensor(keys, dtype=torch.int64, device=device)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    n = len(prompts)
    new = torch.full((n, max_new_tokens), pad, dtype=torch.long, device=device)
    entropy, has_entropy, steps = torch.zeros(n, device=device), False, 0
    with torch.inference_mode(), new_batch(model) as batch:
        logits, state = batch.prefill(enc["input_ids"], enc["attention_mask"], expand)  # 1. prefill
        live = torch.arange(n, device=device)  # the output rows still decoding
        for t in range(max_new_tokens):
            token, ent = chooser(logits[state], key_t[live], t)  # 2. choose
            new[live, t] = token  # 3. append
            if ent is not None:
                entropy[live] += ent.float()
                has_entropy = True
            steps = t + 1
            going = ~torch.isin(token, stop_t)  # 4. stop: finished rows leave the batch
            if t == max_new_tokens - 1 or not going.any():
                break
            live, state, token = live[going], state[going], token[going]
            state, logits = batch.step(state, token)  # 5. one token further
    new = new[:, :steps]
    stop_set = set(stops)
    completions = [cut_at_stop(ids, stop_set) for ids in new.tolist()]
    if has_entropy:
        for c, total in zip(completions, entropy.tolist()):
            c.entropy = total / max(1, c.num_tokens)
    if not return_sequences:
        return completions
    return completions, (torch.cat([enc["input_ids"][expand], new], dim=1), enc["input_ids"].shape[1])


def generate(model, tokenizer, prompts: list[str], num_generations: int = 1, temperature: float = 0.6,
             top_p: float = 0.95, top_k: int | None = 40, max_new_tokens: int = 128,
             seed: int | None = 0, return_tensors: bool = False):
    """``num_generations`` completions for each prompt through ``decode``, as ``Generation`` objects.

    Prompt-major order (all samples of prompt 0, then prompt 1, ...). ``temperature=0`` means
    greedy. For the same seed, prompt and sample index the completion is the one
    ``rollouts.sample`` draws. With ``return_tensors`` also ``(sequences, prompt_length)``
    for computing log-probs (``grpo.train_grpo``).
    """
    chooser = KeyedChooser(temperature, top_k, top_p)  # checks the settings, even with no prompts
    if not prompts:
        return ([], None) if return_tensors else []
    G = num_generations
    rows = [p for p in prompts for _ in range(G)]
    keys = [row_key(seed, s, p) for p in prompts for s in range(G)]
    result = decode(model, tokenizer, rows, keys, max_new_tokens, chooser, return_sequences=return_tensors)
    completions, tensors = result if return_tensors else (result, None)
    gens = [Generation(i // G, i % G, tokenizer.decode(c.token_ids, skip_special_tokens=False), c.num_tokens,
                       c.finish_reason, c.token_ids, c.entropy) for i, c in enumerate(completions)]
    return (gens, tensors) if return_tensors else gens
