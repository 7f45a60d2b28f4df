"""Fixtures shared by the unit tests."""

from __future__ import annotations

import pytest

from pytest_cxrperf import machine


@pytest.fixture
def no_isa_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    """Takes oneDNN's and ATen's ISA caps out of the plugin's view, for tests about a recorded
    CPU's features (``CXRPERF_CPUINFO``): a cap in the caller's environment (a capped CI job)
    would move them. This process's kernels stay capped: the libraries read the caps at start."""
    for name in (*machine.ISA_CAP_ENVS, machine.ATEN_CAP_ENV):
        monkeypatch.delenv(name, raising=False)
