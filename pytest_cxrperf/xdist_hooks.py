"""pytest-xdist: one worker times every latency test; every worker's results reach the controller.

Registered by the plugin only where pytest-xdist is installed (its hooks are unknown otherwise).

* Scheduling: a run distributed with ``--dist load`` (what ``-n`` means) or ``worksteal`` is
  switched to ``loadgroup``, with a scheduler of ours that sends the suite's latency tests to one
  worker as one unit: the latency campaign runs once, never two timed backends at once, while
  every other test spreads over the workers as under ``load``. (xdist's own ``loadgroup`` renames
  a grouped test's node id, which pytest 9 no longer allows, so its ``xdist_group`` marks group
  nothing there; the plugin still marks every ``cxr_latency`` test for older pytest.)
  ``loadfile`` and ``loadscope`` keep the latency tests (one module) together already.
* Results: each worker sends its :class:`~pytest_cxrperf.results.RunResults` as JSON through
  ``workeroutput`` (as pytest-cov and syrupy send theirs); the controller merges them, then
  prints the table, writes the JSON and reports the exit status.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from .state import SUITE_NODE_PREFIX, WORKER_OUTPUT_KEY, results_key, results_of

SPLITTING_MODES = ("load", "worksteal")  # could hand latency tests to two workers at once
LOADGROUP_KEY = "cxrperf_loadgroup"
LATENCY_GROUP = "cxrperf-latency"


class XdistHooks:
    def __init__(self) -> None:
        self.switched_from: str | None = None
        self.merge_errors: list[str] = []

    def configure(self, config: pytest.Config, cxr_requested: bool, suite: bool) -> None:
        workerinput = getattr(config, "workerinput", None)
        if workerinput is not None:  # a worker: group as the controller decided
            if workerinput.get(LOADGROUP_KEY):
                config.option.loadgroup = True
            return
        dist = config.getoption("dist", "no")
        if suite and dist == "each":
            raise pytest.UsageError(
                "cxrperf: --dist=each would run the latency campaign on every worker at once "
                "(timed backends sharing the cores); use -n N with the default distribution, or "
                "deselect the latency tests (-m 'not cxr_latency')"
            )
        if cxr_requested and dist in SPLITTING_MODES:
            self.switched_from = dist
            config.option.dist = "loadgroup"

    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        if config.getoption("dist", "no") != "loadgroup":
            return None  # xdist's own
        from xdist.scheduler import LoadGroupScheduling

        latency_prefix = f"{SUITE_NODE_PREFIX}/test_latency.py::"

        class LatencyTogether(LoadGroupScheduling):  # type: ignore[misc]
            def _split_scope(self, nodeid: str) -> str:
                if nodeid.startswith(latency_prefix):
                    return LATENCY_GROUP
                return str(super()._split_scope(nodeid))

        return LatencyTogether(config, log)

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[LOADGROUP_KEY] = node.config.getoption("dist", "no") == "loadgroup"

    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        from .results import ResultsError, RunResults

        sent = getattr(node, "workeroutput", {}).get(WORKER_OUTPUT_KEY)
        if not sent:
            return

        config = node.config
        try:
            config.stash[results_key] = results_of(config).merge(
                RunResults.from_dict(json.loads(sent))
            )
        except ResultsError as exc:  # e.g. two workers timed one backend: never a silent pick
            self.merge_errors.append(f"worker {node.gateway.id}: {exc}")

    @pytest.hookimpl(tryfirst=True)  # before the plugin writes the JSON
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not self.merge_errors:
            return
        for error in self.merge_errors:
            results_of(session.config).notice(f"results not merged: {error}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        if self.switched_from is None:
            return []
        return [
            f"cxrperf: --dist={self.switched_from} -> loadgroup: one worker times every latency "
            "test, one after another; the other tests spread over the workers"
        ]
