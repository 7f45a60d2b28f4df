"""A synthetic regression: wrap a runner so each generation takes ``factor`` times as long.

Used by backend specs such as ``eager+slow=1.25`` to prove that a gate catches a regression of that
size on the runner at hand. The extra time is spent waiting (not computing), so it does not disturb
whatever else runs, and stage timings are scaled by the same factor.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING

import torch

from .base import Generation, Runner

if TYPE_CHECKING:
    from ..model.processor import ModelInputs


class SlowedRunner:
    def __init__(self, runner: Runner, factor: float) -> None:
        if factor < 1.0:
            raise ValueError("a slowdown factor must be >= 1")
        self.inner = runner
        self.factor = factor

    def generate(
        self,
        inputs: ModelInputs,
        max_new_tokens: int,
        *,
        force_length: bool = False,
        return_logits: bool = False,
    ) -> Generation:
        start = time.perf_counter()
        result = self.inner.generate(
            inputs, max_new_tokens, force_length=force_length, return_logits=return_logits
        )
        elapsed = time.perf_counter() - start
        deadline = start + elapsed * self.factor
        while (remaining := deadline - time.perf_counter()) > 0:
            time.sleep(remaining)
        return replace(result, timings=result.timings.scaled(self.factor))

    def score(self, inputs: ModelInputs, target_ids: list[int]) -> torch.Tensor:
        return self.inner.score(inputs, target_ids)
