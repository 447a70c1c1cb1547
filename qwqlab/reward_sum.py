"""The one weighted sum of rewards: ``weighted_sum``, ``combine``, ``score_rewards``, and their names.

Rewards are kept by position (two rewards with one name are two columns, ``reward_names``), and
a value that cannot be used (``None``, NaN, inf, over ``MAX_ABS_REWARD``) is "cannot be judged"
(``finite_reward``). ``qwqlab.rewards`` re-exports all of it.
"""
from __future__ import annotations

import math
import warnings
from typing import Callable, Sequence

RewardFunc = Callable[..., list]

__all__ = ["MAX_ABS_REWARD", "finite_reward", "weighted_sum", "combine", "reward_name", "reward_names",
           "score_rewards"]

#: Largest reward magnitude taken at face value. Anything bigger (or inf, or NaN) is treated as
#: "cannot be judged" with a warning: one reward of 1e39 overflows float32, and one inf turns
#: the group's advantages, then every weight of the model, into NaN.
MAX_ABS_REWARD = 1e6


def finite_reward(value, name: str = "reward"):
    """``value`` as a float, or ``None`` when it cannot be judged or is not a usable number.

    ``None`` and NaN mean "cannot be judged"; inf, -inf and magnitudes over
    ``MAX_ABS_REWARD`` are refused the same way, with a ``RuntimeWarning`` naming the reward.

    >>> finite_reward(0.5), finite_reward(None), finite_reward(float("nan"))
    (0.5, None, None)
    """
    if value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} returned {value!r}: a reward must be a number or None") from None
    if math.isnan(v):
        return None
    if not math.isfinite(v) or abs(v) > MAX_ABS_REWARD:
        warnings.warn(f"{name} returned {v!r}; rewards must be finite and within +-{MAX_ABS_REWARD:g}, "
                      "so this completion is treated as 'cannot be judged'", RuntimeWarning, stacklevel=3)
        return None
    return v


def weighted_sum(columns: Sequence[Sequence], weights: Sequence[float], none: str = "skip",
                 names: Sequence[str] | None = None, n: int | None = None) -> list[float | None]:
    """``sum_k weights[k] * columns[k][j]`` per completion ``j``: qwqlab's one weighted sum of rewards.

    ``none`` says what a ``None`` (or NaN, or a refused non-finite value, see ``finite_reward``)
    from one reward does to the sum: ``"skip"`` (default) leaves that term out, and the result
    is ``None`` only if every reward was ``None`` (what TRL does with several ``reward_funcs``:
    a NaN-ignoring weighted sum); ``"zero"`` counts it as 0; ``"propagate"`` makes the sum ``None``.

    >>> weighted_sum([[1.0, None], [0.5, None]], [1.0, 2.0])
    [2.0, None]
    """
    if none not in ("skip", "zero", "propagate"):
        raise ValueError(f"none must be 'skip', 'zero' or 'propagate', not {none!r}")
    if len(weights) != len(columns):
        raise ValueError(f"got {len(columns)} rewards but {len(weights)} weights; give one weight per reward")
    names = list(names) if names is not None else [f"reward {k}" for k in range(len(columns))]
    n = len(columns[0]) if columns else (n or 0)
    for name, col in zip(names, columns):
        if len(col) != n:
            raise ValueError(f"{name} returned {len(col)} values for {n} completions")
    clean = [[finite_reward(v, name) for v in col] for name, col in zip(names, columns)]
    out: list[float | None] = []
    for j in range(n):
        total, judged, missing = 0.0, 0, False
        for w, col in zip(weights, clean):
            if col[j] is None:
                missing = True
                continue
            total += float(w) * col[j]
            judged += 1
        if (none == "propagate" and missing) or (judged == 0 and none != "zero"):
            out.append(None)
        else:
            out.append(finite_reward(total, "the weighted sum of rewards"))
    return out


def combine(rewards: Sequence[RewardFunc], weights: Sequence[float] | None = None,
            none: str = "skip", name: str = "combined_reward") -> RewardFunc:
    """One reward from several: ``sum_k weights[k] * rewards[k]``, per completion.

    ``none`` says what a ``None`` from one reward does to the sum:
    ``"skip"`` (default) leaves that term out, and the result is ``None`` only if every
    reward was ``None`` (exactly what TRL does with several ``reward_funcs``: a NaN-ignoring
    weighted sum); ``"zero"`` counts it as 0; ``"propagate"`` makes the whole sum ``None``.

    >>> right = lambda prompts, completions, **kw: [1.0, 0.0]
    >>> short = lambda prompts, completions, **kw: [1.0, None]
    >>> combine([right, short], [1.0, 0.5])(None, ["4", "5"])
    [1.5, 0.0]
    """
    rewards = list(rewards)
    weights = [1.0] * len(rewards) if weights is None else [float(w) for w in weights]
    if len(weights) != len(rewards):
        raise ValueError(f"got {len(rewards)} rewards but {len(weights)} weights; give one weight per reward")
    if none not in ("skip", "zero", "propagate"):
        raise ValueError(f"none must be 'skip', 'zero' or 'propagate', not {none!r}")

    names = reward_names(rewards)

    def combined(prompts, completions, **kwargs):
        columns = [r(prompts, completions, **kwargs) for r in rewards]  # by position: two of a kind stay two
        return weighted_sum(columns, weights, none=none, names=names, n=len(completions))

    combined.__name__ = combined.__qualname__ = name
    return combined


def reward_name(func, i: int) -> str:
    """A reward function's name, as logs and TRL show it (``reward_<i>`` when it has none)."""
    return getattr(func, "__name__", None) or getattr(getattr(func, "func", None), "__name__", None) or f"reward_{i}"


def reward_names(funcs) -> list[str]:
    """One display name per reward, by position, unique: a repeated name gets ``_<position>``.

    Rewards are kept by position everywhere (``combine``, ``score_rewards``), so two rewards
    with one name (two ``make_cosine_reward`` settings, two lambdas) are two columns.

    >>> def format_reward(prompts, completions, **kwargs): ...
    >>> reward_names([lambda p, c: [], lambda p, c: [], format_reward])
    ['<lambda>', '<lambda>_1', 'format_reward']
    """
    names: list[str] = []
    for i, f in enumerate(funcs):
        name = reward_name(f, i)
        if name in names:
            name = f"{name}_{i}"
            while name in names:  # a reward already called "<name>_<i>"
                name += "_"
        names.append(name)
    return names


def score_rewards(reward_funcs, prompts, completions, weights=None, **kwargs):
    """Call each reward (TRL signature) and sum them with ``weights`` (``rewards.weighted_sum``).

    Returns ``(total, per_func)``: ``total`` a list of floats or ``None`` (``None`` only when
    every reward said "cannot be judged"; otherwise the ``None`` ones are skipped, as TRL
    does; inf, NaN and absurd magnitudes count as "cannot be judged", with a warning),
    ``per_func`` a dict name -> list of values as the rewards returned them.
    """
    weights = list(weights) if weights is not None else [1.0] * len(reward_funcs)
    if len(weights) != len(reward_funcs):
        raise ValueError(f"{len(weights)} reward_weights for {len(reward_funcs)} reward functions")
    per_func = {}
    for name, f in zip(reward_names(reward_funcs), reward_funcs):
        values = list(f(prompts=prompts, completions=completions, **kwargs))
        if len(values) != len(completions):
            raise ValueError(f"reward {name} returned {len(values)} values for {len(completions)} completions")
        per_func[name] = values
    total = weighted_sum(list(per_func.values()), weights, names=list(per_func), n=len(completions))
    return total, per_func
