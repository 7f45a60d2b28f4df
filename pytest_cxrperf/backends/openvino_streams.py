"""A worklist through the stateful OpenVINO backends with several studies in flight: OpenVINO
streams, one infer request set per study in flight.

The stateful IRs have batch 1 (``inputs_embeds [1, S, D]``, ``beam_idx [1]``), and a dynamic
batch would change the IR every single-study latency baseline was measured on. What OpenVINO
offers for throughput instead is streams (``PERFORMANCE_HINT=THROUGHPUT``, ``NUM_STREAMS``): the
CPU plugin splits its threads into independent executors and runs one infer request on each at
once. Each infer request of a stateful model holds its own state (KV cache), so ``C`` request
sets run ``C`` studies side by side over one compiled model, each in its own Python thread
(``infer`` releases the GIL).

The latency runner's parts are compiled for latency (one stream); the pool compiles the same IR
once more for throughput, with the backend's other properties (inference and KV-cache
precision) unchanged, on first use; a worklist then reuses it. That second compilation holds
its own copy of the repacked weights: a throughput run of a stateful backend needs about twice
its weights' memory.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from time import perf_counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..model.processor import ModelInputs
    from .batching import BatchRun

# compiles the four parts (vision, embed, prefill, decoder) with these extra properties
Compile = Callable[[dict[str, Any]], dict[str, Any]]
# a runner over four compiled parts (new infer requests, its own state)
MakeRunner = Callable[[dict[str, Any]], Any]


def streams_for(concurrency: int, threads: int | None) -> int:
    """Streams for ``concurrency`` studies in flight: one each, but never more than the threads
    (``None``: the CPUs; a stream needs one); requests beyond the streams wait for a free one."""
    limit = threads or os.cpu_count() or concurrency
    return max(1, min(concurrency, limit))


STREAMS = (
    "OpenVINO streams (one infer request per study in flight, up to one stream per thread; "
    "the stateful IR has batch 1)"
)


class StreamPool:
    """Throughput-compiled parts and the runners over them, made on first use and kept."""

    def __init__(self, compile_parts: Compile, make_runner: MakeRunner, threads: int | None):
        self._compile = compile_parts
        self._make_runner = make_runner
        self.threads = threads
        self._compiled: dict[int, dict[str, Any]] = {}  # streams -> the four compiled parts
        self._runners: dict[int, list[Any]] = {}  # streams -> runners over them
        self._lock = threading.Lock()

    def runners(self, concurrency: int) -> tuple[int, list[Any]]:
        """(streams, ``concurrency`` runners over the parts compiled for those streams)."""
        streams = streams_for(concurrency, self.threads)
        with self._lock:
            if streams not in self._compiled:
                properties: dict[str, Any] = {
                    "PERFORMANCE_HINT": "THROUGHPUT",
                    "NUM_STREAMS": str(streams),
                }
                self._compiled[streams] = self._compile(properties)
            runners = self._runners.setdefault(streams, [])
            while len(runners) < concurrency:
                runners.append(self._make_runner(self._compiled[streams]))
        return streams, runners[:concurrency]

    def run(
        self,
        items: Sequence[ModelInputs],
        concurrency: int,
        max_new_tokens: int,
        *,
        force_length: bool = False,
        return_logits: bool = False,
        clock: Callable[[], float] = perf_counter,
    ) -> BatchRun:
        """``items`` with ``concurrency`` studies in flight, each on a free runner as soon as
        one is; a study's latency is its own generation (from its start to its last token)."""
        from .batched_torch import BatchedOutput
        from .batching import BatchRun, as_output

        _, runners = self.runners(concurrency)
        free: queue.SimpleQueue[Any] = queue.SimpleQueue()
        for runner in runners:
            free.put(runner)

        def one(inputs: ModelInputs) -> tuple[BatchedOutput, float]:
            runner = free.get()
            try:
                began = clock()
                generation = runner.generate(
                    inputs, max_new_tokens, force_length=force_length, return_logits=return_logits
                )
                took = clock() - began
            finally:
                free.put(runner)
            return as_output(inputs, generation, return_logits), took

        start = clock()
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="cxr-stream") as pool:
            done = list(pool.map(one, items))  # worklist order; the first error is raised
        return BatchRun(
            tuple(output for output, _ in done),
            tuple(took for _, took in done),
            clock() - start,
            STREAMS,
            concurrency,
            batched=True,
        )
