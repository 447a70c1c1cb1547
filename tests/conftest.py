import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def nano():
    """The bundled qwq-nano at full precision (loaded once per test session)."""
    import torch

    from qwqlab.models import load_model
    torch.set_num_threads(2)
    return load_model("qwq-nano", verbose=False)
