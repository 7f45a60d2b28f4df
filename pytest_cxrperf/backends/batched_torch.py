"""Batched greedy generation for the torch backends: several studies' decode steps through one
decoder pass.

Decode is memory-bound: one token of one study reads every weight. A batch of ``B`` studies
reads the weights once per step for all of them, which is where a worklist's throughput comes
from. The prompt pass is not: a MAIRA-2 prompt holds 1369 image tokens per view, its matmuls are
compute-bound, and a batched prompt pass would pad every row to the longest prompt (a two-view
study doubles a one-view study's work) and take the masked attention path. Measured on ``bench``
(AVX-512 class, 2 threads), prompts batched that way made a worklist of 8 studies 1.9x *slower*
at 4 in flight than one at a time. So each study's prompt runs alone, exactly as in single-study
generation (same shapes, no mask: a compiled decoder is not recompiled for it), and the rows'
caches are merged **left-padded** into one batch cache: each row's prompt ends at the last
column, padded columns are masked out of attention and position ids continue each row's own
length, so a row computes what it would alone, up to the rounding of differently shaped decode
matmuls. Each row stops at its own end of sequence; a finished row keeps feeding EOS (masked
work, never part of its report) until the batch is done.

The vision encoder runs study by study too (compute-bound; compiled encoders keep their shapes).
"""

from __future__ import annotations

from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING, Any

import torch
from transformers import DynamicCache

if TYPE_CHECKING:
    from ..model.processor import ModelInputs
    from .torch_runner import TorchRunner


@dataclass(frozen=True)
class BatchedOutput:
    """One study's report from a batch: its tokens (up to and including EOS), text and, when
    asked, its step logits [tokens, vocab] (float32), for the equivalence check."""

    study_name: str
    token_ids: list[int]
    text: str
    step_logits: torch.Tensor | None = None


@dataclass(frozen=True)
class BatchTimings:
    """Wall-clock seconds of one batch, by stage (the batch's, shared by its studies)."""

    vision_s: float
    prefill_s: float
    decode_s: float
    steps: int  # decode steps run (the longest row's tokens - 1)

    @property
    def total_s(self) -> float:
        return self.vision_s + self.prefill_s + self.decode_s


def generate_batch(
    runner: TorchRunner,
    batch: list[ModelInputs],
    max_new_tokens: int,
    *,
    force_length: bool = False,
    return_logits: bool = False,
) -> tuple[list[BatchedOutput], BatchTimings]:
    """Greedy reports for every study of ``batch`` in one batched decode, and the batch's
    timings. ``force_length``: every row runs ``max_new_tokens`` (fixed work, for timing);
    otherwise each row's report ends at its EOS and the batch ends with its last row."""
    if max_new_tokens < 1:
        raise ValueError("max_new_tokens must be >= 1")
    if not batch:
        raise ValueError("an empty batch")
    with torch.inference_mode():
        return _generate(runner, batch, max_new_tokens, force_length, return_logits)


def merged_cache(caches: list[Any]) -> tuple[Any, torch.Tensor]:
    """Single-study caches (``[1, H, L_i, d]`` per layer) as one left-padded batch cache
    ``[B, H, L, d]`` and its attention mask ``[B, L]`` (1 on real positions)."""
    rows = [_layers(cache) for cache in caches]
    length = max(keys.shape[2] for keys, _ in (r[0] for r in rows))
    merged = DynamicCache()
    for layer in range(len(rows[0])):
        keys = [_left_pad(r[layer][0], length) for r in rows]
        values = [_left_pad(r[layer][1], length) for r in rows]
        merged.update(torch.cat(keys), torch.cat(values), layer)
    mask = torch.zeros(len(caches), length, dtype=torch.long)
    for row, layers in enumerate(rows):
        mask[row, length - layers[0][0].shape[2] :] = 1
    return merged, mask


def _layers(cache: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(keys, values) per layer, on transformers 5 (``layers``) and 4.x (``key_cache``)."""
    if hasattr(cache, "layers"):
        return [(layer.keys, layer.values) for layer in cache.layers]
    return list(zip(cache.key_cache, cache.value_cache, strict=True))


def _left_pad(states: torch.Tensor, length: int) -> torch.Tensor:
    missing = length - states.shape[2]
    if missing == 0:
        return states
    pad = states.new_zeros(states.shape[0], states.shape[1], missing, states.shape[3])
    return torch.cat([pad, states], dim=2)


def _generate(
    runner: TorchRunner,
    batch: list[ModelInputs],
    max_new_tokens: int,
    force_length: bool,
    return_logits: bool,
) -> tuple[list[BatchedOutput], BatchTimings]:
    model, decoder, cache_kw = runner.model, runner.decoder, runner.cache_keyword
    eos = runner.eos_token_id
    start = perf_counter()
    prompts = [model.embed_prompt(i.input_ids, runner.encode(i.pixel_values)) for i in batch]
    vision_done = perf_counter()
    caches, first = [], []
    for prompt in prompts:  # alone: the single-study prompt pass, unpadded
        cache = DynamicCache()
        out = decoder(inputs_embeds=prompt, use_cache=True, logits_to_keep=1, **{cache_kw: cache})
        first.append(out.logits[0, -1].float())
        caches.append(cache)
    cache, mask = merged_cache(caches)
    del caches
    logits = torch.stack(first)
    tokens = torch.argmax(logits, dim=-1)
    prefill_done = perf_counter()
    rows = len(batch)
    ids: list[list[int]] = [[int(t)] for t in tokens]
    kept: list[list[torch.Tensor]] = [[logits[r]] for r in range(rows)] if return_logits else []
    done = [not force_length and ids[r][-1] == eos for r in range(rows)]
    next_position = torch.tensor([[p.shape[1]] for p in prompts])  # each row's own length
    steps = 0
    while len(ids[0]) < max_new_tokens and not all(done):
        feed = torch.tensor([[eos if done[r] else ids[r][-1]] for r in range(rows)])
        mask = torch.cat([mask, torch.ones(rows, 1, dtype=mask.dtype)], dim=1)
        out = decoder(
            input_ids=feed,
            attention_mask=mask,
            position_ids=next_position,
            use_cache=True,
            **{cache_kw: cache},
        )
        next_position = next_position + 1
        logits = out.logits[:, -1].float()
        tokens = torch.argmax(logits, dim=-1)
        steps += 1
        for r in range(rows):
            if done[r]:
                continue
            ids[r].append(int(tokens[r]))
            if return_logits:
                kept[r].append(logits[r])
            done[r] = not force_length and ids[r][-1] == eos
    finished = perf_counter()
    outputs = [
        BatchedOutput(
            inputs.study_name,
            ids[r],
            runner.processor.decode([t for t in ids[r] if t != eos]),
            torch.stack(kept[r]) if return_logits else None,
        )
        for r, inputs in enumerate(batch)
    ]
    timings = BatchTimings(
        vision_done - start, prefill_done - vision_done, finished - prefill_done, steps
    )
    return outputs, timings


def supports_batching(runner: Any) -> bool:
    """Whether ``runner`` can generate a batch here: a torch runner with a transformers decoder
    that does not opt out (``static_batching``: ipex-llm's decoder keeps its own cache)."""
    parts = all(hasattr(runner, name) for name in ("encode", "decoder", "cache_keyword", "model"))
    return parts and bool(getattr(runner, "static_batching", True))
