"""Published benchmark results of QwQ-32B and its peers, with a source on every row.

``data/published_results.csv`` is a long table (one score a row): ``model``, ``params``
(as published: "32.5B dense", "671B MoE / 37B active", "undisclosed"), ``params_total_b``,
``params_active_b`` (billions), ``architecture``, ``benchmark``, ``metric`` (``pass@1``,
or ``cons@64`` where the source gives a majority-vote figure), ``score`` (as published,
never rounded), ``source`` (a key of ``SOURCES``), ``source_title``, and ``status``:

- ``published``: the figure as its source gives it;
- ``misattributed``: a figure quoted widely but wrongly for that model and benchmark, kept
  so notebooks can show it against its source (``origin_model`` / ``origin_benchmark`` say
  where the number really comes from, ``note`` explains). ``load_published`` leaves these
  out unless asked; ``misattributions`` sets them beside the sources.

``add_results`` appends the user's own evaluations (``status="own"``) so plots can overlay them.
"""
from __future__ import annotations

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
    "QwQ-blog": 'the Qwen blog post "QwQ-32B: Embracing the Power of Reinforcement Learning", 2025-03-06',
    "QwQ-preview-blog": 'the Qwen blog post "QwQ: Reflect Deeply on the Boundaries of the Unknown", 2024-11-28',
    "R1": ("the DeepSeek-R1 repository README and paper (arXiv 2501.12948), evaluation tables "
           "(temperature 0.6, top-p 0.95, 32,768 max tokens, 64 samples for pass@1)"),
    "circulating-summary": "a widely circulated summary of the QwQ-32B release (not a primary source)",
}

#: Benchmarks in the order the published table lists them.
BENCHMARKS = ("AIME24", "AIME25", "GPQA-Diamond", "MATH-500", "LiveCodeBench", "LiveBench", "IFEval", "BFCL")

COLUMNS = ("model", "params", "params_total_b", "params_active_b", "architecture", "benchmark", "metric",
           "score", "source", "source_title", "status", "origin_model", "origin_benchmark", "note")


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
    for _, r in table[table["status"] == "misattributed"].iterrows():
        same = pub[(pub["model"] == r["model"]) & (pub["benchmark"] == r["benchmark"]) & (pub["metric"] == r["metric"])]
        origin = pub[(pub["model"] == r["origin_model"]) & (pub["benchmark"] == r["origin_benchmark"])
                     & (pub["metric"] == r["metric"])]
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


def add_results(table: pd.DataFrame, own: pd.DataFrame | Iterable[Mapping] | Mapping,
                source: str = "own evaluation") -> pd.DataFrame:
    """The table with the user's own results appended (``status="own"``).

    ``own`` is a DataFrame, a list of dicts or one dict with at least ``model``,
    ``benchmark`` and ``score`` (a percentage, as in the published table); optional
    ``metric`` (default ``pass@1``), ``params_total_b`` / ``params_active_b`` (billions,
    to place it on the size-efficiency scatter), ``source`` and ``note``.

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
    defaults = {"metric": "pass@1", "source": source, "source_title": source, "status": "own",
                "architecture": "dense", "params": "", "origin_model": "", "origin_benchmark": "", "note": ""}
    for k, v in defaults.items():
        if k not in own.columns:
            own[k] = v
        else:
            own[k] = own[k].fillna(v)
    own["score_text"] = own["score"].map(lambda s: f"{s:g}")
    return pd.concat([table, own], ignore_index=True)


def wide(table: pd.DataFrame, metric: str = "pass@1", models: Iterable[str] | None = None,
         benchmarks: Iterable[str] | None = None) -> pd.DataFrame:
    """Models as rows and benchmarks as columns for one ``metric``; empty where no source gives a figure."""
    t = table[table["metric"] == metric]
    if models is not None:
        t = t[t["model"].isin(list(models))]
    out = t.pivot_table(index="model", columns="benchmark", values="score", aggfunc="first", sort=False)
    order = [b for b in (benchmarks or BENCHMARKS) if b in out.columns]
    extra = [] if benchmarks else [b for b in out.columns if b not in order]
    model_order = list(models) if models is not None else list(dict.fromkeys(t["model"]))
    return out.reindex(index=[m for m in model_order if m in out.index], columns=order + extra)


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
             "note": f"temperature {m.get('temperature')}, {m.get('num_problems')} problems"}]
    return pd.DataFrame(rows)
