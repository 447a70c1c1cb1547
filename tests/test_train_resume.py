"""qwqlab train saves and resumes on both engines: a run killed between steps (SIGKILL, two
processes) continues from its last checkpoint to the same steps, log and weights as a run
that was never interrupted; a resume of another experiment is refused; a log is never deleted."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from qwqlab.config import load_train_config

REPO = Path(__file__).resolve().parent.parent

# Tiny on purpose (qwq-nano, 2 prompts x 4 samples, 48 new tokens, 3 steps, checkpoint every step):
# this checks saving and resuming, which any batch exercises; three steps leave a checkpoint to
# resume from and steps after it. lr is high so that each step visibly moves the weights.
TINY = """model: qwq-nano
rewards: [{{name: accuracy, weight: 1.0}}, {{name: format, weight: 0.5}}]
grpo: {{steps: {steps}, num_prompts: 2, num_generations: 4, max_new_tokens: 48, learning_rate: {lr},
        micro_batch_size: 2, checkpoint_every: 1, progress: false}}
out: {out}
"""


def _config(tmp_path, name, steps=3, lr=1.0e-3):
    path = tmp_path / f"{name}.yaml"
    path.write_text(TINY.format(steps=steps, lr=lr, out=tmp_path / name))
    return path


def _cmd(config, *extra, port):
    return [sys.executable, "-m", "qwqlab", "train", str(config), "--engine", "trl", "--nproc-per-node", "2",
            "--master-port", str(port), *extra]


def _lines(out):
    return (out / "log.jsonl").read_text().splitlines()


def _rows(out):
    return [json.loads(line) for line in _lines(out)]


def _kill_tree(pid):
    """SIGKILL a process and every process under it, the way a node's scheduler ends a job."""
    import psutil

    try:
        procs = psutil.Process(pid).children(recursive=True) + [psutil.Process(pid)]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        try:
            os.kill(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _weights(checkpoint):
    from safetensors.torch import load_file
    return load_file(str(checkpoint / "model.safetensors"))


@pytest.mark.slow  # about 2 min on 2 CPU cores: three 2-process TRL launches of qwq-nano
def test_trl_run_killed_between_steps_resumes_to_the_uninterrupted_result(tmp_path):
    pytest.importorskip("trl")
    from qwqlab.runs import latest_trainer_checkpoint

    whole = tmp_path / "whole"
    proc = subprocess.run(_cmd(_config(tmp_path, "whole"), port=29641), capture_output=True, text=True,
                          timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]

    out = tmp_path / "killed"
    config = _config(tmp_path, "killed")
    run = subprocess.Popen(_cmd(config, port=29642), cwd=REPO, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while latest_trainer_checkpoint(out / "trl", 2) is None:
            assert run.poll() is None and time.monotonic() < deadline, "the run ended before its first checkpoint"
            time.sleep(0.05)
    finally:
        _kill_tree(run.pid)  # torchrun's ranks run in sessions of their own: each is killed by its id
        run.wait()
    assert not (out / "trl" / "checkpoint-3").exists(), "the kill came too late to test a resume"
    killed_rows = _lines(out)
    assert 1 <= len(killed_rows) < 3

    # Without --resume the folder is refused, and nothing in it is deleted.
    from qwqlab.launch import train
    with pytest.raises(RuntimeError, match="--resume"):  # checked before any model loads
        train(load_train_config(config), engine="trl")
    assert _lines(out) == killed_rows

    resumed_from = _weights(latest_trainer_checkpoint(out / "trl", 2))  # rotation may delete it later
    proc = subprocess.run(_cmd(config, "--resume", port=29644), capture_output=True, text=True, timeout=600,
                          cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows, want = _rows(out), _rows(whole)
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert _lines(out)[0] == killed_rows[0]  # the rows before the checkpoint were kept as they were
    for r, w in zip(rows, want):  # same rollouts: the resumed run restored each rank's RNG
        assert r["completion_tokens_mean"] == w["completion_tokens_mean"]
        assert r["reward_mean"] == pytest.approx(w["reward_mean"], abs=1e-6)
    summaries = [json.loads((out / f"summary-rank{r}.json").read_text()) for r in (0, 1)]
    assert [s["steps"] for s in summaries] == [3, 3]
    final, reference = _weights(out / "trl" / "checkpoint-3"), _weights(whole / "trl" / "checkpoint-3")
    assert final.keys() == reference.keys()
    for name in final:  # fp32 weights after 3 AdamW steps; the kill changes no layout, only the process
        torch.testing.assert_close(final[name], reference[name], rtol=1e-5, atol=1e-6)
    assert any(not torch.equal(final[n], resumed_from[n]) for n in final)  # the resumed steps trained


@pytest.mark.slow  # about 15 s: qwq-nano, 2 + 1 steps of qwqlab's loop
def test_qwqlab_engine_resumes_and_refuses_another_experiment(tmp_path):
    from qwqlab.launch import train
    from qwqlab.runs import CheckpointError

    train(load_train_config(_config(tmp_path, "run", steps=2)), engine="qwqlab")
    out = tmp_path / "run"
    assert [r["step"] for r in _rows(out)] == [1, 2]
    first = _lines(out)
    with pytest.raises(RuntimeError, match="--resume"):  # the folder holds a run
        train(load_train_config(_config(tmp_path, "run", steps=3)), engine="qwqlab")
    with pytest.raises(CheckpointError, match="learning_rate"):  # another objective
        train(load_train_config(_config(tmp_path, "run", steps=3, lr=5e-4)), engine="qwqlab", resume=True)
    changed = tmp_path / "trl.yaml"  # a trl: setting that changes the experiment is refused too; memory knobs are not
    changed.write_text(_config(tmp_path, "run", steps=3).read_text() + "trl: {use_bias_correction_kl: true}\n")
    with pytest.raises(CheckpointError, match="use_bias_correction_kl"):
        train(load_train_config(changed), engine="qwqlab", resume=True)
    with pytest.raises(CheckpointError, match="engine"):  # another engine's checkpoints
        train(load_train_config(_config(tmp_path, "run", steps=3)), engine="trl", resume=True)
    summary = train(load_train_config(_config(tmp_path, "run", steps=3)), engine="qwqlab", resume=True)
    assert summary["steps"] == 3  # train_grpo's log: rows 1-2 from the checkpoint, then step 3
    assert [r["step"] for r in _rows(out)] == [1, 2, 3] and _lines(out)[:2] == first
    assert (out / "checkpoints" / "step-000003" / "state.pt").exists()
