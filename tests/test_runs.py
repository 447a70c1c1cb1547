"""qwqlab.runs: checkpoints on their own, and the one reader of recorded runs (``find_recorded_runs``)."""
import json

import pandas as pd
import pytest
import torch
from synthetic import synthetic_rollouts

from qwqlab import lengths
from qwqlab.grpo import GRPOConfig
from qwqlab.paths import nano_dir
from qwqlab.runs import (CheckpointError, check_resumable, collect_rollouts, find_recorded_runs, latest_checkpoint,
                         load_checkpoint, runs_dir, save_checkpoint, write_log)

needs_nano = pytest.mark.skipif(not (nano_dir() / "config.json").exists(),
                                reason="the qwq-nano checkpoint is not in data/models")


# ----------------------------------------------------------------------------- checkpoints

def test_a_checkpoint_restores_weights_optimizer_and_history_exactly(fake, tmp_path):
    model, _ = fake
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    model(torch.tensor([[1, 2, 3]])).logits.sum().backward()
    optimizer.step()
    history = [{"step": 1, "loss": 0.5}, {"step": 2, "loss": 0.25}]
    path = save_checkpoint(tmp_path, 2, model, optimizer, history, GRPOConfig(), run={"run_id": "r", "settings": {}})
    assert path.name == "step-000002" and not list(tmp_path.glob("*.tmp"))  # written whole, then renamed
    saved = {n: p.detach().clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    fresh = torch.optim.AdamW(model.parameters(), lr=0.01)
    step, restored = load_checkpoint(path, model, fresh)
    assert step == 2 and restored == history
    assert all(torch.equal(p, saved[n]) for n, p in model.named_parameters())
    assert fresh.state_dict()["state"][0]["exp_avg"].equal(optimizer.state_dict()["state"][0]["exp_avg"])


def test_rotation_and_latest_see_only_their_own_run(fake, tmp_path):
    model, _ = fake
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    old = {"run_id": "old", "settings": {}}
    new = {"run_id": "new", "settings": {}}
    for step in (8, 9, 10):
        save_checkpoint(tmp_path, step, model, optimizer, [], GRPOConfig(), keep=2, run=old)
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, model, optimizer, [], GRPOConfig(), keep=2, run=new)
    assert sorted(p.name for p in tmp_path.glob("step-*")) == ["step-000002", "step-000003", "step-000009",
                                                               "step-000010"]
    assert latest_checkpoint(tmp_path, "new").name == "step-000003"
    assert latest_checkpoint(tmp_path, "old").name == "step-000010"
    assert latest_checkpoint(tmp_path / "nothing") is None and latest_checkpoint(None) is None


def test_check_resumable_names_each_difference_and_what_may_change(fake, tmp_path):
    model, _ = fake
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    settings = {"learning_rate": 0.01, "beta": 0.0, "task": "arithmetic", "rewards": ["accuracy"]}
    path = save_checkpoint(tmp_path, 1, model, optimizer, [], GRPOConfig(), run={"run_id": "r1", "settings": settings})
    assert check_resumable(path, dict(settings)) == "r1"
    with pytest.raises(CheckpointError, match=r"learning_rate: 0\.01 -> 0\.5; beta: 0\.0 -> 0\.1.*\(Only steps, log_file may"):
        check_resumable(path, {**settings, "learning_rate": 0.5, "beta": 0.1}, may_change=("steps", "log_file"))


def test_write_log_appends_json_lines_or_rewrites_a_csv(tmp_path):
    rows = [{"step": 1, "loss": 0.5}, {"step": 2, "loss": 0.25}]
    write_log(tmp_path / "log.jsonl", rows[:1])
    write_log(tmp_path / "log.jsonl", rows, append_row=rows[1])
    assert [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()] == rows
    write_log(tmp_path / "sub" / "log.csv", rows)
    assert pd.read_csv(tmp_path / "sub" / "log.csv").to_dict("records") == rows
    write_log(None, rows)  # no log file: nothing to do


# ----------------------------------------------------------------------------- recorded runs

def test_find_recorded_runs_sorts_what_it_finds(tmp_path):
    assert find_recorded_runs(tmp_path / "missing").describe().startswith("no recorded runs")
    (tmp_path / "exp").mkdir()
    synthetic_rollouts(20).to_parquet(tmp_path / "exp" / "after_rollouts.parquet")
    pd.DataFrame({"step": [1, 2], "think_tokens_mean": [3, 4]}).to_csv(tmp_path / "exp" / "log.csv", index=False)
    (tmp_path / "exp" / "half.jsonl").write_text('{"step": 1, "think')
    ckpt = tmp_path / "exp" / "ckpts" / "step-000010"
    ckpt.mkdir(parents=True)
    (ckpt / "state.pt").write_bytes(b"")
    (ckpt / "history.jsonl").write_text('{"step": 1, "think_tokens_mean": 3}\n')
    found = find_recorded_runs(tmp_path)
    assert found.summary is None
    assert list(found.rollouts) == ["exp/after_rollouts"]
    assert list(found.logs) == ["exp/log"]  # the checkpoint's own history is not a separate run
    assert found.checkpoints == {"exp/ckpts": ckpt}
    assert "exp/half" in found.unreadable
    assert "skipped" in found.describe()


def test_a_summary_names_its_logs_by_run_whatever_their_columns(tmp_path):
    """The one reader of recorded runs: notebook 04's summary.json view and notebook 05's logs
    come from the same call (there were two readers, ``grpo.load_runs`` and this one)."""
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "log.jsonl").write_text('{"step": 1, "reward_mean": 0.5}\n')  # no length column
    (tmp_path / "summary.json").write_text(json.dumps({"runs": {"a": {"log": "a/log.jsonl", "steps": 1}}}))
    found = find_recorded_runs(tmp_path)
    assert found.summary == {"runs": {"a": {"log": "a/log.jsonl", "steps": 1}}}
    assert list(found.logs) == ["a"] and found.logs["a"]["reward_mean"].tolist() == [0.5]


def test_the_bundled_recorded_runs_read_as_notebook_04_shows_them():
    found = find_recorded_runs()
    assert found.folder == runs_dir()
    assert set(found.logs) == set(found.summary["runs"]) == {"correctness", "length_penalty", "format", "high_lr"}
    for name, run in found.summary["runs"].items():
        lines = (runs_dir() / run["log"]).read_text().splitlines()
        assert len(found.logs[name]) == len(lines)  # every step, read from the file the summary names


def test_collect_rollouts_prefers_recorded_tables_before_first(tmp_path):
    synthetic_rollouts(30, seed=1).to_parquet(tmp_path / "z_after.parquet")
    synthetic_rollouts(20, seed=2).to_parquet(tmp_path / "before.parquet")
    df = collect_rollouts(find_recorded_runs(tmp_path))
    assert df["run"].unique().tolist() == ["before", "z_after"]
    assert len(df) == 50


@needs_nano
def test_collect_rollouts_samples_qwq_nano_when_nothing_is_recorded_and_repeats_itself(tmp_path):
    from qwqlab.tasks import ArithmeticTask

    kw = dict(task=ArithmeticTask(split="test"), num_problems=4, num_generations=3, max_new_tokens=48, seed=5,
              progress=False)  # tiny: about a second of sampling
    a = collect_rollouts(find_recorded_runs(tmp_path), **kw)
    b = collect_rollouts(find_recorded_runs(tmp_path), **kw)
    pd.testing.assert_frame_equal(a, b)
    assert a["run"].unique().tolist() == ["qwq-nano (before RL)"]
    assert len(a) == 12 and set(a["sample_index"]) == {0, 1, 2}
    assert (a["think_tokens"] + a["answer_tokens"] <= a["completion_tokens"] + 2).all()
    assert a["is_truncated"].eq(a["finish_reason"].eq("length")).all()
    lengths.analyze(a)  # the analyses accept the sampled table as it is
