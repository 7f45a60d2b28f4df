"""Continuous batching: up to ``concurrency`` sequences in flight, a new study admitted as soon as
one finishes.

Static batching (:mod:`.batched_torch`) holds a batch together until its longest report ends:
rows that stopped early keep feeding EOS, and the next batch waits. Here a finished sequence
leaves at once and the next study of the worklist takes its place before the next decode step, so
while the worklist lasts every step runs ``concurrency`` sequences, each from its own position in
the cache. That needs a cache where sequences come and go on their own: PagedAttention's block
table (:class:`.openvino_paged.PagedRunner`, :mod:`.block_table`).

The loop is written against :class:`SequenceStages` (start sequences from their prompts, one
decode step for every sequence in flight, end a sequence), so the scheduling is apart from the
cache plumbing and can be checked with a fake. A joining study's prompt runs before the next step
(no chunked prefill: the sequences in flight wait for it, as they would on a real server without
it). A study's latency is from its admission (its vision and prompt included) to its last token.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch

from .batched_torch import BatchedOutput
from .batching import BatchRun

if TYPE_CHECKING:
    from ..model.processor import CXRProcessor, ModelInputs


class SequenceStages(Protocol):
    """What a runner supplies for continuous batching. Sequences are named by their worklist
    index. Logits come back as float32 ``[sequences, vocab]`` arrays, valid until the next call."""

    eos_token_id: int
    processor: CXRProcessor

    def start_sequences(self, sequences: list[int], items: list[ModelInputs]) -> np.ndarray:
        """Run the prompts of ``items`` (new sequences); each one's next-token logits."""
        ...

    def step_sequences(self, sequences: list[int], tokens: list[int]) -> np.ndarray:
        """Feed each sequence in flight its last token, all in one step; the next logits."""
        ...

    def end_sequence(self, sequence: int) -> None:
        """``sequence`` is done: free what it holds."""
        ...


@dataclass
class _InFlight:
    index: int  # in the worklist
    admitted: float
    ids: list[int] = field(default_factory=list)
    logits: list[torch.Tensor] = field(default_factory=list)


def run_continuous(
    stages: SequenceStages,
    items: Sequence[ModelInputs],
    concurrency: int,
    max_new_tokens: int,
    *,
    force_length: bool,
    return_logits: bool,
    clock: Callable[[], float],
    mode: str,
) -> BatchRun:
    """``items`` through ``stages`` with at most ``concurrency`` sequences in flight; reports in
    the worklist's order. Each iteration either admits studies into the free places (their
    prompts together) or runs one decode step for every sequence in flight."""
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    if not items:
        raise ValueError("an empty worklist")
    if max_new_tokens < 1:
        raise ValueError("max_new_tokens must be >= 1")
    eos = stages.eos_token_id
    pending = deque(range(len(items)))
    active: list[_InFlight] = []
    outputs: list[BatchedOutput | None] = [None] * len(items)
    latencies = [0.0] * len(items)

    def finished(sequence: _InFlight) -> bool:
        last = sequence.ids[-1]
        return len(sequence.ids) >= max_new_tokens or (not force_length and last == eos)

    start = clock()
    while pending or active:
        if pending and len(active) < concurrency:
            joining = [
                pending.popleft() for _ in range(min(concurrency - len(active), len(pending)))
            ]
            admitted = clock()
            logits = stages.start_sequences(joining, [items[i] for i in joining])
            moved = [_InFlight(i, admitted) for i in joining]
            active += moved
        else:
            moved = active
            logits = stages.step_sequences([s.index for s in active], [s.ids[-1] for s in active])
        for sequence, row in zip(moved, logits, strict=True):
            sequence.ids.append(int(np.argmax(row)))
            if return_logits:
                sequence.logits.append(torch.from_numpy(np.array(row, dtype=np.float32)))
        for sequence in [s for s in active if finished(s)]:
            stages.end_sequence(sequence.index)
            latencies[sequence.index] = clock() - sequence.admitted
            outputs[sequence.index] = BatchedOutput(
                items[sequence.index].study_name,
                sequence.ids,
                stages.processor.decode([t for t in sequence.ids if t != eos]),
                torch.stack(sequence.logits) if return_logits else None,
            )
            active.remove(sequence)
    done = [o for o in outputs if o is not None]
    assert len(done) == len(items)  # every study admitted once and ended once
    return BatchRun(tuple(done), tuple(latencies), clock() - start, mode, concurrency)
