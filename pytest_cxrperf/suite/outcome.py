"""What a gate's verdict does to the test that asked for it: a failed verdict fails the test
with its message (no traceback: the message is the evidence), a verdict the user should see
(no baseline, not yet known, unusable baseline) passes with a :class:`BaselineWarning`."""

from __future__ import annotations

import warnings

import pytest

from ..gate.baselines import BaselineWarning
from ..gate.decision import Verdict


def enforce(verdict: Verdict | None, what: str) -> None:
    """Fail or warn as ``verdict`` says; ``what`` names the verdict that is missing when the
    campaign gave none (a bug, never a pass)."""
    assert verdict is not None, f"{what}: the campaign gave no verdict"
    if verdict.failed:
        pytest.fail(verdict.message, pytrace=False)
    if verdict.warning:
        warnings.warn(BaselineWarning(verdict.message), stacklevel=2)
