"""The decoder's speed-ups, behind one door: ``SharedBatch``, which ``decoding.decode`` uses in
place of its plain ``RowBatch`` when ``decoding.FAST`` is on (the one switch).

The loop a student reads is ``qwqlab.decoding.decode``; nothing here changes which tokens it
draws, only how fast. Three speed-ups, each measured in ``benchmarks/bench_sampling.py``:

1. **Prefix sharing.** Samples that have drawn the same tokens so far are one state of the
   batch, one row of the KV cache, run once per step; a state forks (copies its cache rows)
   when its samples' draws differ. The samples of a confident policy share long prefixes.
2. **A cache that writes in place** (``_buffered_cache``): each new token's keys and values go
   into buffers with spare room instead of a concatenation (a copy of the cache per token).
3. **A fused one-token step for plain Qwen2 models** (``_PlainStep``: QwQ-32B's architecture,
   and qwq-nano's), which skips transformers' per-module machinery, and a one-query attention
   registered with transformers (``decode_attention``; SDPA's CPU kernels are slow at one query).

The fused step and the attention reach into transformers' internals, so they **check themselves**:
the first step for a model (per dtype and device) runs both the fast step and the model's own
forward (its own attention) on the same cache, and compares the logits within a tolerance from
the dtype. On a mismatch (a transformers release that changed Qwen2's arithmetic under the same
class names, say) the batch falls back to the model's own forward, warns once, and remembers.
"""
from __future__ import annotations

import warnings
import weakref

#: Logit tolerance of the self-check, relative to the largest logit: float32 round-off across
#: two kernel orders is ~1e-6 relative; 16-bit types carry 8-11 bits of mantissa.
CHECK_TOLERANCE = {"float32": 1e-4, "float64": 1e-8, "bfloat16": 5e-2, "float16": 2e-2}
#: model -> {(dtype, device): whether its fast step matched its own forward}
_checked: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


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

        def take_back(self) -> None:  # forget the last position written
            self._used -= 1
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


def take_back(cache) -> None:
    """Forget the last position written to every layer of ``cache`` (for the self-check)."""
    for layer in cache.layers:
        if hasattr(layer, "take_back"):
            layer.take_back()
        else:
            layer.keys, layer.values = layer.keys[..., :-1, :], layer.values[..., :-1, :]


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


# ----------------------------------------------------------------------------- the batch

class SharedBatch:
    """``decoding.RowBatch`` with the speed-ups: same interface (``prefill``, ``step``), same tokens.

    The batch holds states, not rows: a state is a distinct token sequence so far, kept once
    in the KV cache. They start as the distinct prompts; rows of one state that draw the same
    token stay one state, and each other token drawn forks it (a copy of its cache rows).
    """

    def __init__(self, model, cache_kw: str):
        self.model, self.cache_kw, self.device = model, cache_kw, next(model.parameters()).device
        self.attention = _DecodeAttention(model)

    def __enter__(self):
        self.attention.__enter__()
        return self

    def __exit__(self, *exc):
        return self.attention.__exit__(*exc)

    def prefill(self, input_ids, attention_mask, expand):
        """Run the distinct prompts; returns ``(logits per state, state of each row)``."""
        import torch

        self.cache = _buffered_cache()
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=True, logits_to_keep=1,
                         position_ids=(attention_mask.cumsum(-1) - 1).clamp(min=0), **{self.cache_kw: self.cache})
        logits, mask = out.logits[:, -1].float(), attention_mask
        self.vocab = logits.shape[-1]
        if can_fork(self.cache):
            state = expand.clone()
        else:  # a cache that cannot fork: one state per row from the start
            self.cache.batch_select_indices(expand)
            logits, mask, state = logits[expand], mask[expand], torch.arange(len(expand), device=self.device)
        self.position = mask.sum(-1)
        self.fused = _PlainStep.build(self.model, self.cache)
        self.unchecked = self.fused is not None or self.attention.switched
        # The fused step's attention mask is additive (0 or -inf), as decode_mask makes it.
        self.mask = _additive(mask, self.fused.dtype) if self.fused is not None else mask
        return logits, state

    def step(self, state, token):
        """Feed ``token`` to each row (of state ``state``); returns ``(new state per row, logits per state)``."""
        import torch

        vocab, device = self.vocab, self.device
        pairs, which = torch.unique(state * vocab + token, return_inverse=True)  # sorted by state
        parent = torch.div(pairs, vocab, rounding_mode="floor")
        fork = torch.zeros_like(parent, dtype=torch.bool)
        fork[1:] = parent[1:] == parent[:-1]  # a state's first token keeps it, each further one forks it
        states, forks = self.mask.shape[0], fork.nonzero().squeeze(-1)
        target = parent.clone()
        mask, position = self.mask, self.position
        if len(forks):
            fork_rows(self.cache, parent[forks])
            target[forks] = states + torch.arange(len(forks), device=device)
            mask, position = torch.cat([mask, mask[parent[forks]]]), torch.cat([position, position[parent[forks]]])
            states += len(forks)
        state = target[which]
        inputs = torch.zeros(states, dtype=torch.long, device=device)
        inputs[target] = pairs - parent * vocab
        # States no row continues leave the batch (and the cache) once they are an eighth of
        # it: copying the cache costs more than carrying a few dead states for a while.
        used = torch.zeros(states, dtype=torch.bool, device=device)
        used[target] = True
        if (~used).sum() * 8 >= states:
            keep = used.nonzero().squeeze(-1)
            self.cache.batch_select_indices(keep)
            renumber = torch.full((states,), -1, dtype=torch.long, device=device)
            renumber[keep] = torch.arange(len(keep), device=device)
            state, mask, position, inputs = renumber[state], mask[keep], position[keep], inputs[keep]
        new = (mask.new_zeros if self.fused is not None else mask.new_ones)(mask.shape[0], 1)
        self.mask, self.position = torch.cat([mask, new], dim=1), position
        logits = self._checked_step(inputs) if self.unchecked else self._fast_step(inputs)
        self.position = self.position + 1
        return state, logits

    def _fast_step(self, inputs):
        if self.fused is not None:
            return self.fused(inputs, self.position, self.mask[:, None, None, :]).float()
        return self._forward(inputs, self.mask)

    def _forward(self, inputs, mask):
        out = self.model(input_ids=inputs[:, None], attention_mask=mask, position_ids=self.position[:, None],
                         use_cache=True, **{self.cache_kw: self.cache})
        return out.logits[:, -1].float()

    def _checked_step(self, inputs):
        """The self-check: once per model, dtype and device, the fast step against the model's own
        forward (its own attention implementation) on the same cache."""

        self.unchecked = False
        dtype = next(self.model.parameters()).dtype
        key = (str(dtype), str(self.device))
        verdict = _checked.setdefault(self.model, {})
        if verdict.get(key) is True:
            return self._fast_step(inputs)
        if verdict.get(key) is None:
            fast = self._fast_step(inputs)
            take_back(self.cache)  # forget what the fast step wrote
            plain = self._plain(inputs)
            tol = CHECK_TOLERANCE.get(str(dtype).replace("torch.", ""), 5e-2)
            error = float((fast - plain).abs().max()) / (1.0 + float(plain.abs().max()))
            verdict[key] = bool(error <= tol)  # NaN fails too
            if verdict[key]:
                return plain
            warnings.warn(
                f"qwqlab's fast decoding step disagrees with {type(self.model).__name__}'s own forward "
                f"(largest logit difference {error:.2e} of the largest logit, tolerance {tol:.0e}; {key[0]} on "
                f"{key[1]}): decoding this model through its own forward from now on. The installed "
                "transformers may have changed the model's arithmetic; qwqlab.fast_decoding needs a look.",
                RuntimeWarning, stacklevel=4)
            self._fall_back()
            return plain
        self._fall_back()  # this model failed its check before
        return self._plain(inputs)

    def _plain(self, inputs):
        """One step of the model's own forward (its own attention, a 0/1 mask) on this cache."""
        mask = (self.mask == 0).long() if self.fused is not None else self.mask
        switched = self.attention.switched
        if switched:
            self.attention.__exit__(None, None, None)
        try:
            return self._forward(inputs, mask)
        finally:
            if switched:
                self.attention.__enter__()

    def _fall_back(self):
        """From now on: the model's own forward and attention (prefix sharing stays: it is bookkeeping)."""
        if self.fused is not None:
            self.mask, self.fused = (self.mask == 0).long(), None
        self.attention.__exit__(None, None, None)
        self.attention.switched = False


def _additive(mask, dtype):
    import torch

    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(mask == 0, float("-inf"))
