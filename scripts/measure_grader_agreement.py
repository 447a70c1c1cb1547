"""How qwqlab's grader agrees with the MiP-Overthinking judge on the bundled traces, per model,
next to a baseline: the answer extraction of QwQ's own evaluation.

``data/traces/mip_math52.jsonl.gz`` holds four models' responses to 52 MATH problems (as posed
and with a premise removed), each labelled by the source's GPT-4o judge. This prints, per model
and split, the share of rows where a grader's verdict agrees with the judge
(``qwqlab.traces.judge_agreement``) for:

- ``qwqlab``: the lab's one grader (``qwqlab.grading.extract_answer`` then ``answers_match``),
  as ``load_mip_traces`` grades;
- ``QwQ-repo baseline``: a COMPARISON BASELINE ONLY, never used by the lab to grade. It is the
  extraction order of the Qwen team's evaluation for QwQ-32B (github:QwenLM/QwQ
  ``eval/eval/math_opensource_utils``, the Qwen2.5-Math ``extract_answer``: the last
  ``\\boxed{}``, else the text after "the answer is", else after "final answer is", else the
  last number), applied to the text after the last ``</think>`` (the whole response when there
  is none), with that code's light clean-up (a trailing period, ``$``, a ``\\text{}`` wrapper),
  then compared with the lab's ``answers_match``. The repository's own ``strip_string`` /
  ``math_equal`` comparison is not reimplemented, so this measures its extraction rules, the
  part in which the two graders differ.

``data/traces/README.md`` quotes the per-model figures, and ``tests/test_traces.py`` recomputes
them with this module. About 10 s on 2 cores.

    .venv/bin/python scripts/measure_grader_agreement.py [--markdown]
"""
from __future__ import annotations

import argparse
import re

import pandas as pd

from qwqlab.chat import THINK_CLOSE
from qwqlab.trace_files import grade_answer
from qwqlab.traces import judge_agreement, load_mip_traces


def qwq_repo_baseline_answer(response: str) -> str:
    """COMPARISON BASELINE (not the lab's grader): QwQ's evaluation's answer extraction, see the module docstring."""
    pred = (response or "").rpartition(THINK_CLOSE)[2]
    if "boxed" in pred:
        tail = pred.split("boxed")[-1]
        if tail.startswith("{"):
            depth, out = 1, ""
            for ch in tail[1:]:
                depth += {"{": 1, "}": -1}.get(ch, 0)
                if depth == 0:
                    break
                out += ch
            answer = out
        else:
            answer = tail.split("$")[0]
    elif "he answer is" in pred:
        answer = pred.split("he answer is")[-1]
    elif "final answer is" in pred:
        answer = pred.split("final answer is")[-1]
    else:
        numbers = re.findall(r"-?\d*\.?\d+", pred.replace(",", ""))
        answer = numbers[-1] if numbers else ""
    answer = answer.strip().rstrip(".").strip()
    wrapped = re.fullmatch(r"\\text\{(.*)\}", answer)
    if wrapped:
        answer = wrapped.group(1)
    return answer.replace("\\$", "").replace("$", "").strip()


def qwq_repo_baseline_verdicts(traces: pd.DataFrame) -> list[float | None]:
    """The baseline's verdict per row of ``load_mip_traces()`` (its extraction, the lab's comparison)."""
    return [grade_answer(qwq_repo_baseline_answer(c), g) for c, g in zip(traces["completion"], traces["gold_answer"])]


def agreement_table(traces: pd.DataFrame | None = None, by=("model", "split")) -> pd.DataFrame:
    """Per group: rows, judge says correct, and each grader's agreement with the judge."""
    traces = load_mip_traces(markers=()) if traces is None else traces
    lab = judge_agreement(traces, by=by)
    qwq = judge_agreement(traces, verdicts=qwq_repo_baseline_verdicts(traces), by=by)
    keys = list([by] if isinstance(by, str) else by)
    return lab[keys + ["rows", "judge_correct", "agreement"]].rename(columns={"agreement": "qwqlab"}).assign(
        qwq_repo_baseline=qwq["agreement"].to_numpy())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--markdown", action="store_true", help="print the data card's table")
    args = p.parse_args()
    traces = load_mip_traces(markers=())
    for by in (("model", "split"), "model"):
        table = agreement_table(traces, by=by)
        if args.markdown:
            for r in table.itertuples(index=False):
                split = getattr(r, "split", "both")
                print(f"| {r.model} | {split} | {r.rows} | {r.judge_correct:.3f} | {r.qwqlab:.3f} | {r.qwq_repo_baseline:.3f} |")
        else:
            print(table.to_string(index=False, float_format="%.3f"))


if __name__ == "__main__":
    main()
