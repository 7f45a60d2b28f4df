"""Throughput of each selected backend (``--cxr-throughput``): a worklist of the run's studies
with ``--cxr-concurrency`` in flight, measured by the run's interleaved throughput campaign and
judged against this machine class's throughput baseline; and the batched reports' equivalence
with the backend alone and with eager fp32."""

import pytest

from pytest_cxrperf.gate.throughput import throughput_of
from pytest_cxrperf.suite.outcome import enforce


@pytest.mark.cxr_throughput
def test_throughput(cxr_backend, cxr_session, cxr_results):
    figures = throughput_of(cxr_session, cxr_results, cxr_backend)
    assert figures.samples_s and all(s > 0 for s in figures.samples_s)
    assert figures.tokens > 0
    enforce(figures.gate, f"{cxr_backend.label} throughput")


@pytest.mark.cxr_throughput
def test_batched_reports_equal_single(cxr_backend, cxr_session, cxr_results):
    """Padding, a shared batch or a shared cache must not change what a study says."""
    figures = throughput_of(cxr_session, cxr_results, cxr_backend)
    failures = [
        f"{study}: {data['message']}"
        for study, checks in sorted(figures.equivalence.items())
        for data in checks.values()
        if not data["ok"]
    ]
    assert not failures, f"{cxr_backend.label} batched ({figures.mode}):\n" + "\n".join(failures)
