"""Stage timings of one generation: plain numbers, no torch (results and reports read them)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class StageTimings:
    """Wall-clock seconds of one generation, by stage."""

    vision_s: float
    prefill_s: float
    decode_s: tuple[float, ...]  # one entry per generated token after the first

    @property
    def decode_total_s(self) -> float:
        return float(sum(self.decode_s))

    @property
    def per_token_s(self) -> float:
        return statistics.median(self.decode_s) if self.decode_s else 0.0

    @property
    def total_s(self) -> float:
        return self.vision_s + self.prefill_s + self.decode_total_s

    def scaled(self, factor: float) -> StageTimings:
        return StageTimings(
            self.vision_s * factor,
            self.prefill_s * factor,
            tuple(t * factor for t in self.decode_s),
        )

    def as_dict(self) -> dict[str, float]:
        return {
            "vision_s": self.vision_s,
            "prefill_s": self.prefill_s,
            "decode_s": self.decode_total_s,
            "per_token_s": self.per_token_s,
            "total_s": self.total_s,
        }

    def raw(self) -> dict[str, Any]:
        """Every measured number (``as_dict`` gives the summary): what RunResults serializes."""
        return {
            "vision_s": self.vision_s,
            "prefill_s": self.prefill_s,
            "decode_s": list(self.decode_s),
        }

    @classmethod
    def from_raw(cls, data: dict[str, Any]) -> StageTimings:
        return cls(
            float(data["vision_s"]),
            float(data["prefill_s"]),
            tuple(float(t) for t in data["decode_s"]),
        )


def stage_medians(stages: list[StageTimings]) -> dict[str, float]:
    """The median of each stage's figure over the rounds."""
    if not stages:
        return {}
    rows = [s.as_dict() for s in stages]
    return {key: statistics.median(row[key] for row in rows) for key in rows[0]}
