"""What the plugin keeps per pytest process, and the names its pytest-xdist hooks share with it.

``config.stash`` holds the run's :class:`~pytest_cxrperf.session.CxrSession` (caches, from the
first time cxr is in play) and its :class:`~pytest_cxrperf.results.RunResults` (a pytest-xdist
controller has results without a session: its workers' merged). Both :mod:`.plugin` and
:mod:`.xdist_hooks` import this module, and it imports pytest and the standard library only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .results import RunResults
    from .session import CxrSession

session_key: pytest.StashKey[CxrSession] = pytest.StashKey()
results_key: pytest.StashKey[RunResults] = pytest.StashKey()

SUITE_NODE_PREFIX = "pytest_cxrperf/suite"  # nodeids the same on every machine and worker
WORKER_OUTPUT_KEY = "cxrperf"  # where a worker's results travel in ``workeroutput``


def results_of(config: pytest.Config) -> RunResults:
    """This process's results (a pytest-xdist controller has results without a session)."""
    if results_key not in config.stash:
        from .results import RunResults

        config.stash[results_key] = RunResults()
    return config.stash[results_key]
