"""Issue 22's hostile settings: NaN knobs and experiment files that exhausted memory or failed raw.

Every one must be refused at load time as a ``ConfigError`` (a ``ValueError``) whose one line
names the file, never accepted (NaN passes every ``<`` range check) and never a raw
``RecursionError``, ``UnicodeDecodeError`` or ``TypeError``.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import fields

import pytest

from qwqlab.config import ConfigError, check_fields, load_sample_config, load_train_config
from qwqlab.grpo import GRPOConfig
from qwqlab.sandbox import SandboxConfig

FLOAT_KNOBS = [f.name for f in fields(GRPOConfig) if "float" in str(f.type)]


def test_every_float_knob_is_found():
    assert {"max_grad_norm", "clip_high", "scale_eps", "temperature", "top_p", "learning_rate"} <= set(FLOAT_KNOBS)


@pytest.mark.parametrize("name", FLOAT_KNOBS)
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_no_float_knob_takes_nan_or_inf(name, value):
    with pytest.raises(ValueError, match=f"GRPOConfig: {name} must be a finite number"):
        GRPOConfig(**{name: value})


def test_types_are_checked_too():
    with pytest.raises(ValueError, match="steps must be an integer"):
        GRPOConfig(steps="twenty")
    with pytest.raises(ValueError, match="seed must be an integer"):
        GRPOConfig(seed=2 ** 64)
    with pytest.raises(ValueError, match="timeout_s must be a finite number"):
        SandboxConfig(timeout_s=math.nan)
    check_fields(GRPOConfig(temperature=1, max_grad_norm=None))  # an int is a float; None where allowed


def _write(tmp_path, name, text: str | bytes):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def _refused(loader, path, match):
    start = time.perf_counter()
    with pytest.raises(ConfigError) as e:
        loader(path)
    msg = str(e.value)
    assert str(path) in msg and "\n" not in msg, msg
    assert __import__("re").search(match, msg), msg
    assert time.perf_counter() - start < 5  # refused, not expanded
    return msg


def test_nan_through_json_and_yaml_is_refused(tmp_path):
    _refused(load_train_config, _write(tmp_path, "t.json", json.dumps({"grpo": {"max_grad_norm": math.nan}})),
             "max_grad_norm must be a finite number")
    _refused(load_train_config, _write(tmp_path, "t.yaml", "grpo: {temperature: .nan}\n"),
             "temperature must be a finite number")
    _refused(load_sample_config, _write(tmp_path, "s.yaml", "sampling: {temperature: .nan}\n"),
             "sampling.temperature must be a finite number")


BILLION_LAUGHS = "a: &a [1,1,1,1,1,1,1,1,1]\n" + "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi")) + "sampling: {seed: *i}\n"


@pytest.mark.parametrize("name, text, loader, match", [
    ("laughs.yaml", BILLION_LAUGHS, load_sample_config, "aliases"),
    ("deep.yaml", "sampling: " + "[" * 100_000, load_sample_config, "nested too deeply|not valid"),
    ("deep.json", '{"sampling": ' + "[" * 100_000 + "]" * 100_000 + "}", load_sample_config, "nested too deeply"),
    ("bad.yaml", b"model: qwq-nano\ntask: \xff\xfe\n", load_sample_config, "not UTF-8"),
    ("r.yaml", "rewards: 5\n", load_train_config, "rewards must be a list"),
    ("r2.yaml", "rewards: [{name: cosine, max_len: -3}]\n", load_train_config, "max_len"),
    ("w.yaml", "rewards: {accuracy: lots}\n", load_train_config, "weight must be a finite number"),
    ("typo.yaml", "task: arithmetic\ntask_args: {splt: train}\n", load_train_config, "splt"),
    ("typo2.yaml", "task_args: {split: tarin}\n", load_sample_config, "tarin"),
    ("n.yaml", "num_problems: twenty\n", load_sample_config, "num_problems must be an integer"),
    ("seed.yaml", "sampling: {seed: [1, 2]}\n", load_sample_config, "sampling.seed must be an integer"),
    ("out.yaml", "out: ../../../../elsewhere/r.jsonl\n", load_sample_config, "outside the working folder"),
    ("out2.yaml", "out: ../../../../elsewhere\n", load_train_config, "outside the working folder"),
    ("bits.yaml", "bits: 3\n", load_train_config, "bits must be 4, 8"),
])
def test_hostile_files_are_refused_with_one_line(tmp_path, monkeypatch, name, text, loader, match):
    monkeypatch.chdir(tmp_path)
    _refused(loader, _write(tmp_path, name, text), match)


def test_files_inside_the_working_folder_still_load(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_sample_config(_write(tmp_path, "ok.yaml", "out: runs/../runs/r.jsonl\nsampling: {seed: 3}\n"))
    assert cfg.out == "runs/../runs/r.jsonl" and cfg.sampling == {"seed": 3}
    cfg = load_train_config(_write(tmp_path, "ok.json", json.dumps({"out": str(tmp_path.parent / "abs"),
                                                                    "rewards": {"accuracy": 1}})))
    assert cfg.grpo.reward_weights == [1.0]
