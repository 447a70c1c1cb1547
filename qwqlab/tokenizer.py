"""QwQ-32B's own tokenizer, bundled, for counting real tokens offline.

``data/tokenizers/qwq-32b/tokenizer.json`` is Qwen2.5's byte-level BPE (151,643 entries)
plus QwQ-32B's 26 added tokens up to ``<think>`` 151667 / ``</think>`` 151668, rebuilt by
``scripts/build_qwq_tokenizer.py`` from ``vocab.json`` and ``merges.txt`` (provenance in that
folder's README.md) and checked against llama.cpp's 46 Qwen2 test vectors. It is loaded as a
plain ``PreTrainedTokenizerFast``, not through ``AutoTokenizer``, so the saved pre-tokenizer
is used exactly as built; no network is touched.

>>> count_tokens(["Hello, world!", ""]).tolist()  # doctest: +SKIP
[4, 0]
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from qwqlab.paths import data_dir

#: QwQ-32B's thinking tags and their ids (not special: they survive skip_special_tokens).
THINK_OPEN_ID, THINK_CLOSE_ID = 151667, 151668


def qwq_tokenizer_dir():
    """The folder holding the bundled QwQ-32B tokenizer."""
    return data_dir() / "tokenizers" / "qwq-32b"


@lru_cache(maxsize=1)
def qwq_tokenizer():
    """QwQ-32B's tokenizer as a ``transformers.PreTrainedTokenizerFast``, from the bundled file.

    Loaded once per process (about 1 s) and shared: treat it as read-only.
    """
    from transformers import PreTrainedTokenizerFast

    folder = qwq_tokenizer_dir()
    if not (folder / "tokenizer.json").exists():
        raise FileNotFoundError(f"{folder / 'tokenizer.json'} is missing; rebuild it with "
                                "`python scripts/build_qwq_tokenizer.py`")
    return PreTrainedTokenizerFast.from_pretrained(str(folder), local_files_only=True)


def count_tokens(texts) -> np.ndarray:
    """Number of QwQ-32B tokens in each text (no special tokens added; ``None`` counts 0).

    The one token counter of the package (``qwqlab.lengths.count_tokens``) with QwQ's tokenizer.
    """
    from qwqlab.lengths import count_tokens as _count

    return _count(texts, tokenizer=qwq_tokenizer())
