"""Bundle the MiP-Overthinking responses into ``data/traces/mip_math52.jsonl.gz`` (issue 11, item 1).

Source: ``../shared/data/mip-overthinking/`` (tianyi-lab/MiP-Overthinking, MIT; see its
``SOURCE.md``): QwQ-32B, DeepSeek-R1, DeepSeek-R1-Distill-Qwen-32B and Qwen2.5-32B-Instruct
on the same 52 MATH problems, once as posed (``normal``) and once with a premise removed
(``missing_premise``, the source's ``MiP``). One output row per (model, split, problem).

How each row is made:

- ``question``: the text the model was asked: the Qwen2.5-32B MiP file's ``question``
  (normal split) or ``insufficient_question`` (missing-premise split); every source file
  lists the same 52 problems in the same order (the script checks the gold answers agree).
  ``full_question`` is the complete question in both splits.
- ``problem_id``, ``subject``, ``level``: from ``math.json`` where its question equals the
  problem's (10 of 52), else from the DeepSeek-R1 files, which carry MATH's ``unique_id``,
  ``subject`` and ``level`` for all 52 and agree with ``math.json`` on every problem both
  have (checked here); ``meta_source`` says which.
- ``completion``: the response verbatim (``model_answer``, or DeepSeek-R1's
  ``deepseek-reasoner (question)`` / ``deepseek-reasoner (insufficient_question)``).
- ``thinking`` / ``answer_text``: the source writes reasoning models' responses as thinking,
  then ``</think>``, then the answer (their prompt opened the thinking, so there is no
  ``<think>``). Split with ``qwqlab.chat.split_think``: ``prompt_opens_think=True`` for the
  three reasoning models (no ``</think>`` at all means the response was cut off while
  thinking: ``is_truncated``, empty answer), ``False`` for Qwen2.5-32B-Instruct (no thinking;
  the whole response is the answer). ``think_case`` keeps what the splitter saw.
- ``judge_label``: the source's ``eval_result`` as an int (a GPT-4o judge that read the end of
  the response: 1 its answer equals the gold one, 2 it differs, 0 it says the question lacks
  information), with ``judge_verdict`` spelling it out.
- ``think_tokens`` / ``answer_tokens`` / ``completion_tokens``: counted with QwQ-32B's
  tokenizer (``qwqlab.tokenizer``; the bundled ``data/tokenizers/qwq-32b``), no special tokens.

    .venv/bin/python scripts/bundle_mip_traces.py            # writes data/traces/mip_math52.jsonl.gz
    .venv/bin/python scripts/bundle_mip_traces.py --source DIR --out FILE
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import re
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a checkout without installing


def shared_data(name: str) -> Path:
    """``../shared/data/<name>`` beside the checkout (or beside a worktree's parent folder)."""
    candidates = [REPO.parent / "shared" / "data" / name, REPO.parent.parent / "shared" / "data" / name]
    return next((c for c in candidates if c.exists()), candidates[0])


DEFAULT_SOURCE = shared_data("mip-overthinking")
DEFAULT_OUT = REPO / "data" / "traces" / "mip_math52.jsonl.gz"
SOURCE_COMMIT = "4090d3b15e7bb93cc5ed4d62250fdd0e8c51d5e2"

#: source folder -> (model name used in the lab, a reasoning model that thinks first?)
MODELS = {
    "QwQ": ("QwQ-32B", True),
    "deepseekR1": ("DeepSeek-R1", True),
    "DSQ": ("DeepSeek-R1-Distill-Qwen-32B", True),
    "Qwen32": ("Qwen2.5-32B-Instruct", False),
}
SPLITS = {"normal": "normal", "MiP": "missing_premise"}
JUDGE_VERDICTS = {1: "correct", 2: "wrong", 0: "lacks_information"}

COLUMNS = ["model", "source_model", "split", "problem_index", "problem_id", "subject", "level", "meta_source",
           "question", "full_question", "gold_answer", "completion", "thinking", "answer_text", "think_case",
           "is_truncated", "judge_label", "judge_verdict", "think_tokens", "answer_tokens", "completion_tokens"]


def _norm(s: str) -> str:
    return re.sub(r"\s+", " ", s).strip()


def _response_text(record: dict, split: str) -> str:
    if "model_answer" in record:
        return record["model_answer"]
    key = "deepseek-reasoner (question)" if split == "normal" else "deepseek-reasoner (insufficient_question)"
    return record[key]


def read_source(source: Path) -> dict:
    files = {}
    for split in SPLITS:
        for model in MODELS:
            path = source / "response" / "math" / split / model / "response.json"
            files[split, model] = json.loads(path.read_text(encoding="utf-8"))
    return files


def problems(source: Path, files: dict) -> list[dict]:
    """The 52 problems, in the source's order, with question, gold answer and MATH metadata."""
    qwen_mip, r1 = files["MiP", "Qwen32"], files["normal", "deepseekR1"]
    n = len(qwen_mip)
    for key, records in files.items():
        if len(records) != n or any(a["answer"] != b["answer"] for a, b in zip(records, qwen_mip)):
            raise ValueError(f"{key}: not the same {n} problems in the same order as the Qwen32 MiP file")
    math = {_norm(m["question"]): m for m in json.loads((source / "math.json").read_text(encoding="utf-8"))}
    out = []
    for i, (q, meta) in enumerate(zip(qwen_mip, r1)):
        if _norm(meta["question"]) != _norm(q["question"]):
            raise ValueError(f"problem {i}: the DeepSeek-R1 file's question differs from Qwen32's")
        m = math.get(_norm(q["question"]))
        if m is not None and (m["unique_id"], m["subject"], int(m["level"])) != (
                meta["unique_id"], meta["subject"], int(meta["level"])):
            raise ValueError(f"problem {i}: math.json and the DeepSeek-R1 file disagree on its metadata")
        src = m if m is not None else meta
        out.append(dict(problem_index=i, problem_id=src["unique_id"], subject=src["subject"], level=int(src["level"]),
                        meta_source="math.json" if m is not None else "deepseekR1 response file",
                        full_question=q["question"], insufficient_question=q["insufficient_question"],
                        gold_answer=q["answer"]))
    return out


def rows(source: Path) -> list[dict]:
    from qwqlab.chat import split_think
    from qwqlab.tokenizer import count_tokens

    files = read_source(source)
    probs = problems(source, files)
    out = []
    for split, split_name in SPLITS.items():
        for model, (name, reasoning) in MODELS.items():
            for p, record in zip(probs, files[split, model]):
                text = _response_text(record, split)
                parts = split_think(text, prompt_opens_think=reasoning)
                label = int(record["eval_result"])
                out.append(dict(
                    model=name, source_model=model, split=split_name, problem_index=p["problem_index"],
                    problem_id=p["problem_id"], subject=p["subject"], level=p["level"], meta_source=p["meta_source"],
                    question=p["full_question"] if split == "normal" else p["insufficient_question"],
                    full_question=p["full_question"], gold_answer=p["gold_answer"], completion=text,
                    thinking=parts.thinking, answer_text=parts.answer, think_case=parts.case,
                    is_truncated=parts.case == "unclosed", judge_label=label, judge_verdict=JUDGE_VERDICTS[label]))
    think = count_tokens([r["thinking"] for r in out])
    answer = count_tokens([r["answer_text"] for r in out])
    completion = count_tokens([r["completion"] for r in out])
    for r, t, a, c in zip(out, think, answer, completion):
        r.update(think_tokens=int(t), answer_tokens=int(a), completion_tokens=int(c))
    return [{k: r[k] for k in COLUMNS} for r in out]


def write(records: list[dict], out: Path) -> None:
    """jsonl, gzip'd with no timestamp or file name in the header, so a rebuild is byte-identical."""
    out.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as f:
        for r in records:
            f.write((json.dumps(r, ensure_ascii=False) + "\n").encode("utf-8"))
    out.write_bytes(buf.getvalue())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="the mip-overthinking folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the .jsonl.gz to write")
    args = parser.parse_args(argv)

    records = rows(args.source)
    write(records, args.out)
    shutil.copyfile(args.source / "LICENSE", args.out.parent / "LICENSE")
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(f"{args.out}: {len(records)} rows, {args.out.stat().st_size:,} bytes, sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
