"""qwqlab: an open lab for studying how reinforcement learning makes a language model reason."""
__version__ = "0.1.0"

from qwqlab import quiet as _quiet  # noqa: E402  (third-party noise off at its source; see qwqlab/quiet.py)

_quiet.install()
