"""Where qwqlab finds its bundled data (``data/`` at the top of the repository)."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """``$QWQLAB_DATA`` if set, else the repository's ``data/`` folder."""
    return Path(os.environ.get("QWQLAB_DATA", REPO_ROOT / "data"))


def nano_dir() -> Path:
    """The bundled qwq-nano checkpoint."""
    return data_dir() / "models" / "qwq-nano"
