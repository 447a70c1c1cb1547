"""The one decoder: every sampled token in qwqlab comes out of ``decode``.

``decode`` is one batched, KV-cached loop: each distinct prompt is prefilled once, samples
that have drawn the same tokens so far are one state of the batch, run once per step (a state
forks when its samples' draws differ: the samples of a confident policy share long prefixes),
finished states leave the batch, and each next token is picked by a token chooser
(``KeyedChooser`` unless you pass your own). For a plain Qwen2 model a step is
``_PlainStep``, the model's own one-token arithmetic without transformers' per-module
machinery. ``rollouts.sample``
(and so notebooks 02, 03, 05 and the dashboards), ``grpo.train_grpo``,
``grpo.evaluate_policy``, ``nano.measure`` and the chat widget all call it, through
``generate`` or ``rollouts.sample``. The vLLM backend of ``rollouts.sample`` is the one
alternative, behind the same interface.

How the chooser draws its random numbers matters for three promises the lab makes:

* **Deterministic for a seed**, on CPU bit for bit, and never through torch's global RNG
  (nothing else in the process can shift it, and it shifts nothing else).
* **Resumable**: killed at any point and restarted, ``sample`` reproduces the rows it had
  not written.
* **Independent of batching and of the caller**: another ``batch_size``, halving the batch
  after an out-of-memory error, or calling ``generate`` instead of ``sample`` gives the
  same completion for the same seed, prompt and sample index.

So each completion gets its own key, a hash of ``(seed, sample_index, prompt)``
(``row_key``), and each sampled token is chosen by the Gumbel-max trick (Gumbel 1954; as
used for sampling in e.g. Kool et al. 2019, "Stochastic Beams and Where to Find Them"): the
token maximising ``logit/T + g`` with ``g`` Gumbel noise, which is an exact draw from
``softmax(logit/T)``. The noise is a counter-based hash of ``(key, step, token id)``
(``keyed_uniform``), not an RNG stream. Temperature, top-k and top-p are applied first, in
that order, as in transformers and vLLM. A side effect the notebooks use: runs that differ
only in ``max_new_tokens`` share their prefixes, and runs at different temperatures share
their noise ("common random numbers"), which makes curves over those settings smooth.

>>> model, tok = load_model("qwq-nano")                                     # doctest: +SKIP
>>> gens = generate(model, tok, [task.prompt(tok, p) for p in task.problems(4)], 8)  # doctest: +SKIP
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

_MASK32 = 0xFFFFFFFF


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


# ----------------------------------------------------------------------------- keyed randomness

def row_key(seed: int | None, sample_index: int, prompt: str) -> int:
    """The 32-bit key that decides every random choice of one completion.

    The prompt stands for the problem (it holds the question), so ``generate`` and
    ``rollouts.sample`` give the same completion for the same seed, prompt and sample.
    """
    text = f"{seed}\x1f{sample_index}\x1f{prompt}".encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=4).digest(), "little")


def _mul32(x, c: int):
    # x * c mod 2**32 for x, c < 2**32: the int64 product may wrap modulo 2**64 (two's
    # complement, on every torch backend), which leaves its low 32 bits exact.
    return x * c & _MASK32


def _mix32(x):
    """A 32-bit integer hash (Chris Wellons' "lowbias32"), elementwise on an int64 tensor."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def keyed_uniform(keys, step: int, token_ids):
    """Uniform(0, 1) noise for ``(key, step, token id)``, one number per row and candidate.

    ``token_ids`` is rows x candidates, or ``1 x candidates`` when every row has the same
    candidates (then they are hashed once, not once per row). A pure function of its
    arguments: the same key, step and token always get the same number.
    """
    import torch

    keys = keys.to(token_ids.device, torch.int64)
    base = _mix32(keys ^ _mix32(torch.full_like(keys, (step * 0x9E3779B9 + 0x7F4A7C15) & _MASK32)))
    h = _mix32(base[:, None] ^ _mix32(token_ids.to(torch.int64) & _MASK32))
    h = _mix32(h ^ 0x632BE5AB)
    # The top 24 bits are exact in float32 and give u strictly inside (0, 1).
    return ((h >> 8).to(torch.float32) + 0.5) / float(1 << 24)


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
        self.temperature, self.top_k, self.top_p, self.entropy = temperature, top_k, top_p, entropy
        self.greedy = not temperature or temperature <= 0
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


# ----------------------------------------------------------------------------- speed-ups inside the loop

def cache_kwarg(model) -> str:
    """transformers renamed ``past_key_values`` to ``cache`` (5.x); the name this model takes."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def _buffered_cache():
    """A ``DynamicCache`` whose layers write each new token's keys and values into buffers with
    spare room, instead of concatenating (a copy of the whole cache per token and layer), and
    can ``fork`` rows: append copies of some rows (``fork_rows``). Falls back to a plain
    ``DynamicCache`` on transformers versions without cache layers (which ``can_fork`` says)."""
    from transformers import DynamicCache

    try:
        from transformers.cache_utils import DynamicLayer
    except ImportError:
        return DynamicCache()

    class BufferedLayer(DynamicLayer):
        # self._buffers: (keys, values), each (row capacity, heads, room, head_dim); rows
        # 0..self._rows-1 and positions 0..self._used-1 are the cache (self.keys/self.values).
        def update(self, key_states, value_states, *args, **kwargs):
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
                self._used, self._rows, self._buffers = 0, key_states.shape[0], None
            q = key_states.shape[-2]
            if self._buffers is None or self._used + q > self._buffers[0].shape[-2]:
                need = self._used + q
                self._reallocate(self._rows, max(need + 64, 2 * need), key_states)
            kb, vb = self._buffers
            kb[:self._rows, :, self._used:self._used + q] = key_states
            vb[:self._rows, :, self._used:self._used + q] = value_states
            self._used += q
            self._views()
            return self.keys, self.values

        def _views(self):
            kb, vb = self._buffers
            self.keys, self.values = kb[:self._rows, :, :self._used], vb[:self._rows, :, :self._used]

        def _reallocate(self, capacity, room, like):  # new buffers (capacity rows, room positions), cache copied
            _, h, _, d = like.shape
            kb, vb = like.new_empty((capacity, h, room, d)), like.new_empty((capacity, h, room, d))
            if self._used:
                kb[:self._rows, :, :self._used], vb[:self._rows, :, :self._used] = self.keys, self.values
            self._buffers = (kb, vb)
            self._views()

        def batch_repeat_interleave(self, repeats: int) -> None:
            import torch

            self.batch_select_indices(torch.arange(self._rows, device=self.keys.device).repeat_interleave(repeats))

        def batch_select_indices(self, indices) -> None:
            if not self.is_initialized:
                return
            kb, vb = self._buffers
            self._buffers = (kb.index_select(0, indices), vb.index_select(0, indices))  # one copy
            self._rows = len(indices)
            self._views()

        def fork(self, parents) -> None:
            if not self.is_initialized:
                return
            rows, extra = self._rows, len(parents)
            if rows + extra > self._buffers[0].shape[0]:  # room for twice the rows: forks come a few at a time
                self._reallocate(max(rows + extra, 2 * rows), self._buffers[0].shape[2], self.keys)
            kb, vb = self._buffers
            kb[rows:rows + extra, :, :self._used] = kb[parents, :, :self._used]
            vb[rows:rows + extra, :, :self._used] = vb[parents, :, :self._used]
            self._rows = rows + extra
            self._views()

    cache = DynamicCache()
    if getattr(cache, "layer_class_to_replicate", None) is not DynamicLayer or cache.layers:
        return cache
    cache.layer_class_to_replicate = BufferedLayer
    return cache


def can_fork(cache) -> bool:
    """Whether every layer of ``cache`` (a ``_buffered_cache`` after the prefill) can fork rows."""
    layers = getattr(cache, "layers", None)
    return bool(layers) and all(hasattr(layer, "fork") for layer in layers)


def fork_rows(cache, parents) -> None:
    """Append to every layer of a cache that ``can_fork`` a copy of the rows ``parents``."""
    for layer in cache.layers:
        layer.fork(parents)


_DECODE_ATTENTION = "qwqlab_decode"
_decode_attention_ok: bool | None = None


def _register_decode_attention() -> bool:
    """Register qwqlab's one-query attention with transformers (once); False where it cannot."""
    global _decode_attention_ok
    if _decode_attention_ok is not None:
        return _decode_attention_ok
    try:
        import torch
        from transformers import AttentionInterface
        from transformers.integrations.sdpa_attention import sdpa_attention_forward
        from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
    except ImportError:
        _decode_attention_ok = False
        return False

    def decode_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None,
                         **kwargs):
        # Decoding sends one query per row; SDPA's CPU kernels are slow at that shape, and
        # two small matmuls over the key/value heads (no copies for grouped-query attention)
        # are not. Everything else goes to SDPA, with the same (SDPA) mask.
        if query.shape[2] != 1 or dropout or kwargs.get("output_attentions") or kwargs.get("softcap") is not None:
            return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                          scaling=scaling, is_causal=is_causal, **kwargs)
        b, h, _, d = query.shape
        kv_heads = key.shape[1]
        scores = torch.matmul(query.reshape(b, kv_heads, h // kv_heads, d), key.transpose(-1, -2))
        scores = scores * (scaling if scaling is not None else d ** -0.5)
        if attention_mask is not None:
            m = attention_mask[..., -1:, :key.shape[2]].reshape(b, 1, 1, -1)
            scores = scores.masked_fill(~m, float("-inf")) if m.dtype == torch.bool else scores + m
        out = torch.matmul(torch.softmax(scores, dim=-1), value)  # (b, kv_heads, groups, d)
        return out.reshape(b, h, 1, d).transpose(1, 2), None

    def decode_mask(batch_size, q_length, kv_length, q_offset=0, kv_offset=0, attention_mask=None, **kwargs):
        # One new token per row attends to every cached position its padding mask keeps, so
        # its mask is that padding mask, made once per step as an additive one (0 or -inf: the
        # same scores as masking each layer's, in one add). Everything else: SDPA's mask.
        if (q_length != 1 or kv_offset or attention_mask is None or attention_mask.dim() != 2
                or attention_mask.shape[-1] != kv_length):
            return sdpa_mask(batch_size=batch_size, q_length=q_length, kv_length=kv_length, q_offset=q_offset,
                             kv_offset=kv_offset, attention_mask=attention_mask, **kwargs)
        keep = attention_mask.bool()[:, None, None, :]
        return torch.zeros(keep.shape, dtype=kwargs.get("dtype") or torch.float32,
                           device=keep.device).masked_fill_(~keep, float("-inf"))

    AttentionInterface.register(_DECODE_ATTENTION, decode_attention)
    AttentionMaskInterface.register(_DECODE_ATTENTION, decode_mask)
    _decode_attention_ok = True
    return True


class _DecodeAttention:
    """While decoding, switch a model that uses SDPA to ``decode_attention``; restore it after."""

    def __init__(self, model):
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        self.config = getattr(base, "config", None)

    def __enter__(self):
        self.switched = (self.config is not None and getattr(self.config, "_attn_implementation", None) == "sdpa"
                         and not getattr(self.config, "sub_configs", None) and _register_decode_attention())
        if self.switched:
            self.config._attn_implementation = _DECODE_ATTENTION
        return self

    def __exit__(self, *exc):
        if self.switched:
            self.config._attn_implementation = "sdpa"
        return False


class _PlainStep:
    """One decoding step of a plain Qwen2 model (QwQ-32B's architecture, and qwq-nano's) in torch
    operations, without transformers' per-module machinery (wrappers, output capture, mask and
    cache dispatch), which costs more than the arithmetic at qwq-nano's size.

    It runs the very operations ``Qwen2ForCausalLM.forward`` runs for one new token per row
    with ``decode_attention`` (the same kernels on the same shapes, reading and writing the
    same ``_buffered_cache``), so its logits are bit for bit those of the model's forward
    (tested against transformers' ``generate``). ``build`` returns ``None`` for anything else,
    and ``decode`` then calls the model itself: quantized or LoRA layers, hooks (accelerate's
    device maps), sliding-window attention, another architecture or attention implementation.
    """

    def __init__(self, model, cache):
        m = model.model
        self.cache, self.embed, self.rotary, self.norm, self.head = cache, m.embed_tokens, m.rotary_emb, m.norm, \
            model.lm_head
        self.dtype = m.embed_tokens.weight.dtype  # decode_mask's dtype: the embeddings'
        attn = m.layers[0].self_attn
        self.head_dim, self.scaling = attn.head_dim, attn.scaling
        self.heads, self.kv_heads = model.config.num_attention_heads, model.config.num_key_value_heads
        self.layers = [(layer.input_layernorm, layer.self_attn, layer.post_attention_layernorm, layer.mlp)
                       for layer in m.layers]

    @classmethod
    def build(cls, model, cache):
        import torch

        try:
            from transformers.models.qwen2 import modeling_qwen2 as q2
        except ImportError:
            return None
        config = getattr(model, "config", None)
        if (type(model) is not q2.Qwen2ForCausalLM or model.training or config is None
                or getattr(config, "_attn_implementation", None) != _DECODE_ATTENTION
                or any(t != "full_attention" for t in getattr(config, "layer_types", None) or ["full_attention"])
                or len(model.model.layers) != config.num_hidden_layers):
            return None
        from torch.nn.modules import module as nn_module

        if any(getattr(nn_module, name, None) for name in
               ("_global_forward_hooks", "_global_forward_pre_hooks", "_global_forward_hooks_always_called")):
            return None
        kinds = {q2.Qwen2Model, q2.Qwen2DecoderLayer, q2.Qwen2Attention, q2.Qwen2MLP, q2.Qwen2RMSNorm,
                 q2.Qwen2RotaryEmbedding, torch.nn.Linear, torch.nn.Embedding, torch.nn.ModuleList}
        for mod in model.modules():
            known = mod is model or type(mod) in kinds or type(mod).__module__ == "transformers.activations"
            if not known or mod._forward_hooks or mod._forward_pre_hooks:
                return None
        return cls(model, cache)

    def __call__(self, token, position, mask):
        """Logits ``(rows, vocab)`` for one new token per row; ``mask`` is additive, ``(rows, 1, 1, keys)``."""
        import torch
        import torch.nn.functional as F

        x = self.embed(token[:, None])
        cos, sin = self.rotary(x, position[:, None])
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        rows, d = x.shape[0], self.head_dim
        half, groups = d // 2, self.heads // self.kv_heads

        def rms(h, norm):
            dtype = h.dtype
            h = h.to(torch.float32)
            h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon)
            return norm.weight * h.to(dtype)

        def rope(h):
            return (h * cos) + (torch.cat((-h[..., half:], h[..., :half]), dim=-1) * sin)

        for i, (norm1, attn, norm2, mlp) in enumerate(self.layers):
            h = rms(x, norm1)
            q = rope(F.linear(h, attn.q_proj.weight, attn.q_proj.bias).view(rows, 1, -1, d).transpose(1, 2))
            k = rope(F.linear(h, attn.k_proj.weight, attn.k_proj.bias).view(rows, 1, -1, d).transpose(1, 2))
            v = F.linear(h, attn.v_proj.weight, attn.v_proj.bias).view(rows, 1, -1, d).transpose(1, 2)
            keys, values = self.cache.update(k, v, i)
            scores = torch.matmul(q.reshape(rows, self.kv_heads, groups, d), keys.transpose(-1, -2))
            scores = scores * self.scaling + mask
            out = torch.matmul(torch.softmax(scores, dim=-1), values).reshape(rows, self.heads, 1, d).transpose(1, 2)
            x = x + F.linear(out.reshape(rows, 1, -1).contiguous(), attn.o_proj.weight, attn.o_proj.bias)
            h = rms(x, norm2)
            x = x + F.linear(mlp.act_fn(F.linear(h, mlp.gate_proj.weight)) * F.linear(h, mlp.up_proj.weight),
                             mlp.down_proj.weight)
        return F.linear(rms(x, self.norm), self.head.weight, self.head.bias)[:, -1]


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
    position_of = {p: i for i, p in enumerate(distinct)}
    enc = encode_left(tokenizer, distinct, model_device(model))
    device = enc["input_ids"].device
    expand = torch.tensor([position_of[p] for p in prompts], device=device)
    key_tensor = torch.tensor(keys, dtype=torch.int64, device=device)
    stops = stop_token_ids(tokenizer)
    stop_t = torch.tensor(stops, device=device)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    n, cache_kw = len(prompts), cache_kwarg(model)
    new = torch.full((n, max_new_tokens), pad, dtype=torch.long, device=device)
    entropy = torch.zeros(n, device=device)
    has_entropy, steps = False, 0
    with torch.inference_mode(), _DecodeAttention(model):
        cache = _buffered_cache()
        mask = enc["attention_mask"]
        prefill = dict(input_ids=enc["input_ids"], attention_mask=mask, use_cache=True,
                       position_ids=(mask.cumsum(-1) - 1).clamp(min=0), **{cache_kw: cache})
        try:  # only the last position's logits are needed (saves a vocab-sized matmul per prompt token)
            out = model(**prefill, logits_to_keep=1)
        except TypeError:  # an older model class without logits_to_keep
            out = model(**prefill)
        logits = out.logits[:, -1].float()
        # The batch holds states, not rows: a state is a distinct token sequence so far, kept
        # once in the KV cache and run once per step however many rows share it. The states
        # start as the distinct prompts; rows of one state that draw the same token stay one
        # state, and each other token drawn forks it (a copy of its cache rows).
        if can_fork(cache):
            state = expand.clone()  # output row -> its state (a row of the cache)
        else:  # a cache that cannot fork: one state per row from the start
            if len(distinct) < n:
                cache.batch_select_indices(expand)
            logits, mask, state = logits[expand], mask[expand], torch.arange(n, device=device)
        position = mask.sum(-1)
        step = _PlainStep.build(model, cache)
        if step is not None:  # its attention mask is additive (0 or -inf), as decode_mask makes it
            mask = torch.zeros(mask.shape, dtype=step.dtype, device=device).masked_fill_(mask == 0, float("-inf"))
        live = torch.arange(n, device=device)  # the output rows still decoding
        vocab = logits.shape[-1]
        for t in range(max_new_tokens):
            token, ent = chooser(logits[state[live]], key_tensor[live], t)
            new[live, t] = token
            if ent is not None:
                entropy[live] += ent.float()
                has_entropy = True
            steps = t + 1
            going = ~torch.isin(token, stop_t)
            if t == max_new_tokens - 1 or not going.any():
                break
            live, token = live[going], token[going]
            pairs, which = torch.unique(state[live] * vocab + token, return_inverse=True)  # sorted by state
            parent = torch.div(pairs, vocab, rounding_mode="floor")
            fork = torch.zeros_like(parent, dtype=torch.bool)
            fork[1:] = parent[1:] == parent[:-1]  # a state's first token keeps it, each further one forks it
            states, forks = mask.shape[0], fork.nonzero().squeeze(-1)
            target = parent.clone()
            if len(forks):
                fork_rows(cache, parent[forks])
                target[forks] = states + torch.arange(len(forks), device=device)
                mask, position = torch.cat([mask, mask[parent[forks]]]), torch.cat([position, position[parent[forks]]])
                states += len(forks)
            state[live] = target[which]
            inputs = torch.full((states,), pad, dtype=torch.long, device=device)
            inputs[target] = pairs - parent * vocab
            # States no row continues leave the batch (and the cache) once they are an eighth of
            # it: copying the cache costs more than carrying a few dead states for a while.
            used = torch.zeros(states, dtype=torch.bool, device=device)
            used[target] = True
            if (~used).sum() * 8 >= states:
                keep = used.nonzero().squeeze(-1)
                cache.batch_select_indices(keep)
                renumber = torch.full((states,), -1, dtype=torch.long, device=device)
                renumber[keep] = torch.arange(len(keep), device=device)
                state[live] = renumber[state[live]]
                mask, position, inputs = mask[keep], position[keep], inputs[keep]
            mask = torch.cat([mask, (mask.new_zeros if step is not None else mask.new_ones)(mask.shape[0], 1)], dim=1)
            if step is not None:
                logits = step(inputs, position, mask[:, None, None, :]).float()
            else:
                out = model(input_ids=inputs[:, None], attention_mask=mask, position_ids=position[:, None],
                            use_cache=True, **{cache_kw: cache})
                logits = out.logits[:, -1].float()
            position = position + 1
    new = new[:, :steps]
    stop_set, entropies = set(stops), entropy.tolist()
    completions = [cut_at_stop(ids, stop_set) for ids in new.tolist()]
    if has_entropy:
        for c, total in zip(completions, entropies):
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
    if not prompts:
        return ([], None) if return_tensors else []
    G = num_generations
    rows = [p for p in prompts for _ in range(G)]
    keys = [row_key(seed, s, p) for p in prompts for s in range(G)]
    result = decode(model, tokenizer, rows, keys, max_new_tokens, KeyedChooser(temperature, top_k, top_p),
                    return_sequences=return_tensors)
    completions, tensors = result if return_tensors else (result, None)
    gens = [Generation(i // G, i % G, tokenizer.decode(c.token_ids, skip_special_tokens=False), c.num_tokens,
                       c.finish_reason, c.token_ids, c.entropy) for i, c in enumerate(completions)]
    return (gens, tensors) if return_tensors else gens
