"""Experiment files for ``qwqlab train`` and ``qwqlab sample``: one small YAML, JSON or TOML file.

A training file names the model, the task, the rewards with their weights, and the GRPO
knobs under ``grpo:`` with the same names as ``qwqlab.grpo.GRPOConfig``::

    model: qwq-nano            # or a local folder / hub id
    bits: null                 # 4 or 8: load with bitsandbytes (then grpo.use_lora: true)
    task: arithmetic           # a name in qwqlab.tasks.TASKS
    task_args: {split: train}
    rewards:                   # names in qwqlab.rewards.REWARDS; other keys are the factory's
      - {name: accuracy, weight: 1.0}
      - {name: kimi_length, weight: 2.0, num_generations: 8}
    grpo: {steps: 50, num_prompts: 16, num_generations: 8, learning_rate: 2.0e-4}
    trl: {bf16: true}          # --engine trl only: other fields of trl.GRPOConfig (use_vllm ...)
    accelerate: null           # the Accelerate file it is launched with (`qwqlab plan` reads its ranks)
    out: runs/correctness      # log.jsonl (one row per step) and the weights' digest go here

A sampling file has ``model``, ``task``, ``task_args``, ``num_problems``, ``bits`` and the
settings of ``qwqlab.rollouts.sample`` under ``sampling:``, vLLM's engine arguments
(``tensor_parallel_size``, ...) under ``vllm:``, and ``out`` (a ``.jsonl`` or ``.parquet``
file; with ``--shard I/N`` each shard writes its own file next to it).

Keys that are not known are refused with their names, so a typo never silently falls back
to a default.
"""
from __future__ import annotations

import inspect
import json
from dataclasses import dataclass, field, fields
from pathlib import Path


class ConfigError(ValueError):
    """An experiment file that cannot be used; the message names the file and the key."""


def read_file(path) -> dict:
    """The mapping in a ``.yaml``/``.yml``, ``.json`` or ``.toml`` file."""
    path = Path(path)
    text = path.read_text()
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        import yaml
        data = yaml.safe_load(text)
    elif suffix == ".json":
        data = json.loads(text)
    elif suffix == ".toml":
        import tomllib
        data = tomllib.loads(text)
    else:
        raise ConfigError(f"{path}: use a .yaml, .json or .toml file, not {suffix or 'no suffix'!r}")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the file must hold a mapping of settings, not {type(data).__name__}")
    return data


def _refuse_unknown(where: str, given: dict, known) -> None:
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")


@dataclass
class RewardSpec:
    """One reward of ``qwqlab.rewards.REWARDS`` with its weight and factory parameters."""
    name: str
    weight: float = 1.0
    params: dict = field(default_factory=dict)

    def build(self):
        from qwqlab.rewards import get_reward
        return get_reward(self.name, **self.params)


def _rewards(where: str, raw) -> list[RewardSpec]:
    from qwqlab.rewards import REWARDS

    if raw is None:
        return []
    if isinstance(raw, dict):  # shorthand: {accuracy: 1.0, format: 0.5}
        raw = [{"name": k, "weight": v} for k, v in raw.items()]
    specs = []
    for i, entry in enumerate(raw):
        entry = {"name": entry} if isinstance(entry, str) else dict(entry)
        name = entry.pop("name", None)
        if name not in REWARDS:
            raise ConfigError(f"{where}: rewards[{i}] is {name!r}; known rewards: {sorted(REWARDS)}")
        weight = float(entry.pop("weight", 1.0))
        accepted = inspect.signature(REWARDS[name]).parameters
        _refuse_unknown(f"{where}: rewards[{i}] ({name})", entry, list(accepted) + ["name", "weight"])
        specs.append(RewardSpec(name, weight, entry))
    return specs


@dataclass
class TrainConfig:
    """What ``qwqlab train`` runs: a model, a task, weighted rewards and a ``GRPOConfig``."""
    model: str = "qwq-nano"
    bits: int | None = None
    task: str = "arithmetic"
    task_args: dict = field(default_factory=lambda: {"split": "train"})
    rewards: list = field(default_factory=list)  # RewardSpec; empty = the task's own grader
    grpo: object = None  # qwqlab.grpo.GRPOConfig
    trl: dict = field(default_factory=dict)  # --engine trl only: more trl.GRPOConfig fields (use_vllm, bf16 ...)
    # The Accelerate config file the run is launched with (configs/accelerate/...): its number of
    # processes and DeepSpeed stage are what `qwqlab plan` counts per rank.
    accelerate: str | None = None
    out: str = "runs/train"

    def reward_funcs(self):
        """The reward callables and their weights (the task's grader at weight 1 when none are named)."""
        from qwqlab.rewards import task_reward

        if not self.rewards:
            return [task_reward(self.build_task())], [1.0]
        return [r.build() for r in self.rewards], [r.weight for r in self.rewards]

    def build_task(self):
        from qwqlab.tasks import get_task
        return get_task(self.task, **self.task_args)


def check_trl_keys(where: str, trl_settings: dict) -> None:
    """Refuse ``trl:`` keys that TRL's ``GRPOConfig`` does not have, or that ``grpo:`` already sets."""
    from dataclasses import fields as dc_fields

    import trl

    _refuse_unknown(f"{where}: trl", trl_settings, [f.name for f in dc_fields(trl.GRPOConfig)])
    # What qwqlab.trl_bridge.to_trl_config derives from grpo: (the one place those knobs are set).
    owned = {"learning_rate": "learning_rate", "num_generations": "num_generations",
             "max_completion_length": "max_new_tokens", "temperature": "temperature", "top_p": "top_p",
             "top_k": "top_k", "beta": "beta", "epsilon": "clip_low", "epsilon_high": "clip_high",
             "num_iterations": "num_iterations", "loss_type": "loss_aggregation", "scale_rewards": "estimator",
             "max_steps": "steps", "seed": "seed", "reward_weights": "rewards: weights",
             "max_grad_norm": "max_grad_norm", "weight_decay": "weight_decay", "warmup_steps": "warmup_steps",
             # the micro-batches: one knob, so the global batch stays num_prompts x num_generations
             "per_device_train_batch_size": "micro_batch_size", "gradient_accumulation_steps": "micro_batch_size",
             "steps_per_generation": "micro_batch_size", "generation_batch_size": "micro_batch_size",
             "save_steps": "checkpoint_every", "save_strategy": "checkpoint_every",
             "save_total_limit": "keep_checkpoints"}
    clash = sorted(set(owned) & set(trl_settings))
    if clash:
        named = ", ".join(f"{k} -> grpo.{owned[k]}" for k in clash)
        raise ConfigError(f"{where}: trl: sets {clash}, which come from grpo: (qwqlab's names); set them there "
                          f"({named})")


def load_train_config(path) -> TrainConfig:
    """Read and check a training file (see the module docstring)."""
    from qwqlab.grpo import GRPOConfig
    from qwqlab.tasks import TASKS

    where = str(path)
    raw = read_file(path)
    _refuse_unknown(where, raw, [f.name for f in fields(TrainConfig)])
    if raw.get("task", "arithmetic") not in TASKS:
        raise ConfigError(f"{where}: task {raw['task']!r} is not known; known: {sorted(TASKS)}")
    grpo = dict(raw.pop("grpo", None) or {})
    _refuse_unknown(f"{where}: grpo", grpo, [f.name for f in fields(GRPOConfig)])
    rewards = _rewards(where, raw.pop("rewards", None))
    if rewards and grpo.get("reward_weights") is not None:
        raise ConfigError(f"{where}: give each reward its weight under rewards:, not grpo.reward_weights too")
    if rewards:
        grpo["reward_weights"] = [r.weight for r in rewards]
    try:
        grpo_cfg = GRPOConfig(**grpo)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: {e}") from e
    return TrainConfig(**raw, rewards=rewards, grpo=grpo_cfg)


#: Arguments of ``qwqlab.rollouts.sample`` a sampling file may set under ``sampling:``.
SAMPLING_KEYS = ("num_generations", "temperature", "top_p", "top_k", "max_new_tokens", "seed", "batch_size")


@dataclass
class SampleConfig:
    """What ``qwqlab sample`` runs: ``num_problems`` of a task, ``sampling`` settings, vLLM's engine args."""
    model: str = "qwq-nano"
    bits: int | None = None
    task: str = "arithmetic"
    task_args: dict = field(default_factory=dict)
    num_problems: int = 20
    sampling: dict = field(default_factory=dict)
    vllm: dict = field(default_factory=dict)  # passed to vllm.LLM: tensor_parallel_size, gpu_memory_utilization ...
    out: str = "rollouts.jsonl"

    def build_task(self):
        from qwqlab.tasks import get_task
        return get_task(self.task, **self.task_args)


def load_sample_config(path) -> SampleConfig:
    """Read and check a sampling file (see the module docstring)."""
    from qwqlab.tasks import TASKS

    where = str(path)
    raw = read_file(path)
    _refuse_unknown(where, raw, [f.name for f in fields(SampleConfig)])
    _refuse_unknown(f"{where}: sampling", raw.get("sampling") or {}, SAMPLING_KEYS)
    if raw.get("task", "arithmetic") not in TASKS:
        raise ConfigError(f"{where}: task {raw['task']!r} is not known; known: {sorted(TASKS)}")
    out = str(raw.get("out", "rollouts.jsonl"))
    if not out.endswith((".jsonl", ".parquet")):
        raise ConfigError(f"{where}: out must be a .jsonl or .parquet file, not {out!r}")
    for key in ("task_args", "sampling", "vllm"):  # an empty section in YAML reads as None
        raw[key] = raw.get(key) or {}
    return SampleConfig(**raw)
