"""Widgets of notebook 03 (reward shaping): the reward explorer."""
from __future__ import annotations

__all__ = ["reward_explorer"]

from qwqlab.widgets.base import add_reset, show


def reward_explorer(rollouts, tokenizer=None, weights: dict | None = None, estimator: str = "grpo",
                    cosine_max_len: int = 64, overlong_max_len: int = 96, overlong_cache: int = 32,
                    problem_id: str | None = None, plot: bool = True):
    """Reward weights, length targets and an advantage estimator; a group's rewards and advantages, live.

    ``rollouts`` is a table from ``qwqlab.rollouts.sample`` (prompt-major, the same number of
    samples per problem). Every control recomputes the weighted reward
    (``qwqlab.rewards.combine`` semantics: ``None`` terms skipped) of every rollout and the
    advantages (``qwqlab.grpo.compute_advantages``) of the whole batch, then shows the chosen
    problem's group. ``box.controls``: a weight slider per reward (``weight_<name>``),
    ``cosine_max_len``, ``overlong_max_len``, ``overlong_cache``, ``estimator``, ``problem``;
    ``box.table`` (all rows), ``box.group`` (the shown group), ``box.panels`` (``summary``,
    ``table``, ``plot``); ``box.updates``/``box.redraws`` count recomputations and plots;
    ``box.recompute()`` after changing ``rollouts`` in place.
    """
    import html

    import ipywidgets as w
    import numpy as np

    from qwqlab.grpo import ESTIMATORS, compute_advantages
    from qwqlab.rewards import DEFAULT_TABLE_REWARDS, get_reward, reward_table, weighted_sum

    sizes = rollouts.groupby("problem_id", sort=False).size()
    if sizes.nunique() != 1 or sizes.iloc[0] < 2:
        raise ValueError("reward_explorer needs the same number (at least 2) of rollouts per problem; "
                         f"got group sizes {sorted(set(sizes))}")
    num_generations = int(sizes.iloc[0])
    names = list(DEFAULT_TABLE_REWARDS)
    weights = {"accuracy": 1.0, **(weights or {})}
    slider = dict(min=-2.0, max=2.0, step=0.1, continuous_update=False, style={"description_width": "initial"})
    weight_sliders = {n: w.FloatSlider(value=float(weights.get(n, 0.0)), description=n, **slider) for n in names}
    longest = int(max(rollouts["completion_tokens"].max(), overlong_max_len, cosine_max_len))
    cos_len = w.IntSlider(value=cosine_max_len, min=8, max=max(2 * longest, 16), step=4, continuous_update=False,
                          description="cosine max_len", style={"description_width": "initial"})
    over_len = w.IntSlider(value=overlong_max_len, min=8, max=max(2 * longest, 16), step=4, continuous_update=False,
                           description="overlong max", style={"description_width": "initial"})
    over_cache = w.IntSlider(value=overlong_cache, min=1, max=max(2 * longest, 16), step=1, continuous_update=False,
                             description="overlong cache", style={"description_width": "initial"})
    est = w.Dropdown(options=list(ESTIMATORS), value=estimator, description="advantage")
    pids = list(sizes.index)
    problem = w.Dropdown(options=pids, value=problem_id if problem_id in pids else pids[0], description="problem")
    summary, table_html, out = w.HTML(), w.HTML(), w.Output()
    cache: dict = {}

    def column(name):
        params = {"cosine": {"max_len": cos_len.value},
                  "soft_overlong": {"max_completion_len": over_len.value,
                                    "soft_punish_cache": min(over_cache.value, over_len.value)}}.get(name, {})
        key = (name, tuple(sorted(params.items())))
        if key not in cache:
            cache[key] = reward_table(rollouts, {name: get_reward(name, **params)}, tokenizer=tokenizer)[name]
        return cache[key]

    def recompute(_=None):
        parts = {n: column(n) for n in names}
        active = [n for n in names if weight_sliders[n].value != 0]
        summed = weighted_sum([parts[n].tolist() for n in active], [weight_sliders[n].value for n in active],
                              names=active, n=len(rollouts))
        total = np.array([np.nan if v is None else v for v in summed], dtype=float)
        adv = compute_advantages(list(total), num_generations, estimator=est.value)
        table = rollouts[["problem_id", "sample_index", "completion_tokens"]].copy()
        if "correct" in rollouts:
            table["correct"] = rollouts["correct"]
        for n in names:
            table[n] = parts[n]
        table["reward"], table["advantage"] = total, np.asarray(adv, dtype=float)
        box.table = table
        box.group = table[table["problem_id"] == problem.value]
        g = box.group
        formula = " + ".join(f"{weight_sliders[n].value:g}*{n}" for n in active) or "0"
        spread = g["reward"].std(ddof=1) if g["reward"].notna().sum() > 1 else float("nan")
        summary.value = (f"<b>reward</b> = {html.escape(formula)}<br>"
                         f"<b>group {html.escape(str(problem.value))}</b>: mean reward {g['reward'].mean():.3f}, "
                         f"spread {spread:.3f}; advantages ({est.value}): "
                         + ", ".join(f"{a:+.3f}" for a in g["advantage"])
                         + f"<br>batch: {len(table)} rollouts, mean reward {np.nanmean(total):.3f}; "
                         f"{_reward_zero_spread_share(total, num_generations):.0%} of groups have no reward spread")
        shown = g[["sample_index", "completion_tokens"] + (["correct"] if "correct" in g else [])
                  + active + ["reward", "advantage"]]
        table_html.value = shown.to_html(index=False, float_format=lambda v: f"{v:.3f}", na_rep="None")
        if plot:
            _draw_reward_group(out, g, est.value)
            box.redraws += 1
        box.updates += 1

    box = w.VBox([w.HTML("<b>Reward weights</b>"), w.VBox(list(weight_sliders.values())),
                  w.HTML("<b>Length targets</b>"), w.HBox([cos_len, over_len, over_cache]),
                  w.HBox([est, problem]), summary, table_html, out])
    box.add_class("qwqlab-reward-explorer")
    box.updates = box.redraws = 0
    box.controls = {**{f"weight_{n}": s for n, s in weight_sliders.items()}, "cosine_max_len": cos_len,
                    "overlong_max_len": over_len, "overlong_cache": over_cache, "estimator": est, "problem": problem}
    box.panels = {"summary": summary, "table": table_html, "plot": out}
    box.recompute = recompute
    for c in box.controls.values():
        c.observe(recompute, names="value")
    add_reset(box, box.controls, at=5)  # under the controls, over the numbers
    recompute()
    return box


def _reward_zero_spread_share(total, num_generations: int) -> float:
    import numpy as np

    groups = np.asarray(total, dtype=float).reshape(-1, num_generations)
    flat = [np.nanmax(g) - np.nanmin(g) < 1e-12 if np.isfinite(g).sum() > 1 else True for g in groups]
    return float(np.mean(flat))


def _draw_reward_group(out, group, estimator: str):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 2.4))
    labels = [str(i) for i in group["sample_index"]]
    axes[0].bar(labels, group["reward"].fillna(0.0), color="#4a6fa5")
    axes[0].set_title("reward", fontsize=9)
    axes[1].bar(labels, group["advantage"], color=["#2e8b57" if a > 0 else "#c0392b" for a in group["advantage"]])
    axes[1].set_title(f"advantage ({estimator})", fontsize=9)
    for ax in axes:
        ax.set_xlabel("sample", fontsize=8)
        ax.axhline(0, color="#333333", lw=0.6)
    fig.tight_layout()
    show(out, fig)
    plt.close(fig)
