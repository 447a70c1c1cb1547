import json
import random

import pytest

from qwqlab.chat import extract_boxed, split_think
from qwqlab.nano import NanoConfig, measure, reasoning_style, train_nano
from qwqlab.paths import nano_dir
from qwqlab.tasks.arithmetic import (DEFAULT_MIX, ArithmeticTask, careless_sum, is_held_out,
                                     reasoning_trace)


def _answer(trace):
    return int(extract_boxed(split_think(trace).answer))


@pytest.mark.parametrize("a, b", [(987, 45), (10, 90), (999, 999), (12, 34)])
def test_careful_and_reflecting_traces_are_right(a, b):
    rng = random.Random(0)
    assert _answer(reasoning_trace(a, b, "careful", rng)) == a + b
    trace = reasoning_trace(a, b, "reflect", rng)
    assert _answer(trace) == a + b
    assert any(w in trace for w in ("wait", "let me check"))


def test_careful_trace_has_one_line_per_column():
    trace = reasoning_trace(987, 45, "careful")
    assert split_think(trace).thinking.splitlines() == ["7+5+0=12", "8+4+1=13", "9+0+1=10", "so 987+45=1032"]


def test_skip_and_rush_guess_without_carries():
    assert careless_sum(987, 45) == 922 and careless_sum(12, 34) == 46
    skip = reasoning_trace(987, 45, "skip")
    assert not split_think(skip).has_thinking and _answer(skip) == 922
    assert _answer(reasoning_trace(987, 45, "rush", random.Random(0))) == 922


def test_slip_is_wrong():
    rng = random.Random(3)
    assert all(_answer(reasoning_trace(987, 45, "slip", rng)) != 1032 for _ in range(20))


def test_held_out_split_is_disjoint():
    train = ArithmeticTask(split="train").problems(2000)
    test = ArithmeticTask(split="test").problems(500)
    assert all(not is_held_out(p.meta["a"], p.meta["b"]) for p in train)
    assert all(is_held_out(p.meta["a"], p.meta["b"]) for p in test)
    assert not {p.question for p in train} & {p.question for p in test}


def test_reasoning_style():
    p = ArithmeticTask().problems(1)[0]
    a, b = p.meta["a"], p.meta["b"]
    assert reasoning_style(reasoning_trace(a, b, "careful"), p) == "full"
    assert reasoning_style(reasoning_trace(a, b, "reflect"), p) == "full"
    assert reasoning_style(reasoning_trace(a, b, "skip"), p) == "skip"


def test_config_rejects_bad_mix():
    with pytest.raises(ValueError, match="sum to 1"):
        NanoConfig(mix={"careful": 0.5})
    with pytest.raises(ValueError, match="unknown reasoning modes"):
        NanoConfig(mix={"careful": 0.5, "daydream": 0.5})


def test_recipe_runs_a_few_steps_and_saves_a_loadable_model(tmp_path):
    from qwqlab.models import load_model
    # 3 steps of batch 8: only checks the recipe end to end, not what it learns.
    summary = train_nano(tmp_path, NanoConfig(steps=3, batch_size=8, warmup_steps=1), progress=False)
    assert summary["steps"] == 3 and summary["final_loss"] > 0
    assert (tmp_path / "model.safetensors").exists() and not list(tmp_path.glob("*.bin"))
    model, tok = load_model(str(tmp_path), verbose=False)
    assert type(model).__name__ == "Qwen2ForCausalLM" and type(tok).__name__ != "Qwen2Tokenizer"
    assert "Digits" in str(tok.backend_tokenizer.pre_tokenizer)  # the saved pre-tokenizer, kept
    ids = tok("<think>\n1+2+0=3\n</think>", add_special_tokens=False)["input_ids"]
    assert "</think>" in tok.decode(ids, skip_special_tokens=True)  # TRL decodes this way
    assert tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                   add_generation_prompt=True).endswith("<|im_start|>assistant\n<think>\n")


def test_bundled_checkpoint_is_small_and_safe():
    files = {p.name: p.stat().st_size for p in nano_dir().iterdir()}
    assert "model.safetensors" in files and not any(n.endswith((".bin", ".pt")) for n in files)
    assert sum(files.values()) < 20e6
    assert json.loads((nano_dir() / "config.json").read_text())["architectures"] == ["Qwen2ForCausalLM"]


@pytest.mark.slow
def test_model_card_figures_are_reproduced_and_fit_the_brief():
    card = json.loads((nano_dir() / "measured.json").read_text())
    now = measure("qwq-nano", num_problems=card["num_problems"], seed=card["seed"])
    # Same seed, same batches: the figures should come back exactly; allow a hair for
    # float differences between CPUs that can flip a rare sample.
    for key in ("accuracy", "greedy_accuracy", "reflection_rate", "truncation_rate"):
        assert now[key] == pytest.approx(card[key], abs=0.02), key
    for style in ("full", "short", "skip"):
        assert now["style_rates"][style] == pytest.approx(card["style_rates"][style], abs=0.02)
    # The brief: a base model RL can improve.
    assert card["num_problems"] >= 500
    assert 0.30 <= now["accuracy"] <= 0.75
    assert now["accuracy_full_reasoning"] > now["accuracy_without_full_reasoning"] + 0.2
    assert 0.05 < now["style_rates"]["full"] < 0.95 and now["style_rates"]["skip"] > 0.02
    assert now["reflection_rate"] > 0.01
    assert now["accuracy_full_reasoning"] < 1.0  # it still makes step errors


def test_auto_tokenizer_encodes_like_the_saved_one(nano):
    # TRL and users may load qwq-nano with AutoTokenizer, which swaps in Qwen's
    # pre-tokenizer rules; on qwq-nano's prompts and traces both must give the same ids.
    from transformers import AutoTokenizer
    _, tok = nano
    auto = AutoTokenizer.from_pretrained(str(nano_dir()))
    task = ArithmeticTask(split="test")
    rng = random.Random(0)
    texts = [task.prompt(tok, p) + reasoning_trace(p.meta["a"], p.meta["b"], mode, rng)
             for p in task.problems(50) for mode in DEFAULT_MIX]
    texts += ["  two  spaces\n\n\tand tabs", "naïve café 北京 12345", ""]
    for t in texts:
        assert auto(t)["input_ids"] == tok(t)["input_ids"], t
