"""Widgets of notebook 06 (benchmark plots): the benchmark explorer."""
from __future__ import annotations

__all__ = ["benchmark_explorer"]

from qwqlab.widgets.base import add_reset, show


def benchmark_explorer(table, benchmarks=None, models=None, scatter_benchmark: str = "GPQA-Diamond",
                       own=None, metric=None):
    """Pick benchmarks and models; the grouped bars, the size-efficiency scatter and the table follow.

    ``table`` is ``qwqlab.results.load_published()`` (plus ``add_results`` rows). Controls
    (``.controls``): ``benchmarks``, ``models`` (multiple selection), ``scatter`` (the
    benchmark the scatter plots). ``metric``: one or several (default
    ``qwqlab.results.HEADLINE_METRICS``: pass@1, IFEval's prompt-strict accuracy, and the
    figures whose source names no metric). After each change ``.table`` holds the wide table
    shown and ``.figures`` the matplotlib figures; ``.update()`` recomputes without a click.
    """
    import ipywidgets as w

    from qwqlab.results import BENCHMARKS, HEADLINE_METRICS

    metric = HEADLINE_METRICS if metric is None else metric

    present = set(table["benchmark"])
    all_benchmarks = [b for b in BENCHMARKS if b in present] + sorted(present - set(BENCHMARKS))
    all_models = list(dict.fromkeys(table["model"]))
    pick_b = w.SelectMultiple(options=all_benchmarks, value=tuple(benchmarks or all_benchmarks),
                              description="benchmarks", rows=min(9, len(all_benchmarks)))
    pick_m = w.SelectMultiple(options=all_models, value=tuple(models or all_models), description="models",
                              rows=min(10, len(all_models)), layout=w.Layout(width="45%"))
    scatter = w.Dropdown(options=all_benchmarks, value=scatter_benchmark if scatter_benchmark in all_benchmarks
                         else all_benchmarks[0], description="scatter")
    out = w.Output()

    def update(_=None):
        import matplotlib.pyplot as plt

        from qwqlab.plots import plot_benchmark_bars, plot_size_efficiency
        from qwqlab.results import wide

        chosen_b, chosen_m = list(pick_b.value), list(pick_m.value)
        if not chosen_b or not chosen_m:
            show(out, text="Pick at least one benchmark and one model.")
            box.table, box.figures = None, []
            return
        shown = wide(table, metric=metric, models=chosen_m, benchmarks=chosen_b)
        figs = [plot_benchmark_bars(table, benchmarks=chosen_b, models=chosen_m, metric=metric)[0],
                plot_size_efficiency(table, benchmark=scatter.value, models=chosen_m, own=own, metric=metric)[0]]
        show(out, shown, *figs)
        for f in figs:
            plt.close(f)
        box.table, box.figures = shown, figs

    for c in (pick_b, pick_m, scatter):
        c.observe(update, names="value")
    box = w.VBox([w.HBox([pick_b, pick_m]), scatter, out])
    box.add_class("qwqlab-benchmarks")
    box.controls = {"benchmarks": pick_b, "models": pick_m, "scatter": scatter}
    add_reset(box, box.controls)
    box.output = out
    box.update = update
    update()
    return box
