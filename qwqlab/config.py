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
    out: runs/correctness      # log.jsonl (one row per step) and the weights' digest go here

A sampling file has ``model``, ``task``, ``task_args``, ``num_problems``, ``bits`` and the
settings of ``qwqlab.rollouts.sample`` under ``sampling:``, vLLM's engine arguments
(``tensor_parallel_size``, ...) under ``vllm:``, an OpenAI-compatible server's settings under
``openai:`` (``qwqlab.backends.ServerSettings``; with ``--backend openai``), and ``out`` (a ``.jsonl`` or ``.parquet``
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
    owned = {"learning_rate", "num_generations", "max_completion_length", "temperature", "top_p", "top_k", "beta",
             "epsilon", "epsilon_high", "num_iterations", "loss_type", "scale_rewards", "max_steps", "seed",
             "reward_weights", "per_device_train_batch_size", "max_grad_norm", "weight_decay", "warmup_steps"}
    clash = sorted(owned & set(trl_settings))
    if clash:
        raise ConfigError(f"{where}: trl: sets {clash}, which come from grpo: (qwqlab's names); set them there")


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
    openai: dict = field(default_factory=dict)  # --backend openai: qwqlab.backends.ServerSettings (base_url ...)
    tokenizer: str | None = None  # --backend openai: the served model's tokenizer (token counts), optional
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
    for key in ("task_args", "sampling", "vllm", "openai"):  # an empty section in YAML reads as None
        raw[key] = raw.get(key) or {}
    _check_server(where, raw["openai"])
    return SampleConfig(**raw)


def _check_server(where: str, server: dict) -> None:
    """An ``openai:`` section: ``qwqlab.backends.ServerSettings`` fields, and never the key itself."""
    from qwqlab.backends import ServerSettings

    if "api_key" in server:  # a key in a file ends up in a repository or a log
        raise ConfigError(f"{where}: openai: api_key is not read from a file; put the key in an environment "
                          "variable and name it with api_key_env (default OPENAI_API_KEY)")
    _refuse_unknown(f"{where}: openai", server, [f.name for f in fields(ServerSettings)])
    try:
        ServerSettings(**server)
    except ValueError as e:
        raise ConfigError(f"{where}: openai: {e}") from e


@dataclass
class EvalConfig:
    """What ``qwqlab eval`` runs (``qwqlab.evaluation.run_eval``): a task under a protocol, then one results row.

    ``sampling`` overrides QwQ's protocol (``qwqlab.evaluation.QWQ_PROTOCOL``: 64 samples,
    temperature 0.6, top-p 0.95, top-k 40, 32,768 new tokens). ``backend`` is ``hf``, ``vllm``
    (``vllm:`` holds ``vllm.LLM``'s arguments) or ``openai`` (``openai:`` holds
    ``qwqlab.backends.ServerSettings``: ``base_url``, ``api_key_env``, ``endpoint``, ...; ``model``
    is then the id the server knows the model by, ``tokenizer`` an optional local folder or hub
    id for token counts). ``name`` is the model as the published table names it (the row is
    drawn beside that model's published row); ``benchmark`` the table's benchmark name.
    """
    model: str = "qwq-nano"
    name: str | None = None
    bits: int | None = None
    tokenizer: str | None = None
    task: str = "arithmetic"
    task_args: dict = field(default_factory=dict)
    num_problems: int | None = None
    benchmark: str | None = None
    backend: str = "hf"
    sampling: dict = field(default_factory=dict)
    vllm: dict = field(default_factory=dict)
    openai: dict = field(default_factory=dict)
    out: str = "runs/eval.jsonl"
    results: str | None = None
    path: str | None = None  # the file it was read from (set by load_eval_config)

    def build_task(self):
        from qwqlab.tasks import get_task
        return get_task(self.task, **self.task_args)

    def results_path(self) -> str:
        """Where the row is written: ``results``, else beside ``out`` (``runs/x.jsonl`` -> ``runs/x.result.json``)."""
        return self.results or str(Path(self.out).with_suffix(".result.json"))


def load_eval_config(path) -> EvalConfig:
    """Read and check an evaluation file (``configs/experiments/*_eval.yaml``; see ``EvalConfig``)."""
    from qwqlab.backends import BACKENDS
    from qwqlab.tasks import TASKS

    where = str(path)
    raw = read_file(path)
    _refuse_unknown(where, raw, [f.name for f in fields(EvalConfig) if f.name != "path"])
    for key in ("task_args", "sampling", "vllm", "openai"):  # an empty section in YAML reads as None
        raw[key] = raw.get(key) or {}
        if not isinstance(raw[key], dict):
            raise ConfigError(f"{where}: {key} must be a mapping, not {type(raw[key]).__name__}")
    _refuse_unknown(f"{where}: sampling", raw["sampling"], SAMPLING_KEYS)
    if raw.get("task", "arithmetic") not in TASKS:
        raise ConfigError(f"{where}: task {raw['task']!r} is not known; known: {sorted(TASKS)}")
    backend = raw.get("backend", "hf")
    if backend not in BACKENDS:
        raise ConfigError(f"{where}: backend {backend!r} is not known; use one of {list(BACKENDS)}")
    if raw["vllm"] and backend != "vllm":
        raise ConfigError(f"{where}: the vllm: settings need backend: vllm")
    if raw["openai"] and backend != "openai":
        raise ConfigError(f"{where}: the openai: settings need backend: openai")
    _check_server(where, raw["openai"])
    n = raw.get("num_problems")
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
        raise ConfigError(f"{where}: num_problems must be an integer >= 1, or null for all of the task's problems")
    out = str(raw.get("out", "runs/eval.jsonl"))
    if not out.endswith((".jsonl", ".parquet")):
        raise ConfigError(f"{where}: out must be a .jsonl or .parquet file, not {out!r}")
    return EvalConfig(**raw, path=where)
