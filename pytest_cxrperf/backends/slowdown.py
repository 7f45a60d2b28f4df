"""A synthetic regression that is real work: ``eager+slow=1.1``, ``openvino+slow=1.1+stage=decode``.

Used to prove that the gate catches a regression of that size on the runner at hand, so it must be
as hard to catch as a real one. The extra time is therefore *computation in the generating
thread* (a fixed count of interpreter operations per stage), not a sleep: a contended CPU stretches
it exactly as it stretches the backend's own work, and a CPU-time measure sees it.

The amount is fixed once, by :meth:`SlowedRunner.calibrate`: the median time of each stage of the
unslowed runner, times ``factor - 1``, converted to a number of burn iterations at this machine's
measured rate. A real regression adds a fixed amount of work too; scaling the burn by each
generation's own duration would instead make it track the machine's noise.

``stage`` picks where the work goes: ``vision`` (image encoder), ``prefill`` (the prompt),
``decode`` (every token step, each stretched by the factor), or None for all three.
"""

from __future__ import annotations

import copy
import statistics
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch-free at import: settings.py reads STAGES
    import torch

    from ..model.processor import ModelInputs
    from .base import Generation, Runner
    from .batching import BatchRun

STAGES = ("vision", "prefill", "decode")
_METHOD = {"vision": "_encode", "prefill": "_prefill", "decode": "_step"}


def burn(iterations: int) -> int:
    """Interpreter work in the calling thread: ``iterations`` multiply-add-mask steps."""
    x = 0
    for i in range(iterations):
        x = (x * 31 + i) & 0xFFFFF
    return x


def burn_rate(repeats: int = 7, iterations: int = 200_000) -> float:
    """Burn iterations per second on this machine (median of ``repeats`` timings)."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        burn(iterations)
        rates.append(iterations / (time.perf_counter() - start))
    return statistics.median(rates)


class SlowedRunner:
    """Wraps a runner so that a stage (or all of them) does ``factor`` times its work."""

    def __init__(self, runner: Runner, factor: float, stage: str | None = None) -> None:
        if factor < 1.0:
            raise ValueError("a slowdown factor must be >= 1")
        if stage is not None and stage not in STAGES:
            raise ValueError(f"stage must be one of {', '.join(STAGES)}")
        self.inner = runner
        self.factor = factor
        self.stage = stage
        self.iterations: dict[str, int] = {}  # stage -> burn iterations per call
        self._staged: Any = None  # a copy of the inner runner with burning stage methods
        self._whole_generation = 0  # burn after generate() (runners without stage methods)
        # (studies, concurrency, tokens) -> burn iterations after a worklist (run_batched)
        self._worklist_burn: dict[tuple[int, int, int], int] = {}

    @property
    def per_stage(self) -> bool:
        return all(hasattr(self.inner, m) for m in _METHOD.values())

    def calibrate(self, inputs: ModelInputs, max_new_tokens: int, repeats: int = 9) -> None:
        """Measure the unslowed stages and fix the work to add (call once, before timing)."""
        # generations and burn timings interleaved, so both see the same machine states
        self.inner.generate(inputs, max_new_tokens, force_length=True)  # warm-up
        timings, rates = [], []
        for _ in range(max(repeats, 5)):
            timings.append(self.inner.generate(inputs, max_new_tokens, force_length=True).timings)
            rates.append(burn_rate(repeats=1, iterations=100_000))
        rate = statistics.median(rates)
        extra = self.factor - 1.0
        seconds = {
            "vision": statistics.median(t.vision_s for t in timings),
            "prefill": statistics.median(t.prefill_s for t in timings),
            "decode": statistics.median(t.per_token_s for t in timings),
        }
        stages = STAGES if self.stage is None else (self.stage,)
        if not self.per_stage:
            if self.stage is not None:
                raise ValueError(
                    f"{type(self.inner).__name__} has no separate stages: stage={self.stage} "
                    "needs a runner built on GreedyLoop; use slow=F alone"
                )
            whole = statistics.median(t.total_s for t in timings)
            self._whole_generation = round(extra * whole * rate)
            return
        self.iterations = {s: round(extra * seconds[s] * rate) for s in stages}
        staged = copy.copy(self.inner)  # shares the model; only the stage methods differ
        for stage, count in self.iterations.items():
            setattr(staged, _METHOD[stage], _burning(getattr(self.inner, _METHOD[stage]), count))
        self._staged = staged

    def generate(
        self,
        inputs: ModelInputs,
        max_new_tokens: int,
        *,
        force_length: bool = False,
        return_logits: bool = False,
    ) -> Generation:
        if self._staged is None and not self._whole_generation:
            self.calibrate(inputs, max_new_tokens)
        runner = self._staged or self.inner
        result = runner.generate(
            inputs, max_new_tokens, force_length=force_length, return_logits=return_logits
        )
        if self._whole_generation:
            burn(self._whole_generation)
        return result

    def score(self, inputs: ModelInputs, target_ids: list[int]) -> torch.Tensor:
        return self.inner.score(inputs, target_ids)

    @property
    def batch_mode(self) -> str:
        from .batching import batch_mode

        return f"{batch_mode(self.inner)}, slowed x{self.factor:g}"

    def run_batched(
        self,
        items: list[ModelInputs],
        concurrency: int,
        max_new_tokens: int,
        *,
        force_length: bool = False,
        return_logits: bool = False,
        clock: Any = time.perf_counter,
    ) -> BatchRun:
        """A worklist through the inner runner's own batched path, then ``factor - 1`` times the
        worklist's unslowed (calibrated, median) time in burn work: a throughput regression of
        the factor, whatever the concurrency. Each study's latency grows in proportion."""
        from dataclasses import replace

        from .batching import run_batched

        key = (len(items), concurrency, max_new_tokens)
        if key not in self._worklist_burn:
            self._worklist_burn[key] = self._calibrate_worklist(items, concurrency, max_new_tokens)
        run = run_batched(
            self.inner,
            items,
            concurrency,
            max_new_tokens,
            force_length=force_length,
            return_logits=return_logits,
            clock=clock,
        )
        start = clock()
        burn(self._worklist_burn[key])
        seconds = run.seconds + (clock() - start)
        stretch = seconds / run.seconds if run.seconds > 0 else 1.0
        return replace(
            run,
            seconds=seconds,
            latencies_s=tuple(s * stretch for s in run.latencies_s),
            mode=self.batch_mode,
        )

    def _calibrate_worklist(
        self, items: list[ModelInputs], concurrency: int, max_new_tokens: int, repeats: int = 5
    ) -> int:
        from .batching import run_batched

        run_batched(self.inner, items, concurrency, max_new_tokens, force_length=True)  # warm-up
        seconds, rates = [], []
        for _ in range(repeats):
            run = run_batched(self.inner, items, concurrency, max_new_tokens, force_length=True)
            seconds.append(run.seconds)
            rates.append(burn_rate(repeats=1, iterations=100_000))
        return round((self.factor - 1.0) * statistics.median(seconds) * statistics.median(rates))


def _burning(method: Any, iterations: int) -> Any:
    def slowed(*args: Any, **kwargs: Any) -> Any:
        result = method(*args, **kwargs)
        burn(iterations)
        return result

    return slowed
