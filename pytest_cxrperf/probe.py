"""The machine-speed probe: the in-run control of the reference backend.

Every other backend is timed against eager fp32 in the same rounds, so a machine that is slower
today slows both and the ratio stays put. Eager fp32 itself needs a control too, or its check
would compare seconds across runs (measured here: 34 ms and 57 ms for the same generation a minute
apart, and runners of one type 68 % apart). The probe is that control: a fixed, seeded workload
that uses neither the project's model code nor any backend.

What it is made of was chosen by measurement. A neighbour that only burns CPU slowed neither eager
nor any probe (one thread each, two cores). A neighbour that streams memory slowed eager fp32 on
the toy model by 9 %: a probe of small, cache-resident matmuls and interpreter steps by 2 %, a
probe that only walks a few MB of weights by 28 %. The probe is therefore both: a compute part
(small float32 matmuls, GELU, layer norm, softmax, interpreter steps between the ops) and a
memory part (decode steps of a miniature 6-layer decoder whose weights, ~5 MB, are about the toy
model's), the memory part taking about a quarter of the time, so that machine contention moves it
as it moves eager fp32.

Its size is part of the baseline (``repeats``): the ratio is only comparable at the same size.
"""

from __future__ import annotations

import time
from typing import Any

UNIT_WIDTH = 128  # hidden width of the compute part's matmuls
UNIT_LAYERS = 48  # compute blocks per unit
PY_STEPS = 40_000  # interpreter steps per unit
DECODER_WIDTH, DECODER_LAYERS, DECODER_STEPS = 128, 6, 1  # the memory part, per unit


class MachineProbe:
    """A fixed workload run ``repeats`` times per call; seeded, so every run does the same work."""

    def __init__(self, repeats: int = 1) -> None:
        import torch

        if repeats < 1:
            raise ValueError("repeats must be >= 1")
        self.repeats = repeats
        generator = torch.Generator().manual_seed(20261127)

        def weights(rows: int, cols: int) -> Any:
            return torch.randn(rows, cols, generator=generator) / rows**0.5

        self._weights = [weights(UNIT_WIDTH, UNIT_WIDTH) for _ in range(4)]
        self._x = torch.randn(16, UNIT_WIDTH, generator=generator)
        w = DECODER_WIDTH
        self._decoder = [
            (weights(w, 3 * w), weights(w, w), weights(w, 4 * w), weights(4 * w, w))
            for _ in range(DECODER_LAYERS)
        ]
        self._token = torch.randn(1, w, generator=generator)

    def _compute(self) -> Any:
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

    def _memory(self) -> Any:
        """Decode steps of a miniature decoder: every step reads all of its weights."""
        from torch.nn import functional

        x, width = self._token, DECODER_WIDTH
        for _ in range(DECODER_STEPS):
            for qkv, out, up, down in self._decoder:
                h = functional.layer_norm(x, (width,))
                q, k, v = (h @ qkv).split(width, dim=-1)
                x = x + ((q * k).sum() * v) @ out
                x = x + functional.gelu(functional.layer_norm(x, (width,)) @ up) @ down
        return x

    def run(self) -> None:
        import torch

        with torch.inference_mode():
            for _ in range(self.repeats):
                self._compute()
                self._memory()

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
