"""Latency of each selected backend: fixed-length generation, timed through pytest-benchmark."""

import pytest


@pytest.mark.cxr_latency
def test_latency(benchmark, cxr_backend, cxr_session):
    result = cxr_session.measure_latency(cxr_backend, benchmark)
    assert len(result.samples_s) == cxr_session.settings.rounds
    assert all(s > 0 for s in result.samples_s)
