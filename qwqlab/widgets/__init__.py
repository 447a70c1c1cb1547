"""ipywidgets explorers used by the notebooks, built by functions so tests can drive them.

Each function returns a widget (usually a ``VBox``) whose controls are reachable as
attributes (``w.controls["temperature"]``) and whose output can be inspected after a control
is moved, so tests need no browser. One module per notebook (``models`` 01, ``sampling`` 02,
``rewards`` 03, ``training`` 04, ``lengths`` 05, ``benchmarks`` 06) and ``base`` for what they
share; every function is importable from here.
"""
from qwqlab.widgets.base import *  # noqa: F401,F403
from qwqlab.widgets.benchmarks import *  # noqa: F401,F403
from qwqlab.widgets.lengths import *  # noqa: F401,F403
from qwqlab.widgets.models import *  # noqa: F401,F403
from qwqlab.widgets.rewards import *  # noqa: F401,F403
from qwqlab.widgets.sampling import *  # noqa: F401,F403
from qwqlab.widgets.training import *  # noqa: F401,F403
