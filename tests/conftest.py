import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
# Test fixtures that are not pytest fixtures (the fake model, a synthetic rollouts table) live in
# tests/fixtures, out of the package: ``from fake_lm import ...``, ``from synthetic import ...``.
sys.path.insert(0, str(Path(__file__).parent / "fixtures"))

# `make test-kernels` runs the layout-sensitive tests at a fixed thread count: it sets
# QWQLAB_TEST_THREADS, and the tests' own torch.set_num_threads calls then leave it alone.
if os.environ.get("QWQLAB_TEST_THREADS"):
    import torch

    torch.set_num_threads(int(os.environ["QWQLAB_TEST_THREADS"]))
    torch.set_num_threads = lambda n: None


@pytest.fixture(scope="session")
def nano():
    """The bundled qwq-nano at full precision (loaded once per test session)."""
    import torch

    from qwqlab.models import load_model
    torch.set_num_threads(2)
    return load_model("qwq-nano", verbose=False)


@pytest.fixture(scope="module")
def fake():
    """The one fake model: a real Qwen2 model with fixed bigram logits (``tests/fixtures/fake_lm.py``),
    built in under a second, and its tokenizer, as ``(model, tokenizer)``; one per test module."""
    from fake_lm import fake_model, fake_tokenizer

    tok = fake_tokenizer()
    return fake_model(tok), tok


def pytest_collection_modifyitems(config, items):
    """The book's test (marker ``book``) builds from the notebooks the notebook tests executed: it runs last."""
    items.sort(key=lambda item: item.get_closest_marker("book") is not None)  # a stable sort keeps the rest
