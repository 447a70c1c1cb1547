"""Keyed randomness: every random choice of a completion comes from its own key.

How the chooser draws its random numbers matters for three promises the lab makes:

* **Deterministic for a seed** (on one machine bit for bit; on another CPU the same tokens
  except at near-ties), and never through torch's global RNG.
* **Resumable**: killed at any point and restarted, ``sample`` reproduces the rows it had
  not written.
* **Independent of batching and of the caller**: another ``batch_size``, or ``generate``
  instead of ``sample``, gives the same completion for the same seed, prompt and sample index.

So each completion gets its own key, a hash of ``(seed, sample_index, prompt)`` (``row_key``),
and each token is chosen by the Gumbel-max trick (Gumbel 1954; Kool et al. 2019, "Stochastic
Beams and Where to Find Them"): the token maximising ``logit/T + g``, ``g`` Gumbel noise, is an
exact draw from ``softmax(logit/T)``. The noise is a counter-based hash of ``(key, step, token
id)`` (``keyed_uniform``), not an RNG stream. Temperature, top-k and top-p are applied first,
in that order, as in transformers and vLLM. Runs at different temperatures share their noise
("common random numbers"), which makes the notebooks' curves over settings smooth.
"""
from __future__ import annotations

import hashlib

_MASK32 = 0xFFFFFFFF


def row_key(seed: int | None, sample_index: int, prompt: str) -> int:
    """The 32-bit key that decides every random choice of one completion.

    The prompt stands for the problem (it holds the question), so ``generate`` and
    ``rollouts.sample`` give the same completion for the same seed, prompt and sample.
    """
    text = f"{seed}\x1f{sample_index}\x1f{prompt}".encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=4).digest(), "little")


def step_seed(seed: int, step: int) -> int:
    """The seed of one step's draws in a run seeded ``seed``: a GRPO training step, or a chunk of an
    evaluation. The one formula (``grpo.roll_out_and_score``, ``grpo.evaluate_policy``,
    ``nano.measure``, notebook 04), so runs that share a seed share their steps' samples."""
    return seed * 1_000_003 + step


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
