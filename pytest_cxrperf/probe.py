"""The machine-speed probe: the in-run control of the reference backend.

Every other backend is timed against eager fp32 in the same rounds, so a machine that is slower
today slows both and the ratio stays put. Eager fp32 itself needs a control too, or its check
would compare seconds across runs (measured here: 34 ms and 57 ms for the same generation a minute
apart, and runners of one type 68 % apart). The probe is that control: a fixed workload that does
not use the project's model code or any backend, built from what an eager decoder step spends its
time on (small float32 matmuls, GELU, layer norm, softmax, and interpreter work between the ops).
A slower model code path moves eager / probe; a slower machine moves both.

Its size is part of the baseline (``repeats``): the ratio is only comparable at the same size.
"""

from __future__ import annotations

import time
from typing import Any

UNIT_WIDTH = 128  # hidden width of the probe's matmuls
UNIT_LAYERS = 24  # blocks per unit: about 5 ms of work at one thread here
PY_STEPS = 20_000  # interpreter steps per unit


class MachineProbe:
    """A fixed workload run ``repeats`` times per call; seeded, so every run does the same work."""

    def __init__(self, repeats: int = 1) -> None:
        import torch

        if repeats < 1:
            raise ValueError("repeats must be >= 1")
        self.repeats = repeats
        generator = torch.Generator().manual_seed(20261127)
        self._weights = [
            torch.randn(UNIT_WIDTH, UNIT_WIDTH, generator=generator) / UNIT_WIDTH**0.5
            for _ in range(4)
        ]
        self._x = torch.randn(16, UNIT_WIDTH, generator=generator)

    def _unit(self) -> Any:
        import torch
        from torch.nn import functional

        x, w = self._x, self._weights
        steps = 0
        for _ in range(UNIT_LAYERS):
            h = functional.layer_norm(x, (UNIT_WIDTH,))
            attention = torch.softmax(h @ w[0] @ h.T, dim=-1) @ (h @ w[1])
            x = x + functional.gelu(attention @ w[2]) @ w[3]
            for i in range(PY_STEPS // UNIT_LAYERS):  # the interpreter's share of a decode step
                steps = (steps * 31 + i) & 0xFFFFF
        return x, steps

    def run(self) -> None:
        import torch

        with torch.inference_mode():
            for _ in range(self.repeats):
                self._unit()

    @classmethod
    def sized_like(cls, seconds: float, share: float = 0.5) -> MachineProbe:
        """A probe that takes about ``share`` of ``seconds`` (a warm generation of eager fp32),
        at least one unit and at most 400."""
        probe = cls(1)
        probe.run()  # warm-up
        start = time.perf_counter()
        for _ in range(3):
            probe.run()
        unit = (time.perf_counter() - start) / 3
        probe.repeats = max(1, min(400, round(seconds * share / unit)))
        return probe
