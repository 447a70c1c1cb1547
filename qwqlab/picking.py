"""Choosing a model for this machine: what the hardware holds (``detect_hardware``), the largest
known reasoning model that fits it (``pick_model``), and loading it with a fallback to qwq-nano
(``load_model_or_fallback``). Loading itself, devices and memory estimates are ``qwqlab.models``.

>>> model, tok, used = load_model_or_fallback(pick_model())   # doctest: +SKIP
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from qwqlab import models
from qwqlab.models import (NANO, MemoryEstimate, ModelLoadError, count_parameters, estimate_memory, get_device,
                           known_configs)

# ----------------------------------------------------------------------------- choosing a model

# On Apple MPS the GPU shares RAM with everything else: plan on at most this share of it.
MPS_MEMORY_SHARE = 0.5
# Reasoning models are preferred in this order when two have the same size (QwQ-32B
# matches DeepSeek-R1-Distill-Qwen-32B's size and beats it on the published benchmarks).
PREFERRED_MODELS = ("Qwen/QwQ-32B",)


@dataclass(frozen=True)
class Hardware:
    """What a model has to fit in: one kind of device, its memory, and how many of them.

    Args:
        device: ``"cuda"``, ``"mps"`` or ``"cpu"``.
        memory_gib: memory of *one* device (a GPU's total memory), or the machine's RAM for
            ``"cpu"`` and ``"mps"`` (Apple's GPU shares it).
        num_devices: GPUs of that size (``device_map="auto"`` spreads a model over them).
        name: what the device calls itself (``"NVIDIA A10G"``), for messages only.

    >>> Hardware("cuda", memory_gib=24)        # a teaching GPU, faked for a test
    Hardware(device='cuda', memory_gib=24, num_devices=1, name='')
    """
    device: str
    memory_gib: float
    num_devices: int = 1
    name: str = ""

    def __post_init__(self):
        if self.device not in ("cuda", "mps", "cpu"):
            raise ValueError(f"device must be 'cuda', 'mps' or 'cpu', not {self.device!r}")
        if self.memory_gib <= 0 or self.num_devices < 1:
            raise ValueError(f"memory_gib must be > 0 and num_devices >= 1 (got {self.memory_gib}, "
                             f"{self.num_devices})")

    def describe(self) -> str:
        what = self.name or self.device
        if self.device == "cuda":
            many = f"{self.num_devices} x " if self.num_devices > 1 else ""
            return f"{many}{what} with {self.memory_gib:.0f} GiB"
        return f"{what} with {self.memory_gib:.0f} GiB of RAM"


def _ram_gib() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (AttributeError, ValueError, OSError):  # not POSIX (Windows)
        import psutil
        return psutil.virtual_memory().total / 2**30


def detect_hardware(device: str | None = None) -> Hardware:
    """Describe this machine for ``pick_model``: the device ``get_device`` would use and its memory.

    On CUDA, ``memory_gib`` is the smallest visible GPU's total memory (a model spread over
    GPUs is limited by the smallest); elsewhere it is the machine's RAM.
    """
    import torch

    device = get_device(device, verbose=False).split(":")[0]
    if device == "cuda":
        props = [torch.cuda.get_device_properties(i) for i in range(torch.cuda.device_count())]
        return Hardware("cuda", min(p.total_memory for p in props) / 2**30, len(props), props[0].name)
    return Hardware(device, _ram_gib(), 1, "Apple MPS" if device == "mps" else "CPU")


@dataclass(frozen=True)
class ModelChoice:
    """The model ``pick_model`` chose, the precision to load it at, and why.

    Unpacks as ``(name, bits)``, so a parameters cell can say ``MODEL, BITS = pick_model()``.
    """
    name: str
    bits: int | None
    reason: str
    estimate: MemoryEstimate | None = None
    hardware: Hardware | None = None

    def __iter__(self):
        return iter((self.name, self.bits))

    def __str__(self) -> str:
        precision = "full precision" if self.bits is None else f"{self.bits}-bit"
        return f"{self.name} at {precision}: {self.reason}"


def _candidates(names=None) -> list[str]:
    """Hub models to consider, largest first; at equal size the preferred ones first."""
    names = [n for n in (names or known_configs()) if n != NANO]
    preference = {n: i for i, n in enumerate(PREFERRED_MODELS)}
    return sorted(names, key=lambda n: (-count_parameters(n), preference.get(n, len(preference)), n))


def pick_model(hardware: Hardware | None = None, context_tokens: int = 8192, batch_size: int = 1,
               candidates=None) -> ModelChoice:
    """Choose the largest reasoning model, and precision, that this machine can serve sensibly.

    Rules, in order:

    * **CPU**: qwq-nano at full precision. A 1.5B distill fits in a laptop's RAM but writes a
      few tokens a second, and a reasoning trace runs to thousands of tokens; on a CPU,
      bitsandbytes saves memory, not time.
    * **CUDA**: the largest known model (QwQ-32B before DeepSeek-R1-Distill-Qwen-32B, then the
      14B, 7B, 1.5B distills) whose ``estimate_memory`` for ``batch_size`` sequences of
      ``context_tokens`` (10% overhead included) fits the GPUs' memory; at 16-bit if that
      fits, else 4-bit NF4. 8-bit is never chosen: LLM.int8 is slower than both and the
      quality gain over NF4 is small. QwQ-32B in 4-bit at 8k tokens needs 21.9 GiB: a 24 GB card.
    * **MPS**: bitsandbytes has no Apple kernels, so 16-bit only, within ``MPS_MEMORY_SHARE``
      of the shared RAM.
    * Nothing fits: qwq-nano, on the same device.

    Args:
        hardware: a ``Hardware`` description; ``detect_hardware()`` when omitted (tests fake it).
        context_tokens: prompt plus thinking tokens per sequence to budget for (QwQ's traces
            often run past 8k; more context means a smaller model fits).
        batch_size: sequences generated at once (a rollout group of k samples needs k).
        candidates: hub ids to choose from (default: every model in ``known_configs()``).

    >>> pick_model(Hardware("cuda", memory_gib=24)).name                 # doctest: +SKIP
    'Qwen/QwQ-32B'
    """
    hw = hardware or detect_hardware()
    if hw.device == "cpu":
        return ModelChoice(NANO, None, f"no GPU here ({hw.describe()}): qwq-nano answers in a second on "
                           "a CPU, while even a 1.5B distill would write a few tokens a second and a "
                           "reasoning trace runs to thousands", None, hw)
    if hw.device == "cuda":
        # estimate_memory already adds 10% for activations and the CUDA context: no second margin.
        budget = hw.num_devices * hw.memory_gib
        precisions = (16, 4)
        where = hw.describe()
    else:
        budget = hw.memory_gib * MPS_MEMORY_SHARE
        precisions = (16,)
        where = (f"{hw.describe()} (planning on {MPS_MEMORY_SHARE:.0%} of it, {budget:.1f} GiB; "
                 "bitsandbytes has no MPS kernels, so 16-bit only)")
    tried = []
    for name in _candidates(candidates):
        for bits in precisions:
            est = estimate_memory(name, bits=bits, context_tokens=context_tokens, batch_size=batch_size)
            if est.total_gib <= budget:
                skipped = f"; larger options did not fit: {', '.join(tried)}" if tried else ""
                return ModelChoice(name, bits, f"{bits}-bit needs {est.total_gib:.1f} GiB for {batch_size} x "
                                   f"{context_tokens} tokens and fits {where}{skipped}", est, hw)
            tried.append(f"{name.split('/')[-1]} {bits}-bit {est.total_gib:.1f} GiB")
    return ModelChoice(NANO, None, f"no known reasoning model fits {where} at {context_tokens} tokens "
                       f"(smallest tried: {tried[-1] if tried else 'none'}); using the bundled qwq-nano",
                       None, hw)


def load_model_or_fallback(choice: ModelChoice | str | None = None, bits: int | None = None,
                           online: bool | None = None, verbose: bool = True, **kwargs):
    """Load ``choice`` (default ``pick_model()``); if it cannot be had, say why and load qwq-nano.

    A hub model already in the local Hugging Face cache loads from there when the Hub cannot
    be reached, so a model downloaded once works offline. When it is not cached and the
    machine is offline, or loading fails (bitsandbytes missing, the GPU out of memory), this
    prints what happened in plain words and falls back to the bundled qwq-nano at full
    precision, so a notebook goes on instead of failing in front of the class.

    Args:
        choice: a ``ModelChoice``, a model name (with ``bits``), or ``None``/``"auto"`` for ``pick_model()``.
        online: whether the Hub can be reached; checked (3 s at most) when ``None``.
        kwargs: passed to ``load_model``.

    Returns:
        ``(model, tokenizer, choice)``, where ``choice`` is the model actually loaded.

    >>> model, tok, used = load_model_or_fallback(pick_model())   # doctest: +SKIP
    """
    import torch

    if choice is None or choice == "auto":
        choice = pick_model()
    elif isinstance(choice, str):
        choice = ModelChoice(choice, bits, "asked for by name")
    is_local = choice.name == NANO or Path(choice.name).expanduser().exists() or \
        choice.name.startswith((".", "/", "~"))
    if is_local:  # nothing to download: any error is the caller's to see
        model, tok = models.load_model(choice.name, bits=choice.bits, verbose=verbose, **kwargs)
        return model, tok, choice
    if online is None:
        online = models._hub_reachable()
    source = choice.name if online else models._cached_snapshot(choice.name)
    oom = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
    if source is None:
        why = "this machine cannot reach the Hugging Face Hub and the model is not in the local cache"
    else:
        try:
            model, tok = models.load_model(source, bits=choice.bits, verbose=verbose, **kwargs)
            return model, tok, choice
        except oom:
            why = "the GPU ran out of memory while loading it"
        except ModelLoadError as e:
            why = str(e).splitlines()[0]
    print(f"qwqlab: could not load {choice.name} ({why}). Falling back to the bundled qwq-nano, so "
          "everything below still runs, on a tiny model.")
    model, tok = models.load_model(NANO, bits=None, verbose=verbose, **kwargs)
    fallback = ModelChoice(NANO, None, f"fallback: {choice.name} could not be loaded ({why})", None,
                           choice.hardware)
    return model, tok, fallback
