"""Latency of each selected backend: fixed-length generation, timed through pytest-benchmark, then
judged against the stored baseline (or stored, with --cxr-update-baselines)."""

import warnings

import pytest

from pytest_cxrperf.gate.baselines import BaselineWarning


@pytest.mark.cxr_latency
def test_latency(benchmark, cxr_backend, cxr_session):
    result = cxr_session.measure_latency(cxr_backend, benchmark)
    assert len(result.samples_s) == cxr_session.settings.rounds
    assert all(s > 0 for s in result.samples_s)
    verdict = cxr_session.gate_latency(cxr_backend)
    if verdict.failed:
        pytest.fail(verdict.message, pytrace=False)
    if verdict.warning:
        warnings.warn(BaselineWarning(verdict.message), stacklevel=1)
