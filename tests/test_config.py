"""configs/: every shipped experiment, Accelerate and DeepSpeed file parses with the tool that reads it."""
import json
from pathlib import Path

import pytest
import yaml

from qwqlab.config import load_sample_config, load_train_config

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
EXPERIMENTS = sorted((CONFIGS / "experiments").glob("*.yaml"))
TRAIN = [p for p in EXPERIMENTS if "sample" not in p.stem and not p.stem.endswith("_eval")]  # *_eval: test_eval.py
SAMPLE = [p for p in EXPERIMENTS if "sample" in p.stem]


def test_there_are_configs_of_each_kind():
    assert len(TRAIN) >= 3 and len(SAMPLE) >= 2
    assert len(list((CONFIGS / "accelerate").glob("*.yaml"))) >= 2


@pytest.mark.parametrize("path", SAMPLE, ids=lambda p: p.stem)
def test_sample_files_load(path):
    cfg = load_sample_config(path)
    assert cfg.sampling["num_generations"] >= 1


@pytest.mark.slow  # importing TRL takes 10-25 s on 2 CPU cores
@pytest.mark.parametrize("path", TRAIN, ids=lambda p: p.stem)
def test_train_files_build_trl_grpo_configs(path, tmp_path):
    pytest.importorskip("trl")
    from qwqlab.config import check_trl_keys
    from qwqlab.trl_bridge import to_trl_config

    cfg = load_train_config(path)
    check_trl_keys(str(path), cfg.trl)
    # TRL's own GRPOConfig checks the combination (batch divisible by num_generations, ...); on a
    # CPU its bf16/vLLM checks would fail for the GPU files, so those two are checked by name only.
    gpu_only = {k: cfg.trl[k] for k in ("bf16", "use_vllm") if k in cfg.trl}
    rest = {k: v for k, v in cfg.trl.items() if k not in gpu_only}
    args = to_trl_config(cfg.grpo, str(tmp_path), **rest)
    assert args.num_generations == cfg.grpo.num_generations
    if "8gpu" in path.stem:
        assert cfg.grpo.num_prompts % 8 == 0  # qwqlab.launch splits the prompts evenly over the 8 ranks
        assert gpu_only == {"bf16": True, "use_vllm": True}


@pytest.mark.parametrize("path", sorted((CONFIGS / "accelerate").glob("*.yaml")), ids=lambda p: p.stem)
def test_accelerate_configs_parse_with_accelerates_loader(path, monkeypatch):
    from accelerate.commands.config.config_args import load_config_from_file

    monkeypatch.chdir(CONFIGS.parent)  # the DeepSpeed file is named relative to the repository root
    cfg = load_config_from_file(str(path))
    assert (cfg.num_machines, cfg.num_processes, cfg.use_cpu) == (1, 8, False)
    assert cfg.distributed_type.value in ("MULTI_GPU", "DEEPSPEED")
    if cfg.distributed_type.value == "DEEPSPEED":
        ds = json.loads(Path(cfg.deepspeed_config["deepspeed_config_file"]).read_text())
        assert ds["zero_optimization"]["stage"] == 3


def test_deepspeed_files_are_json_with_auto_batch_sizes():
    for path in (CONFIGS / "deepspeed").glob("*.json"):
        ds = json.loads(path.read_text())
        # "auto": Accelerate fills them from TRL's arguments, so the two cannot disagree.
        assert ds["train_micro_batch_size_per_gpu"] == "auto" and ds["gradient_accumulation_steps"] == "auto"


def test_vllm_settings_are_engine_arguments():
    cfg = yaml.safe_load((CONFIGS / "experiments" / "qwq32b_sample_vllm.yaml").read_text())
    assert 8 % cfg["vllm"]["tensor_parallel_size"] == 0
    assert cfg["vllm"]["max_model_len"] >= cfg["sampling"]["max_new_tokens"]
