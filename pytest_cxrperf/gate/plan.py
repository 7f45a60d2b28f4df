"""The latency gate's sequential plan: when it looks, and at what error levels.

With T = log(1 + threshold), as in :mod:`pytest_cxrperf.gate.decision`: a change (regressed,
improved) needs its interval at level 1 - alpha / (looks x backends): Bonferroni over the planned
looks and the run's backends, so the chance that *any* backend of an unchanged run is wrongly
failed stays below alpha (default 1 %), however many looks were taken. "Unchanged" needs
``|change| + half-width < 3T/4`` at level 1 - beta / looks (beta 5 %): the chance that a backend
slowed by the full threshold passes as unchanged. The margins (T/2, 3T/4) were chosen by
scripts/gate_accuracy.py on recorded sessions (README): with the "unchanged" bound at T, a
full-threshold slowdown in a session that ran 3 % fast was called unchanged in 5 % of runs.
Slowdowns between T/2 and 3T/4 are the indifference zone.

``--cxr-threshold``, ``--cxr-alpha``, ``--cxr-session-noise``, ``--cxr-missing-baseline`` and
``--cxr-unknown`` take their defaults and choices from here (:mod:`pytest_cxrperf.settings`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DEFAULT_THRESHOLD = 0.10
DEFAULT_ALPHA = 0.01
MISSING_POLICIES = ("warn", "fail")
UNKNOWN_POLICIES = ("warn", "fail")
MIN_BATCHES = 3  # per side: fewer cannot bound the noise
# prior sd of the drift a run's own batches cannot show (log scale), until the baseline says more
DEFAULT_SESSION_NOISE = 0.03
DEFAULT_BETA = 0.05
# how far (log) the control's median may move from the baseline's before the ratio is trusted less
DISTURBANCE_FREE = math.log1p(0.10)
# the drift (sd, log) counted per unit of the control's shift beyond that
DISTURBANCE_DRIFT = 0.5
# CPU pressure (share of a round in which a runnable task waited for a CPU, median over the run)
# above the baseline's that counts as no disturbance, and the drift (sd, log) per unit beyond it
PRESSURE_FREE = 0.05
PRESSURE_DRIFT = 0.5
# a change (regressed, improved) is never decided on fewer rounds of the current run: a few
# rounds of a loaded machine can sit together at one scheduler phase
MIN_CHANGE_ROUNDS = 10


@dataclass(frozen=True)
class Plan:
    """When the gate looks and how often: batches of ``batch_rounds`` rounds; looks after
    3, 6, 12, 24, ... batches (each look doubles the data), and at ``max_batches``."""

    batch_rounds: int
    max_batches: int
    backends: int = 1  # how many backends share the run's false-alarm budget
    threshold: float = DEFAULT_THRESHOLD
    alpha: float = DEFAULT_ALPHA
    margin: float = 0.5  # a regression (improvement) must surely exceed margin x threshold
    within: float = 0.75  # "unchanged" must surely lie within +-within x threshold
    session_noise: float = DEFAULT_SESSION_NOISE  # prior sd of the unseen drift (log scale)
    beta: float = DEFAULT_BETA  # chance that a full-threshold slowdown is called unchanged
    disturbance_free: float = DISTURBANCE_FREE  # control shift (log) counted as no disturbance
    disturbance_drift: float = DISTURBANCE_DRIFT  # drift sd per unit of shift beyond that
    pressure_free: float = PRESSURE_FREE  # CPU pressure above the baseline's counted as none
    pressure_drift: float = PRESSURE_DRIFT  # drift sd per unit of pressure beyond that
    min_change_rounds: int = MIN_CHANGE_ROUNDS  # rounds a regressed/improved answer needs

    def looks(self) -> list[int]:
        """Batch counts at which the decision is taken (the last one is the cap)."""
        if self.max_batches < MIN_BATCHES:
            return []
        looks, k = [], MIN_BATCHES
        while k < self.max_batches:
            looks.append(k)
            k *= 2
        return [*looks, self.max_batches]

    @property
    def beta_each(self) -> float:
        """The level of one "unchanged" interval: beta split over the looks (a miss is one
        backend's, so it is not split over backends)."""
        return self.beta / max(1, len(self.looks()))

    @property
    def alpha_each(self) -> float:
        """The error level of one interval: alpha split over every look and backend."""
        return self.alpha / (max(1, len(self.looks())) * max(1, self.backends))
