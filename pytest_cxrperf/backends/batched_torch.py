"""Batched greedy generation for the torch backends: several studies through one decoder pass.

Decode is memory-bound: one token of one study reads every weight. A batch of ``B`` studies
reads the weights once per step for all of them, which is where a worklist's throughput comes
from. The prompts differ in length (images and INDICATION text), so they are **left-padded**:
each row's prompt ends at the last column, padded columns are masked out of attention and
position ids count only real tokens, so a row computes what it would alone, up to the rounding
of differently shaped matmuls. Each row stops at its own end of sequence; a finished row keeps
feeding EOS (masked work, never part of its report) until the batch is done.

The vision encoder runs study by study (its shapes stay those of a single study: compiled
encoders are not recompiled, and encoding is compute-bound, so batching it gains little).
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


def left_padded(
    prompts: list[torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``[1, L_i, D]`` prompt embeddings as one ``[B, L, D]`` batch padded on the left, its
    attention mask ``[B, L]`` (1 on real tokens) and position ids ``[B, L]`` (0.. over real
    tokens; padded columns 0, masked anyway)."""
    length = max(p.shape[1] for p in prompts)
    dim, dtype = prompts[0].shape[-1], prompts[0].dtype
    embeds = torch.zeros(len(prompts), length, dim, dtype=dtype)
    mask = torch.zeros(len(prompts), length, dtype=torch.long)
    for row, prompt in enumerate(prompts):
        n = prompt.shape[1]
        embeds[row, length - n :] = prompt[0]
        mask[row, length - n :] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return embeds, mask, positions


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
    embeds, mask, positions = left_padded(prompts)
    cache = DynamicCache()
    out = decoder(
        inputs_embeds=embeds,
        attention_mask=mask,
        position_ids=positions,
        use_cache=True,
        logits_to_keep=1,
        **{cache_kw: cache},
    )
    logits = out.logits[:, -1].float()
    tokens = torch.argmax(logits, dim=-1)
    prefill_done = perf_counter()
    rows = len(batch)
    ids: list[list[int]] = [[int(t)] for t in tokens]
    kept: list[list[torch.Tensor]] = [[logits[r]] for r in range(rows)] if return_logits else []
    done = [not force_length and ids[r][-1] == eos for r in range(rows)]
    next_position = positions[:, -1:] + 1
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
