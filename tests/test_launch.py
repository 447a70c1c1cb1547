"""qwqlab train CONFIG: experiment files, the lab's loop, and TRL's GRPOTrainer on two processes."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from qwqlab.config import ConfigError, load_train_config

REPO = Path(__file__).resolve().parent.parent


def _write(tmp_path, text, name="exp.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_train_config_reads_rewards_weights_and_grpo_knobs(tmp_path):
    cfg = load_train_config(_write(tmp_path, """
model: qwq-nano
rewards:
  - {name: accuracy, weight: 1.0}
  - {name: kimi_length, weight: 2.0, num_generations: 4}
grpo: {steps: 3, num_generations: 4, estimator: dr_grpo}
out: somewhere
"""))
    assert (cfg.grpo.steps, cfg.grpo.num_generations, cfg.grpo.estimator) == (3, 4, "dr_grpo")
    assert cfg.grpo.reward_weights == [1.0, 2.0]
    funcs, weights = cfg.reward_funcs()
    assert len(funcs) == 2 and weights == [1.0, 2.0]
    assert funcs[1](prompts=["p"] * 4, completions=["a", "bb", "ccc", "dddd"],
                    answer=["1"] * 4) is not None  # the factory got num_generations=4


def test_train_config_formats_agree(tmp_path):
    y = load_train_config(_write(tmp_path, "rewards: {accuracy: 1.0, format: 0.5}\ngrpo: {steps: 2}\n"))
    j = load_train_config(_write(tmp_path, json.dumps({"rewards": {"accuracy": 1.0, "format": 0.5},
                                                       "grpo": {"steps": 2}}), "exp.json"))
    t = load_train_config(_write(tmp_path, "[rewards]\naccuracy = 1.0\nformat = 0.5\n[grpo]\nsteps = 2\n",
                                 "exp.toml"))
    assert y == j == t and y.grpo.reward_weights == [1.0, 0.5]


@pytest.mark.parametrize("text, named", [
    ("modle: qwq-nano\n", "modle"),
    ("grpo: {stpes: 3, lr: 1}\n", "stpes"),
    ("rewards: [{name: cosine, weight: 1, max_length: 9}]\n", "max_length"),
    ("rewards: [{name: accurasy}]\n", "accurasy"),
    ("task: arithmetc\n", "arithmetc"),
])
def test_unknown_keys_are_refused_by_name(tmp_path, text, named):
    with pytest.raises(ConfigError, match=named):
        load_train_config(_write(tmp_path, text))


def test_grpo_config_checks_still_apply(tmp_path):
    with pytest.raises(ConfigError, match="at least 2 generations"):
        load_train_config(_write(tmp_path, "grpo: {num_generations: 1}\n"))


def test_trl_row_has_train_grpo_columns():
    from qwqlab.launch import LOG_COLUMNS, trl_row

    row = trl_row({"reward": 0.5, "completions/mean_length": 40.0, "rewards/format_reward/mean": 0.25,
                   "rewards/arithmetic_correctness/mean": 0.75, "loss": 0.1}, 3, "arithmetic_correctness", 9.0, 2.0)
    assert list(row)[:len(LOG_COLUMNS)] == list(LOG_COLUMNS)
    assert (row["step"], row["reward_mean"], row["accuracy"], row["completion_tokens_mean"]) == (3, 0.5, 0.75, 40.0)
    assert row["reward/format_reward"] == 0.25 and "reward/arithmetic_correctness" not in row


def test_train_help():
    out = subprocess.run([sys.executable, "-m", "qwqlab", "train", "--help"], capture_output=True, text=True,
                         timeout=120, cwd=REPO)
    assert out.returncode == 0 and "--engine" in out.stdout and "torchrun" in out.stdout


TINY = """model: qwq-nano
rewards: [{name: accuracy, weight: 1.0}, {name: format, weight: 0.5}]
# Tiny on purpose (2 prompts x 4 samples, 48 new tokens, 2 steps): this checks the launch, not learning;
# a high learning rate so that two steps visibly move the weights.
grpo: {steps: 2, num_prompts: 2, num_generations: 4, max_new_tokens: 48, learning_rate: 1.0e-3, progress: false}
out: OUT
"""


@pytest.mark.slow  # about 10 s: qwq-nano, 2 steps of qwqlab's loop
def test_train_engine_qwqlab_writes_train_grpo_log(tmp_path):
    from qwqlab.launch import LOG_COLUMNS, PER_REWARD

    cfg = _write(tmp_path, TINY.replace("OUT", str(tmp_path / "run")))
    proc = subprocess.run([sys.executable, "-m", "qwqlab", "train", str(cfg)], capture_output=True, text=True,
                          timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "run/log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    # The TRL engine's rows (LOG_COLUMNS) are the lab loop's columns: one reader for both.
    assert [k for k in rows[0] if not k.startswith(PER_REWARD)] == list(LOG_COLUMNS)
    per_reward = sorted(k.split("/", 1)[1] for k in rows[0] if k.startswith("reward/"))
    assert len(per_reward) == 2 and all(f"unjudged/{name}" in rows[0] for name in per_reward)  # mean, unjudged count


@pytest.mark.slow  # about 30 s on 2 CPU cores: two processes each load TRL and qwq-nano
def test_trl_on_two_processes_steps_both_ranks_with_identical_weights(tmp_path):
    pytest.importorskip("trl")
    from qwqlab.launch import LOG_COLUMNS

    out = tmp_path / "run"
    cfg = _write(tmp_path, TINY.replace("OUT", str(out)))
    proc = subprocess.run([sys.executable, "-m", "qwqlab", "train", str(cfg), "--engine", "trl",
                           "--nproc-per-node", "2", "--master-port", "29531"],
                          capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((out / f"summary-rank{r}.json").read_text()) for r in (0, 1)]
    assert [(s["rank"], s["world_size"], s["steps"]) for s in ranks] == [(0, 2, 2), (1, 2, 2)]
    digests = {(out / f"weights-rank{r}.sha256").read_text().strip() for r in (0, 1)}
    assert len(digests) == 1 and digests == {s["weights_sha256"] for s in ranks}
    assert ranks[0]["weights_sha256"] != ranks[0]["initial_weights_sha256"]  # training moved the weights
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        assert list(r)[:len(LOG_COLUMNS)] == list(LOG_COLUMNS)
        assert 0 <= r["accuracy"] <= 1 and r["completion_tokens_mean"] > 0 and r["seconds"] > 0
        assert r["reward_mean"] == pytest.approx(r["reward/accuracy_reward"] + 0.5 * r["reward/format_reward"],
                                                 abs=1e-5)
