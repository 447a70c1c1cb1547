"""Clean pages: where qwqlab's informational lines go, and the third-party noise silenced at its source.

A class reads a pink (stderr) box as "something broke". So:

* ``say(text)``: an informational line. In a notebook kernel it goes to stdout (a plain line);
  in a terminal to stderr, so a command's stdout stays machine-readable (``qwqlab sample``
  prints JSON there).
* ``install()`` (run when ``qwqlab`` is imported): drops exactly one bitsandbytes log record,
  the kernel-hub probe "Failed to load CPU gemm_4bit_forward from kernels-community ...
  `pip install kernels`". bitsandbytes tries an optional download of a faster CPU kernel from
  the Hugging Face hub on AVX-512-BF16 CPUs and falls back to its own; the lab is offline by
  design, so the advice is wrong for it. Every other record of that logger still shows.
* ``no_loading_bars()``: transformers' "Loading weights" bars off for one ``from_pretrained``
  (``load_model(verbose=False)``), restored after, so no other bar is touched.
"""
from __future__ import annotations

import contextlib
import logging
import sys

#: The one bitsandbytes record dropped, by logger and message prefix (see the module docstring).
SILENCED = {"bitsandbytes.backends.cpu.ops": ("Failed to load CPU gemm_4bit_forward from kernels-community",)}


class _DropPrefixes(logging.Filter):
    def __init__(self, prefixes):
        super().__init__()
        self.prefixes = tuple(prefixes)

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefixes)


def install() -> None:
    """Attach the filters in ``SILENCED`` (idempotent; costs no import of the libraries)."""
    for name, prefixes in SILENCED.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropPrefixes) for f in logger.filters):
            logger.addFilter(_DropPrefixes(prefixes))


def in_notebook() -> bool:
    """Whether this code runs in a Jupyter kernel (IPython's shell there is the ZMQ one)."""
    ipython = sys.modules.get("IPython")  # never imported here: a kernel has it already
    shell = ipython.get_ipython() if ipython is not None else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def say(text: str) -> None:
    """An informational line: stdout in a notebook, stderr in a terminal."""
    print(text, file=sys.stdout if in_notebook() else sys.stderr)


@contextlib.contextmanager
def no_loading_bars(quiet: bool = True):
    """transformers' progress bars off inside the block (when ``quiet``), as they were after."""
    if not quiet:
        yield
        return
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()
