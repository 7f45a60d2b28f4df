"""Which KV-cache blocks each sequence in flight owns: the block table PagedAttention reads.

With several sequences in one cache (continuous batching, :mod:`.continuous`), a sequence's keys
and values lie in whatever blocks were free when it grew, not in blocks ``0..n``. The table keeps
a free list over the cache's capacity and, per sequence, its blocks in order; a finished sequence
gives its blocks back, so the next study reuses them and the cache stays as large as the
sequences *in flight* need, whatever the worklist's length.

Pure numpy, no OpenVINO: the runner owns the cache tensors and grows them when :attr:`capacity`
outgrows them (keeping every block, since live blocks may lie anywhere below the old capacity).
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Sequence

import numpy as np


def blocks_for(tokens: int, block_size: int) -> int:
    """Blocks that hold ``tokens`` tokens."""
    return -(-tokens // block_size)


def paged_feed(
    pasts: Sequence[int], news: Sequence[int], blocks: Sequence[Sequence[int]]
) -> dict[str, np.ndarray]:
    """PagedAttention's inputs (all but ``inputs_embeds`` and ``logits_indices``) for sequences
    whose new tokens sit one after the other in ``inputs_embeds``: sequence ``i`` has ``pasts[i]``
    tokens cached and ``news[i]`` new ones, in ``blocks[i]`` (in order, at least enough for all)."""
    past = np.asarray(pasts, dtype=np.int32)
    new = np.asarray(news, dtype=np.int32)
    counts = np.array([len(b) for b in blocks], dtype=np.int32)
    return {
        "position_ids": np.concatenate(
            [np.arange(p, p + n, dtype=np.int64) for p, n in zip(pasts, news, strict=True)]
        ),
        "max_context_len": np.array(int((past + new).max()), dtype=np.int32),
        "past_lens": past,
        "subsequence_begins": np.concatenate([[0], np.cumsum(new)]).astype(np.int32),
        "block_indices_begins": np.concatenate([[0], np.cumsum(counts)]).astype(np.int32),
        "block_indices": np.concatenate([np.asarray(b, dtype=np.int32) for b in blocks]),
    }


class BlockTable:
    """A free list over ``capacity`` cache blocks and each live sequence's blocks, in order.

    :meth:`reserve` takes the lowest free blocks (a compact cache) and, when none are left,
    doubles the capacity (as the single-sequence cache does: growth is amortised)."""

    def __init__(self, block_size: int, capacity: int = 0) -> None:
        if block_size < 1:
            raise ValueError("block_size must be at least 1")
        self.block_size = block_size
        self.capacity = capacity
        self._free = list(range(capacity))  # a heap
        self._owned: dict[Hashable, list[int]] = {}

    @property
    def live(self) -> int:
        """Sequences holding blocks."""
        return len(self._owned)

    @property
    def free(self) -> int:
        return len(self._free)

    def blocks(self, sequence: Hashable) -> list[int]:
        return self._owned[sequence]

    def reserve(self, sequence: Hashable, tokens: int) -> None:
        """Blocks enough for ``sequence`` to hold ``tokens`` tokens (a new sequence starts with
        none); the capacity grows when the free list runs short."""
        owned = self._owned.setdefault(sequence, [])
        missing = blocks_for(tokens, self.block_size) - len(owned)
        if missing <= 0:
            return
        if missing > len(self._free):
            self._grow(self.capacity + missing - len(self._free))
        owned += [heapq.heappop(self._free) for _ in range(missing)]

    def release(self, sequence: Hashable) -> None:
        """``sequence`` is done: its blocks go back to the free list."""
        for block in self._owned.pop(sequence, []):
            heapq.heappush(self._free, block)

    def _grow(self, needed: int) -> None:
        capacity = max(needed, 2 * self.capacity)
        for block in range(self.capacity, capacity):
            heapq.heappush(self._free, block)
        self.capacity = capacity
