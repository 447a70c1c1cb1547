"""The bundled MiP-Overthinking traces (issue 11): one call loads them; counts checked by plain Python.

Source: ../shared/data/mip-overthinking/SOURCE.md (Fan et al. 2025, MIT), bundled by
scripts/bundle_mip_traces.py into data/traces/mip_math52.jsonl.gz.
"""
from __future__ import annotations

import gzip
import json
import re

import pytest
from tokenizers import Tokenizer

from qwqlab.paths import data_dir
from qwqlab.traces import MODELS, SPLITS, load_mip_traces, thinking_efficiency


@pytest.fixture(scope="module")
def traces():
    return load_mip_traces()


@pytest.fixture(scope="module")
def raw_rows():
    with gzip.open(data_dir() / "traces" / "mip_math52.jsonl.gz", "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def qwq_bpe():
    """QwQ-32B's tokenizer read straight from the bundled file with the `tokenizers` library."""
    return Tokenizer.from_file(str(data_dir() / "tokenizers" / "qwq-32b" / "tokenizer.json"))


def test_one_call_loads_52_problems_per_model_and_split(traces):
    sizes = traces.groupby(["model", "split"], observed=True).size()
    assert len(traces) == 416 and set(sizes) == {52}
    assert list(traces["model"].cat.categories) == list(MODELS) and list(traces["split"].cat.categories) == list(SPLITS)
    for (model, split), group in traces.groupby(["model", "split"], observed=True):  # the same 52 problems each
        assert sorted(group["problem_index"]) == list(range(52)), (model, split)
    assert set(traces["judge_label"].dropna().unique()) <= {0, 1, 2}


def test_token_lengths_equal_a_plain_count_in_qwq_tokens(traces, raw_rows, qwq_bpe):
    for row in raw_rows[::7]:  # every 7th row: 60 rows, each model and split
        got = traces[(traces["model"] == row["model"]) & (traces["split"] == row["split"])
                     & (traces["problem_index"] == row["problem_index"])].iloc[0]
        assert got["think_tokens"] == len(qwq_bpe.encode(row["thinking"], add_special_tokens=False).ids)
        assert got["answer_tokens"] == len(qwq_bpe.encode(row["answer_text"], add_special_tokens=False).ids)


def test_marker_counts_equal_a_plain_count(traces):
    for word in ("wait", "alternatively", "hmm"):
        plain = [len(re.findall(rf"\b{word}\b", t, flags=re.IGNORECASE)) for t in traces["thinking"]]
        assert traces[word].tolist() == plain, word
    qwq = traces[traces["model"] == "QwQ-32B"]
    by_split = qwq.groupby("split", observed=True)["alternatively"].sum()
    assert by_split["missing_premise"] > 2 * by_split["normal"]  # the "more than doubles"


def test_first_correct_answer_at_a_known_token(qwq_bpe):
    """Hand-checked: the thinking states 47 first at the end of "12+35 = 47"; everything after is reflection."""
    head = "Let me add the columns. 12+35 = 47"
    thinking = head + ". Wait, let me check again: 5+2 is 7 and 1+3 is 4, so 47 indeed."
    row = thinking_efficiency([thinking], ["47"]).iloc[0]
    assert row["first_correct_found"] and row["first_correct_answer"] == "47"
    assert row["first_correct_char"] == len(head)
    n_head = len(qwq_bpe.encode(head, add_special_tokens=False).ids)
    n_all = len(qwq_bpe.encode(thinking, add_special_tokens=False).ids)
    assert (row["first_correct_tokens"], row["reasoning_tokens"]) == (n_head, n_all)
    assert row["reflection_tokens"] == n_all - n_head and row["token_efficiency"] == pytest.approx(n_head / n_all)
    # a wrong value stated first does not count; no correct value at all gives ThinkBench's zeros
    late = thinking_efficiency(["maybe 45? no: 12+35 = 47"], ["47"]).iloc[0]
    assert late["first_correct_char"] == len("maybe 45? no: 12+35 = 47")
    none = thinking_efficiency(["I get 45"], ["47"]).iloc[0]
    assert not none["first_correct_found"] and none["first_correct_tokens"] == 0 and none["token_efficiency"] == 0
