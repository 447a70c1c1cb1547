"""Build QwQ-32B's tokenizer offline into ``data/tokenizers/qwq-32b/`` (issue 11, item 5).

The Hugging Face hub's ``tokenizer.json`` for Qwen/QwQ-32B cannot be downloaded here, so it
is rebuilt with the ``tokenizers`` library from the two files it is made of, Qwen2.5's
``vocab.json`` and ``merges.txt`` (in ``../shared/data/qwen-tokenizer/``, see its
``SOURCE.md``), plus what Qwen's ``tokenizer.json`` adds on top:

1. normalizer NFC;
2. pre-tokenizer: Qwen2's split regex (``QWEN2_SPLIT_PATTERN``, pieces kept "isolated"),
   then byte-level without a prefix space and without GPT-2's own regex;
3. model: byte-level BPE, no unknown token, no dropout;
4. decoder byte-level; no BOS, no post-processing template;
5. the 26 added tokens 151643-151668 (``ADDED_TOKENS``), ``special`` up to 151656 only,
   so ``<think>`` / ``</think>`` survive ``decode(skip_special_tokens=True)``.

The result is checked against llama.cpp's 46 test vectors and the example in ``SOURCE.md``
before anything is written (``tests/test_tokenizer.py`` checks the bundled file again).

    .venv/bin/python scripts/build_qwq_tokenizer.py                      # default paths
    .venv/bin/python scripts/build_qwq_tokenizer.py --source DIR --out DIR
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def shared_data(name: str) -> Path:
    """``../shared/data/<name>`` beside the checkout (or beside a worktree's parent folder)."""
    candidates = [REPO.parent / "shared" / "data" / name, REPO.parent.parent / "shared" / "data" / name]
    return next((c for c in candidates if c.exists()), candidates[0])


DEFAULT_SOURCE = shared_data("qwen-tokenizer")
DEFAULT_OUT = REPO / "data" / "tokenizers" / "qwq-32b"

#: Qwen2's pre-tokenizer split pattern, as given in SOURCE.md (Qwen's tokenizer.json).
QWEN2_SPLIT_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
                       r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

#: Added tokens after the 151,643 BPE entries: (id, content, special). QwQ-32B (like Qwen3)
#: has the last four, which plain Qwen2.5 lacks.
ADDED_TOKENS = [(151643 + i, tok, i <= 13) for i, tok in enumerate([
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
    "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>",
    "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>", "<tool_response>", "</tool_response>",
    "<think>", "</think>"])]

#: SOURCE.md's worked example and its ids.
SOURCE_EXAMPLE = "Hello, world! Let me think step by step.\n\\boxed{42}"
SOURCE_EXAMPLE_IDS = [9707, 11, 1879, 0, 6771, 752, 1744, 3019, 553, 3019, 624, 59, 79075, 90, 19, 17, 92]

#: What QwQ-32B's tokenizer_config.json says (SOURCE.md): eos <|im_end|>, no BOS, 131072.
TOKENIZER_CONFIG = {
    "tokenizer_class": "PreTrainedTokenizerFast",
    "bos_token": None,
    "eos_token": "<|im_end|>",
    "pad_token": "<|endoftext|>",
    "unk_token": None,
    "model_max_length": 131072,
    "clean_up_tokenization_spaces": False,
    "add_prefix_space": False,
}

VECTORS = "llamacpp-test-vectors/ggml-vocab-qwen2.gguf"


def read_vectors(source: Path) -> list[tuple[str, list[int]]]:
    """llama.cpp's test vectors: inputs separated by ``__ggml_vocab_test__`` lines, one line of ids each."""
    texts = (source / f"{VECTORS}.inp").read_text(encoding="utf-8").split("\n__ggml_vocab_test__\n")
    if texts and texts[-1] == "":
        texts = texts[:-1]  # the file ends with a separator
    lines = (source / f"{VECTORS}.out").read_text(encoding="utf-8").split("\n")
    ids = [[int(t) for t in line.split()] for line in lines[:len(texts)]]
    if len(texts) != len(ids):
        raise ValueError(f"{len(texts)} inputs but {len(ids)} id lines in {source / VECTORS}")
    return list(zip(texts, ids))


def build(source: Path):
    """The tokenizer as a ``tokenizers.Tokenizer``, built from ``source``'s vocab.json and merges.txt."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

    vocab = json.loads((source / "vocab.json").read_text(encoding="utf-8"))
    lines = (source / "merges.txt").read_text(encoding="utf-8").split("\n")
    merges = [tuple(line.split(" ")) for line in lines if line and not line.startswith("#version")]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=None, continuing_subword_prefix="",
                               end_of_word_suffix="", fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    for expected_id, content, special in ADDED_TOKENS:
        token = AddedToken(content, single_word=False, lstrip=False, rstrip=False, normalized=False,
                           special=special)
        (tok.add_special_tokens if special else tok.add_tokens)([token])
        got = tok.token_to_id(content)
        if got != expected_id:
            raise ValueError(f"{content} got id {got}, expected {expected_id}: is vocab.json complete?")
    return tok


def check(tok, source: Path) -> int:
    """Raise unless ``tok`` reproduces every llama.cpp vector and SOURCE.md's example; returns the count."""
    vectors = read_vectors(source)
    bad = [(text, ids, tok.encode(text, add_special_tokens=False).ids) for text, ids in vectors
           if tok.encode(text, add_special_tokens=False).ids != ids]
    if bad:
        text, want, got = bad[0]
        raise ValueError(f"{len(bad)} of {len(vectors)} vectors differ; first {text!r}: {got} != {want}")
    got = tok.encode(SOURCE_EXAMPLE, add_special_tokens=False).ids
    if got != SOURCE_EXAMPLE_IDS:
        raise ValueError(f"SOURCE.md example: {got} != {SOURCE_EXAMPLE_IDS}")
    return len(vectors)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE,
                        help="folder with vocab.json, merges.txt, SOURCE.md and llamacpp-test-vectors/")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where tokenizer.json goes")
    args = parser.parse_args(argv)

    tok = build(args.source)
    n = check(tok, args.source)
    args.out.mkdir(parents=True, exist_ok=True)
    tok.save(str(args.out / "tokenizer.json"), pretty=False)  # one line: 5 MB, not 11
    (args.out / "tokenizer_config.json").write_text(json.dumps(TOKENIZER_CONFIG, indent=2) + "\n")
    shutil.copyfile(args.source / f"{VECTORS}.inp", args.out / "llamacpp-vectors.inp")
    shutil.copyfile(args.source / f"{VECTORS}.out", args.out / "llamacpp-vectors.out")
    print(f"{args.out / 'tokenizer.json'}: {(args.out / 'tokenizer.json').stat().st_size:,} bytes, "
          f"vocab {tok.get_vocab_size():,}, {n}/{n} llama.cpp vectors and the SOURCE.md example reproduced")
    for name in ("vocab.json", "merges.txt"):
        print(f"  source {name} sha256 {sha256(args.source / name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
