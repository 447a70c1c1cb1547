"""Load a reasoning model (full precision, 8-bit or 4-bit), pick a device, estimate memory,
and wrap a model for training (``prepare_for_training``, LoRA). Choosing which model fits this
machine is ``qwqlab.picking``.

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


def architecture(model) -> dict:
    """A model's architecture config as a dict (a name in ``known_configs``, a folder, a config or a loaded model)."""
    return _config_dict(model)[1]


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


# ----------------------------------------------------------------------------- LoRA

def is_quantized(model) -> bool:
    """Whether ``model`` was loaded in 8 or 4 bits by bitsandbytes."""
    return bool(getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False)
                or getattr(getattr(model, "config", None), "quantization_config", None))


def add_lora(model, config):
    """Wrap ``model`` with LoRA adapters (peft, ``config``: a ``GRPOConfig``'s ``lora_*`` fields); a
    4/8-bit model is prepared for k-bit training first.

    Only the adapters train; the frozen base doubles as the reference model (adapters off),
    so a KL penalty needs no second copy of the weights.
    """
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if is_quantized(model):
        prepare_for_training(model)  # bitsandbytes' CPU inference packing cannot train
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=config.lora_target_modules, task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


def is_peft(model) -> bool:
    """Whether ``model`` is wrapped by peft (LoRA adapters)."""
    return hasattr(model, "disable_adapter") and hasattr(model, "peft_config")


# ----------------------------------------------------------------------------- the hub

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


def load_tokenizer(name_or_path: str, trust_remote_code: bool = False):
    """A model's tokenizer only (a local folder, a hub id, or ``"qwq-nano"``), loaded as ``load_model`` loads it.

    For a model served elsewhere (``qwqlab eval`` with ``backend: openai``), to build prompts and count tokens.
    """
    return _load_tokenizer(resolve_model_path(name_or_path), trust_remote_code)
