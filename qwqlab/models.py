"""Load a reasoning model (full precision, 8-bit or 4-bit), pick a device, estimate memory.

The same call loads the bundled qwq-nano on a laptop CPU and QwQ-32B in 4-bit on a GPU:

>>> model, tok = load_model("qwq-nano", bits=4)          # doctest: +SKIP
>>> model, tok = load_model("Qwen/QwQ-32B", bits=4)      # doctest: +SKIP
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from qwqlab.paths import data_dir, nano_dir

NANO = "qwq-nano"
SUPPORTED_BITS = (None, 4, 8, 16, 32)
log = logging.getLogger("qwqlab")


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says how to fix it."""


def get_device(override: str | None = None, verbose: bool = True) -> str:
    """The device to run on: CUDA, then Apple MPS, then CPU.

    ``override`` (or the ``QWQLAB_DEVICE`` environment variable) forces a choice, e.g.
    ``"cpu"`` on a GPU machine to reproduce the laptop numbers.
    """
    import torch

    choice = override or os.environ.get("QWQLAB_DEVICE") or "auto"
    if choice != "auto":
        reason = "asked for" if override else "from QWQLAB_DEVICE"
        where = f"device={choice!r}" if override else f"QWQLAB_DEVICE={choice!r}"
        if not (choice in ("cpu", "mps") or choice == "cuda" or (choice.startswith("cuda:") and choice[5:].isdigit())):
            raise ModelLoadError(f"{where} is not a device qwqlab knows: use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'.")
        if choice.startswith("cuda") and not torch.cuda.is_available():
            raise ModelLoadError(f"{where} was asked for but CUDA is not available here; "
                                 "use device='auto' or 'cpu'.")
        if choice == "mps" and not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
            raise ModelLoadError(f"{where} was asked for but Apple MPS is not available here; use 'auto' or 'cpu'.")
        device = choice
    elif torch.cuda.is_available():
        device, reason = "cuda", f"found {torch.cuda.get_device_name(0)}"
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        device, reason = "mps", "found Apple MPS"
    else:
        device, reason = "cpu", "no CUDA or MPS device found"
    if verbose:
        from qwqlab.quiet import say
        say(f"qwqlab: using {device} ({reason})")
    return device


def resolve_model_path(name_or_path: str) -> str:
    """``"qwq-nano"`` becomes the bundled checkpoint; a local path or hub id passes through."""
    if name_or_path == NANO:
        path = nano_dir()
        if not (path / "config.json").exists():
            raise ModelLoadError(f"The bundled qwq-nano checkpoint is missing from {path}. "
                                 "Rebuild it with `qwqlab train-nano` or restore data/ from git.")
        return str(path)
    return str(name_or_path)


def _check_local_dir(path: Path, trust_remote_code: bool, allow_pickle: bool) -> None:
    if not path.is_dir():
        what = "is a file, not a directory" if path.exists() else "no such folder (not a directory here)"
        raise ModelLoadError(f"Model path {path}: {what}. Pass a folder holding config.json and "
                             "*.safetensors, a hub id such as 'Qwen/QwQ-32B', or 'qwq-nano'.")
    if not (path / "config.json").exists():
        raise ModelLoadError(f"{path} has no config.json: it is not a saved transformers model.")
    try:
        cfg = json.loads((path / "config.json").read_text())
        if not isinstance(cfg, dict):
            raise ValueError("not a JSON object")
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelLoadError(f"{path / 'config.json'} is not valid JSON ({e}): the file is damaged or "
                             "half-written. Re-save the model or restore the file.") from e
    if cfg.get("auto_map") and not trust_remote_code:
        raise ModelLoadError(
            f"{path} needs remote code ({sorted(cfg['auto_map'])} in config.json): running it would "
            "execute Python shipped with the weights. Read that code first, then opt in with "
            "load_model(..., trust_remote_code=True).")
    if not cfg.get("auto_map"):  # built here, so a bad field is blamed on config.json, not on the weights
        from transformers import AutoConfig
        try:
            AutoConfig.from_pretrained(path)
        except Exception as e:  # noqa: BLE001 - transformers raises ValueError, KeyError, validation errors
            raise ModelLoadError(f"{path / 'config.json'} is not a config transformers can build "
                                 f"({type(e).__name__}: {e}). Fix or restore config.json, or re-save the "
                                 "model.") from e
    has_safetensors = any(path.glob("*.safetensors")) or (path / "model.safetensors.index.json").exists()
    has_pickle = any(path.glob("*.bin")) or any(path.glob("*.pt")) or any(path.glob("*.pth"))
    if not has_safetensors:
        if has_pickle and not allow_pickle:
            raise ModelLoadError(
                f"{path} holds only pickle weights (*.bin/*.pt), which can run arbitrary code when "
                "loaded. Convert them to safetensors, or opt in with load_model(..., allow_pickle=True) "
                "if you trust the source.")
        if not has_pickle:
            raise ModelLoadError(f"{path} has no weight files (*.safetensors).")


def _load_tokenizer(path: str, trust_remote_code: bool):
    """The tokenizer, exactly as saved when it names the generic fast class.

    On a ``qwen2`` config ``AutoTokenizer`` builds ``Qwen2Tokenizer`` and swaps a custom
    pre-tokenizer for Qwen's rules (lab notes); qwq-nano's ``tokenizer_config.json`` names
    ``PreTrainedTokenizerFast``, which keeps its own.
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    cfg_file = Path(path) / "tokenizer_config.json"
    if cfg_file.exists() and json.loads(cfg_file.read_text()).get("tokenizer_class") == "PreTrainedTokenizerFast":
        return PreTrainedTokenizerFast.from_pretrained(path)
    return AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)


def quantization_config(bits: int | None, compute_dtype=None):
    """transformers' ``BitsAndBytesConfig`` for ``bits`` (4: NF4 + double quantization, 8: LLM.int8)."""
    if bits not in SUPPORTED_BITS:
        raise ValueError(f"bits must be one of 4, 8, 16, 32 or None (full precision), not {bits!r}.")
    if bits in (None, 16, 32):
        return None
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as e:
        raise ModelLoadError(f"bits={bits} needs bitsandbytes: `pip install bitsandbytes` "
                             "(it quantizes on CPU too), or load with bits=None.") from e
    import torch
    from transformers import BitsAndBytesConfig

    if bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute_dtype or torch.float32)


def load_model(name_or_path: str = NANO, bits: int | None = None, device: str = "auto", dtype=None,
               trust_remote_code: bool = False, allow_pickle: bool = False, verbose: bool = True,
               **kwargs):
    """Load a causal LM and its tokenizer, optionally quantized with bitsandbytes.

    Args:
        name_or_path: ``"qwq-nano"`` (bundled), a local folder, or a hub id (``"Qwen/QwQ-32B"``).
        bits: ``None`` full precision, ``8`` LLM.int8, ``4`` NF4 with double quantization.
        device: ``"auto"`` (see ``get_device``), ``"cpu"``, ``"cuda"``, ``"mps"``.
        dtype: weights' dtype; default bfloat16 on CUDA, float32 elsewhere (16 with bits=16).
        trust_remote_code, allow_pickle: off by default; opt in by name only for sources you trust.
        kwargs: passed to ``AutoModelForCausalLM.from_pretrained``.

    Returns:
        ``(model, tokenizer)``, the model in eval mode, the tokenizer padding on the left.
    """
    if bits not in SUPPORTED_BITS:
        raise ValueError(f"bits must be one of 4, 8, 16, 32 or None (full precision), not {bits!r}.")
    import torch
    from transformers import AutoModelForCausalLM

    device = get_device(None if device == "auto" else device, verbose=verbose)
    if dtype is None:
        dtype = torch.bfloat16 if (device.startswith("cuda") or bits == 16) else torch.float32
        if bits == 16 and device == "cpu":
            dtype = torch.bfloat16
    path = resolve_model_path(name_or_path)
    local = Path(path).expanduser()
    is_local = local.exists() or path.startswith((".", "/", "~")) or path.count("/") > 1 or "\\" in path
    # A name that is no folder here is taken for a hub id; asked of an unreachable hub,
    # transformers retries for about 50 s, so look before: HF_HUB_OFFLINE, then one quick connect.
    online = None if is_local else _hub_reachable()
    if is_local:
        _check_local_dir(local, trust_remote_code, allow_pickle)
    elif not online and not _cached_snapshot(path):
        raise ModelLoadError(
            f"{path!r}: no such folder here ({Path.cwd() / path} does not exist), and this machine is offline "
            "(or HF_HUB_OFFLINE is set) with no cached copy of a hub model of that id. Pass an existing folder "
            "holding config.json and *.safetensors; download a hub model where there is internet "
            f"(`hf download {path} --local-dir DIR`) and pass DIR; or use 'qwq-nano', which is bundled.")
    elif not online:
        kwargs.setdefault("local_files_only", True)  # cached and offline: do not wait on the network
    quant = quantization_config(bits, compute_dtype=dtype)
    if bits == 8:
        # LLM.int8 on CPU logs a cast warning on every layer call (thousands of lines).
        logging.getLogger("bitsandbytes.autograd._functions").setLevel(logging.ERROR)
    # "cuda": spread over every visible GPU; "cuda:N" (one rank of a multi-process run): all on GPU N.
    device_map = "auto" if device == "cuda" else {"": device}
    try:
        from qwqlab.quiet import no_loading_bars
        with no_loading_bars(quiet=not verbose):  # verbose=False: no "Loading weights" bars either
            model = AutoModelForCausalLM.from_pretrained(
                path, dtype=dtype, quantization_config=quant, device_map=device_map,
                trust_remote_code=trust_remote_code, use_safetensors=None if allow_pickle else True, **kwargs)
        tokenizer = _load_tokenizer(path, trust_remote_code)
    except OSError as e:
        folder = "" if is_local else f" (no such folder here either: {Path.cwd() / path})"
        raise ModelLoadError(
            f"Could not load {path!r}{folder}: {e}\nIf it is a hub id, this machine may be offline: download it "
            f"where there is internet (`hf download {path} --local-dir DIR`) and pass DIR; "
            "or use 'qwq-nano', which is bundled.") from e
    except ValueError as e:
        if "trust_remote_code" in str(e):
            raise ModelLoadError(f"{path} needs remote code. Read it, then pass trust_remote_code=True.") from e
        if not is_local:
            raise
        raise ModelLoadError(f"{path}: the model could not be built from its files ({e}). config.json or the "
                             "weights may be damaged: re-save or re-download the model.") from e
    except Exception as e:  # noqa: BLE001 - safetensors, torch and json raise their own types on damaged files
        if not is_local:
            raise
        weights = sorted(p.name for p in local.glob("*.safetensors")) or ["the weight files"]
        raise ModelLoadError(f"{path}: could not read {', '.join(weights)} ({type(e).__name__}: {e}). The file "
                             "is probably truncated or corrupt: re-download or re-save the model.") from e
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    return model, tokenizer


def prepare_for_training(model):
    """Make a bitsandbytes 4-bit model safe to train on any CPU; returns the number of layers changed.

    On a CPU with AVX-512 BF16, bitsandbytes' ``Linear4bit.forward`` repacks the 4-bit weights
    into an inference-only layout (``quant_state.packing_format_for_cpu``) the first time it
    runs in eval mode on an input without grad, which every sampling pass does. A later
    training forward through that layout fails inside ``matmul_4bit`` ("a view of a leaf
    Variable that requires grad is being used in an in-place operation"). The module flag
    ``support_avx512bf16_for_cpu`` decides it, so this turns it off on every 4-bit layer and
    converts weights that were already packed back with bitsandbytes' own inverse (the one it
    uses when saving). Layers on a GPU and full-precision models are left alone; on CPUs
    without the feature the flag is already off and nothing changes.
    """
    changed = 0
    for module in model.modules():
        if not hasattr(module, "support_avx512bf16_for_cpu"):
            continue
        module.support_avx512bf16_for_cpu = False
        weight = module.weight
        state = getattr(weight, "quant_state", None)
        if state is not None and getattr(state, "packing_format_for_cpu", False):
            from bitsandbytes.functional import _convert_weight_packed_for_cpu_inverse

            weight.data, weight.quant_state = _convert_weight_packed_for_cpu_inverse(weight.data, state)
        changed += 1
    return changed


# ----------------------------------------------------------------------------- memory

@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes needed to serve a model: weights, KV cache, and an overhead allowance."""
    model: str
    bits: int
    parameters: int
    weights_bytes: int
    kv_cache_bytes: int
    overhead_bytes: int
    context_tokens: int
    batch_size: int

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_cache_bytes + self.overhead_bytes

    @property
    def total_gib(self) -> float:
        return self.total_bytes / 2**30

    def as_dict(self) -> dict:
        d = asdict(self)
        d.update(total_bytes=self.total_bytes, total_gib=round(self.total_gib, 3),
                 weights_gib=round(self.weights_bytes / 2**30, 3),
                 kv_cache_gib=round(self.kv_cache_bytes / 2**30, 3))
        return d


def known_configs() -> dict[str, Path]:
    """Offline architecture configs shipped in ``data/model_configs`` (hub id -> file), plus qwq-nano."""
    out = {p.stem.replace("--", "/"): p for p in sorted((data_dir() / "model_configs").glob("*.json"))}
    out[NANO] = nano_dir() / "config.json"
    return out


def _config_dict(model) -> tuple[str, dict]:
    if isinstance(model, dict):
        return model.get("_name_or_path", "custom"), model
    if hasattr(model, "config") and hasattr(model.config, "to_dict"):  # a loaded model
        return getattr(model, "name_or_path", "model"), model.config.to_dict()
    if hasattr(model, "to_dict"):  # a transformers config
        return getattr(model, "_name_or_path", "config"), model.to_dict()
    name = str(model)
    configs = known_configs()
    if name in configs:
        return name, json.loads(configs[name].read_text())
    if (Path(name) / "config.json").exists():
        return name, json.loads((Path(name) / "config.json").read_text())
    raise ModelLoadError(f"No offline config for {name!r}. Known: {sorted(configs)}; or pass a folder "
                         "with config.json, a transformers config, or a loaded model.")


def _param_groups(cfg: dict) -> tuple[int, int, int]:
    """(quantizable linear weights, other parameters, output head) counts for a decoder config."""
    h, layers = cfg["hidden_size"], cfg["num_hidden_layers"]
    heads = cfg["num_attention_heads"]
    kv_heads = cfg.get("num_key_value_heads") or heads
    head_dim = cfg.get("head_dim") or h // heads
    inter, vocab = cfg["intermediate_size"], cfg["vocab_size"]
    q, kv, o = h * heads * head_dim, 2 * h * kv_heads * head_dim, heads * head_dim * h
    linear = layers * (q + kv + o + 3 * h * inter)
    bias = layers * (heads * head_dim + 2 * kv_heads * head_dim) if cfg.get("model_type") in ("qwen2",) or \
        cfg.get("attention_bias") else 0
    other = vocab * h + layers * 2 * h + h + bias
    head = 0 if cfg.get("tie_word_embeddings", False) else vocab * h
    return linear, other, head


def count_parameters(model) -> int:
    """Parameter count of a model (name, config or loaded model) from its architecture."""
    _, cfg = _config_dict(model)
    return sum(_param_groups(cfg))


def estimate_memory(model, bits: int = 16, context_tokens: int = 4096, batch_size: int = 1,
                    dtype_bits: int | None = None, kv_bits: int = 16,
                    overhead_fraction: float = 0.10) -> MemoryEstimate:
    """Estimate memory to serve ``model`` at ``bits`` with ``batch_size`` sequences of ``context_tokens``.

    Weights: with bits 4/8, bitsandbytes quantizes the decoder's linear layers (NF4: half a
    byte a weight plus one absmax per 64 weights, itself 8-bit under double quantization;
    LLM.int8: a byte a weight plus a float scale per output row); embeddings, norms, biases
    and the output head stay at ``dtype_bits`` (16 by default; qwqlab loads 32 on a CPU).
    KV cache: ``2 x layers x kv_heads x head_dim x tokens x batch x kv_bits/8`` (QwQ-32B:
    256 KiB per token in bf16). Overhead: an allowance of ``overhead_fraction`` of the
    rest for activations and the framework; an assumption, not a measurement.

    >>> round(estimate_memory("Qwen/QwQ-32B", bits=16, context_tokens=1).kv_cache_bytes / 1024)  # doctest: +SKIP
    256
    """
    if bits not in (4, 8, 16, 32):
        raise ValueError(f"bits must be 4, 8, 16 or 32, not {bits!r}")
    if context_tokens < 0 or batch_size < 1:
        raise ValueError("context_tokens must be >= 0 and batch_size >= 1")
    name, cfg = _config_dict(model)
    linear, other, head = _param_groups(cfg)
    base = (dtype_bits or (32 if bits == 32 else 16)) / 8
    if bits == 4:
        linear_bytes = linear * 0.5 + linear / 64 * (1 + 4 / 256)  # 8-bit absmax + 2nd-level fp32
    elif bits == 8:
        h, layers = cfg["hidden_size"], cfg["num_hidden_layers"]
        rows = layers * (cfg["num_attention_heads"] * (cfg.get("head_dim") or h // cfg["num_attention_heads"]) * 2
                         + 2 * (cfg.get("num_key_value_heads") or cfg["num_attention_heads"])
                         * (cfg.get("head_dim") or h // cfg["num_attention_heads"]) + 3 * cfg["intermediate_size"])
        linear_bytes = linear + rows * 4
    else:
        linear_bytes = linear * bits / 8
    weights = int(linear_bytes + (other + head) * base)
    heads = cfg["num_attention_heads"]
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // heads
    kv_heads = cfg.get("num_key_value_heads") or heads
    kv = int(2 * cfg["num_hidden_layers"] * kv_heads * head_dim * context_tokens * batch_size * kv_bits / 8)
    overhead = int(overhead_fraction * (weights + kv))
    return MemoryEstimate(name, bits, linear + other + head, weights, kv, overhead, context_tokens, batch_size)


def memory_table(names=None, bits=(16, 8, 4), context_tokens: int = 32768, batch_size: int = 1):
    """Estimated memory of several models at several precisions, one row each (a DataFrame)."""
    import pandas as pd

    names = names or [n for n in known_configs() if n != NANO]
    rows = []
    for name in names:
        for b in bits:
            d = estimate_memory(name, bits=b, context_tokens=context_tokens, batch_size=batch_size).as_dict()
            rows.append({"model": name, "bits": b, "parameters_b": round(d["parameters"] / 1e9, 3),
                         "weights_gib": d["weights_gib"], "kv_cache_gib": d["kv_cache_gib"],
                         "overhead_gib": round(d["overhead_bytes"] / 2**30, 3), "total_gib": d["total_gib"],
                         "context_tokens": context_tokens})
    return pd.DataFrame(rows)


def compare_footprints(variants: dict):
    """Measured (``get_memory_footprint``) against estimated weight memory, per precision.

    ``variants`` maps bits (32, 8, 4) to loaded models of the same architecture.
    """
    import pandas as pd

    rows = []
    for bits, model in variants.items():
        est = estimate_memory(model, bits=bits, context_tokens=0, dtype_bits=32 if bits != 16 else 16,
                              overhead_fraction=0)
        measured = model.get_memory_footprint()
        rows.append({"bits": bits, "measured_mb": round(measured / 1e6, 3),
                     "estimated_mb": round(est.weights_bytes / 1e6, 3),
                     "error_pct": round(100 * (est.weights_bytes - measured) / measured, 2)})
    return pd.DataFrame(rows)


def logit_drift(reference, others: dict, input_ids, attention_mask=None):
    """How far quantized models' next-token distributions move from a reference model.

    Returns one row per variant: mean |logit difference|, mean KL(reference || variant)
    in nats per token, and how often the top-1 token agrees.
    """
    import pandas as pd
    import torch

    with torch.inference_mode():
        ref = reference(input_ids=input_ids, attention_mask=attention_mask).logits.float()
        mask = attention_mask.bool() if attention_mask is not None else torch.ones(ref.shape[:2], dtype=torch.bool)
        ref_logp = ref.log_softmax(-1)
        rows = []
        for name, model in others.items():
            out = model(input_ids=input_ids, attention_mask=attention_mask).logits.float()
            logp = out.log_softmax(-1)
            kl = (ref_logp.exp() * (ref_logp - logp)).sum(-1)
            rows.append({"variant": name,
                         "mean_abs_logit_diff": round((ref - out).abs().mean(-1)[mask].mean().item(), 5),
                         "kl_nats_per_token": round(kl[mask].mean().item(), 6),
                         "top1_agreement": round((ref.argmax(-1) == out.argmax(-1))[mask].float().mean().item(), 4)})
    return pd.DataFrame(rows)


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


def _hub_reachable(host: str | None = None, timeout: float = 3.0) -> bool:
    """Whether the Hugging Face Hub answers: ``False`` at once when ``HF_HUB_OFFLINE`` is set, else
    after one TCP connect of at most ``timeout`` s to ``HF_ENDPOINT`` (default huggingface.co)."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    import socket
    from urllib.parse import urlsplit

    endpoint = urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        socket.create_connection((host or endpoint.hostname, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def _cached_snapshot(repo_id: str) -> str | None:
    """The local folder of a hub model already in the Hugging Face cache, or ``None``."""
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(repo_id, local_files_only=True)
    except Exception:  # noqa: BLE001 - not cached, a malformed id, or no huggingface_hub: all "no"
        return None


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
        model, tok = load_model(choice.name, bits=choice.bits, verbose=verbose, **kwargs)
        return model, tok, choice
    if online is None:
        online = _hub_reachable()
    source = choice.name if online else _cached_snapshot(choice.name)
    oom = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
    if source is None:
        why = "this machine cannot reach the Hugging Face Hub and the model is not in the local cache"
    else:
        try:
            model, tok = load_model(source, bits=choice.bits, verbose=verbose, **kwargs)
            return model, tok, choice
        except oom:
            why = "the GPU ran out of memory while loading it"
        except ModelLoadError as e:
            why = str(e).splitlines()[0]
    print(f"qwqlab: could not load {choice.name} ({why}). Falling back to the bundled qwq-nano, so "
          "everything below still runs, on a tiny model.")
    model, tok = load_model(NANO, bits=None, verbose=verbose, **kwargs)
    fallback = ModelChoice(NANO, None, f"fallback: {choice.name} could not be loaded ({why})", None,
                           choice.hardware)
    return model, tok, fallback
