"""The greedy loop every runner shares (:class:`GreedyLoop`); the runner supplies the stages.

The loop is written out (not ``generate()``) so that each stage -- vision encode, prefill, every
decode step -- is timed on its own and every backend does exactly the same work. It holds no arrays
of its own: what the stages pass between them (torch tensors, OpenVINO's numpy arrays) is theirs;
only the logits they return are torch vectors (for the argmax and a Generation's step logits).
"""

from __future__ import annotations

from time import perf_counter
from typing import TYPE_CHECKING, Any

import torch

from .base import Generation, StageTimings

if TYPE_CHECKING:
    from ..model.processor import CXRProcessor, ModelInputs


class GreedyLoop:
    """The greedy loop every runner shares, so all backends do (and time) the same work.

    Subclasses supply the stages: ``_encode`` (pixels -> image embeddings; timed as vision),
    ``_embed_prompt`` + ``_prefill`` (the prompt; timed as prefill) and ``_step`` (one token;
    timed per token). Logits come back as float32 torch vectors."""

    eos_token_id: int
    processor: CXRProcessor

    def _encode(self, pixel_values: torch.Tensor) -> Any:
        raise NotImplementedError

    def _embed_prompt(self, input_ids: torch.Tensor, image_embeds: Any) -> Any:
        raise NotImplementedError

    def _prefill(self, embeds: Any) -> tuple[torch.Tensor, Any]:
        """Run the prompt; return the next-token logits (float32 [vocab]) and the decode state."""
        raise NotImplementedError

    def _step(self, token: int, state: Any) -> tuple[torch.Tensor, Any]:
        """Feed one token; return its next-token logits and the updated state."""
        raise NotImplementedError

    @torch.inference_mode()
    def generate(
        self,
        inputs: ModelInputs,
        max_new_tokens: int,
        *,
        force_length: bool = False,
        return_logits: bool = False,
    ) -> Generation:
        if max_new_tokens < 1:
            raise ValueError("max_new_tokens must be >= 1")
        start = perf_counter()
        image_embeds = self._encode(inputs.pixel_values)
        vision_done = perf_counter()
        logits, state = self._prefill(self._embed_prompt(inputs.input_ids, image_embeds))
        token = int(torch.argmax(logits))
        prefill_done = perf_counter()
        ids, kept, decode = [token], [logits] if return_logits else [], []
        while len(ids) < max_new_tokens and (force_length or token != self.eos_token_id):
            step = perf_counter()
            logits, state = self._step(token, state)
            token = int(torch.argmax(logits))
            decode.append(perf_counter() - step)
            ids.append(token)
            if return_logits:
                kept.append(logits)
        timings = StageTimings(vision_done - start, prefill_done - vision_done, tuple(decode))
        return Generation(
            token_ids=ids,
            text=self.processor.decode([t for t in ids if t != self.eos_token_id]),
            timings=timings,
            step_logits=torch.stack(kept) if return_logits else None,
        )
