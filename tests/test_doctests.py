"""Every ``>>>`` example in the package runs and shows what it says (issue 9: one failed unseen)."""
from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import qwqlab

MODULES = sorted(m.name for m in pkgutil.walk_packages(qwqlab.__path__, "qwqlab.") if not m.name.endswith("__main__"))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (run: python -m doctest -v)"
