"""Fixtures shared by the unit tests."""

from __future__ import annotations

import pytest

from pytest_cxrperf import machine


@pytest.fixture
def no_isa_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    """Takes oneDNN's ISA cap out of the plugin's view, for tests about a recorded CPU's features
    (``CXRPERF_CPUINFO``): a cap in the caller's environment (a capped CI job) would move them.
    The kernels of this process stay capped: oneDNN read the cap when it started."""
    for name in machine.ISA_CAP_ENVS:
        monkeypatch.delenv(name, raising=False)
