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
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .block_table import blocks_for, paged_feed
from .openvino_parts import OpenVINOParts

if TYPE_CHECKING:
    import openvino as ov

    from ..model.processor import CXRProcessor

CACHE_PREFIX = ("key_cache.", "value_cache.")
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
    them (the blocks are copied: a growth costs one copy of the cache)."""

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
