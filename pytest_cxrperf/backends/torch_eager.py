"""PyTorch eager backends: fp32 (the reference) and the model cast to bf16.

bf16 is a cast of the weights, not ``torch.autocast``: autocast re-casts weights every decode step
and measured slower than fp32 for decode on our CPUs, while the cast model runs bf16 GEMMs natively
(AVX512-BF16 / AMX via oneDNN).
"""

from __future__ import annotations

import copy
from time import perf_counter
from typing import TYPE_CHECKING

import torch

from .base import Backend, Runner
from .torch_runner import TorchRunner

if TYPE_CHECKING:
    from ..model.loader import ReferenceModel
    from ..model.processor import ModelInputs


class EagerBackend(Backend):
    name = "eager"
    precision = "fp32"
    description = "PyTorch eager, fp32: the reference every other backend is compared with"

    def prepare(self, reference: ReferenceModel, example: ModelInputs) -> Runner:
        return TorchRunner(reference.model, reference.processor)


class EagerBf16Backend(Backend):
    name = "eager-bf16"
    precision = "bf16"
    description = "PyTorch eager with the model cast to bf16 (oneDNN bf16 GEMMs)"

    def prepare(self, reference: ReferenceModel, example: ModelInputs) -> Runner:
        start = perf_counter()
        model = copy.deepcopy(reference.model).to(torch.bfloat16).eval()
        self.prepare_info.seconds = perf_counter() - start
        return TorchRunner(model, reference.processor)
