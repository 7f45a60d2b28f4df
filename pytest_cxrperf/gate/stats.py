"""Summary statistics of latency samples (no pytest, no torch)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    stdev: float
    median: float
    minimum: float
    maximum: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Summary:
        if not samples:
            raise ValueError("no samples")
        values = [float(s) for s in samples]
        return cls(
            n=len(values),
            mean=statistics.fmean(values),
            stdev=statistics.stdev(values) if len(values) > 1 else 0.0,
            median=statistics.median(values),
            minimum=min(values),
            maximum=max(values),
        )

    @property
    def cv(self) -> float:
        return self.stdev / self.mean if self.mean else 0.0
