"""The quantized OpenVINO backends' prompt and decode steps on PagedAttention, one shared KV cache.

The stateful form (:class:`.openvino.OpenVINORunner`) runs a prompt on a stateless IR and then
loads its present KV into the decode IR's variables. On ``bench`` (2 threads, this 2-core
AVX512-BF16 CPU, OpenVINO 2026.4) that costs, per generation, the f32 present outputs
(~30 ms), the handoff into the u8 variables (~50-70 ms) and a decode attention node
(``ScaledDotProductAttentionWithKVCache``) that spends half of each step reading the u8 cache.

Here both IRs go through OpenVINO's PagedAttention transformation (what OpenVINO GenAI runs on
CPU): every attention becomes a ``PagedAttentionExtension`` node reading and writing KV-cache
*blocks* that are plain input tensors. The runner owns those tensors and binds the same ones to
the W8A8 prompt IR and to the int4/int8 decode IR, so the prompt writes the cache the decode
steps read: no present outputs, no handoff. The paged node's prompt path is causal by blocks
(no score square) and its one-token path is faster than the stateful node's: on ``bench``,
``openvino-w8a8-int4`` went from 3.78x to 4.38x eager fp32 (README, "Quantized backends"; the
figures come from the benchmark command there, not from a timed test).

A sequence is one row of a block table: ``block_indices`` lists its blocks in order, ``past_lens``
says how many tokens the cache holds, ``subsequence_begins`` where each sequence's new tokens start
in ``inputs_embeds`` (one sequence: ``[0, n]``). The cache layout (block size, u8 with per-block
scales, key by channel) is the plugin's: it is read from the compiled model's inputs.

The same inputs describe several sequences at once, which is what a worklist uses
(:meth:`PagedRunner.run_batched`, continuous batching: :mod:`.continuous`): joining prompts run
together in one prompt-IR call, then every decode step feeds one token per sequence in flight in
one decoder call (``logits_indices = arange(B)``: the paged graph indexes logits over the
flattened tokens), each sequence in the blocks a :class:`.block_table.BlockTable` gave it. On the
toy model every study's tokens and logits came out as they do alone, bit for bit, at
concurrency 2 to 4 (tests/unit/test_batching.py checks tokens within the tie margin).
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .batching import BatchRun
from .block_table import BlockTable, blocks_for, paged_feed
from .continuous import run_continuous
from .openvino_parts import OpenVINOParts

if TYPE_CHECKING:
    import openvino as ov

    from ..model.processor import CXRProcessor, ModelInputs

CACHE_PREFIX = ("key_cache.", "value_cache.")
CONTINUOUS = "continuous batching (PagedAttention block table; a study joins when one ends)"
HEADROOM_TOKENS = 256  # cache tokens allocated beyond the prompt before the first growth


def to_paged(model: ov.Model) -> ov.Model:
    """A stateful decoder (:func:`.openvino_export.convert_decoder` with ``paged=True``) turned
    into PagedAttention, in place, and returned.

    The transformation needs the variables' initial shapes to be constants; the exporter builds
    them from the input's batch (``build_state_initializer``), so they are fixed to the variable's
    own shape with a zero-length sequence first."""
    from openvino import opset13
    from openvino._offline_transformations import paged_attention_transformation

    for op in model.get_ops():
        if op.get_type_name() == "ReadValue":
            shape = [d.get_length() if d.is_static else 0 for d in op.get_output_partial_shape(0)]
            op.set_arguments([opset13.constant(np.zeros(shape, dtype=np.float32))])
    model.validate_nodes_and_infer_types()
    paged_attention_transformation(model)
    return model


class PagedRunner(OpenVINOParts):
    """Greedy generation with the prompt on ``prefill`` and the steps on ``decoder``, both paged
    (:func:`to_paged`) and bound to the same cache tensors, which grow when a sequence outgrows
    them (the blocks are copied: a growth costs one copy of the cache).

    A worklist (:meth:`run_batched`) runs several sequences in the one cache, each in the blocks
    a :class:`.block_table.BlockTable` gives it; :meth:`generate` runs one, in blocks ``0..``."""

    batch_mode = CONTINUOUS

    def __init__(
        self,
        vision: ov.CompiledModel,
        embed: ov.CompiledModel,
        prefill: ov.CompiledModel,
        decoder: ov.CompiledModel,
        processor: CXRProcessor,
    ) -> None:
        super().__init__(vision, embed, prefill, decoder, processor)
        self._cache_ports = {
            port.get_any_name(): port
            for port in decoder.inputs
            if port.get_any_name().startswith(CACHE_PREFIX)
        }
        if not self._cache_ports:
            raise ValueError("decoder has no key_cache/value_cache inputs: compile to_paged(model)")
        prompt_caches = {
            port.get_any_name()
            for port in prefill.inputs
            if port.get_any_name() in self._cache_ports
        }
        if prompt_caches != set(self._cache_ports):
            raise ValueError("prefill and decoder must both be paged over the same cache inputs")
        # tokens per block: axis 2 of the value cache ([blocks, kv_heads, block, head_dim(+scales)])
        value = next(p for n, p in self._cache_ports.items() if n.startswith("value_cache."))
        self.block_size = int(value.get_partial_shape()[2].get_length())
        self._inputs = {port.get_any_name() for port in decoder.inputs}
        self.capacity_blocks = 0  # the cache tensors themselves live in the two requests
        # continuous batching (run_batched): the sequences in flight, their blocks and lengths
        self._table: BlockTable | None = None
        self._lengths: dict[int, int] = {}

    def _blocks(self, tokens: int) -> int:
        return blocks_for(tokens, self.block_size)

    def _reserve(self, tokens: int, keep: int) -> None:
        """Cache room for ``tokens`` of one sequence in blocks ``0..``; the first ``keep`` tokens'
        blocks survive a growth."""
        needed = self._blocks(tokens)
        if needed > self.capacity_blocks:
            self._resize(max(needed, 2 * self.capacity_blocks), self._blocks(keep))

    def _resize(self, blocks: int, kept: int) -> None:
        """New cache tensors of ``blocks`` blocks, bound to both requests; the first ``kept``
        blocks are copied over (all of them when several sequences live anywhere in the cache)."""
        import openvino as ov

        kept = min(kept, self.capacity_blocks)
        for name, port in self._cache_ports.items():
            dims = [blocks, *(d.get_length() for d in list(port.get_partial_shape())[1:])]
            tensor = ov.Tensor(port.get_element_type(), dims)
            if kept:  # capacity_blocks > 0 here: the requests hold the current tensors
                tensor.data[:kept] = self._decoder.get_tensor(name).data[:kept]
            self._prefill_request.set_tensor(name, tensor)
            self._decoder.set_tensor(name, tensor)
        self.capacity_blocks = blocks

    def _feed(
        self, embeds: np.ndarray, past: int, logits_indices: np.ndarray
    ) -> dict[str, np.ndarray]:
        """One sequence of ``embeds [1, n, D]`` after ``past`` cached tokens, in blocks ``0..``."""
        tokens = embeds.shape[1]
        blocks = list(range(self._blocks(past + tokens)))
        # paged: inputs_embeds [tokens, D], every token its own batch row
        return self._inputs_of(embeds[0], logits_indices, paged_feed([past], [tokens], [blocks]))

    def _inputs_of(
        self, embeds: np.ndarray, logits_indices: np.ndarray, table: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        feed = {"inputs_embeds": embeds, "logits_indices": logits_indices, **table}
        return {name: value for name, value in feed.items() if name in self._inputs}

    def _run_prefill(self, embeds: np.ndarray, logits_indices: np.ndarray) -> np.ndarray:
        self._reserve(embeds.shape[1] + HEADROOM_TOKENS, keep=0)
        self._prefill_request.infer(self._feed(embeds, 0, logits_indices))
        logits = self._prefill_request.get_tensor("logits").data
        return logits.reshape(-1, logits.shape[-1])

    def _prefill(self, embeds: np.ndarray) -> tuple[torch.Tensor, Any]:  # type: ignore[override]
        past = embeds.shape[1]
        logits = self._run_prefill(embeds, np.array([past - 1], dtype=np.int64))[-1]
        return torch.from_numpy(logits.astype(np.float32, copy=True)), past

    def _step(self, token: int, state: Any) -> tuple[torch.Tensor, Any]:  # type: ignore[override]
        self._reserve(state + 1, keep=state)
        self._decoder.infer(self._feed(self._token_embedding(token), state, self._last))
        logits = self._decoder.get_tensor("logits").data
        return torch.from_numpy(logits.reshape(-1, logits.shape[-1])[-1].astype(np.float32)), (
            state + 1
        )

    # ---- continuous batching: several sequences in one block table ----------------------------
    def run_batched(
        self,
        items: list[ModelInputs],
        concurrency: int,
        max_new_tokens: int,
        *,
        force_length: bool = False,
        return_logits: bool = False,
        clock: Callable[[], float] = perf_counter,
    ) -> BatchRun:
        """``items`` with up to ``concurrency`` sequences in flight in the one cache, a study
        joining as soon as one ends (:func:`.continuous.run_continuous`)."""
        self._table = BlockTable(self.block_size, self.capacity_blocks)
        self._lengths = {}
        try:
            return run_continuous(
                self,
                items,
                concurrency,
                max_new_tokens,
                force_length=force_length,
                return_logits=return_logits,
                clock=clock,
                mode=self.batch_mode,
            )
        finally:
            self._table, self._lengths = None, {}

    def start_sequences(self, sequences: list[int], items: list[ModelInputs]) -> np.ndarray:
        """The joining prompts in one prompt-IR call, one subsequence each, every one writing
        its own blocks; each prompt's last-token logits ``[sequences, vocab]``."""
        table = self._live_table()
        prompts = [self._embed_prompt(i.input_ids, self._encode(i.pixel_values))[0] for i in items]
        lengths = [p.shape[0] for p in prompts]
        for sequence, length in zip(sequences, lengths, strict=True):
            table.reserve(sequence, length)
            self._lengths[sequence] = length
        self._fit_cache(table)
        feed = paged_feed([0] * len(sequences), lengths, [table.blocks(s) for s in sequences])
        last = np.cumsum(lengths, dtype=np.int64) - 1
        self._prefill_request.infer(self._inputs_of(np.concatenate(prompts), last, feed))
        return self._logits(self._prefill_request)

    def step_sequences(self, sequences: list[int], tokens: list[int]) -> np.ndarray:
        """One decode step for every sequence in flight: one token each, in one decoder call."""
        table = self._live_table()
        pasts = [self._lengths[s] for s in sequences]
        for sequence, past in zip(sequences, pasts, strict=True):
            table.reserve(sequence, past + 1)
        self._fit_cache(table)
        embeds = np.concatenate([self._token_embedding(t)[0] for t in tokens])
        feed = paged_feed(pasts, [1] * len(sequences), [table.blocks(s) for s in sequences])
        rows = np.arange(len(sequences), dtype=np.int64)  # logits of every (flattened) token
        self._decoder.infer(self._inputs_of(embeds, rows, feed))
        for sequence in sequences:
            self._lengths[sequence] += 1
        return self._logits(self._decoder)

    def end_sequence(self, sequence: int) -> None:
        self._live_table().release(sequence)
        self._lengths.pop(sequence, None)

    def _live_table(self) -> BlockTable:
        if self._table is None:
            raise RuntimeError("sequences run only inside run_batched")
        return self._table

    def _fit_cache(self, table: BlockTable) -> None:
        """The cache tensors grown to the table's capacity, every block kept (live blocks may
        lie anywhere below the old capacity)."""
        if table.capacity > self.capacity_blocks:
            self._resize(table.capacity, self.capacity_blocks)

    @staticmethod
    def _logits(request: ov.InferRequest) -> np.ndarray:
        logits = request.get_tensor("logits").data
        return logits.reshape(-1, logits.shape[-1])
