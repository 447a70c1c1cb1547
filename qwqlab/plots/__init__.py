"""Figures: each one both static (matplotlib, for slides and papers) and interactive (plotly, for exploring).

Every ``plot_*`` function takes a table (never a model) and returns
``(matplotlib_figure, plotly_figure)``, so a notebook saves both with
``qwqlab.figures.save_figure(name, *plot_x(table), data=table)``. One module per notebook
(``memory`` 01, ``sampling`` 02, ``rewards`` 03, ``training`` 04, ``lengths`` 05,
``benchmarks`` 06) and ``style`` for what they share (colours, labels that never overlap,
``text_overlaps`` for tests); every function is importable from here. Static images are
matplotlib's: plotly's own static export needs Chromium.
"""
from qwqlab.plots.benchmarks import *  # noqa: F401,F403
from qwqlab.plots.lengths import *  # noqa: F401,F403
from qwqlab.plots.memory import *  # noqa: F401,F403
from qwqlab.plots.rewards import *  # noqa: F401,F403
from qwqlab.plots.sampling import *  # noqa: F401,F403
from qwqlab.plots.style import *  # noqa: F401,F403
from qwqlab.plots.training import *  # noqa: F401,F403
