"""Widgets of notebook 04 (GRPO training): the live training monitor."""
from __future__ import annotations

__all__ = ["training_monitor"]

from qwqlab.widgets.base import show


def training_monitor(panels: dict | None = None, window: int = 5, min_seconds: float = 2.0,
                     title: str = "GRPO on qwq-nano (live)"):
    """Live plots of a GRPO run: pass ``monitor.callback`` to ``train_grpo(..., callback=...)``.

    A status line and matplotlib panels (``qwqlab.plots.plot_training``) redrawn in an
    ``Output`` widget at most every ``min_seconds`` (a redraw costs ~0.2 s, a step ~1 s);
    ``monitor.finish()`` draws the final state. ``monitor.history`` holds the rows received,
    ``monitor.redraws`` counts redraws (tests drive it without a browser).
    """
    import time

    import ipywidgets as w

    status = w.HTML("<i>waiting for the first step...</i>")
    out = w.Output()
    box = w.VBox([status, out])
    box.add_class("qwqlab-training-monitor")
    box.history, box.redraws = [], 0
    last = {"t": -float("inf")}

    def redraw():
        import matplotlib.pyplot as plt

        from qwqlab.plots import plot_training

        fig, _ = plot_training(box.history, panels=panels, window=window, title=title)
        show(out, fig)
        plt.close(fig)
        box.redraws += 1
        last["t"] = time.perf_counter()

    def callback(row: dict):
        box.history.append(dict(row))
        status.value = (f"step {row['step']}: reward {row.get('reward_mean', float('nan')):.3f}, "
                        f"accuracy {row.get('accuracy', float('nan')):.3f}, "
                        f"{row.get('completion_tokens_mean', float('nan')):.1f} tokens "
                        f"({row.get('think_tokens_mean', float('nan')):.1f} thinking), "
                        f"{row.get('seconds', float('nan')):.2f} s/step")
        if time.perf_counter() - last["t"] >= min_seconds:
            redraw()
        return False

    def finish():
        if box.history:
            redraw()
        return box

    box.callback, box.finish, box.controls, box.panels = callback, finish, {}, {"status": status, "plots": out}
    return box
