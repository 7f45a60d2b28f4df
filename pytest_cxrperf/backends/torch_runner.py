"""Greedy generation with a KV cache for any torch module in the MAIRA-2 layout: the torch stages
of the shared loop (:class:`~.greedy.GreedyLoop`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from transformers import DynamicCache

from .greedy import GreedyLoop

if TYPE_CHECKING:
    from ..model.architecture import CXRReportModel
    from ..model.processor import CXRProcessor, ModelInputs

DecoderCall = Callable[..., Any]


def cache_argument(decoder: Any) -> str:
    """transformers 5.x names the KV-cache argument ``cache``; 4.x (IPEX's) ``past_key_values``."""
    forward = getattr(decoder, "forward", decoder)
    params = inspect.signature(forward).parameters
    return "cache" if "cache" in params else "past_key_values"


class TorchRunner(GreedyLoop):
    """Runs a (possibly cast or compiled) :class:`CXRReportModel`."""

    # whether :mod:`.batched_torch` can batch this runner's decoder (a transformers decoder that
    # takes a DynamicCache, an attention mask and position ids)
    static_batching: ClassVar[bool] = True

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
