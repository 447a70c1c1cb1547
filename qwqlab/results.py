"""Published benchmark results of QwQ-32B and its peers, with a source on every row.

``data/published_results.csv`` is a long table (one score a row): ``model``, ``params``
(as the table states it: "32.8B dense", "671B MoE / 37B active", "undisclosed"),
``params_total_b``, ``params_active_b`` (billions), ``architecture``, ``config`` (the
``data/model_configs`` entry the count was computed from with
``qwqlab.models.count_parameters``; empty where none is bundled), ``params_source`` (where
the count comes from), ``benchmark`` and ``metric`` as the source names them
(``"LiveCodeBench 2408-2502"`` is not ``"LiveCodeBench 2408-2501"``; ``"not stated"`` where
the source gives a bare number), ``score`` (as published, never rounded), ``source`` (a
key of ``SOURCES``), ``source_title``, ``note`` (the source's own label), and ``status``:

- ``published``: the figure as its source gives it;
- ``disputed``: two sources give different numbers for the same figure; one row per
  source, each ``note`` naming the other. Neither is shown alone as the fact
  (``wide`` shows both, the bar plot marks the range);
- ``misattributed``: a figure quoted widely but wrongly for that model and benchmark, kept
  so notebooks can show it against its source (``origin_model`` / ``origin_benchmark`` say
  where the number really comes from, ``note`` explains). ``load_published`` leaves these
  out unless asked; ``misattributions`` sets them beside the sources.

``add_results`` appends the lab's or the user's own evaluations (``status="own"``) so plots
can overlay them; ``own_results`` gathers the lab's own measurements (qwq-nano's model card,
the bundled QwQ-32B traces), with confidence intervals where they have them.
"""
from __future__ import annotations

import glob
import json
import math
import warnings
from pathlib import Path
from typing import Iterable, Mapping

import pandas as pd

from qwqlab.paths import data_dir, nano_dir

#: Where each figure was published (the ``source`` column's keys).
SOURCES = {
    "QwQ-eval": "the QwQ repository's eval/README.md (QwenLM/QwQ), March 2025",
    "QwQ-blog": ('the Qwen blog post "QwQ-32B: Embracing the Power of Reinforcement Learning", 2025-03-06, '
                 "read from its benchmark chart (an image); the post's text does not give these figures"),
    "QwQ-preview-blog": 'the Qwen blog post "QwQ: Reflect Deeply on the Boundaries of the Unknown", 2024-11-28',
    "R1": ("the DeepSeek-R1 repository README and paper (arXiv 2501.12948), evaluation tables "
           "(temperature 0.6, top-p 0.95, 32,768 max tokens, 64 samples for pass@1)"),
    "R1-README": "the DeepSeek-R1 repository README (deepseek-ai/DeepSeek-R1), distilled-model evaluation table",
    "R1-paper": ("the DeepSeek-R1 paper (arXiv 2501.12948, both versions), the distilled-model table and the "
                 "distillation-against-RL table"),
    "circulating-summary": "a widely circulated summary of the QwQ-32B release (not a primary source)",
}

#: Benchmarks in the order the published table lists them.
#: Each source's own label is kept: the preview blog's bare "AIME" and "GPQA" are not
#: AIME24 and GPQA-Diamond, and the LiveCodeBench windows differ.
BENCHMARKS = ("AIME24", "AIME", "AIME25", "GPQA-Diamond", "GPQA", "MATH-500", "LiveCodeBench 2408-2502",
              "LiveCodeBench 2408-2501", "LiveCodeBench", "LiveBench", "IFEval", "BFCL")

#: The metrics a headline comparison shows side by side (each benchmark has one of them; cons@64 is left
#: to be asked for).
HEADLINE_METRICS = ("pass@1", "prompt-strict accuracy", "not stated")

#: The statuses a row of the table (or an ``add_results`` row) can have.
STATUSES = ("published", "disputed", "misattributed", "own")

COLUMNS = ("model", "params", "params_total_b", "params_active_b", "architecture", "config", "params_source",
           "benchmark", "metric", "score", "source", "source_title", "status", "origin_model", "origin_benchmark",
           "note")


def published_path() -> Path:
    return data_dir() / "published_results.csv"


def load_published(path: str | Path | None = None, include_misattributed: bool = False) -> pd.DataFrame:
    """The published results table (long format), scores and parameter counts as numbers.

    Misattributed figures (``status == "misattributed"``) are left out unless
    ``include_misattributed``: they are not results, they are a lesson (``misattributions``).
    The ``score_text`` column keeps each score exactly as written in the CSV.
    """
    path = Path(path) if path else published_path()
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in COLUMNS if c not in raw.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}")
    df = raw.copy()
    df["score_text"] = raw["score"]
    df["score"] = pd.to_numeric(raw["score"], errors="raise")
    for c in ("params_total_b", "params_active_b"):
        df[c] = pd.to_numeric(raw[c].replace("", None), errors="raise")
    if not include_misattributed:
        df = df[df["status"] != "misattributed"].reset_index(drop=True)
    return df


def misattributions(table: pd.DataFrame | None = None) -> pd.DataFrame:
    """Each widely quoted but mis-attributed figure beside what the sources say.

    One row per quoted claim: the claim (``model``, ``benchmark``, ``quoted_score``,
    ``quoted_in``); what the sources give for that model and benchmark (``sources_say``,
    ``sources_say_source``; empty when no source gives one); and where the quoted number
    really comes from (``origin_model``, ``origin_benchmark``, ``origin_score``,
    ``origin_source``), with the ``note``.
    """
    table = load_published(include_misattributed=True) if table is None else table
    pub = table[table["status"] == "published"]
    rows = []
    # The origin is matched on model and benchmark only: its source may name no metric.
    for _, r in table[table["status"] == "misattributed"].iterrows():
        same = pub[(pub["model"] == r["model"]) & (pub["benchmark"] == r["benchmark"]) & (pub["metric"] == r["metric"])]
        origin = pub[(pub["model"] == r["origin_model"]) & (pub["benchmark"] == r["origin_benchmark"])]
        rows.append({
            "model": r["model"], "benchmark": r["benchmark"], "quoted_score": r["score"],
            "quoted_in": r["source_title"],
            "sources_say": same["score"].iloc[0] if len(same) else math.nan,
            "sources_say_source": same["source"].iloc[0] if len(same) else "no source gives a figure",
            "origin_model": r["origin_model"], "origin_benchmark": r["origin_benchmark"],
            "origin_score": origin["score"].iloc[0] if len(origin) else math.nan,
            "origin_source": origin["source"].iloc[0] if len(origin) else "",
            "note": r["note"]})
    return pd.DataFrame(rows)


def parameter_counts(table: pd.DataFrame | None = None) -> pd.DataFrame:
    """Each model whose count comes from a bundled config: the table's figure beside the computed one.

    ``computed_b`` is ``qwqlab.models.count_parameters(config) / 1e9``; ``agrees`` says whether
    the table's ``params_total_b`` is that count rounded to one decimal, as the table writes it.
    """
    from qwqlab.models import count_parameters

    table = load_published(include_misattributed=True) if table is None else table
    rows = table[table["config"].fillna("") != ""].drop_duplicates(["model", "config", "params_total_b"])
    out = pd.DataFrame({"model": rows["model"], "config": rows["config"], "params_total_b": rows["params_total_b"],
                        "computed_b": [count_parameters(c) / 1e9 for c in rows["config"]]}).reset_index(drop=True)
    out["agrees"] = out["computed_b"].round(1) == out["params_total_b"]
    return out


def add_results(table: pd.DataFrame, own: pd.DataFrame | Iterable[Mapping] | Mapping,
                source: str = "own evaluation") -> pd.DataFrame:
    """The table with the user's own results appended (``status="own"``).

    ``own`` is a DataFrame, a list of dicts or one dict with at least ``model``,
    ``benchmark`` and ``score`` (a percentage, as in the published table); optional
    ``metric`` (default ``pass@1``), ``params_total_b`` / ``params_active_b`` (billions,
    to place it on the size-efficiency scatter), ``ci_low`` / ``ci_high`` (percent; drawn as
    error bars), ``source`` and ``note``.

    >>> add_results(load_published(), {"model": "my-run", "benchmark": "AIME24", "score": 12.5})  # doctest: +SKIP
    """
    if isinstance(own, Mapping):
        own = [own]
    own = pd.DataFrame(own).copy()
    if own.empty:
        return table.copy()
    missing = [c for c in ("model", "benchmark", "score") if c not in own.columns]
    if missing:
        raise ValueError(f"own results need the column(s) {missing}; got {list(own.columns)}")
    own["score"] = pd.to_numeric(own["score"], errors="raise").astype(float)
    if len(own) and own["score"].between(0, 1).all() and (own["score"] < 1).any():
        warnings.warn("all own scores are between 0 and 1: the published table is in percent "
                      "(79.5, not 0.795); multiply by 100 if these are fractions.", stacklevel=2)
    if "params_total_b" in own.columns and "params_active_b" not in own.columns:
        own["params_active_b"] = own["params_total_b"]
    defaults = {"metric": "pass@1", "source": source, "status": "own", "architecture": "dense", "params": "",
                "config": "", "params_source": "", "origin_model": "", "origin_benchmark": "", "note": ""}
    for k, v in defaults.items():
        if k not in own.columns:
            own[k] = v
        else:
            own[k] = own[k].fillna(v)
    own["source_title"] = own["source_title"].fillna(own["source"]) if "source_title" in own.columns else own["source"]
    own["score_text"] = own["score"].map(lambda s: f"{round(s, 1):g}")  # 94.2, not 94.2308
    return pd.concat([table, own], ignore_index=True)


def metrics_of(metric: str | Iterable[str]) -> list[str]:
    """``metric`` as a list: one metric name, or several (``["pass@1", "prompt-strict accuracy"]``)."""
    return [metric] if isinstance(metric, str) else list(metric)


def disputed_text(rows: pd.DataFrame) -> str:
    """One disputed figure as every source gives it: ``"44.0 (R1-README) / 50.0 (R1-paper), disputed"``."""
    texts = rows["score_text"] if "score_text" in rows.columns else rows["score"].map(lambda v: f"{v:g}")
    return " / ".join(f"{t} ({s})" for t, s in zip(texts, rows["source"])) + ", disputed"


def wide(table: pd.DataFrame, metric: str | Iterable[str] = "pass@1", models: Iterable[str] | None = None,
         benchmarks: Iterable[str] | None = None) -> pd.DataFrame:
    """Models as rows and benchmarks as columns for ``metric`` (one or several); empty where no source gives a figure.

    A disputed figure is shown as text with every source's number (``disputed_text``), never
    as one of them.
    """
    t = table[table["metric"].isin(metrics_of(metric))]
    if models is not None:
        t = t[t["model"].isin(list(models))]
    out = t.pivot_table(index="model", columns="benchmark", values="score", aggfunc="first", sort=False)
    order = [b for b in (benchmarks or BENCHMARKS) if b in out.columns]
    extra = [] if benchmarks else [b for b in out.columns if b not in order]
    model_order = list(models) if models is not None else list(dict.fromkeys(t["model"]))
    out = out.reindex(index=[m for m in model_order if m in out.index], columns=order + extra)
    disputed = t[t["status"] == "disputed"] if "status" in t.columns else t.iloc[:0]
    for (m, b), rows in disputed.groupby(["model", "benchmark"], sort=False):
        if m in out.index and b in out.columns:
            out[b] = out[b].astype(object)
            out.loc[m, b] = disputed_text(rows)
    return out


def nano_results(model_dir: str | Path | None = None) -> pd.DataFrame:
    """qwq-nano's own figures (from ``measured.json`` beside its checkpoint) as result rows.

    Empty when the checkpoint has not been measured. The benchmark is the held-out
    arithmetic task, so these rows overlay a plot as "own runs" rather than compete on the
    published benchmarks.
    """
    folder = Path(model_dir) if model_dir else nano_dir()
    measured, summary = folder / "measured.json", folder / "training_summary.json"
    if not measured.exists():
        return pd.DataFrame(columns=["model", "benchmark", "metric", "score", "params_total_b"])
    m = json.loads(measured.read_text())
    params = json.loads(summary.read_text()).get("parameters") if summary.exists() else None
    rows = [{"model": "qwq-nano", "benchmark": "arithmetic (held-out)", "metric": "pass@1",
             "score": 100 * m["accuracy"], "params_total_b": params / 1e9 if params else math.nan,
             "source": "this lab: qwq-nano's model card (measured.json)",
             "grader": "qwqlab.grading via the arithmetic task's judge (qwqlab.nano.measure)",
             "protocol": f"one sample per problem at temperature {m.get('temperature')}, seed {m.get('seed')}",
             "note": f"temperature {m.get('temperature')}, {m.get('num_problems')} problems"}]
    return pd.DataFrame(rows)


#: How the lab's own measurement on the bundled traces is labelled, so it never passes for a published row.
TRACES_BENCHMARK = "MATH, 52-problem subset (this lab)"


def trace_results(traces: pd.DataFrame | None = None, split: str = "normal", confidence: float = 0.95) -> pd.DataFrame:
    """This lab's accuracies on the bundled traces (``data/traces``), one row per model, with a CI.

    qwqlab's grader (``correct`` from ``qwqlab.traces.load_mip_traces``) on one recorded
    response per problem of the 52 MATH problems as posed (``split="normal"``), so the score
    is a one-sample pass@1 on a 52-problem subset, not MATH-500: it sits beside the
    published figures as this lab's own measurement (``status="own"`` through
    ``add_results``), named ``"<model> (this lab)"``. ``ci_low`` / ``ci_high`` are the
    percentile bootstrap interval of ``qwqlab.metrics.bootstrap_ci`` (percent); ``n`` the
    number of graded problems.
    """
    from qwqlab.metrics import bootstrap_ci
    from qwqlab.traces import load_mip_traces

    traces = load_mip_traces(markers=()) if traces is None else traces
    rows = []
    for model, g in traces[traces["split"] == split].groupby("model", observed=True, sort=True):
        correct = pd.to_numeric(g["correct"], errors="coerce").dropna().to_numpy(dtype=float)
        low, high = bootstrap_ci(correct, confidence=confidence)
        judge = (g["judge_label"] == 1).mean() if "judge_label" in g.columns else math.nan
        rows.append({"model": f"{model} (this lab)", "benchmark": TRACES_BENCHMARK, "metric": "pass@1",
                     "score": 100 * correct.mean(), "ci_low": 100 * low, "ci_high": 100 * high, "n": len(correct),
                     "source": "this lab: qwqlab's grader on data/traces/mip_math52.jsonl.gz",
                     "grader": "qwqlab.grading (load_mip_traces' correct column)",
                     "protocol": f"one recorded response per problem ({split} split), sampled by the trace's source",
                     "note": (f"one recorded response per problem ({split} split), {len(correct)} MATH problems, "
                              f"{confidence:.0%} bootstrap CI; the source's GPT-4o judge says {100 * judge:.1f}%")})
    return pd.DataFrame(rows)


def evals_dir() -> Path:
    """``data/evals``: the rows of the lab's own ``qwqlab eval`` runs that ship with it."""
    return data_dir() / "evals"


def eval_results(paths: Iterable[str | Path] | str | Path | None = None, bundled: bool = True) -> pd.DataFrame:
    """Rows written by ``qwqlab eval`` (``qwqlab.evaluation.eval_row``): the bundled ones and ``paths``.

    ``paths`` are result files (``runs/x.result.json``), folders of them, or glob patterns.
    Each row names its ``grader`` and ``protocol``; ``published_model`` is the model as the
    published table names it (see ``lab_against_published``).
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    files = sorted(evals_dir().glob("*.json")) if bundled and evals_dir().exists() else []
    for p in paths or []:
        p = Path(p)
        if p.is_dir():
            files += sorted(p.glob("*.json"))
        elif any(ch in str(p) for ch in "*?["):
            files += [Path(f) for f in sorted(glob.glob(str(p)))]
        elif p.exists():
            files.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such result file (qwqlab eval CONFIG writes one; its path is printed)")
    rows = [json.loads(f.read_text()) for f in dict.fromkeys(files)]
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=["model", "benchmark", "metric", "score"])


def lab_against_published(table: pd.DataFrame, own: pd.DataFrame | None = None) -> pd.DataFrame:
    """Each ``qwqlab eval`` row beside the published row of the same model, benchmark and metric.

    One row per lab row: ``label`` (e.g. "QwQ-32B AIME24 79.5 (published) against 80.2 (this lab,
    k=64)"), ``model``, ``benchmark``, ``metric``, the lab's ``score``/``ci_low``/``ci_high``,
    ``reference`` (the published score; NaN where no source gives one), ``reference_source``
    (its source; a disputed figure lists every source's number), and ``grader`` and ``protocol``.
    Where no published row exists, the lab's other own row of that model and benchmark (qwq-nano's
    model card) stands as the reference, named as such.
    """
    own = eval_results() if own is None else own
    out = []
    for _, r in own.iterrows():
        name = r.get("published_model") or r["model"]
        ref = table[(table["model"] == name) & (table["benchmark"] == r["benchmark"])
                    & (table["metric"] == r["metric"]) & (table["status"] != "misattributed")]
        ref = ref[ref["model"] != r["model"]]
        k = r.get("samples_per_problem")
        lab = f"{r['score']:.1f} (this lab{f', k={int(k)}' if pd.notna(k) else ''})"
        if len(ref) and (ref["status"] == "disputed").any():
            reference, source = float(ref["score"].mean()), disputed_text(ref)
            text = f"{name} {r['benchmark']} {source} against {lab}"
        elif len(ref):
            first = ref.iloc[0]
            reference, source = float(first["score"]), str(first["source"])
            kind = ("published" if first["status"] == "published"
                    else f"{first['source'].removeprefix('this lab: ')}: {first.get('note') or 'own'}")
            text = f"{name} {r['benchmark']} {first.get('score_text', first['score'])} ({kind}) against {lab}"
        else:
            reference, source = math.nan, "no published figure"
            text = f"{name} {r['benchmark']}: {lab}; no published figure"
        out.append({"label": text, "model": name, "benchmark": r["benchmark"], "metric": r["metric"],
                    "score": r["score"], "ci_low": r.get("ci_low", math.nan), "ci_high": r.get("ci_high", math.nan),
                    "reference": reference, "reference_source": source, "grader": r.get("grader", ""),
                    "protocol": r.get("protocol", "")})
    return pd.DataFrame(out)


def own_results(nano: bool = True, traces: bool = True, evals: bool = True) -> pd.DataFrame:
    """The lab's own measurements as result rows for ``add_results``: qwq-nano's model card, the traces,
    and the bundled ``qwqlab eval`` rows (``data/evals``)."""
    parts = (([nano_results()] if nano else []) + ([trace_results()] if traces else [])
             + ([eval_results()] if evals else []))
    parts = [p for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["model", "benchmark", "score"])
