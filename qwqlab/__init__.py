"""qwqlab: an open lab for studying how reinforcement learning makes a language model reason."""
__version__ = "0.1.0"
