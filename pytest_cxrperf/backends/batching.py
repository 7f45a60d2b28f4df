"""A worklist through one runner with several studies in flight: the one entry point the suite's
throughput tests and ``cxrperf throughput`` use, whatever the backend.

:func:`run_batched` processes ``items`` with at most ``concurrency`` studies in flight and returns
every study's report in the worklist's order, each study's latency under that load and the
worklist's wall clock (:class:`BatchRun`). How the studies share the machine depends on the
runner (:func:`batch_mode` says it in words, for the reports):

* torch runners (eager, eager-bf16, compile, compile-int8, ipex): **static batching**, the
  worklist in batches of ``concurrency`` through one batched greedy decode
  (:mod:`.batched_torch`); a study's latency is its batch's span.
* a runner with its own scheduler (``runner.run_batched``: continuous batching in the paged KV
  cache of openvino-w8a8 and openvino-w8a8-int4, :mod:`.continuous`) runs the whole worklist
  itself; a study's latency is from its admission to its last token.
  The stateful OpenVINO runner's scheduler is OpenVINO streams (:mod:`.openvino_streams`): one
  infer request set per study in flight; a study's latency is its own generation.
* anything else (ipex-llm): **one at a time** (the batch's studies one after another; latency is
  the batch's span, so figures stay comparable); the runner's ``batch_mode`` says why.

A study's latency never includes the time it waited before admission: that is the worklist's
queue, not the study's service time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..model.processor import ModelInputs
    from .base import Generation
    from .batched_torch import BatchedOutput

STATIC = "static batching (one batched decode per batch, left-padded)"
ONE_AT_A_TIME = "one at a time (no batched path)"


@dataclass(frozen=True)
class BatchRun:
    """A worklist's outcome: per study (worklist order) its report and its latency under load."""

    outputs: tuple[BatchedOutput, ...]
    latencies_s: tuple[float, ...]
    seconds: float  # wall clock of the whole worklist
    mode: str  # how the studies shared the machine (:func:`batch_mode`)
    concurrency: int
    batched: bool = True  # False: no batched path, the studies ran one after another

    @property
    def tokens(self) -> int:
        return sum(len(o.token_ids) for o in self.outputs)


def has_batched_path(runner: Any) -> bool:
    """Whether ``runner`` runs several studies at once (static or its own scheduler); without,
    a worklist runs one study after another through ``generate``."""
    from .batched_torch import supports_batching

    return callable(getattr(runner, "run_batched", None)) or supports_batching(runner)


def batch_mode(runner: Any) -> str:
    """How ``runner`` runs several studies at once, in words."""
    from .batched_torch import supports_batching

    own = getattr(runner, "batch_mode", None)
    if isinstance(own, str):
        return own
    if supports_batching(runner):
        return STATIC
    return ONE_AT_A_TIME


def run_batched(
    runner: Any,
    items: Sequence[ModelInputs],
    concurrency: int,
    max_new_tokens: int,
    *,
    force_length: bool = False,
    return_logits: bool = False,
    clock: Callable[[], float] = perf_counter,
) -> BatchRun:
    """``items`` through ``runner`` with at most ``concurrency`` studies in flight."""
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    if not items:
        raise ValueError("an empty worklist")
    if max_new_tokens < 1:
        raise ValueError("max_new_tokens must be >= 1")
    own = getattr(runner, "run_batched", None)
    if callable(own):
        run: BatchRun = own(
            list(items),
            concurrency,
            max_new_tokens,
            force_length=force_length,
            return_logits=return_logits,
            clock=clock,
        )
        return run
    from .batched_torch import supports_batching

    generate = _batch_function(runner, max_new_tokens, force_length, return_logits)
    outputs: list[BatchedOutput] = []
    latencies: list[float] = []
    start = clock()
    for first in range(0, len(items), concurrency):
        batch = list(items[first : first + concurrency])
        began = clock()
        outputs += generate(batch)
        latencies += [clock() - began] * len(batch)
    return BatchRun(
        tuple(outputs),
        tuple(latencies),
        clock() - start,
        batch_mode(runner),
        concurrency,
        batched=supports_batching(runner),
    )


def run_one_at_a_time(
    runner: Any,
    items: Sequence[ModelInputs],
    max_new_tokens: int,
    *,
    force_length: bool = False,
    return_logits: bool = False,
    clock: Callable[[], float] = perf_counter,
) -> BatchRun:
    """``items`` one after another through ``runner.generate`` (a runner's own ``run_batched``
    uses it for one study in flight)."""
    generate = _one_by_one(runner, max_new_tokens, force_length, return_logits)
    outputs: list[BatchedOutput] = []
    latencies: list[float] = []
    start = clock()
    for inputs in items:
        began = clock()
        outputs += generate([inputs])
        latencies.append(clock() - began)
    return BatchRun(tuple(outputs), tuple(latencies), clock() - start, ONE_AT_A_TIME, 1, False)


def _batch_function(
    runner: Any, max_new_tokens: int, force_length: bool, return_logits: bool
) -> Callable[[list[ModelInputs]], list[BatchedOutput]]:
    from .batched_torch import generate_batch, supports_batching

    if supports_batching(runner):

        def batched(batch: list[ModelInputs]) -> list[BatchedOutput]:
            outputs, _ = generate_batch(
                runner,
                batch,
                max_new_tokens,
                force_length=force_length,
                return_logits=return_logits,
            )
            return outputs

        return batched

    return _one_by_one(runner, max_new_tokens, force_length, return_logits)


def _one_by_one(
    runner: Any, max_new_tokens: int, force_length: bool, return_logits: bool
) -> Callable[[list[ModelInputs]], list[BatchedOutput]]:
    def one_by_one(batch: list[ModelInputs]) -> list[BatchedOutput]:
        return [
            as_output(inputs, runner.generate(
                inputs, max_new_tokens, force_length=force_length, return_logits=return_logits
            ), return_logits)
            for inputs in batch
        ]  # fmt: skip

    return one_by_one


def as_output(inputs: ModelInputs, generation: Generation, return_logits: bool) -> BatchedOutput:
    """A single-study generation as one study's report of a worklist."""
    from .batched_torch import BatchedOutput

    return BatchedOutput(
        inputs.study_name,
        list(generation.token_ids),
        generation.text,
        generation.step_logits if return_logits else None,
    )
