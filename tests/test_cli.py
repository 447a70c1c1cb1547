"""qwqlab sample CONFIG: the rollout table from the command line, sharded, on hf and on a vLLM stand-in."""
import json
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

from qwqlab.cli import main
from qwqlab.config import ConfigError, load_sample_config
from qwqlab.launch import parse_shard, read_shards, shard_path

REPO = Path(__file__).resolve().parent.parent
NANO = REPO / "data" / "models" / "qwq-nano"
needs_nano = pytest.mark.skipif(not (NANO / "config.json").exists(), reason="the bundled qwq-nano is missing")


def _config(tmp_path, out="rollouts.jsonl", extra=""):
    path = tmp_path / f"{Path(out).stem}.yaml"
    # Tiny on purpose: 5 problems x 2 samples x 64 tokens (an odd count, so the shards differ in size).
    path.write_text(f"""model: qwq-nano
task: arithmetic
num_problems: 5
sampling: {{num_generations: 2, max_new_tokens: 64, seed: 3, batch_size: 4}}
out: {tmp_path / out}
{extra}""")
    return path


def test_shard_parsing_and_paths(tmp_path):
    assert parse_shard("1/4") == (1, 4) and parse_shard(None) == (0, 1)
    for bad in ("4/4", "-1/2", "1-4", "a/b"):
        with pytest.raises(ValueError, match="--shard"):
            parse_shard(bad)
    assert shard_path(tmp_path / "r.jsonl", 1, 4).name == "r.shard-1-of-4.jsonl"
    assert shard_path(tmp_path / "r.jsonl", 0, 1).name == "r.jsonl"


def test_sample_config_refuses_unknown_keys(tmp_path):
    with pytest.raises(ConfigError, match="temprature"):
        load_sample_config(_config(tmp_path, extra="sampling: {temprature: 0.6}\n"))
    with pytest.raises(ConfigError, match="num_problem"):
        load_sample_config(_config(tmp_path, extra="num_problem: 3\n"))
    with pytest.raises(ConfigError, match=r"\.jsonl or \.parquet"):
        load_sample_config(_config(tmp_path, out="r.csv"))


def test_sample_help():
    out = subprocess.run([sys.executable, "-m", "qwqlab", "sample", "--help"], capture_output=True, text=True,
                         timeout=120, cwd=REPO)
    assert out.returncode == 0 and "--shard" in out.stdout and "vllm" in out.stdout


@needs_nano
def test_shards_on_hf_are_the_unsharded_table(tmp_path, capsys):
    import pandas as pd

    cfg = _config(tmp_path)
    for shard in ("0/2", "1/2"):
        assert main(["sample", str(cfg), "--shard", shard, "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out.split("\n}\n")[-2] + "\n}")
    assert report["shard"] == "1/2" and report["problems"] == 2  # problems 1 and 3 of 0..4
    sharded = read_shards(tmp_path / "rollouts.jsonl")
    assert len(sharded) == 10 and sharded["problem_id"].nunique() == 5
    assert sharded["correct"].mean() > 0  # qwq-nano adds; a broken prompt or grader would score 0
    # Sampling is keyed per (seed, problem, sample), so the shards are one run's table, row for row.
    assert main(["sample", str(_config(tmp_path, out="whole.jsonl")), "--quiet"]) == 0
    whole = read_shards(tmp_path / "whole.jsonl")
    cols = ["problem_id", "sample_index", "completion", "completion_tokens", "correct"]
    pd.testing.assert_frame_equal(sharded[cols], whole[cols])
    # A second run of a shard without --resume refuses to overwrite; with it, nothing is redone.
    with pytest.raises(FileExistsError):
        main(["sample", str(cfg), "--shard", "0/2", "--quiet"])
    assert main(["sample", str(cfg), "--shard", "0/2", "--quiet", "--resume"]) == 0
    assert len(read_shards(tmp_path / "rollouts.jsonl")) == 10


def test_read_shards_says_which_shard_is_missing(tmp_path):
    row = {"problem_id": "p", "sample_index": 0, "completion": "x"}
    (tmp_path / "r.shard-0-of-3.jsonl").write_text(json.dumps(row) + "\n")
    (tmp_path / "r.shard-2-of-3.jsonl").write_text(json.dumps({**row, "problem_id": "q"}) + "\n")
    with pytest.raises(FileNotFoundError, match=r"\[1\] of 3"):
        read_shards(tmp_path / "r.jsonl")
    (tmp_path / "r.shard-1-of-3.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(ValueError, match="overlap"):
        read_shards(tmp_path / "r.jsonl")


# ----------------------------------------------------------------------------- vLLM, by a stand-in

def _stand_in_vllm(monkeypatch, tokenizer, made):
    """A module that behaves like vllm for LLM.generate: RequestOutput.outputs[i] with text, token_ids
    and finish_reason, n samples per prompt from SamplingParams(n=...). It answers each sum right
    on even samples and wrong on odd ones, and runs out of tokens on every third sample."""
    mod = types.ModuleType("vllm")

    class SamplingParams:
        def __init__(self, n=1, temperature=1.0, top_p=1.0, top_k=-1, max_tokens=16, seed=None,
                     stop_token_ids=None):
            self.n, self.temperature, self.top_p, self.top_k = n, temperature, top_p, top_k
            self.max_tokens, self.seed, self.stop_token_ids = max_tokens, seed, stop_token_ids

    class LLM:
        def __init__(self, model, seed=0, **engine_args):
            made.append({"model": model, "seed": seed, **engine_args})

        def get_tokenizer(self):
            return tokenizer

        def generate(self, prompts, params, use_tqdm=True):
            end = tokenizer.convert_tokens_to_ids("<|im_end|>")
            outs = []
            for prompt, p in zip(prompts, params):
                a, b = map(int, re.findall(r"What is (\d+)\+(\d+)\?", prompt)[-1])
                comps = []
                for j in range(p.n):
                    text = f"{a} plus {b}</think>\n\nThe answer is \\boxed{{{a + b + (j % 2)}}}."
                    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
                    if j % 3 == 2:
                        ids, reason = (ids * 20)[:p.max_tokens], "length"
                    else:
                        ids, reason = ids + [end], "stop"
                    comps.append(types.SimpleNamespace(text=tokenizer.decode(ids), token_ids=ids,
                                                       finish_reason=reason))
                outs.append(types.SimpleNamespace(prompt=prompt, outputs=comps))
            return outs

    mod.SamplingParams, mod.LLM = SamplingParams, LLM
    monkeypatch.setitem(sys.modules, "vllm", mod)


@needs_nano
def test_vllm_backend_through_the_cli_with_a_stand_in(monkeypatch, tmp_path, nano, capsys):
    _, tok = nano
    made = []
    _stand_in_vllm(monkeypatch, tok, made)
    cfg = _config(tmp_path, extra="vllm: {tensor_parallel_size: 2, gpu_memory_utilization: 0.9}\n")
    cfg.write_text(cfg.read_text().replace("num_generations: 2", "num_generations: 4"))
    for shard in ("0/2", "1/2"):
        assert main(["sample", str(cfg), "--backend", "vllm", "--shard", shard, "--quiet"]) == 0
    assert [m["tensor_parallel_size"] for m in made] == [2, 2] and made[0]["seed"] == 3
    assert made[0]["model"] == str(NANO)  # "qwq-nano" resolved to the bundled folder
    df = read_shards(tmp_path / "rollouts.jsonl")
    assert len(df) == 20 and set(df["backend"]) == {"vllm"} and set(df["model"]) == {"qwq-nano"}
    done = df[df.finish_reason == "stop"]
    assert done.groupby(done.sample_index % 2)["correct"].mean().to_dict() == {0: 1.0, 1: 0.0}
    cut = df[df.sample_index % 3 == 2]
    assert cut["is_truncated"].all() and (cut["completion_tokens"] == 64).all()
    assert (done["answer_tokens"] > 0).all() and (done["think_tokens"] > 0).all()


def test_vllm_backend_missing_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(ImportError, match="pip install 'qwqlab\\[vllm\\]'"):
        main(["sample", str(_config(tmp_path)), "--backend", "vllm", "--quiet"])
