"""What every explorer shares: ``show`` (an Output widget's contents in one update), labels that fit, a reset button."""
from __future__ import annotations

import html
import re

__all__ = ["show", "fit_labels", "add_reset", "model_text_html", "math_segments", "LABEL_WIDTH"]

# Inline maths between single dollars, by pandoc's rule: the opening $ has a non-space right
# after it, the closing $ a non-space right before it and no digit right after it. So
# "$20,000 ... $66,200" is money, and "$2x+1$" is maths.
_INLINE_DOLLARS = re.compile(r"(?<![\\$])\$(?![\s$])((?:[^$\\\n]|\\.)+?)(?<![\s\\])\$(?![\d$])")
_DOUBLE_DOLLARS = re.compile(r"\$\$.+?\$\$", re.S)
_BRACKETS = re.compile(r"\\\(.+?\\\)|\\\[.+?\\\]", re.S)
_BARE_BOXED = re.compile(r"\\boxed\{(?:[^{}]|\{(?:[^{}]|\{[^{}]*\})*\})*\}")
_DOLLAR = re.compile(r"\\?\$")  # a dollar, escaped or not
_NO_MATH = "<span class='tex2jax_ignore mathjax_ignore'>$</span>"


def model_text_html(text: str | None) -> str:
    """A model's text as HTML for an ``HTMLMath`` widget: escaped (a completion is not markup),
    its maths typeset (``\\(..\\)``, ``\\[..\\]``, ``$$..$$`` and ``$..$`` by pandoc's rule), and
    every other dollar shown as a dollar.

    Without the last part, "a wage of $20,000 ... total $66,200" was set as one formula,
    in italics, 1,031 px wide in a 480 px pane of notebook 05's trace reader.

    >>> model_text_html("costs $5 and $6, so $x+1$")
    "costs <span class='tex2jax_ignore mathjax_ignore'>$</span>5 and <span class='tex2jax_ignore mathjax_ignore'>$</span>6, so $x+1$"
    """
    escaped = html.escape(text or "", quote=False)
    out, last = [], 0
    for start, end in math_segments(escaped):
        out.append(_dollars(escaped[last:start]))
        out.append(escaped[start:end])
        last = end
    out.append(_dollars(escaped[last:]))
    return "".join(out)


def math_segments(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each piece of maths in ``text``, delimiters included, in order and not
    overlapping: ``\\(..\\)``, ``\\[..\\]``, ``$$..$$``, and ``$..$`` by pandoc's rule (so
    "$20,000 ... $66,200" is money). The one finder for the widgets and the book.

    >>> math_segments("costs $5, so $x$ and \\(y\\)")
    [(13, 16), (21, 26)]
    """
    found, last = [], 0
    for m in sorted([*_BRACKETS.finditer(text), *_DOUBLE_DOLLARS.finditer(text), *_INLINE_DOLLARS.finditer(text)],
                    key=lambda m: m.start()):
        if m.start() >= last:  # not inside maths already found
            found.append((m.start(), m.end()))
            last = m.end()
    return found


def _dollars(text: str) -> str:
    """Text that is not maths: every ``$`` and ``\\$`` a dollar MathJax leaves alone, and a bare
    ``\\boxed{..}`` (written outside any delimiters, as answers often are) set as maths."""
    text = _DOLLAR.sub(_NO_MATH, text)
    return _BARE_BOXED.sub(lambda m: "\\(" + m.group(0) + "\\)", text)


def show(out, *objects, text: str | None = None) -> None:
    """Replace what the ``Output`` widget ``out`` shows with ``objects`` (or a line of ``text``),
    as one update of its ``outputs`` state.

    Why not ``with out: display(...)``: that routes the outputs through the kernel's display
    hooks, and a headless client (nbclient, under ``make figures`` and Voila's dashboards)
    emulates the Output widget by sending its state back to the kernel on the shell channel
    for every output, while it waits for the cell's reply on that same channel. Seen here: one
    ``length_explorer`` cell in about ten then waited for the client's whole cell timeout (the
    reply was there; the waiting side was not woken), and a Voila page, which has no such
    timeout, never loaded. Setting ``outputs`` directly sends one state message the other
    way and nothing back. Each object is formatted as IPython displays it (tables as HTML,
    matplotlib figures as PNG); outside a kernel as its ``repr``.
    """
    import base64

    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:
        shell = None
    outputs = []
    if text is not None:
        outputs.append({"output_type": "stream", "name": "stdout", "text": text.rstrip("\n") + "\n"})
    for obj in objects:
        if shell is not None:
            data, metadata = shell.display_formatter.format(obj)
        else:
            data, metadata = {"text/plain": repr(obj)}, {}
        data = {k: base64.b64encode(v).decode("ascii") if isinstance(v, bytes) else v for k, v in data.items()}
        outputs.append({"output_type": "display_data", "data": data, "metadata": metadata})
    out.outputs = tuple(outputs)


#: One label width for every control: sliders line up in a column, and no label is cut short
#: ("temperat…", ipywidgets' default width cuts anything past about 8 characters).
LABEL_WIDTH = "9.5em"


def fit_labels(controls) -> None:
    """Give every control in ``controls`` the same full-width label; buttons as wide as their text."""
    import ipywidgets as w

    for c in controls:
        if isinstance(c, w.Button):
            c.layout.width = "auto"
        elif hasattr(getattr(c, "style", None), "description_width"):
            c.style.description_width = LABEL_WIDTH


def add_reset(box, controls: dict, at: int | None = None):
    """A "Reset" button that puts every control of ``controls`` back to its first value.

    Placed in ``box`` at index ``at`` (default: before its last child, the output) and kept
    as ``box.reset``; every control's label is fitted (``fit_labels``) on the way.
    """
    import ipywidgets as w

    fit_labels(controls.values())
    initial = {k: c.value for k, c in controls.items() if not isinstance(c, w.Button) and hasattr(c, "value")}
    button = w.Button(description="Reset", icon="undo", tooltip="put every control back where it started",
                      layout=w.Layout(width="auto"))

    def reset(_=None):
        for k, value in initial.items():
            controls[k].value = value

    button.on_click(reset)
    children = list(box.children)
    children.insert(len(children) - 1 if at is None else at, button)
    box.children = tuple(children)
    box.reset = button
    return button
