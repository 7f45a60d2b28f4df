"""What both OpenVINO runners share (:class:`OpenVINOParts`): the stateful one
(:class:`.openvino.OpenVINORunner`) and the paged one (:class:`.openvino_paged.PagedRunner`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from .greedy import GreedyLoop

if TYPE_CHECKING:
    import openvino as ov

    from ..model.processor import CXRProcessor, ModelInputs


class OpenVINOParts(GreedyLoop):
    """What both OpenVINO runners share: the four compiled parts and their infer requests, the
    prompt's embeddings, scoring, and a cache of each generated token's embedding. Subclasses run
    the prompt (``_run_prefill``) and the steps."""

    compiled: dict[str, ov.CompiledModel]

    def __init__(
        self,
        vision: ov.CompiledModel,
        embed: ov.CompiledModel,
        prefill: ov.CompiledModel,
        decoder: ov.CompiledModel,
        processor: CXRProcessor,
    ) -> None:
        self.compiled = {"vision": vision, "embed": embed, "prefill": prefill, "decoder": decoder}
        self._prefill_request = prefill.create_infer_request()
        self._decoder = decoder.create_infer_request()
        self.processor = processor
        self.image_token_id = processor.config.image_token_id
        self.eos_token_id = processor.config.eos_token_id
        self._vision = vision.create_infer_request()
        self._embed = embed.create_infer_request()
        self._step_ids = np.zeros((1, 1), dtype=np.int64)
        self._last = np.zeros(1, dtype=np.int64)  # logits_indices of a one-token step
        # token id -> its embedding [1, 1, D], filled from the embed IR on first use: a decode
        # step then skips a whole inference request (~0.19 ms of the toy model's ~0.5 ms per
        # token on 2 cores); memory grows with the distinct tokens generated (4 KiB each on bench)
        self._token_embeds: dict[int, np.ndarray] = {}

    def _encode(self, pixel_values: torch.Tensor) -> np.ndarray:
        pixels = np.ascontiguousarray(pixel_values.float().numpy())
        features = self._vision.infer({"pixel_values": pixels})["image_embeds"]
        return features.reshape(-1, features.shape[-1])

    def _embed_ids(self, ids: np.ndarray) -> np.ndarray:
        return self._embed.infer({"input_ids": ids.reshape(1, -1)})["inputs_embeds"].copy()

    def _embed_prompt(self, input_ids: torch.Tensor, image_embeds: np.ndarray) -> np.ndarray:
        ids = input_ids.numpy().astype(np.int64)
        embeds = self._embed_ids(ids)
        mask = ids[0] == self.image_token_id
        if int(mask.sum()) != image_embeds.shape[0]:
            raise ValueError(
                f"prompt has {int(mask.sum())} <image> tokens but the images gave "
                f"{image_embeds.shape[0]}"
            )
        embeds[0, mask] = image_embeds
        return embeds

    def _token_embedding(self, token: int) -> np.ndarray:
        """One token's embedding [1, 1, D], from the embed IR the first time it is seen."""
        embeds = self._token_embeds.get(token)
        if embeds is None:
            self._step_ids[0, 0] = token
            embeds = self._token_embeds[token] = self._embed_ids(self._step_ids)
        return embeds

    def _run_prefill(self, embeds: np.ndarray, logits_indices: np.ndarray) -> np.ndarray:
        """The whole sequence [1, L, D] from an empty cache; logits [K, vocab] at the indices."""
        raise NotImplementedError

    def score(self, inputs: ModelInputs, target_ids: list[int]) -> torch.Tensor:
        if not target_ids:  # as TorchRunner: no targets, no logits
            vocab = self.compiled["prefill"].output("logits").get_partial_shape()[-1].get_length()
            return torch.zeros((0, vocab), dtype=torch.float32)
        prompt = self._embed_prompt(inputs.input_ids, self._encode(inputs.pixel_values))
        targets = self._embed_ids(np.asarray(target_ids, dtype=np.int64))
        embeds = np.concatenate([prompt, targets], axis=1)
        first = inputs.prompt_length - 1
        indices = np.arange(first, first + len(target_ids), dtype=np.int64)
        logits = self._run_prefill(embeds, indices)
        return torch.from_numpy(logits.astype(np.float32, copy=True))
