"""`qwqlab eval`: the published protocol as one command, its config files, its results row, and the pairing
with the published row that notebook 06 draws."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qwqlab import results
from qwqlab.config import ConfigError, load_eval_config
from qwqlab.evaluation import QWQ_PROTOCOL, eval_row
from qwqlab.tasks import ArithmeticTask

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs" / "experiments"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*_eval.yaml")), ids=lambda p: p.stem)
def test_every_eval_file_loads(path):
    cfg = load_eval_config(path)
    assert cfg.path == str(path) and cfg.backend in ("hf", "vllm", "openai")


def test_the_shipped_eval_configs_parse():
    nano = load_eval_config(CONFIGS / "nano_eval.yaml")
    assert nano.backend == "hf" and nano.model == "qwq-nano" and nano.build_task().name == "arithmetic"
    qwq = load_eval_config(CONFIGS / "qwq32b_aime_eval.yaml")
    assert qwq.backend == "openai" and qwq.task == "aime24" and qwq.name == "QwQ-32B" and qwq.benchmark == "AIME24"
    assert {**QWQ_PROTOCOL, **qwq.sampling}["num_generations"] == 64 and qwq.openai["api_key_env"] == "OPENAI_API_KEY"
    assert qwq.results_path().endswith(".result.json")
    # QwQ's protocol is the default: a file that names no sampling settings gets it
    assert QWQ_PROTOCOL == {"num_generations": 64, "temperature": 0.6, "top_p": 0.95, "top_k": 40,
                            "max_new_tokens": 32768, "seed": 0}


@pytest.mark.parametrize("text, message", [
    ("model: qwq-nano\nmodle: x\n", r"unknown key\(s\) \['modle'\]"),
    ("backend: openai\nopenai: {api_key: sk-123}\n", "environment variable"),
    ("backend: hf\nopenai: {base_url: http://x}\n", "need backend: openai"),
    ("backend: tgi\n", "backend 'tgi' is not known"),
    ("backend: openai\nopenai: {endpoint: responses}\n", "endpoint must be"),
    ("sampling: {temprature: 0.6}\n", "temprature"),
    ("num_problems: 0\n", "num_problems"),
    ("out: runs/x.csv\n", ".jsonl or .parquet"),
])
def test_bad_eval_files_are_refused_with_the_file_and_the_fix(tmp_path, text, message):
    path = tmp_path / "e.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as err:
        load_eval_config(path)
    assert str(path) in str(err.value) and "sk-123" not in str(err.value)


def _table(correct_by_problem: dict[str, list[float]]) -> pd.DataFrame:
    rows = []
    for pid, marks in correct_by_problem.items():
        for s, c in enumerate(marks):
            answer = "5" if c else "6"
            rows.append({"problem_id": pid, "sample_index": s, "question": "What is 2+3?", "gold_answer": "5",
                         "completion": f"2+3=5\n</think>\n\nThe answer is \\boxed{{{answer}}}.",
                         "extracted_answer": answer, "correct": float(c), "completion_tokens": 20,
                         "is_truncated": False})
    return pd.DataFrame(rows)


def test_the_row_is_pass1_averaged_over_samples_with_a_bootstrap_interval():
    # 3 problems x 4 samples: per-problem shares 1, 1/2, 0 -> pass@1 averaged = 50%
    table = _table({"a": [1, 1, 1, 1], "b": [1, 0, 1, 0], "c": [0, 0, 0, 0]})
    row = eval_row(table, ArithmeticTask(), "qwq-nano", "arithmetic (held-out)", dict(QWQ_PROTOCOL), "hf")
    assert row["score"] == pytest.approx(50.0) and row["n"] == 3 and row["samples_per_problem"] == 4
    assert row["ci_low"] <= row["score"] <= row["ci_high"] and row["ci_high"] - row["ci_low"] > 10
    assert row["model"] == "qwq-nano (this lab, k=4)" and row["published_model"] == "qwq-nano"
    assert "task arithmetic's judge" in row["grader"]
    assert row["protocol"].startswith("temperature 0.6, top-p 0.95, top-k 40, 32768 max new tokens, 64 samples")
    # graded again by the task, not read from the table: a wrong `correct` column does not survive
    lying = table.assign(correct=1.0)
    assert eval_row(lying, ArithmeticTask(), "m", "b", dict(QWQ_PROTOCOL), "hf")["score"] == pytest.approx(50.0)


def test_lab_rows_are_paired_with_the_published_row_of_the_same_name():
    table = results.load_published()
    own = pd.DataFrame([{"model": "QwQ-32B (this lab, k=64)", "published_model": "QwQ-32B", "benchmark": "AIME24",
                         "metric": "pass@1", "score": 77.34, "ci_low": 70.0, "ci_high": 83.0,
                         "samples_per_problem": 64, "grader": "g", "protocol": "p"},
                        {"model": "QwQ-32B-Preview (re-evaluated) (this lab, k=64)",
                         "published_model": "QwQ-32B-Preview (re-evaluated)", "benchmark": "AIME24",
                         "metric": "pass@1", "score": 48.0, "ci_low": 40.0, "ci_high": 55.0,
                         "samples_per_problem": 64},
                        {"model": "my-model (this lab, k=8)", "published_model": "my-model", "benchmark": "AIME24",
                         "metric": "pass@1", "score": 10.0, "ci_low": 5.0, "ci_high": 15.0, "samples_per_problem": 8}])
    pairs = results.lab_against_published(table, own)
    assert pairs["label"][0] == "QwQ-32B AIME24 79.5 (published) against 77.3 (this lab, k=64)"
    assert pairs["reference"][0] == 79.5 and pairs["reference_source"][0] == "QwQ-eval"
    assert "44.0 (R1-README) / 50.0 (R1-paper), disputed" in pairs["label"][1]  # never one of them as fact
    assert np.isnan(pairs["reference"][2]) and "no published figure" in pairs["label"][2]


def test_the_bundled_eval_row_names_its_grader_and_protocol():
    rows = results.eval_results()
    assert len(rows) >= 1 and {"grader", "protocol", "ci_low", "ci_high", "published_model"} <= set(rows.columns)
    nano = rows[rows["published_model"] == "qwq-nano"].iloc[0]
    assert nano["samples_per_problem"] == 64 and nano["n"] == 30 and nano["ci_low"] <= nano["score"] <= nano["ci_high"]
    assert "qwq-nano (this lab, k=64)" in set(results.own_results(traces=False)["model"])
    with pytest.raises(FileNotFoundError, match="qwqlab eval CONFIG"):
        results.eval_results(["no/such.result.json"])


def test_eval_help():
    out = subprocess.run([sys.executable, "-m", "qwqlab", "eval", "--help"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and "--grade-only" in out.stdout and "QwQ-32B" in out.stdout


@pytest.mark.slow
def test_qwqlab_eval_on_qwq_nano_end_to_end(tmp_path, capsys):
    """The CPU config's path, made tiny (4 problems x 8 samples, for speed): sample, grade, row; again = resume."""
    from qwqlab.cli import main

    config = tmp_path / "tiny_eval.yaml"
    config.write_text(f"model: qwq-nano\ntask: arithmetic\ntask_args: {{split: test}}\nnum_problems: 4\n"
                      f"sampling: {{num_generations: 8, max_new_tokens: 96}}\nout: {tmp_path / 'r.jsonl'}\n")
    assert main(["eval", str(config), "--quiet"]) == 0
    row = json.loads((tmp_path / "r.result.json").read_text())
    table = pd.read_json(tmp_path / "r.jsonl", lines=True, precise_float=True)
    assert len(table) == 32 and set(table["temperature"]) == {0.6} and set(table["top_k"]) == {40}
    assert row["score"] == pytest.approx(100 * table.groupby("problem_id")["correct"].mean().mean())
    assert row["n"] == 4 and row["samples_per_problem"] == 8 and row["model"] == "qwq-nano (this lab, k=8)"
    assert "pass@1" in capsys.readouterr().out
    before = (tmp_path / "r.jsonl").read_bytes()
    assert main(["eval", str(config), "--quiet"]) == 0          # resumes: nothing left to sample
    assert (tmp_path / "r.jsonl").read_bytes() == before
    assert main(["eval", str(config), "--grade-only", "--quiet"]) == 0
    again = json.loads((tmp_path / "r.result.json").read_text())
    assert again["score"] == row["score"] and again["ci_low"] == row["ci_low"]


@pytest.mark.slow
def test_qwqlab_eval_in_shards_then_grade_only(tmp_path, capsys):
    """Two machines' shards (--shard I/2), then --grade-only: one row over every problem, no row from a shard."""
    from qwqlab.cli import main

    config = tmp_path / "sharded_eval.yaml"
    config.write_text(f"model: qwq-nano\ntask: arithmetic\ntask_args: {{split: test}}\nnum_problems: 3\n"
                      f"sampling: {{num_generations: 4, max_new_tokens: 96}}  # tiny, for speed\n"
                      f"out: {tmp_path / 's.jsonl'}\n")
    for i in (0, 1):
        assert main(["eval", str(config), "--shard", f"{i}/2", "--quiet"]) == 0
    assert "--grade-only" in capsys.readouterr().out and not (tmp_path / "s.result.json").exists()
    assert sorted(p.name for p in tmp_path.glob("s.shard-*")) == ["s.shard-0-of-2.jsonl", "s.shard-1-of-2.jsonl"]
    assert main(["eval", str(config), "--grade-only", "--quiet"]) == 0
    row = json.loads((tmp_path / "s.result.json").read_text())
    assert row["n"] == 3 and row["num_samples"] == 12 and row["seconds"] is None
    with pytest.raises(SystemExit):
        main(["eval", str(config), "--backend", "tgi"])
