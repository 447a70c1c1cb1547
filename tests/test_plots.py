"""qwqlab.plots: every figure comes back as a (matplotlib, plotly) pair and draws what its table holds."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import plotly.graph_objects as go  # noqa: E402
import pytest  # noqa: E402
from synthetic import synthetic_rollouts  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from qwqlab import lengths as L  # noqa: E402
from qwqlab import plots as P  # noqa: E402
from qwqlab import results as R  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def is_pair(pair):
    static, interactive = pair
    return isinstance(static, Figure) and isinstance(interactive, go.Figure)


@pytest.fixture(scope="module")
def table():
    return R.add_results(R.load_published(), {"model": "qwq-nano", "benchmark": "arithmetic", "score": 41.0,
                                              "params_total_b": 0.00107})


def _panel(interactive, name):
    return next(t for t in interactive.data if t.name == name)


def test_benchmark_bars_draw_only_published_cells_one_panel_per_family(table):
    static, interactive = P.plot_benchmark_bars(table, benchmarks=["AIME24", "AIME", "AIME25", "GPQA-Diamond", "GPQA"],
                                                models=["QwQ-32B", "QwQ-32B-Preview", "DeepSeek-R1"])
    assert [t.name for t in interactive.data] == ["AIME", "GPQA"]       # one panel per family
    aime = _panel(interactive, "AIME")
    assert "QwQ-32B · AIME24" in aime.y and "QwQ-32B · AIME25" in aime.y
    assert not any(y.startswith("QwQ-32B ") for y in _panel(interactive, "GPQA").y)  # no source gives one
    assert not any("Preview" in y for t in interactive.data for y in t.y)  # its blog names no metric: not pass@1
    assert P.HIGHLIGHT_COLOR in list(aime.marker.color)
    widths = sorted(round(p.get_width(), 1) for ax in static.axes for p in ax.patches)
    assert widths == sorted([79.5, 69.5, 79.8, 71.5])
    _, both = P.plot_benchmark_bars(table, benchmarks=["AIME24", "AIME", "GPQA"], metric=["pass@1", "not stated"],
                                    models=["QwQ-32B", "QwQ-32B-Preview"])
    assert "QwQ-32B-Preview · AIME" in _panel(both, "AIME").y
    assert list(_panel(both, "GPQA").text) == ["65.2"]                   # labels as published, not "65"


def test_benchmark_bars_read_from_across_a_room(table):
    """The whole published table: no two texts overlap, a title that says what is plotted,
    every panel titled with its axis labelled, and the lab's own rows in panels of their own."""
    metrics = ["pass@1", "prompt-strict accuracy", "not stated"]
    static, interactive = P.plot_benchmark_bars(table, metric=metrics)
    assert P.text_overlaps(static) == []
    assert "published scores" in static._suptitle.get_text() and "%" in static._suptitle.get_text()
    for ax in static.axes:
        assert ax.get_title(loc="left") and ax.get_xlabel() == "score (%)"
        assert all(t.get_rotation() == 0 for t in ax.get_yticklabels() + ax.get_xticklabels())
    own_axes = [ax for ax in static.axes if ax.get_title(loc="left").startswith("This lab")]
    assert own_axes and all("qwq-nano" not in [t.get_text() for t in ax.get_yticklabels()]
                            for ax in static.axes if ax not in own_axes)
    assert untitled_axes(interactive) == []


def untitled_axes(pfig) -> list[str]:
    """The axes of a plotly figure that draw a trace but have no title (categorical axes excepted:
    their tick labels name what they hold)."""
    missing = []
    for trace in pfig.data:
        for attr in ("xaxis", "yaxis"):
            name = getattr(trace, attr, None) or attr[0]
            key = name.replace("x", "xaxis").replace("y", "yaxis")
            axis = pfig.layout[key]
            values = getattr(trace, attr[0], None)
            categorical = values is not None and len(values) > 0 and isinstance(values[0], str)
            if not (axis.title.text or categorical):
                missing.append(f"{trace.name}: {key}")
    return sorted(set(missing))


def test_benchmark_bars_never_show_a_disputed_figure_as_one_number(table):
    static, interactive = P.plot_benchmark_bars(table, benchmarks=["AIME24"], models=["QwQ-32B-Preview (re-evaluated)"])
    (bar,) = interactive.data
    assert list(bar.text) == ["44.0 / 50.0 (disputed)"] and list(bar.marker.pattern.shape) == ["x"]
    assert list(bar.x) == [44.0] and list(bar.error_x.array) == [pytest.approx(6.0)]  # the range up to 50.0
    assert "R1-README" in bar.hovertext[0] and "R1-paper" in bar.hovertext[0]
    assert [t.get_text() for t in static.axes[0].texts] == ["44.0 / 50.0 (disputed)"]  # the bar's only label


def test_benchmark_bars_draw_own_confidence_intervals():
    own = pd.DataFrame([{"model": "lab run", "benchmark": "MATH subset", "score": 75.0,
                         "ci_low": 60.0, "ci_high": 85.0}])
    t = R.add_results(R.load_published(), own)
    static, interactive = P.plot_benchmark_bars(t, benchmarks=["MATH subset"])
    (bar,) = interactive.data
    assert list(bar.y) == ["lab run"] and list(bar.marker.color) == [P.OWN_COLOR]
    assert (list(bar.error_x.array), list(bar.error_x.arrayminus)) == ([10.0], [15.0])
    segments = [seg for coll in static.axes[0].collections for seg in coll.get_segments()]
    assert any(np.allclose(seg[:, 0], [60.0, 85.0]) for seg in segments)  # the error bar spans the interval
    assert static.axes[0].get_title(loc="left") == "This lab: MATH subset"


def test_size_efficiency_labels_do_not_collide(table):
    for bench in ("AIME24", "GPQA-Diamond"):
        static, _ = P.plot_size_efficiency(table, benchmark=bench, own=table[table["status"] == "own"])
        assert P.text_overlaps(static) == [], bench
        assert static.axes[0].get_ylabel() == "pass@1 (%)"  # the metric this benchmark's figures are


def test_size_efficiency_places_moe_at_active_and_total(table):
    static, interactive = P.plot_size_efficiency(table, benchmark="GPQA-Diamond",
                                                 own=table[table["status"] == "own"])
    moe = [t for t in interactive.data if t.name.startswith("DeepSeek-R1 (")][0]
    assert list(moe.x) == [37, 671] and list(moe.y) == [71.5, 71.5]
    title = interactive.layout.title.text
    assert "OpenAI o1-1217, OpenAI o1-mini" in title    # undisclosed sizes are named, not dropped silently
    assert "no published GPQA-Diamond figure: QwQ-32B" in title
    star = [t for t in interactive.data if "own" in t.name][0]
    assert list(star.x) == [0.00107] and star.marker.symbol == "star"
    assert static.axes[0].get_xscale() == "log"


@pytest.fixture(scope="module")
def rollouts():
    df = synthetic_rollouts(600)
    df["run"] = np.where(np.arange(len(df)) % 2, "after RL", "before RL")
    return df


def test_length_plots_are_pairs(rollouts):
    report = L.analyze(rollouts, by="run")
    assert is_pair(P.plot_length_summary(report.summary, by="run"))
    assert is_pair(P.plot_length_distributions(rollouts, by="run"))
    assert is_pair(P.plot_accuracy_by_length(report.by_bucket, by="run"))
    assert is_pair(P.plot_length_vs_pass_rate(report.by_problem, by="run"))
    static, interactive = P.plot_marker_rates(report.markers, by="run")
    assert {t.name for t in interactive.data} == {"before RL", "after RL"}
    assert len(static.axes[0].patches) == 2 * len(set(report.markers["marker"]))


def test_length_distributions_split_by_outcome(rollouts):
    static, interactive = P.plot_length_distributions(rollouts)
    names = {t.name for t in interactive.data}
    assert names == {"correct", "incorrect"}
    total = sum(len(t.x) for t in interactive.data)
    assert total == len(rollouts)


def test_length_over_steps_plot():
    log = pd.DataFrame({"step": range(5), "think_tokens_mean": [1, 2, 3, 4, 5], "accuracy": [.1, .2, .3, .4, .5]})
    static, interactive = P.plot_length_over_steps(L.length_over_steps(log))
    assert {t.name for t in interactive.data} == {"think_tokens", "accuracy"}
    assert len(static.axes) == 2  # tokens on the left, accuracy on the right


def test_accuracy_by_length_draws_each_groups_buckets_in_length_order(rollouts):
    by_bucket = L.accuracy_by_length(rollouts, bins=4, by="run")
    by_bucket = by_bucket.iloc[::-1]  # whatever order the table comes in
    static, interactive = P.plot_accuracy_by_length(by_bucket, by="run")
    for line in static.axes[0].get_lines():
        xs = list(line.get_xdata())
        assert xs == sorted(xs) and len(xs) == 4
    assert untitled_axes(interactive) == [] and static.axes[0].get_xlabel()


def test_length_over_steps_legend_is_outside_the_data():
    log = pd.concat([pd.DataFrame({"run": name, "step": range(5), "think_tokens_mean": [1, 2, 3, 4, 5],
                                   "completion_tokens_mean": [3, 4, 5, 6, 7], "accuracy": [.1, .2, .3, .4, .5]})
                     for name in ("a", "b", "c")])
    static, interactive = P.plot_length_over_steps(L.length_over_steps(log))
    legend = static.axes[0].get_legend()
    renderer = static.canvas.get_renderer()
    assert legend.get_window_extent(renderer).x0 >= static.axes[1].get_window_extent(renderer).x1
    assert untitled_axes(interactive) == []


def test_every_interactive_figure_titles_its_axes(rollouts):
    """The HTML versions name their axes as the PNGs do (issue 21: the recorded runs' had no axis titles)."""
    report = L.analyze(rollouts, by="run")
    history = [{"step": s, "reward_mean": 0.1 * s, "reward_std": 0.1, "accuracy": 0.1 * s, "think_tokens_mean": 20 + s,
                "completion_tokens_mean": 30 + s, "truncation_rate": 0.0, "entropy": 0.5, "kl": 0.0,
                "zero_std_share": 0.2, "format_rate": 0.9} for s in range(1, 8)]
    summary = pd.DataFrame({"run": ["a", "b"], "accuracy_before": [0.4, 0.4], "accuracy_after": [0.8, 0.5],
                            "think_tokens_before": [20.0, 20.0], "think_tokens_after": [30.0, 5.0]})
    pairs = {"length_summary": P.plot_length_summary(report.summary, by="run"),
             "length_distributions": P.plot_length_distributions(rollouts, by="run"),
             "length_vs_pass_rate": P.plot_length_vs_pass_rate(report.by_problem, by="run"),
             "marker_rates": P.plot_marker_rates(report.markers, by="run"),
             "training": P.plot_training(history)}
    try:
        pairs["run_summary"] = P.plot_run_summary(summary)
    except (KeyError, ValueError, TypeError):
        pass  # its table has other columns; notebook 04's test draws it from recorded runs
    for name, (static, interactive) in pairs.items():
        assert untitled_axes(interactive) == [], name
        assert static.axes[0].get_title() or static._suptitle is not None, name
