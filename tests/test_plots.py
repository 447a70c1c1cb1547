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


def test_benchmark_bars_draw_only_published_cells(table):
    static, interactive = P.plot_benchmark_bars(table, benchmarks=["AIME24", "AIME", "AIME25", "GPQA-Diamond", "GPQA"],
                                                models=["QwQ-32B", "QwQ-32B-Preview", "DeepSeek-R1"])
    traces = {t.name: t for t in interactive.data}
    assert list(traces["QwQ-32B"].x) == ["AIME24", "AIME25"]          # no GPQA bar: no source gives one
    assert "QwQ-32B-Preview" not in traces                             # its blog names no metric: not pass@1
    assert traces["QwQ-32B"].marker.color == P.HIGHLIGHT_COLOR
    ax = static.axes[0]
    heights = sorted(round(b.get_height(), 1) for b in ax.patches)
    assert heights == sorted([79.5, 69.5, 79.8, 71.5])
    _, both = P.plot_benchmark_bars(table, benchmarks=["AIME24", "AIME", "GPQA"], metric=["pass@1", "not stated"],
                                    models=["QwQ-32B", "QwQ-32B-Preview"])
    preview = {t.name: t for t in both.data}["QwQ-32B-Preview"]
    assert list(preview.x) == ["AIME<br>(not stated)", "GPQA<br>(not stated)"]  # each label says its metric
    assert list(preview.text) == ["50.0", "65.2"]                      # labels as published, not "50"


def test_benchmark_bars_never_show_a_disputed_figure_as_one_number(table):
    static, interactive = P.plot_benchmark_bars(table, benchmarks=["AIME24"], models=["QwQ-32B-Preview (re-evaluated)"])
    (bar,) = interactive.data
    assert list(bar.text) == ["44.0 / 50.0 (disputed)"] and bar.marker.pattern.shape == "x"
    assert list(bar.y) == [44.0] and list(bar.error_y.array) == [pytest.approx(6.0)]  # the range up to 50.0
    assert "R1-README" in bar.customdata[0] and "R1-paper" in bar.customdata[0]
    assert [t.get_text() for t in static.axes[0].texts] == ["44.0 / 50.0 (disputed)"]  # the bar's only label


def test_benchmark_bars_draw_own_confidence_intervals():
    own = pd.DataFrame([{"model": "lab run", "benchmark": "MATH subset", "score": 75.0,
                         "ci_low": 60.0, "ci_high": 85.0}])
    t = R.add_results(R.load_published(), own)
    static, interactive = P.plot_benchmark_bars(t, benchmarks=["MATH subset"])
    (bar,) = interactive.data
    assert bar.name == "lab run" and bar.marker.pattern.shape == "/"
    assert (list(bar.error_y.array), list(bar.error_y.arrayminus)) == ([10.0], [15.0])
    segments = [seg for coll in static.axes[0].collections for seg in coll.get_segments()]
    assert any(np.allclose(seg[:, 1], [60.0, 85.0]) for seg in segments)  # the error bar spans the interval


def test_benchmark_bars_show_own_runs_hatched(table):
    _, interactive = P.plot_benchmark_bars(table)
    own = [t for t in interactive.data if t.name == "qwq-nano"][0]
    assert list(own.x) == ["arithmetic"] and own.marker.pattern.shape == "/"


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
