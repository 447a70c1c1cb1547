"""QwQ-32B's bundled tokenizer reproduces the published encodings (issue 11, item 5)."""
from __future__ import annotations

import json

import pytest

from qwqlab.tokenizer import THINK_CLOSE_ID, THINK_OPEN_ID, count_tokens, qwq_tokenizer, qwq_tokenizer_dir


def _vectors():
    """llama.cpp's vectors, read here independently of the build script."""
    folder = qwq_tokenizer_dir()
    inp = (folder / "llamacpp-vectors.inp").read_text(encoding="utf-8")
    texts = inp.split("\n__ggml_vocab_test__\n")[:-1]  # the file ends with a separator
    lines = (folder / "llamacpp-vectors.out").read_text(encoding="utf-8").split("\n")
    return [(t, [int(x) for x in line.split()]) for t, line in zip(texts, lines)]


VECTORS = _vectors()


def test_there_are_46_vectors():
    assert len(VECTORS) == 46
    assert VECTORS[0][0] == "ied 4 \u00bd months"


@pytest.mark.parametrize("text,ids", VECTORS, ids=[repr(t)[:30] for t, _ in VECTORS])
def test_llamacpp_vector(text, ids):
    assert qwq_tokenizer().encode(text, add_special_tokens=False) == ids


def test_source_example():
    text = "Hello, world! Let me think step by step.\n\\boxed{42}"
    assert qwq_tokenizer().encode(text, add_special_tokens=False) == [
        9707, 11, 1879, 0, 6771, 752, 1744, 3019, 553, 3019, 624, 59, 79075, 90, 19, 17, 92]


def test_think_tags_are_single_non_special_tokens():
    tok = qwq_tokenizer()
    assert tok.convert_tokens_to_ids(["<think>", "</think>"]) == [THINK_OPEN_ID, THINK_CLOSE_ID] == [151667, 151668]
    ids = tok.encode("<think>\nso 2+2=4\n</think>\n\\boxed{4}", add_special_tokens=False)
    assert ids[0] == 151667 and ids.count(151668) == 1
    # not special: TRL decodes with skip_special_tokens=True and the tags must survive
    assert "</think>" in tok.decode(ids, skip_special_tokens=True)
    im = tok.encode("<|im_start|>user<|im_end|>", add_special_tokens=False)
    assert im[0] == 151644 and im[-1] == 151645
    assert tok.decode(im, skip_special_tokens=True) == "user"


def test_config_and_vocab():
    tok = qwq_tokenizer()
    assert len(tok) == 151669
    assert tok.eos_token == "<|im_end|>" and tok.bos_token is None
    assert tok.model_max_length == 131072
    assert tok.encode("x", add_special_tokens=True) == tok.encode("x", add_special_tokens=False)  # no BOS
    config = json.loads((qwq_tokenizer_dir() / "tokenizer.json").read_text(encoding="utf-8"))
    assert config["normalizer"]["type"] == "NFC"
    assert [t["id"] for t in config["added_tokens"]] == list(range(151643, 151669))
    assert [t["special"] for t in config["added_tokens"]] == [True] * 14 + [False] * 12


def test_round_trip_and_counts():
    tok = qwq_tokenizer()
    text = "Wait, \u00c4pfel \u2248 3.14159\u2026 \U0001f999 \u0442\u0435\u0441\u0442  \n\n\tend"
    assert tok.decode(tok.encode(text, add_special_tokens=False)) == text
    assert count_tokens(["Hello, world!", "", None]).tolist() == [4, 0, 0]


def test_bundle_is_small_and_licensed():
    folder = qwq_tokenizer_dir()
    assert (folder / "tokenizer.json").stat().st_size < 8_000_000
    assert "Apache License" in (folder / "LICENSE").read_text()
    assert "SOURCE.md" in (folder / "README.md").read_text()


def test_build_script_help():
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "scripts" / "build_qwq_tokenizer.py"
    out = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "--source" in out.stdout
