"""Simulated timings: the gate's behaviour tested without the wall clock.

``CXRPERF_SIMULATED_TIMINGS=<file.json>`` makes a run's latency campaign read a virtual clock: the
backends still generate (stage timings, memory and outputs stay real), but the seconds the gate
judges are drawn, seeded, from the file's model, and go through the real campaign, statistics and
baseline store. So a test of "a x1.5 slowdown fails", "an unchanged backend passes" or "a
disturbed machine is not yet known" gives the same answer with a neighbour on the cores as on a
quiet machine. The run says so in its notes; a real gate never sets the variable.

The file::

    {"seed": 1,                      # a run's draws; two runs with one seed draw alike
     "seconds": {"eager": 0.02, "probe": 0.01, "*": 0.02},  # median seconds per backend
     "noise": 0.02,                  # sd of log(seconds) round to round
     "offset": 0.0,                  # sd of a per-run offset of every backend's log ratio
     "factor": {"twin": 1.0},        # this run's extra factor per backend (label or name)
     "control_factor": 1.0,          # this run's factor on the controls (eager, probe): load
     "pressure": 0.0}                # the CPU pressure share each round reports

A backend's ``+slow=F`` multiplies its seconds by F.
"""

from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import CxrPerfError

ENV_VAR = "CXRPERF_SIMULATED_TIMINGS"


@dataclass
class SimulatedTimings:
    seed: int = 0
    seconds: Mapping[str, float] = field(default_factory=dict)
    noise: float = 0.02
    offset: float = 0.0
    factor: Mapping[str, float] = field(default_factory=dict)
    control_factor: float = 1.0
    pressure: float = 0.0
    source: str = ""
    now: float = 0.0

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._offsets: dict[str, float] = {}

    @classmethod
    def from_env(cls) -> SimulatedTimings | None:
        where = os.environ.get(ENV_VAR)
        if not where:
            return None
        try:
            data = json.loads(Path(where).read_text(encoding="utf-8"))
            return cls(
                seed=int(data.get("seed", 0)),
                seconds={str(k): float(v) for k, v in (data.get("seconds") or {}).items()},
                noise=float(data.get("noise", 0.02)),
                offset=float(data.get("offset", 0.0)),
                factor={str(k): float(v) for k, v in (data.get("factor") or {}).items()},
                control_factor=float(data.get("control_factor", 1.0)),
                pressure=float(data.get("pressure", 0.0)),
                source=where,
            )
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            raise CxrPerfError(f"{ENV_VAR}={where}: not a simulated-timings file ({exc})") from None

    def clock(self) -> float:
        return self.now

    def median_of(self, label: str, name: str, slow: float, control: bool) -> float:
        base = self.seconds.get(label, self.seconds.get(name, self.seconds.get("*", 0.02)))
        extra = self.factor.get(label, self.factor.get(name, 1.0))
        if control:
            extra *= self.control_factor
        if label not in self._offsets:
            self._offsets[label] = self._rng.gauss(0.0, self.offset) if not control else 0.0
        return base * slow * extra * math.exp(self._offsets[label])

    def timed(
        self,
        run: Callable[[], Any],
        label: str,
        name: str,
        slow: float = 1.0,
        control: bool = False,
    ) -> Callable[[], Any]:
        """``run`` as the campaign calls it: the real work, then the virtual clock advanced by a
        drawn duration."""
        median = self.median_of(label, name, slow, control)

        def simulated() -> Any:
            out = run()
            self.now += median * math.exp(self._rng.gauss(0.0, self.noise))
            return out

        return simulated

    def stalled_seconds(self) -> float:
        """The cumulative CPU-pressure seconds of the virtual clock."""
        return self.now * self.pressure

    def notice(self) -> str:
        return (
            f"timings SIMULATED from {ENV_VAR}={self.source}: a test of the gate, nothing was timed"
        )
