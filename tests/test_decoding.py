"""qwqlab.decoding, the one decoder: keyed draws, the loop against transformers' generate, one answer per seed.

The reference for the loop (KV cache, one prefill per distinct prompt, rows leaving the
batch, left padding) is transformers' own ``generate`` with the same keyed chooser as a
logits processor, defined here in the test: the package has no second decoding path.
"""
from __future__ import annotations

import math

import pytest
import torch

from layouts import assert_same_generations

from qwqlab.decoding import (KeyedChooser, decode, encode_left, filter_logits, generate, keyed_uniform, row_key,
                             sample_next_tokens, stop_token_ids)
from qwqlab.rollouts import sample
from qwqlab.tasks import ArithmeticTask


class KeyedProcessor:
    """The reference: a transformers logits processor that makes greedy ``generate`` emit the
    chooser's token, so batching, KV cache and stopping are transformers' own."""

    def __init__(self, chooser, keys, prompt_length):
        self.chooser, self.keys, self.prompt_length = chooser, keys, prompt_length

    def __call__(self, input_ids, scores):
        token, _ = self.chooser(scores, self.keys, input_ids.shape[1] - self.prompt_length)
        return torch.full_like(scores, float("-inf")).scatter_(1, token[:, None], 0.0)


def reference(model, tok, prompts, keys, chooser, max_new_tokens):
    """(token ids, finish reason) per row from transformers' ``generate``."""
    from transformers import LogitsProcessorList

    enc = encode_left(tok, prompts)
    plen = enc["input_ids"].shape[1]
    stops = stop_token_ids(tok)
    processors = LogitsProcessorList([KeyedProcessor(chooser, torch.tensor(keys), plen)])
    with torch.inference_mode():
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, logits_processor=processors,
                             eos_token_id=stops, pad_token_id=tok.pad_token_id, use_cache=True)
    rows = []
    for ids in out[:, plen:].tolist():
        end = next((i for i, t in enumerate(ids) if t in stops), None)
        rows.append((ids[:end], "stop") if end is not None else (ids, "length"))
    return rows


# ----------------------------------------------------------------------------- keyed draws

def test_keyed_noise_is_uniform_and_a_pure_function():
    keys = torch.arange(4000)
    ids = torch.arange(50).repeat(4000, 1)
    u = keyed_uniform(keys, 7, ids)
    assert 0 < u.min() and u.max() < 1
    assert u.mean().item() == pytest.approx(0.5, abs=0.01)
    assert torch.histc(u, bins=10, min=0, max=1).div(u.numel()).sub(0.1).abs().max() < 0.005
    assert torch.equal(u[5:9], keyed_uniform(keys[5:9], 7, ids[5:9]))   # independent of the other rows
    assert not torch.equal(u, keyed_uniform(keys, 8, ids))              # a new step, new noise


@pytest.mark.parametrize("temperature,top_k,top_p", [(1.0, None, 1.0), (0.6, None, 1.0), (1.0, 3, 1.0),
                                                     (1.0, None, 0.8), (0.7, 4, 0.9)])
def test_sampled_tokens_follow_transformers_warpers(temperature, top_k, top_p):
    """The reference: transformers' own temperature, top-k and top-p warpers, then softmax."""
    from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    logits = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0, -3.0]])
    expected = TemperatureLogitsWarper(temperature)(None, logits.clone())
    if top_k:
        expected = TopKLogitsWarper(top_k)(None, expected)
    if top_p < 1:
        expected = TopPLogitsWarper(top_p)(None, expected)
    expected = torch.softmax(expected, -1)[0]
    n = 100_000
    tokens = sample_next_tokens(logits.expand(n, -1), torch.arange(n), 0, temperature, top_k, top_p)
    freq = torch.bincount(tokens, minlength=6).float() / n
    assert (freq - expected).abs().max() < 0.006   # ~4 standard errors at n=1e5
    assert freq[expected == 0].sum() == 0


def test_filter_logits_and_greedy():
    values, ids = filter_logits(torch.tensor([[0.0, 3.0, 1.0]]), 1.0, 2, 1.0)
    assert ids.tolist() == [[1, 2]]
    assert sample_next_tokens(torch.tensor([[0.0, 3.0, 1.0]]), torch.tensor([1]), 0, temperature=0).item() == 1


def test_row_key_depends_on_every_part():
    base = row_key(0, 1, "prompt")
    assert base == row_key(0, 1, "prompt")
    assert len({base, row_key(1, 1, "prompt"), row_key(0, 2, "prompt"), row_key(0, 1, "prompt!"),
                row_key(None, 1, "prompt")}) == 5




# ----------------------------------------------------------------------------- the loop

@pytest.mark.parametrize("temperature,top_k,top_p", [(0, None, 1.0), (1.0, None, 1.0), (0.6, 40, 0.95)])
def test_decode_equals_transformers_generate_with_the_same_chooser(fake, temperature, top_k, top_p):
    model, tok = fake
    task = ArithmeticTask(split="train")
    prompts = [task.prompt(tok, p) for p in task.problems(3)]
    prompts[1] = prompts[1].replace("What is", "Please, what is")  # more left padding for the others
    rows = [p for p in prompts for _ in range(3)]  # repeated prompts share one prefill
    keys = [row_key(0, s, p) for p in prompts for s in range(3)]
    chooser = KeyedChooser(temperature, top_k, top_p)
    ours = decode(model, tok, rows, keys, 20, chooser)
    assert [(c.token_ids, c.finish_reason) for c in ours] == reference(model, tok, rows, keys, chooser, 20)


def test_decode_equals_transformers_generate_on_qwq_nano(nano):
    """The fake's layers are zero, so this is the test of the KV cache: qwq-nano attends, and its
    completions end at different lengths (rows leave the batch while others continue)."""
    model, tok = nano
    task = ArithmeticTask(split="test")
    prompts = [task.prompt(tok, p) for p in task.problems(12)]
    prompts[3] = prompts[3].replace("What is", "Please, what is")
    rows = [p for p in prompts for _ in range(2)]
    keys = [row_key(5, s, p) for p in prompts for s in range(2)]
    chooser = KeyedChooser(1.0, None, 1.0)
    ours = decode(model, tok, rows, keys, 64, chooser)
    assert len({len(c.token_ids) for c in ours}) > 1
    assert [(c.token_ids, c.finish_reason) for c in ours] == reference(model, tok, rows, keys, chooser, 64)


def test_generate_and_sample_give_the_same_completion_for_a_seed(fake):
    """Same seed -> same rollouts, whichever caller: generate (train_grpo, evaluation) and sample."""
    model, tok = fake
    task = ArithmeticTask(split="train")
    problems = task.problems(3)
    table = sample(model, tok, problems, task, num_generations=4, temperature=1.0, top_p=1.0, top_k=0,
                   max_new_tokens=16, seed=7, batch_size=5, progress=False)
    gens = generate(model, tok, [task.prompt(tok, p) for p in problems], 4, temperature=1.0, top_p=1.0, top_k=0,
                    max_new_tokens=16, seed=7)
    assert [g.text for g in gens] == list(table["completion"])
    assert [g.num_tokens for g in gens] == list(table["completion_tokens"])


def test_decoding_never_touches_the_global_rng(fake):
    model, tok = fake
    prompts = ["What is 1+2?", "What is 3+4?"]
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = generate(model, tok, prompts, 3, temperature=1.0, max_new_tokens=8, seed=0)
    assert torch.equal(torch.rand(3), expected)  # the caller's random stream is where it was
    torch.manual_seed(999)
    b = generate(model, tok, prompts, 3, temperature=1.0, max_new_tokens=8, seed=0)
    assert [g.token_ids for g in a] == [g.token_ids for g in b]  # and it does not shift the draws


def test_the_sampler_draws_from_the_model_distribution(fake):
    model, tok = fake
    prompt = ArithmeticTask(split="train").prompt(tok, ArithmeticTask(split="train").problems(1)[0])
    ids = tok(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        probs = torch.softmax(model(ids).logits[0, -1].float() / 0.8, -1)
    gens = generate(model, tok, [prompt], 4000, temperature=0.8, top_p=1.0, top_k=0, max_new_tokens=1, seed=0)
    end = tok.convert_tokens_to_ids("<|im_end|>")
    counts = torch.bincount(torch.tensor([g.token_ids[0] if g.token_ids else end for g in gens]),
                            minlength=probs.numel()).float()
    freq, n = counts / counts.sum(), counts.sum()
    for i in torch.topk(probs, 5).indices:  # each of the likeliest tokens within 4 standard errors
        assert abs(float(freq[i] - probs[i])) < 4 * math.sqrt(float(probs[i] * (1 - probs[i])) / n)
    top = set(torch.topk(probs, 3).indices.tolist())
    gens = generate(model, tok, [prompt], 200, temperature=1.0, top_k=3, top_p=1.0, max_new_tokens=1)
    assert {(g.token_ids or [end])[0] for g in gens} <= top


def test_decode_refuses_mismatched_keys(fake):
    model, tok = fake
    with pytest.raises(ValueError, match="one key per prompt"):
        decode(model, tok, ["a", "b"], [1], 4)


def test_the_reported_entropy_is_the_policy_entropy(fake):
    from qwqlab.logprobs import shared_prefix_logprobs
    model, tok = fake
    task = ArithmeticTask(split="train")
    prompts = [task.prompt(tok, p) for p in task.problems(2)]
    gens, (seqs, plen) = generate(model, tok, prompts, 3, temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=12,
                                  return_tensors=True)
    enc = encode_left(tok, prompts)  # the prompts as the decoder padded them
    lengths = torch.tensor([g.num_tokens for g in gens])
    mask = torch.arange(seqs.shape[1] - plen)[None] < lengths[:, None]
    with torch.no_grad():
        _, ent = shared_prefix_logprobs(model, enc["input_ids"], enc["attention_mask"],
                                        torch.arange(2).repeat_interleave(3), seqs[:, plen:], mask, with_entropy=True)
    expected = (ent * mask).sum(-1) / lengths
    torch.testing.assert_close(torch.tensor([g.entropy for g in gens]), expected, atol=1e-4, rtol=1e-4)


def _completions(gens):
    return [(g.token_ids, g.finish_reason) for g in gens]


NANO_ARGS = dict(temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=40, seed=2)  # short: rows still end apart


def test_the_fused_step_runs_qwen2_and_gives_the_model_forwards_tokens(nano):
    """qwq-nano decodes through ``_PlainStep`` (its own one-token forward, without transformers'
    per-module machinery); a model it does not know, here the same model with a forward hook,
    goes through the model's forward. Same tokens either way; the comparison with
    transformers' generate above covers the fused step too."""
    import copy
    from qwqlab.fast_decoding import _DECODE_ATTENTION, _buffered_cache, _DecodeAttention, _PlainStep
    model, tok = nano
    with _DecodeAttention(model):
        assert model.config._attn_implementation == _DECODE_ATTENTION
        assert _PlainStep.build(model, _buffered_cache()) is not None
    hooked = copy.deepcopy(model)
    handle = hooked.model.layers[1].mlp.register_forward_hook(lambda *a: None)
    with _DecodeAttention(hooked):
        assert _PlainStep.build(hooked, _buffered_cache()) is None
    task = ArithmeticTask(split="test")
    prompts = [task.prompt(tok, p) for p in task.problems(6)]
    a = generate(model, tok, prompts, 4, **NANO_ARGS)
    b = generate(hooked, tok, prompts, 4, **NANO_ARGS)
    assert_same_generations(a, b)
    assert len({g.num_tokens for g in a}) > 1  # rows left the batch at different steps
    handle.remove()
    model.train()  # dropout may act: the fused step is for inference only
    try:
        with _DecodeAttention(model):
            assert _PlainStep.build(model, _buffered_cache()) is None
    finally:
        model.eval()


def test_rows_that_share_a_prefix_are_one_state_and_give_the_same_tokens(nano, monkeypatch):
    """decode runs each distinct token sequence once (rows fork when their draws differ); with
    a cache that cannot fork, each row is its own state from the start. Same completions."""
    from transformers import DynamicCache

    import qwqlab.fast_decoding as fast
    model, tok = nano
    task = ArithmeticTask(split="test")
    prompts = [task.prompt(tok, p) for p in task.problems(5)]
    args = dict(temperature=0.6, top_p=0.95, top_k=40, max_new_tokens=48, seed=4)
    shared = generate(model, tok, prompts, 6, **args)
    texts = [[g.text for g in shared if g.prompt_index == i] for i in range(5)]
    assert any(len(set(t)) < len(t) for t in texts) and any(len(set(t)) > 1 for t in texts)  # shared and forked
    monkeypatch.setattr(fast, "_buffered_cache", DynamicCache)
    apart = generate(model, tok, prompts, 6, **args)
    assert_same_generations(shared, apart)


def test_the_plain_loop_gives_the_fast_paths_tokens(nano, monkeypatch):
    """The speed-ups are one door: with ``FAST`` off, or with ``qwqlab.fast_decoding`` failing to
    import, ``decode`` runs the plain ``RowBatch`` and gives the same completions."""
    import sys

    import qwqlab.decoding as decoding
    model, tok = nano
    task = ArithmeticTask(split="test")
    prompts = [task.prompt(tok, p) for p in task.problems(4)]  # 4 x 3 samples: tiny, three decodes
    fast = generate(model, tok, prompts, 3, **NANO_ARGS)
    assert type(decoding.new_batch(model)).__name__ == "SharedBatch"
    monkeypatch.setitem(sys.modules, "qwqlab.fast_decoding", None)  # import qwqlab.fast_decoding -> ImportError
    with pytest.raises(ImportError):
        import qwqlab.fast_decoding  # noqa: F401
    assert type(decoding.new_batch(model)) is decoding.RowBatch
    assert_same_generations(fast, generate(model, tok, prompts, 3, **NANO_ARGS))
    monkeypatch.delitem(sys.modules, "qwqlab.fast_decoding")
    monkeypatch.setattr(decoding, "FAST", False)
    assert type(decoding.new_batch(model)) is decoding.RowBatch
    assert_same_generations(fast, generate(model, tok, prompts, 3, **NANO_ARGS))


def test_the_fused_step_checks_itself_and_falls_back_once(nano, monkeypatch):
    """A model whose arithmetic changed under the same class names (here every Qwen2 MLP's output
    scaled, which the fused step, reading the weights itself, does not see): the first step's
    check finds the fused logits off, warns once, and decoding goes on through the model's own
    forward, so the tokens are the changed model's (those of the plain loop)."""
    import copy
    import warnings

    from transformers.models.qwen2 import modeling_qwen2 as q2

    import qwqlab.decoding as decoding
    import qwqlab.fast_decoding as fast
    model, tok = nano
    changed = copy.deepcopy(model)  # the check is remembered per model: a fresh one
    forward = q2.Qwen2MLP.forward
    monkeypatch.setattr(q2.Qwen2MLP, "forward", lambda self, x: 1.5 * forward(self, x))
    task = ArithmeticTask(split="test")
    prompts = [task.prompt(tok, p) for p in task.problems(3)]  # 3 x 3 samples: tiny, four decodes
    with pytest.warns(RuntimeWarning, match="disagrees with Qwen2ForCausalLM's own forward"):
        first = generate(changed, tok, prompts, 3, **NANO_ARGS)
    assert fast._checked[changed] == {("torch.float32", "cpu"): False}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once: the second call is silent
        second = generate(changed, tok, prompts, 3, **NANO_ARGS)
    monkeypatch.setattr(decoding, "FAST", False)
    plain = generate(changed, tok, prompts, 3, **NANO_ARGS)
    assert_same_generations(first, plain)
    assert_same_generations(second, plain)
    monkeypatch.setattr(decoding, "FAST", True)
    monkeypatch.setattr(q2.Qwen2MLP, "forward", forward)
    assert fast._checked[model] == {("torch.float32", "cpu"): True}  # the unchanged model passed its check
    assert _completions(generate(model, tok, prompts, 3, **NANO_ARGS)) != _completions(first)


@pytest.mark.parametrize("kwargs,named", [
    (dict(temperature=float("nan")), "temperature"), (dict(temperature=-1.0), "temperature"),
    (dict(temperature=float("inf")), "temperature"), (dict(top_p=0.0), "top_p"), (dict(top_p=-1.0), "top_p"),
    (dict(top_p=1.5), "top_p"), (dict(top_p=float("nan")), "top_p"), (dict(top_k=-3), "top_k"),
    (dict(top_k=2.5), "top_k"), (dict(top_k="40"), "top_k")])
def test_generate_and_sample_refuse_hostile_sampling_settings(fake, kwargs, named):
    """One validation (``decoding.check_sampling``), used by ``generate`` and ``sample`` alike."""
    model, tok = fake
    task = ArithmeticTask(split="train")
    prompts = [task.prompt(tok, p) for p in task.problems(1)]
    with pytest.raises(ValueError, match=named):
        generate(model, tok, prompts, 1, max_new_tokens=2, **kwargs)
    with pytest.raises(ValueError, match=named):
        sample(model, tok, task.problems(1), task, num_generations=1, max_new_tokens=2, progress=False, **kwargs)


def test_a_prompt_longer_than_the_context_is_refused(fake):
    model, tok = fake
    limit = model.config.max_position_embeddings
    long_prompt = "1" * (limit + 5)
    assert len(tok(long_prompt, add_special_tokens=False)["input_ids"]) > limit
    with pytest.raises(ValueError, match="longer than the model's context"):
        generate(model, tok, [long_prompt], 1, max_new_tokens=2)
    with pytest.raises(ValueError, match="longer than the model's context"):
        decode(model, tok, [long_prompt], [0], 2)
