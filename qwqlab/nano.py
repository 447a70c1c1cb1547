"""qwq-nano: a tiny Qwen2 reasoning model, trained from scratch on addition traces.

The recipe (``train_nano``) builds a byte-level BPE tokenizer with QwQ's chat format,
generates supervised traces that mix careful reasoning with a base model's bad habits
(``qwqlab.tasks.arithmetic.DEFAULT_MIX``), and trains a ~1M-parameter
``Qwen2ForCausalLM`` on them with next-token loss on the completion only. The result
answers like QwQ (thinking, ``</think>``, ``\\boxed{}``) and leaves RL room to improve it.

Run it with ``qwqlab train-nano --out DIR`` (about 10 minutes on 2 CPU cores).
"""
from __future__ import annotations

import json
import re
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from qwqlab.chat import MATH_INSTRUCTION, THINK_CLOSE, THINK_OPEN
from qwqlab.tasks.arithmetic import DEFAULT_MIX, ArithmeticTask, reasoning_trace

# QwQ's template, less tool calls: the generation prompt opens the thinking, and earlier
# assistant turns keep only their answers. Plain `{%-` trims (never `-%}`) keep the
# newline after <|im_end|> (see lab notes).
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\\n' + message['content'].split('</think>')[-1].lstrip('\\n') + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n<think>\\n' }}{%- endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


@dataclass
class NanoConfig:
    """Everything that decides what qwq-nano becomes."""
    seed: int = 0
    steps: int = 1200                 # ~11 min on 2 cores
    batch_size: int = 64
    lr: float = 2e-3
    warmup_steps: int = 100
    weight_decay: float = 0.01
    hidden_size: int = 128
    intermediate_size: int = 384
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 256
    vocab_size: int = 384
    min_digits: int = 2
    max_digits: int = 3
    mix: dict = field(default_factory=lambda: dict(DEFAULT_MIX))
    num_threads: int = 2

    def __post_init__(self):
        if abs(sum(self.mix.values()) - 1) > 1e-6:
            raise ValueError(f"mix probabilities must sum to 1, got {sum(self.mix.values())}")
        unknown = set(self.mix) - set(DEFAULT_MIX)
        if unknown:
            raise ValueError(f"unknown reasoning modes {sorted(unknown)}; known: {sorted(DEFAULT_MIX)}")


def build_tokenizer(corpus: list[str], vocab_size: int = 384):
    """A byte-level BPE that splits digits one by one, with QwQ's special tokens.

    ``<think>``/``</think>`` are ordinary added tokens (``special=False``) so that
    ``decode(skip_special_tokens=True)``, which TRL uses, keeps them (see lab notes).
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(corpus, trainer)
    tok.add_tokens([AddedToken(THINK_OPEN, special=False, normalized=False),
                    AddedToken(THINK_CLOSE, special=False, normalized=False)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=None, eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>", unk_token=None,
                                   padding_side="left", model_max_length=256)
    fast.chat_template = CHAT_TEMPLATE
    return fast


def _pin_tokenizer_class(path: Path) -> None:
    # AutoTokenizer on a qwen2 config would build Qwen2Tokenizer and swap our
    # pre-tokenizer for Qwen's rules; naming the fast class keeps the saved one exactly.
    cfg_path = Path(path) / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    cfg["padding_side"] = "left"
    cfg_path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False))


def _corpus(task: ArithmeticTask, cfg: NanoConfig, n: int, rng: random.Random):
    modes, weights = zip(*cfg.mix.items())
    for _ in range(n):
        a, b = task.sample_pair(rng)
        mode = rng.choices(modes, weights)[0]
        yield f"What is {a}+{b}?", reasoning_trace(a, b, mode, rng)


def _encode_examples(tokenizer, pairs):
    from qwqlab.chat import build_prompt
    out = []
    for question, completion in pairs:
        prompt_ids = tokenizer(build_prompt(tokenizer, question), add_special_tokens=False)["input_ids"]
        comp_ids = tokenizer(completion + "<|im_end|>", add_special_tokens=False)["input_ids"]
        out.append((prompt_ids, comp_ids))
    return out


def _batch(examples, pad_id):
    import torch
    length = max(len(p) + len(c) for p, c in examples)
    ids = torch.full((len(examples), length), pad_id, dtype=torch.long)
    labels = torch.full_like(ids, -100)
    attn = torch.zeros_like(ids)
    for i, (p, c) in enumerate(examples):
        seq = p + c
        ids[i, :len(seq)] = torch.tensor(seq)
        labels[i, len(p):len(seq)] = torch.tensor(c)
        attn[i, :len(seq)] = 1
    return ids, attn, labels


def train_nano(out: str | Path, config: NanoConfig | None = None, progress: bool = True,
               log_every: int = 100) -> dict:
    """Train qwq-nano from scratch and save it (safetensors, tokenizer, chat template) to ``out``.

    Returns a summary (steps, seconds, final loss). Evaluate it afterwards with
    ``qwqlab.nano.measure`` to fill in the model card.
    """
    import torch
    from tqdm.auto import tqdm
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    cfg = config or NanoConfig()
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.num_threads)
    rng = random.Random(cfg.seed)
    task = ArithmeticTask(split="train", seed=cfg.seed, min_digits=cfg.min_digits, max_digits=cfg.max_digits)

    # The tokenizer sees the prompt text as well as the traces, so the instruction merges
    # into a handful of tokens.
    tok_corpus = [f"<|im_start|>user\n{q} {MATH_INSTRUCTION}<|im_end|>\n<|im_start|>assistant\n{c}"
                  for q, c in _corpus(task, cfg, 4000, random.Random(cfg.seed + 1))]
    tokenizer = build_tokenizer(tok_corpus, cfg.vocab_size)

    model_cfg = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers, num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads, max_position_embeddings=cfg.max_position_embeddings,
        tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"), bos_token_id=None,
        use_sliding_window=False)
    model_cfg.architectures = ["Qwen2ForCausalLM"]
    model = Qwen2ForCausalLM(model_cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95))

    def lr_at(step):
        if step < cfg.warmup_steps:
            return cfg.lr * (step + 1) / cfg.warmup_steps
        frac = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))

    model.train()
    start, losses = time.perf_counter(), []
    bar = tqdm(range(cfg.steps), desc="training qwq-nano", disable=not progress)
    for step in bar:
        examples = _encode_examples(tokenizer, _corpus(task, cfg, cfg.batch_size, rng))
        ids, attn, labels = _batch(examples, tokenizer.pad_token_id)
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        # Right padding: pads sit after every real token, so the causal mask alone keeps
        # them out of the loss and out of what real tokens attend to (and is ~15% faster).
        loss = model(input_ids=ids, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if step % 10 == 0:
            bar.set_postfix(loss=f"{sum(losses[-10:]) / len(losses[-10:]):.3f}")
        if not progress and log_every and step % log_every == 0:
            print(f"step {step} loss {sum(losses[-log_every:]) / len(losses[-log_every:]):.4f} "
                  f"{time.perf_counter() - start:.0f}s", flush=True)
    seconds = time.perf_counter() - start

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.eval()
    model.generation_config = GenerationConfig(
        do_sample=True, temperature=0.6, top_p=0.95, top_k=40, max_new_tokens=96,
        eos_token_id=[tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.pad_token_id],
        pad_token_id=tokenizer.pad_token_id)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    _pin_tokenizer_class(out)
    summary = {"steps": cfg.steps, "train_seconds": round(seconds, 1),
               "final_loss": round(sum(losses[-50:]) / len(losses[-50:]), 4),
               "parameters": sum(p.numel() for p in model.parameters()),
               "recipe": asdict(cfg)}
    (out / "training_summary.json").write_text(json.dumps(summary, indent=2))
    return summary


STEP_LINE = re.compile(r"^\s*(?:[a-z ,:]*)?\d\+\d\+\d=\d+\s*$", re.M)


def reasoning_style(completion: str, problem) -> str:
    """How a completion reasoned: ``"full"`` (a line for every column), ``"short"``, or ``"skip"``."""
    from qwqlab.chat import split_think
    thinking = split_think(completion).thinking
    if not thinking.strip():
        return "skip"
    columns = max(len(str(problem.meta["a"])), len(str(problem.meta["b"])))
    steps = {m.group(0).split(":")[-1].split(",")[-1].strip().split("=")[0]
             for m in STEP_LINE.finditer(thinking)}
    return "full" if len(steps) >= columns else "short"


def measure(model="qwq-nano", num_problems: int = 1000, seed: int = 0, temperature: float = 1.0,
            max_new_tokens: int = 96, batch_size: int = 250) -> dict:
    """Measure qwq-nano's model-card figures on held-out problems (one sample each).

    Sampling is plain (temperature 1.0, no top-p/top-k), so the figures describe the
    model's own distribution, which is what RL starts from. Returns accuracy overall and
    by reasoning style, how often each style occurs, reflection rate and mean lengths.
    """
    import statistics as st

    import torch

    from qwqlab.chat import split_think, think_answer_tokens
    from qwqlab.decoding import generate, step_seed
    from qwqlab.models import load_model

    torch.set_num_threads(2)
    if isinstance(model, (str, Path)):
        model, tokenizer = load_model(str(model), verbose=False)
    else:
        model, tokenizer = model
    task = ArithmeticTask(split="test", seed=seed)
    problems = task.problems(num_problems)
    rows = []
    for i in range(0, len(problems), batch_size):
        chunk = problems[i:i + batch_size]
        prompts = [task.prompt(tokenizer, p) for p in chunk]
        for g in generate(model, tokenizer, prompts, 1, temperature=temperature, top_p=1.0, top_k=0,
                          max_new_tokens=max_new_tokens, seed=step_seed(seed, i)):
            p = chunk[g.prompt_index]
            parts = split_think(g.text)
            rows.append({"correct": task.grade(g.text, p), "style": reasoning_style(g.text, p),
                         "reflects": any(r.strip(", :") in parts.thinking for r in REFLECTION_WORDS),
                         "tokens": g.num_tokens, "truncated": g.finish_reason == "length",
                         "thinking_tokens": int(think_answer_tokens([g.text], tokenizer)[0][0])})
    greedy = []
    for i in range(0, len(problems), batch_size):
        chunk = problems[i:i + batch_size]
        gens = generate(model, tokenizer, [task.prompt(tokenizer, p) for p in chunk], 1, temperature=0,
                        max_new_tokens=max_new_tokens)
        greedy += [task.grade(g.text, chunk[g.prompt_index]) for g in gens]

    def acc(style):
        sel = [r["correct"] for r in rows if r["style"] == style]
        return round(st.mean(sel), 4) if sel else None

    refl = [r for r in rows if r["reflects"]]
    return {
        "num_problems": len(rows), "temperature": temperature, "seed": seed,
        "accuracy": round(st.mean(r["correct"] for r in rows), 4),
        "greedy_accuracy": round(st.mean(greedy), 4),
        "accuracy_full_reasoning": acc("full"),
        "accuracy_short_reasoning": acc("short"),
        "accuracy_no_reasoning": acc("skip"),
        "accuracy_without_full_reasoning": round(st.mean(
            [r["correct"] for r in rows if r["style"] != "full"] or [0]), 4),
        "style_rates": {s: round(sum(r["style"] == s for r in rows) / len(rows), 4) for s in ("full", "short", "skip")},
        "reflection_rate": round(len(refl) / len(rows), 4),
        "accuracy_when_reflecting": round(st.mean(r["correct"] for r in refl), 4) if refl else None,
        "mean_completion_tokens": round(st.mean(r["tokens"] for r in rows), 2),
        "mean_thinking_tokens": round(st.mean(r["thinking_tokens"] for r in rows), 2),
        "truncation_rate": round(st.mean(r["truncated"] for r in rows), 4),
    }


REFLECTION_WORDS = ("wait", "let me check", "hmm")


def write_model_card(out: str | Path, summary: dict, report: dict) -> Path:
    """Write ``README.md`` (the model card) and ``measured.json`` beside the checkpoint."""
    out = Path(out)
    (out / "measured.json").write_text(json.dumps(report, indent=2))
    r, s = report, summary
    rec = s["recipe"]
    card = f"""---
license: apache-2.0
library_name: transformers
pipeline_tag: text-generation
tags: [qwqlab, reasoning, tiny, qwen2]
---
# qwq-nano

A {s['parameters']:,}-parameter `Qwen2ForCausalLM` trained from scratch by qwqlab's recipe
(`qwqlab train-nano`, `qwqlab/nano.py`) to add two {rec['min_digits']}- to {rec['max_digits']}-digit numbers the way
QwQ-32B answers: thinking that starts after the chat template's `<think>\\n`, then `</think>`,
then an answer with `\\boxed{{}}`. It is a *base model for RL*: its training traces mix careful
column-by-column reasoning with bad habits (skipping the thinking and guessing without
carries, cutting it short, slipping on a step, and sometimes writing "wait, ..." and fixing
the slip), so sampling shows all of them and outcome-reward RL has room to improve it.

## Recipe
- Data: synthetic, generated by `qwqlab.tasks.arithmetic` (held-out pairs never trained on).
  Habit mix: {', '.join(f'{k} {v:.0%}' for k, v in rec['mix'].items())}.
- Tokenizer: byte-level BPE, digits split one by one, vocabulary {rec['vocab_size']} plus `<think>`, `</think>`
  (ordinary tokens, so they survive `skip_special_tokens`); QwQ's chat template.
- Model: hidden {rec['hidden_size']}, {rec['num_hidden_layers']} layers, {rec['num_attention_heads']} heads
  ({rec['num_key_value_heads']} KV heads), MLP {rec['intermediate_size']}, tied embeddings.
- Training: {rec['steps']} AdamW steps, batch {rec['batch_size']}, lr {rec['lr']} (warm-up {rec['warmup_steps']}, cosine to 10%),
  loss on completion tokens only, seed {rec['seed']}, {rec['num_threads']} CPU threads:
  {s['train_seconds']:.0f} s on the machine that built it{' (' + s['train_note'] + ')' if s.get('train_note') else ''};
  final loss {s['final_loss']}.

## Measured (held-out, {r['num_problems']} problems, one sample each at temperature {r['temperature']}, seed {r['seed']})
| figure | value |
|---|---|
| accuracy (pass@1) | {r['accuracy']:.1%} |
| greedy accuracy | {r['greedy_accuracy']:.1%} |
| accuracy when it reasons through every column | {r['accuracy_full_reasoning']:.1%} |
| accuracy when it skips or cuts short the reasoning | {r['accuracy_without_full_reasoning']:.1%} |
| accuracy with no thinking at all | {(r['accuracy_no_reasoning'] or 0):.1%} |
| share reasoning fully / short / skipped | {r['style_rates']['full']:.1%} / {r['style_rates']['short']:.1%} / {r['style_rates']['skip']:.1%} |
| share with a reflection ("wait", "hmm, let me check") | {r['reflection_rate']:.1%} |
| accuracy when reflecting | {(r['accuracy_when_reflecting'] or 0):.1%} |
| mean completion / thinking tokens | {r['mean_completion_tokens']} / {r['mean_thinking_tokens']} |
| truncated at {96} new tokens | {r['truncation_rate']:.1%} |

Reproduce: `qwqlab measure-nano` (these exact figures, same seed); `tests/test_nano.py` checks them.
"""
    path = out / "README.md"
    path.write_text(card)
    return path
