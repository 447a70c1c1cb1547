import json
import shutil

import pytest
import torch

from qwqlab.chat import extract_boxed, split_think
from qwqlab.models import (ModelLoadError, count_parameters, estimate_memory, get_device, known_configs,
                           load_model, quantization_config)
from qwqlab.paths import nano_dir
from qwqlab.decoding import generate
from qwqlab.tasks import ArithmeticTask


def test_get_device_picks_cpu_here_and_says_so(capsys, monkeypatch):
    monkeypatch.delenv("QWQLAB_DEVICE", raising=False)
    assert get_device() == "cpu"  # no GPU on this machine or CI
    assert "qwqlab: using cpu" in capsys.readouterr().err


def test_get_device_override_and_env(monkeypatch):
    assert get_device("cpu", verbose=False) == "cpu"
    monkeypatch.setenv("QWQLAB_DEVICE", "cpu")
    assert get_device(verbose=False) == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ModelLoadError, match="CUDA is not available"):
            get_device("cuda", verbose=False)


def _well_formed_answer(model, tok):
    task = ArithmeticTask(split="test")
    problems = task.problems(8)
    gens = generate(model, tok, [task.prompt(tok, p) for p in problems], temperature=0, max_new_tokens=96)
    for g in gens:
        parts = split_think(g.text)
        assert g.finish_reason == "stop", g.text
        assert parts.case == "closed" and extract_boxed(parts.answer) is not None, g.text
        assert extract_boxed(parts.answer).isdigit()
    return sum(task.grade(g.text, problems[g.prompt_index]) for g in gens)


@pytest.mark.parametrize("bits, layer", [(4, "Linear4bit"), (8, "Linear8bitLt")])
def test_quantized_load_on_cpu_generates_well_formed_answers(bits, layer):
    model, tok = load_model("qwq-nano", bits=bits, verbose=False)
    kinds = {type(m).__name__ for m in model.modules()}
    assert layer in kinds
    assert type(model.model.layers[0].mlp.up_proj).__name__ == layer
    _well_formed_answer(model, tok)


def test_4bit_uses_nf4_with_double_quantization():
    q = quantization_config(4)
    assert q.load_in_4bit and q.bnb_4bit_quant_type == "nf4" and q.bnb_4bit_use_double_quant
    assert quantization_config(8).load_in_8bit
    assert quantization_config(None) is None


def test_full_precision_is_safe_by_default(nano):
    model, tok = nano
    assert model.config.architectures == ["Qwen2ForCausalLM"]
    assert type(model).__name__ == "Qwen2ForCausalLM"
    assert tok.padding_side == "left"
    assert _well_formed_answer(model, tok) >= 1


def _pack_like_an_avx512bf16_cpu(model) -> int:
    """Put every 4-bit layer in the state bitsandbytes leaves after an eval forward on a CPU with
    AVX-512 BF16 (weights repacked for inference), whatever this CPU has, so the guard is tested
    on every machine. bitsandbytes does exactly this call inside ``Linear4bit.forward``."""
    from bitsandbytes.functional import _convert_weight_packed_for_cpu
    packed = 0
    for m in model.modules():
        if type(m).__name__ == "Linear4bit":
            m.support_avx512bf16_for_cpu = True
            if not getattr(m.weight.quant_state, "packing_format_for_cpu", False):
                m.weight.data, m.weight.quant_state = _convert_weight_packed_for_cpu(m.weight.data, m.weight.quant_state)
            packed += 1
    return packed


def test_4bit_layers_train_after_the_cpu_inference_repacking():
    """issue 10: on AVX-512 BF16 CPUs a 4-bit layer repacked for inference could not train.
    prepare_for_training restores the trainable layout exactly, on any CPU."""
    pytest.importorskip("bitsandbytes")
    import bitsandbytes.functional as bnbf
    from peft import LoraConfig, get_peft_model
    from qwqlab.models import prepare_for_training
    model, tok = load_model("qwq-nano", bits=4, device="cpu", verbose=False)
    layers = [m for m in model.modules() if type(m).__name__ == "Linear4bit"]
    before = [bnbf.dequantize_4bit(m.weight.data, m.weight.quant_state).clone() for m in layers]
    assert _pack_like_an_avx512bf16_cpu(model) == len(layers) > 0
    assert all(m.weight.quant_state.packing_format_for_cpu for m in layers)

    assert prepare_for_training(model) == len(layers)
    for m, w in zip(layers, before):
        assert not m.support_avx512bf16_for_cpu and not getattr(m.weight.quant_state, "packing_format_for_cpu", False)
        # the same 4-bit codes; the block scales come back through bf16 (bitsandbytes' inverse is
        # the one it uses when saving), hence a bf16-sized tolerance
        torch.testing.assert_close(bnbf.dequantize_4bit(m.weight.data, m.weight.quant_state), w, rtol=8e-3, atol=1e-5)
    ids = tok(["12+34="], return_tensors="pt")["input_ids"]
    model.eval()
    with torch.no_grad():  # the forward that used to repack: it must not any more
        model(ids)
    assert not any(getattr(m.weight.quant_state, "packing_format_for_cpu", False) for m in layers)

    peft = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    peft.train()
    loss = peft(ids, labels=ids).loss
    loss.backward()
    grads = [p.grad for n, p in peft.named_parameters() if "lora_" in n]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)


def test_prepare_for_training_leaves_a_full_precision_model_alone(nano):
    from qwqlab.models import prepare_for_training
    model, _ = nano
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    assert prepare_for_training(model) == 0
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


@pytest.mark.parametrize("bits", [3, "4", 2])
def test_unknown_bits(bits):
    with pytest.raises(ValueError, match="bits must be"):
        load_model("qwq-nano", bits=bits, verbose=False)


def test_missing_path(tmp_path):
    with pytest.raises(ModelLoadError, match="not a directory"):
        load_model(str(tmp_path / "nope"), verbose=False)


def _copy_nano(tmp_path):
    dst = tmp_path / "model"
    shutil.copytree(nano_dir(), dst)
    return dst


def test_remote_code_refused_unless_opted_in(tmp_path):
    dst = _copy_nano(tmp_path)
    cfg = json.loads((dst / "config.json").read_text())
    cfg["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilModel"}
    (dst / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match="trust_remote_code=True"):
        load_model(str(dst), verbose=False)


def test_pickle_only_weights_refused_unless_opted_in(tmp_path, nano):
    dst = _copy_nano(tmp_path)
    (dst / "model.safetensors").unlink()
    torch.save(nano[0].state_dict(), dst / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="pickle"):
        load_model(str(dst), verbose=False)
    model, _ = load_model(str(dst), allow_pickle=True, verbose=False)
    assert torch.equal(model.model.embed_tokens.weight, nano[0].model.embed_tokens.weight)


def test_missing_bitsandbytes_says_how_to_fix(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)
    with pytest.raises(ModelLoadError, match="pip install bitsandbytes"):
        load_model("qwq-nano", bits=4, verbose=False)


def test_hub_id_offline_says_how_to_fix(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="offline"):
        load_model("qwqlab-test/does-not-exist", verbose=False)


def test_missing_nano_checkpoint(monkeypatch, tmp_path):
    monkeypatch.setenv("QWQLAB_DATA", str(tmp_path))
    with pytest.raises(ModelLoadError, match="train-nano"):
        load_model("qwq-nano", verbose=False)


# --------------------------------------------------------------------------- memory

def test_known_configs_cover_the_issue():
    names = set(known_configs())
    for n in ["Qwen/QwQ-32B", "qwq-nano"] + [f"deepseek-ai/DeepSeek-R1-Distill-Qwen-{s}" for s in
                                             ("1.5B", "7B", "14B", "32B")]:
        assert n in names


def test_qwq32b_kv_cache_is_256_kib_per_token_in_bf16():
    est = estimate_memory("Qwen/QwQ-32B", bits=16, context_tokens=1)
    assert est.kv_cache_bytes == 64 * 8 * 128 * 2 * 2 == 256 * 1024
    assert estimate_memory("Qwen/QwQ-32B", bits=16, context_tokens=1000, batch_size=3).kv_cache_bytes == \
        256 * 1024 * 3000


def test_qwq32b_parameters_match_model_card():
    # Model card: 32.5B parameters. The architecture gives 32.76B; within 1%.
    assert count_parameters("Qwen/QwQ-32B") == pytest.approx(32.5e9, rel=0.01)
    est16 = estimate_memory("Qwen/QwQ-32B", bits=16, context_tokens=0, overhead_fraction=0)
    est4 = estimate_memory("Qwen/QwQ-32B", bits=4, context_tokens=0, overhead_fraction=0)
    assert est16.weights_bytes == pytest.approx(2 * est16.parameters, rel=1e-6)
    # 4-bit: linear layers at ~0.52 bytes, embeddings and head kept in bf16.
    assert 16e9 < est4.weights_bytes < 21e9
    assert est4.total_bytes < estimate_memory("Qwen/QwQ-32B", bits=8, context_tokens=0).total_bytes


@pytest.mark.parametrize("bits", [32, 8, 4])
def test_nano_estimate_matches_loaded_footprint(bits, nano):
    model, _ = (nano if bits == 32 else load_model("qwq-nano", bits=bits, verbose=False))
    est = estimate_memory(model, bits=bits, context_tokens=0, dtype_bits=32, overhead_fraction=0)
    assert est.parameters == sum(p.numel() for p in nano[0].parameters())
    assert est.weights_bytes == pytest.approx(model.get_memory_footprint(), rel=0.05)


def test_estimate_memory_rejects_bad_input():
    with pytest.raises(ValueError):
        estimate_memory("Qwen/QwQ-32B", bits=3)
    with pytest.raises(ModelLoadError, match="No offline config"):
        estimate_memory("someone/unknown-model")


# ----------------------------------------------------------------------------- bad files and names (issue 10)

@pytest.mark.parametrize("how", ["argument", "environment"])
def test_an_unknown_device_says_which_ones_exist(monkeypatch, how):
    monkeypatch.delenv("QWQLAB_DEVICE", raising=False)
    if how == "environment":
        monkeypatch.setenv("QWQLAB_DEVICE", "gpu")
        with pytest.raises(ModelLoadError, match="QWQLAB_DEVICE='gpu' is not a device.*'cuda'"):
            load_model("qwq-nano", verbose=False)
    else:
        with pytest.raises(ModelLoadError, match="device='gpu' is not a device"):
            load_model("qwq-nano", device="gpu", verbose=False)


@pytest.mark.parametrize("text, message", [
    ('{"model_type": "qwen2", ', r"config\.json is not valid JSON.*Re-save the model"),   # half-written
    ("", r"config\.json is not valid JSON"),
    ("[1, 2]", r"config\.json is not valid JSON \(not a JSON object\)"),
    ('{"model_type": "qwen2", "hidden_size": "big"}', r"config\.json is not a config transformers can build"
                                                     r".*hidden_size.*Fix or restore config\.json"),
    ('{"model_type": "no-such-architecture"}', r"config\.json is not a config transformers can build"),
])
def test_a_broken_config_json_names_the_file(tmp_path, text, message):
    path = _copy_nano(tmp_path)
    (path / "config.json").write_text(text)
    with pytest.raises(ModelLoadError, match=rf"(?s){path}.*{message}"):
        load_model(str(path), verbose=False)


@pytest.mark.parametrize("damage", ["truncated", "garbage header", "empty"])
def test_corrupt_safetensors_name_the_file(tmp_path, damage):
    path = _copy_nano(tmp_path)
    weights = next(path.glob("*.safetensors"))
    data = weights.read_bytes()
    weights.write_bytes({"truncated": data[:1000], "garbage header": b"\xff" * 8 + b"not a header" + data[20:],
                         "empty": b""}[damage])
    with pytest.raises(ModelLoadError, match=rf"{path}.*{weights.name}.*truncated or corrupt: re-download"):
        load_model(str(path), verbose=False)


@pytest.mark.parametrize("name", ["models/nope", "qwqlab-test/not-cached-anywhere"])
def test_an_offline_machine_fails_fast_on_a_missing_folder_or_hub_id(monkeypatch, tmp_path, name):
    """A relative path such as models/nope was taken for a hub id and retried for 47-50 s."""
    import time
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(ModelLoadError, match="no such folder here.*offline.*hf download"):
        load_model(name, verbose=False)
    assert time.perf_counter() - start < 5


def test_an_unreachable_hub_fails_fast_without_hf_hub_offline(monkeypatch, tmp_path):
    """No HF_HUB_OFFLINE, no cached copy, a hub that does not answer: one quick connect, no retry loop.
    HF_ENDPOINT points at a closed local port, so the test behaves the same with or without internet."""
    import time
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    start = time.perf_counter()
    with pytest.raises(ModelLoadError, match="no such folder here.*offline"):
        load_model("qwqlab-test/not-cached-anywhere", verbose=False)
    seconds = time.perf_counter() - start
    print(f"\n[offline hub id] failed after {seconds:.2f} s")
    assert seconds < 5


@pytest.mark.parametrize("name", ["./models/nope", "data/models/nope", "models\\nope", "~/qwqlab-no-such-model"])
def test_a_path_that_does_not_exist_says_no_such_folder(monkeypatch, tmp_path, name):
    """Path-looking names are folders, never hub ids: a missing one says so at once."""
    import time
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    start = time.perf_counter()
    with pytest.raises(ModelLoadError, match=r"no such folder.*Pass a folder holding config\.json"):
        load_model(name, verbose=False)
    assert time.perf_counter() - start < 5


def test_a_file_instead_of_a_folder_says_so(tmp_path):
    weights = next(_copy_nano(tmp_path).glob("*.safetensors"))
    with pytest.raises(ModelLoadError, match=rf"{weights}: is a file, not a directory"):
        load_model(str(weights), verbose=False)
