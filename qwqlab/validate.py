"""The one check of settings' types and numbers: every dataclass of knobs comes through ``check_fields``.

``GRPOConfig``, ``SandboxConfig`` and the experiment files of ``qwqlab.config`` call it, so NaN,
inf, a string where a count belongs or a 200-digit seed are refused the same way everywhere.
"""
from __future__ import annotations

import math
import numbers
import reprlib
from dataclasses import fields

__all__ = ["check_fields", "value_problem", "kinds", "MAX_INT"]

_TYPES = {"int": int, "float": float, "bool": bool, "str": str, "list": list, "dict": dict, "None": None}
_WORDS = {int: "an integer", float: "a finite number", bool: "true or false", str: "a string",
          list: "a list", dict: "a mapping", None: "None (null in a file)"}
#: Integers a setting may hold: 64 bits (a seed, a count); bigger ones are a typo or an attack.
MAX_INT = 2 ** 63


def kinds(annotation):
    """The types an annotation allows (``"float | None"`` -> ``(float, None)``); None if not checked."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    allowed = []
    for part in text.split("|"):
        part = part.strip().split("[")[0]  # list[str] -> list
        if part not in _TYPES:
            return None  # an annotation this check does not know (a Path, an object): its owner checks it
        allowed.append(_TYPES[part])
    return tuple(allowed)


def value_problem(value, allowed) -> str | None:
    """Why ``value`` is not one of the types ``allowed`` (see ``check_fields``), or None if it is."""
    if value is None:
        ok = None in allowed
    elif isinstance(value, bool):  # a bool is an int to Python, never to a setting
        ok = bool in allowed
    elif isinstance(value, numbers.Integral):
        ok = (int in allowed or float in allowed) and abs(int(value)) < MAX_INT
    elif isinstance(value, numbers.Real):
        ok = float in allowed and math.isfinite(value)
    elif isinstance(value, str):
        ok = str in allowed
    elif isinstance(value, (list, tuple)):
        ok = list in allowed
    elif isinstance(value, dict):
        ok = dict in allowed
    else:
        ok = False
    if ok:
        return None
    want = " or ".join(_WORDS[k] for k in allowed)
    return f"must be {want}, got {reprlib.repr(value)}"


def check_fields(obj, where: str | None = None) -> None:
    """Every field of the dataclass ``obj`` holds its annotated type, and every number is finite.

    The one place qwqlab checks settings' types: ``GRPOConfig``, ``SandboxConfig`` and the
    experiment files all come through here. NaN passes every ``<``/``<=`` range check (each
    comparison is False), so a ``float`` must be finite before its range is checked:
    ``max_grad_norm=nan`` would turn every weight into NaN, ``temperature=nan`` gives one
    repeated token. Integers must fit 64 bits; ``True`` is not an integer; an int is a float.

    Raises ``ValueError`` naming ``where`` (default the class name) and the field.

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Knobs:
    ...     temperature: float = 1.0
    >>> check_fields(Knobs(float("nan")))
    Traceback (most recent call last):
    ...
    ValueError: Knobs: temperature must be a finite number, got nan
    """
    where = where or type(obj).__name__
    for f in fields(obj):
        allowed = kinds(f.type)
        if allowed is not None:
            problem = value_problem(getattr(obj, f.name), allowed)
            if problem:
                raise ValueError(f"{where}: {f.name} {problem}")
