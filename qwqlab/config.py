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
import reprlib
from dataclasses import dataclass, field, fields
from pathlib import Path

from qwqlab.validate import check_fields, kinds, value_problem  # noqa: F401 - check_fields: the one checker


class ConfigError(ValueError):
    """An experiment file that cannot be used; the message names the file and the key."""


# --- reading a file ----------------------------------------------------------------------

#: Largest experiment file read (bytes); a real one is under 2 KB.
MAX_FILE_BYTES = 1 << 20


def _yaml_loader():
    import yaml

    class NoAliasLoader(yaml.SafeLoader):
        """PyYAML's safe loader without aliases: ``*ref`` is refused (a 466-byte billion laughs
        expands to gigabytes once a program walks it)."""

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                mark = self.peek_event().start_mark
                raise ConfigError(f"line {mark.line + 1}: YAML aliases (*name) are not accepted; "
                                  "write the value out")
            return super().compose_node(parent, index)

    return NoAliasLoader


def read_file(path) -> dict:
    """The mapping in a ``.yaml``/``.yml``, ``.json`` or ``.toml`` file.

    Refused with a ``ConfigError`` naming the file: other suffixes, files over
    ``MAX_FILE_BYTES``, text that is not UTF-8, syntax errors, YAML aliases, nesting deeper
    than Python's recursion limit, and a top level that is not a mapping.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".yaml", ".yml", ".json", ".toml"):
        raise ConfigError(f"{path}: use a .yaml, .json or .toml file, not {suffix or 'no suffix'!r}")
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"{path}: cannot be read ({e.strerror or e}); check the path") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_FILE_BYTES} bytes; an experiment file is a few lines")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (bad byte at offset {e.start}); save it as UTF-8") from None
    try:
        if suffix == ".json":
            data = json.loads(text)
        elif suffix == ".toml":
            import tomllib
            data = tomllib.loads(text)
        else:
            import yaml
            try:
                data = yaml.load(text, Loader=_yaml_loader())  # noqa: S506 - a SafeLoader without aliases
            except yaml.YAMLError as e:
                raise ConfigError(" ".join(str(e).split())[:300]) from None
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to read; an experiment file is a few levels deep") from None
    except ValueError as e:  # json.JSONDecodeError, tomllib.TOMLDecodeError
        raise ConfigError(f"{path}: not valid {suffix[1:].upper()}: {' '.join(str(e).split())[:300]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the file must hold a mapping of settings, not {type(data).__name__}")
    return data


def _check(where: str, obj) -> None:
    """``check_fields`` for a section of an experiment file, as a ``ConfigError``."""
    try:
        check_fields(obj, where)
    except ValueError as e:
        raise ConfigError(f"{e}; fix that value in the file") from None
    if getattr(obj, "bits", None) not in (None, 4, 8):
        raise ConfigError(f"{where}: bits must be 4, 8 or null (full precision), got {obj.bits}")


def _check_out(where: str, out) -> str:
    """``out`` as given, refused when a relative path climbs out of the working folder."""
    out = str(out)
    p = Path(out)
    if not p.is_absolute():
        cwd = Path.cwd().resolve()
        full = (cwd / p).resolve()
        if full != cwd and cwd not in full.parents:
            raise ConfigError(f"{where}: out {out!r} is outside the working folder {cwd}; write it inside, "
                              "or give an absolute path if you mean that place")
    return out


def _build_task(where: str, name, args):
    """The task, built now so a wrong ``task_args`` key or value is refused at load time."""
    from qwqlab.tasks import TASKS, get_task

    if not isinstance(name, str) or name not in TASKS:
        raise ConfigError(f"{where}: task {reprlib.repr(name)} is not known; known: {sorted(TASKS)}")
    if not isinstance(args, dict):
        raise ConfigError(f"{where}: task_args must be a mapping (e.g. {{split: train}}), got {reprlib.repr(args)}")
    try:
        return get_task(name, **args)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: task_args {sorted(args)} do not fit task {name!r}: "
                          f"{' '.join(str(e).split())[:200]}") from None


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
    if not isinstance(raw, list):
        raise ConfigError(f"{where}: rewards must be a list ([{{name: accuracy, weight: 1.0}}]) or a mapping "
                          f"name -> weight ({{accuracy: 1.0}}), got {reprlib.repr(raw)}")
    specs = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, (str, dict)):
            raise ConfigError(f"{where}: rewards[{i}] must be a name or {{name: ..., weight: ...}}, "
                              f"got {reprlib.repr(entry)}")
        entry = {"name": entry} if isinstance(entry, str) else dict(entry)
        name = entry.pop("name", None)
        if not isinstance(name, str) or name not in REWARDS:
            raise ConfigError(f"{where}: rewards[{i}] is {reprlib.repr(name)}; known rewards: {sorted(REWARDS)}")
        weight = entry.pop("weight", 1.0)
        problem = value_problem(weight, (float,))
        if problem:
            raise ConfigError(f"{where}: rewards[{i}] ({name}) weight {problem}")
        accepted = inspect.signature(REWARDS[name]).parameters
        _refuse_unknown(f"{where}: rewards[{i}] ({name})", entry, list(accepted) + ["name", "weight"])
        spec = RewardSpec(name, float(weight), entry)
        try:
            spec.build()  # the factory checks its own parameters now, not at the first step
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{where}: rewards[{i}] ({name}): {' '.join(str(e).split())[:200]}") from None
        specs.append(spec)
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

    where = str(path)
    raw = read_file(path)
    _refuse_unknown(where, raw, [f.name for f in fields(TrainConfig)])
    grpo = raw.pop("grpo", None) or {}
    if not isinstance(grpo, dict):
        raise ConfigError(f"{where}: grpo must be a mapping of GRPOConfig knobs, got {reprlib.repr(grpo)}")
    grpo = dict(grpo)
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
    for key in ("task_args", "trl"):  # an empty section in YAML reads as None
        if raw.get(key, {}) is None:
            raw[key] = {}
    cfg = TrainConfig(**raw, rewards=rewards, grpo=grpo_cfg)
    _check(where, cfg)
    _build_task(where, cfg.task, cfg.task_args)
    cfg.out = _check_out(where, cfg.out)
    return cfg


#: Arguments of ``qwqlab.rollouts.sample`` a sampling file may set under ``sampling:``, with their types.
SAMPLING_TYPES = {"num_generations": "int", "temperature": "float", "top_p": "float", "top_k": "int | None",
                  "max_new_tokens": "int | None", "seed": "int | None", "batch_size": "int"}
SAMPLING_KEYS = tuple(SAMPLING_TYPES)


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
    where = str(path)
    raw = read_file(path)
    _refuse_unknown(where, raw, [f.name for f in fields(SampleConfig)])
    for key in ("task_args", "sampling", "vllm", "openai"):  # an empty section in YAML reads as None
        if raw.get(key, {}) is None:
            raw[key] = {}
    cfg = SampleConfig(**raw)
    _check(where, cfg)
    _check_sampling(where, cfg.sampling)
    if cfg.num_problems < 1:
        raise ConfigError(f"{where}: num_problems must be at least 1, got {cfg.num_problems}")
    _build_task(where, cfg.task, cfg.task_args)
    if not cfg.out.endswith((".jsonl", ".parquet")):
        raise ConfigError(f"{where}: out must be a .jsonl or .parquet file, not {cfg.out!r}")
    cfg.out = _check_out(where, cfg.out)
    _check_server(where, cfg.openai)
    return cfg


def _check_sampling(where: str, sampling: dict) -> None:
    """A ``sampling:`` section: known keys, each of its type and finite."""
    _refuse_unknown(f"{where}: sampling", sampling, SAMPLING_KEYS)
    for key, value in sampling.items():
        problem = value_problem(value, kinds(SAMPLING_TYPES[key]))
        if problem:
            raise ConfigError(f"{where}: sampling.{key} {problem}; fix that value in the file")


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

    where = str(path)
    raw = read_file(path)
    _refuse_unknown(where, raw, [f.name for f in fields(EvalConfig) if f.name != "path"])
    for key in ("task_args", "sampling", "vllm", "openai"):  # an empty section in YAML reads as None
        raw[key] = raw.get(key) or {}
        if not isinstance(raw[key], dict):
            raise ConfigError(f"{where}: {key} must be a mapping, not {type(raw[key]).__name__}")
    _check_sampling(where, raw["sampling"])
    _build_task(where, raw.get("task", "arithmetic"), raw["task_args"])
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
    cfg = EvalConfig(**raw, path=where)
    _check(where, cfg)
    if not cfg.out.endswith((".jsonl", ".parquet")):
        raise ConfigError(f"{where}: out must be a .jsonl or .parquet file, not {cfg.out!r}")
    cfg.out = _check_out(where, cfg.out)
    if cfg.results is not None:
        cfg.results = _check_out(where, cfg.results)
    return cfg
