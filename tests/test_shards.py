"""read_shards tells a finished shard from a killed one and refuses shards of different runs, naming the shard."""
import json

import pytest

from qwqlab.launch import expected_path, read_shards

SETTINGS = {"model": "qwq-nano", "weights_fingerprint": "abc", "task": "arithmetic", "backend": "hf",
            "num_generations": 2, "temperature": 0.6, "top_p": 0.95, "top_k": 40, "max_new_tokens": 96, "seed": 0}


def _shard(tmp_path, index, problems, samples=2, expected=None, **changes):
    """Shard ``index`` of 2 with ``samples`` rows per problem; ``expected`` rows noted as qwqlab sample does."""
    path = tmp_path / f"r.shard-{index}-of-2.jsonl"
    rows = [{"problem_id": p, "sample_index": s, "completion": f"{p}-{s}", **SETTINGS, **changes}
            for p in problems for s in range(samples)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    if expected is not None:
        expected_path(path).write_text(json.dumps({"shard": f"{index}/2", "num_problems": 4, "problems": expected,
                                                   "num_generations": 2, "rows": expected * 2}))


def test_complete_shards_of_one_run_read_as_one_table(tmp_path):
    _shard(tmp_path, 0, ["a", "c"], expected=2)
    _shard(tmp_path, 1, ["b", "d"], expected=2)
    df = read_shards(tmp_path / "r.jsonl")
    assert list(df["problem_id"]) == ["a", "a", "b", "b", "c", "c", "d", "d"]


def test_a_shard_killed_between_problems_is_named(tmp_path):
    _shard(tmp_path, 0, ["a", "c"], expected=2)
    _shard(tmp_path, 1, ["b"], expected=2)  # stopped before its second problem: reads as a shorter table otherwise
    with pytest.raises(ValueError, match=r"shard 1/2 \(r.shard-1-of-2.jsonl\) holds 2 of its 4 rows.*--shard 1/2 --resume"):
        read_shards(tmp_path / "r.jsonl")


def test_a_problem_cut_short_is_named(tmp_path):
    _shard(tmp_path, 0, ["a", "c"])
    _shard(tmp_path, 1, ["b"], samples=1)  # no expected file (written before it existed): the samples tell
    with pytest.raises(ValueError, match=r"shard 1/2.*problem 'b' has 1 of its 2 samples"):
        read_shards(tmp_path / "r.jsonl")


@pytest.mark.parametrize("key, value", [("seed", 1), ("model", "other-model"), ("temperature", 1.0)])
def test_shards_of_different_runs_are_refused(tmp_path, key, value):
    _shard(tmp_path, 0, ["a", "c"], expected=2)
    _shard(tmp_path, 1, ["b", "d"], expected=2, **{key: value})
    with pytest.raises(ValueError, match=rf"shard 1/2 .*another run.*{key}"):
        read_shards(tmp_path / "r.jsonl")
