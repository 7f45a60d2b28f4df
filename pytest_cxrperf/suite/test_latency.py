"""Latency of each selected backend: fixed-length generation, measured by the run's interleaved
campaign (every backend together, each against its in-run control), then judged against the
stored baseline (or stored, with --cxr-update-baselines)."""

import pytest

from pytest_cxrperf.benchmark_adapter import record_samples
from pytest_cxrperf.gate.decision import INCOMPARABLE, MISSING
from pytest_cxrperf.gate.latency import latency_of
from pytest_cxrperf.suite.outcome import enforce


@pytest.mark.cxr_latency
def test_latency(request, cxr_backend, cxr_session, cxr_results):
    result = latency_of(cxr_session, cxr_results, cxr_backend)
    assert result.samples_s and all(s > 0 for s in result.samples_s)
    if request.config.pluginmanager.hasplugin("benchmark"):  # --benchmark-json and friends
        record_samples(request.getfixturevalue("benchmark"), result)
    enforce(result.gate, f"{cxr_backend.label} latency")


@pytest.mark.cxr_latency
def test_memory(cxr_backend, cxr_session, cxr_results):
    """Peak memory while preparing and generating (sampled apart from the timed rounds) against
    the baseline's: a growth past the threshold and the floor fails like a latency regression."""
    result = latency_of(cxr_session, cxr_results, cxr_backend)
    verdict = result.memory_gate
    if verdict is None:
        if cxr_session.settings.update_baselines:
            pytest.skip(f"{cxr_backend.label}: memory figures written to the baseline this run")
        pytest.skip(f"{cxr_backend.label}: memory cannot be sampled here (no /proc)")
    if verdict.failed:
        pytest.fail(verdict.message, pytrace=False)
    if verdict.status in (MISSING, INCOMPARABLE):
        pytest.skip(verdict.message.replace("\n", ";"))
