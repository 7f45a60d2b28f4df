"""Greedy generation with a KV cache for any torch module in the MAIRA-2 layout.

The loop is written out (not ``generate()``) so that each stage -- vision encode, prefill, every
decode step -- is timed on its own and every backend does exactly the same work.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from time import perf_counter
from typing import TYPE_CHECKING, Any

import torch
from transformers import DynamicCache

from .base import Generation, StageTimings

if TYPE_CHECKING:
    from ..model.architecture import CXRReportModel
    from ..model.processor import CXRProcessor, ModelInputs

DecoderCall = Callable[..., Any]


def cache_argument(decoder: Any) -> str:
    """transformers 5.x names the KV-cache argument ``cache``; 4.x (IPEX's) ``past_key_values``."""
    forward = getattr(decoder, "forward", decoder)
    params = inspect.signature(forward).parameters
    return "cache" if "cache" in params else "past_key_values"


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


class TorchRunner(GreedyLoop):
    """Runs a (possibly cast or compiled) :class:`CXRReportModel`."""

    def __init__(
        self,
        model: CXRReportModel,
        processor: CXRProcessor,
        *,
        vision: Callable[[torch.Tensor], torch.Tensor] | None = None,
        decoder: DecoderCall | None = None,
    ) -> None:
        self.model = model
        self.processor = processor
        self.eos_token_id = model.config.eos_token_id
        self._vision = vision if vision is not None else model.vision
        self._decoder = decoder if decoder is not None else model.language_model
        self._cache_kw = cache_argument(model.language_model)

    def _encode(self, pixel_values: torch.Tensor) -> torch.Tensor:
        features = self._vision(pixel_values.to(self.model.dtype))
        return features.reshape(-1, features.shape[-1])

    def _embed_prompt(self, input_ids: torch.Tensor, image_embeds: Any) -> torch.Tensor:
        return self.model.embed_prompt(input_ids, image_embeds)

    def _prefill(self, embeds: torch.Tensor) -> tuple[torch.Tensor, Any]:
        cache = DynamicCache()
        out = self._decoder(
            inputs_embeds=embeds, use_cache=True, logits_to_keep=1, **{self._cache_kw: cache}
        )
        return out.logits[0, -1].float(), cache

    def _step(self, token: int, state: Any) -> tuple[torch.Tensor, Any]:
        out = self._decoder(
            input_ids=torch.tensor([[token]]), use_cache=True, **{self._cache_kw: state}
        )
        return out.logits[0, -1].float(), state

    @torch.inference_mode()
    def score(self, inputs: ModelInputs, target_ids: list[int]) -> torch.Tensor:
        image_embeds = self._encode(inputs.pixel_values)
        prompt = self.model.embed_prompt(inputs.input_ids, image_embeds)
        targets = torch.tensor([target_ids], dtype=torch.long)
        target_embeds = self.model.language_model.get_input_embeddings()(targets)
        embeds = torch.cat([prompt, target_embeds.to(prompt.dtype)], dim=1)
        start = inputs.prompt_length - 1
        return self._all_logits(embeds)[start : start + len(target_ids)].float()

    # ---- the parts batched generation (:mod:`.batched_torch`) drives ------------------------
    def encode(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """One study's image embeddings ``[tokens, D]`` (the vision stage)."""
        return self._encode(pixel_values)

    @property
    def decoder(self) -> DecoderCall:
        """The decoder as this runner calls it (compiled for ``compile``)."""
        return self._decoder

    @property
    def cache_keyword(self) -> str:
        """The decoder's KV-cache argument name (``cache`` or ``past_key_values``)."""
        return self._cache_kw

    def _all_logits(self, embeds: torch.Tensor) -> torch.Tensor:
        """Logits [L, vocab] for every position of one uncached pass."""
        return self._decoder(inputs_embeds=embeds, use_cache=False).logits[0]
