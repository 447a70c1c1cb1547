"""pick_model chooses the model for the machine in the room; the hardware is faked here.

Memory sizes are what ``torch.cuda.get_device_properties(i).total_memory`` reports, in GiB:
a "24 GB" card is 22.0-22.4 GiB (L4 22.03, A10G 22.19, RTX 4090 22.35), a T4 14.75, an
A100-80GB 79.15, an H200 139.8.
"""
import pytest
import torch

from qwqlab import models
from qwqlab.models import NANO, ModelLoadError, estimate_memory
from qwqlab.picking import Hardware, ModelChoice, detect_hardware, load_model_or_fallback, pick_model

QWQ = "Qwen/QwQ-32B"
DISTILL = "deepseek-ai/DeepSeek-R1-Distill-Qwen-{}"


@pytest.mark.parametrize("ram_gib", [4, 16, 256])
def test_cpu_gets_qwq_nano_whatever_the_ram(ram_gib):
    choice = pick_model(Hardware("cpu", memory_gib=ram_gib))
    assert (choice.name, choice.bits) == (NANO, None)
    assert "no GPU" in choice.reason and f"{ram_gib} GiB" in choice.reason


@pytest.mark.parametrize("gib", [22.03, 22.19, 22.35, 44.0])
def test_24gb_gpu_or_larger_gets_qwq32b_in_4bit(gib):
    choice = pick_model(Hardware("cuda", memory_gib=gib, name="fake GPU"))
    assert (choice.name, choice.bits) == (QWQ, 4)
    assert "fake GPU" in choice.reason and "fits" in choice.reason
    # 16-bit was tried first and did not fit; the reason says so.
    assert "QwQ-32B 16-bit" in choice.reason


@pytest.mark.parametrize("gib, size", [(14.75, "14B"), (11.76, "7B"), (7.6, "7B"), (3.0, "1.5B")])
def test_smaller_gpu_gets_the_largest_r1_distill_that_fits_in_4bit(gib, size):
    choice = pick_model(Hardware("cuda", memory_gib=gib))
    assert (choice.name, choice.bits) == (DISTILL.format(size), 4)
    assert "QwQ-32B" in choice.reason  # names what did not fit


def test_big_gpu_gets_qwq32b_in_16bit():
    for gib in (79.15, 139.8):
        assert tuple(pick_model(Hardware("cuda", memory_gib=gib))) == (QWQ, 16)


def test_memory_is_summed_over_gpus():
    assert tuple(pick_model(Hardware("cuda", memory_gib=14.75, num_devices=2))) == (QWQ, 4)
    assert "2 x" in pick_model(Hardware("cuda", memory_gib=14.75, num_devices=2)).reason


def test_gpu_too_small_for_any_distill_falls_back_to_nano():
    choice = pick_model(Hardware("cuda", memory_gib=1.0))
    assert (choice.name, choice.bits) == (NANO, None)
    assert "no known reasoning model fits" in choice.reason


def test_longer_context_means_a_smaller_model():
    # QwQ-32B's KV cache is 256 KiB per token in bf16: 8 GiB at 32k tokens on top of 18 GiB of weights.
    assert pick_model(Hardware("cuda", memory_gib=22.35), context_tokens=32768).name == DISTILL.format("14B")
    assert pick_model(Hardware("cuda", memory_gib=22.35), context_tokens=8192, batch_size=8).name != QWQ


def test_mps_uses_16bit_within_half_the_shared_ram():
    assert tuple(pick_model(Hardware("mps", memory_gib=16))) == (DISTILL.format("1.5B"), 16)
    assert tuple(pick_model(Hardware("mps", memory_gib=64))) == (DISTILL.format("14B"), 16)
    assert "bitsandbytes" in pick_model(Hardware("mps", memory_gib=16)).reason


def test_the_choice_fits_by_estimate_memory_and_nothing_larger_does():
    hw = Hardware("cuda", memory_gib=14.75)
    choice = pick_model(hw)
    est = estimate_memory(choice.name, bits=choice.bits, context_tokens=8192)
    assert choice.estimate == est and est.total_gib <= hw.memory_gib
    for bits in (16, 4):
        assert estimate_memory(QWQ, bits=bits, context_tokens=8192).total_gib > hw.memory_gib


def test_candidates_can_be_restricted():
    choice = pick_model(Hardware("cuda", memory_gib=80), candidates=[DISTILL.format("7B"), DISTILL.format("1.5B")])
    assert tuple(choice) == (DISTILL.format("7B"), 16)


def test_choice_unpacks_and_prints_its_reason():
    model, bits = pick_model(Hardware("cuda", memory_gib=22.35))
    assert (model, bits) == (QWQ, 4)
    assert str(pick_model(Hardware("cpu", memory_gib=8))).startswith("qwq-nano at full precision: no GPU")


@pytest.mark.parametrize("kwargs", [dict(device="tpu", memory_gib=8), dict(device="cuda", memory_gib=0),
                                    dict(device="cuda", memory_gib=8, num_devices=0)])
def test_impossible_hardware_is_rejected(kwargs):
    with pytest.raises(ValueError):
        Hardware(**kwargs)


def test_detect_hardware_here_is_the_cpu_and_its_ram(monkeypatch):
    monkeypatch.delenv("QWQLAB_DEVICE", raising=False)
    if torch.cuda.is_available():
        pytest.skip("this test describes a CPU-only machine")
    hw = detect_hardware()
    assert hw.device == "cpu" and 0.5 < hw.memory_gib < 4096
    assert pick_model().name == NANO


def test_detect_hardware_reads_each_gpu_and_keeps_the_smallest(monkeypatch):
    class Props:
        def __init__(self, gib):
            self.total_memory, self.name = int(gib * 2**30), "Fake A10G"

    monkeypatch.delenv("QWQLAB_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "Fake A10G")
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: Props([22.19, 23.0][i]))
    hw = detect_hardware()
    assert (hw.device, hw.num_devices, hw.name) == ("cuda", 2, "Fake A10G")
    assert hw.memory_gib == pytest.approx(22.19)
    assert tuple(pick_model(hw)) == (QWQ, 4)


# --------------------------------------------------------------------------- loading with a fallback

def test_offline_hub_model_not_cached_falls_back_to_nano_and_says_so(capsys):
    model, tok, used = load_model_or_fallback(ModelChoice(QWQ, 4, "test"), online=False, verbose=False)
    out = capsys.readouterr().out
    assert "could not load Qwen/QwQ-32B" in out and "cannot reach the Hugging Face Hub" in out
    assert "Falling back to the bundled qwq-nano" in out
    assert used.name == NANO and used.bits is None and "fallback" in used.reason
    assert type(model).__name__ == "Qwen2ForCausalLM"


def test_offline_hub_model_in_the_cache_loads_from_there(monkeypatch, capsys):
    # A model downloaded once works offline: the cached snapshot folder is loaded directly.
    monkeypatch.setattr(models, "_cached_snapshot", lambda repo: str(models.nano_dir()))
    model, tok, used = load_model_or_fallback("someone/cached-model", bits=4, online=False, verbose=False)
    assert used.name == "someone/cached-model" and used.bits == 4
    assert "Falling back" not in capsys.readouterr().out
    assert "Linear4bit" in {type(m).__name__ for m in model.modules()}


def test_uncached_model_is_not_found_in_the_real_cache():
    assert models._cached_snapshot("qwqlab-test/never-downloaded") is None


def test_online_but_missing_model_falls_back(monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # transformers fails at once instead of asking the network
    _, _, used = load_model_or_fallback("qwqlab-test/does-not-exist", online=True, verbose=False)
    assert used.name == NANO
    assert "could not load qwqlab-test/does-not-exist (" in (out := capsys.readouterr().out) and "offline" in out


def test_gpu_out_of_memory_falls_back(monkeypatch, capsys):
    real = models.load_model

    def fake(name, **kw):
        if name == "big/model":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real(name, **kw)

    monkeypatch.setattr(models, "load_model", fake)
    _, _, used = load_model_or_fallback("big/model", bits=4, online=True, verbose=False)
    assert used.name == NANO and "ran out of memory" in capsys.readouterr().out


def test_nano_and_local_paths_load_directly_and_errors_are_not_hidden(tmp_path):
    _, _, used = load_model_or_fallback(pick_model(Hardware("cpu", memory_gib=8)), verbose=False)
    assert used.name == NANO
    with pytest.raises(ModelLoadError, match="not a directory"):
        load_model_or_fallback(str(tmp_path / "missing"), verbose=False)


def test_hub_reachable_is_false_at_once_when_offline_is_set(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert models._hub_reachable() is False
