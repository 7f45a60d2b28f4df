"""torch.compile (inductor, freezing) on the bf16-cast model: Intel's upstream successor to IPEX.

Compilation happens once per session in :meth:`CompileBackend.prepare` (with a warm-up generation
on the example study, so no compile time leaks into latency); inductor's on-disk cache makes later
sessions faster.
"""

from __future__ import annotations

import copy
import shutil
from time import perf_counter
from typing import TYPE_CHECKING

import torch

from .base import Availability, Backend, Runner, register_backend
from .torch_runner import TorchRunner

if TYPE_CHECKING:
    from ..model.loader import ReferenceModel
    from ..model.processor import ModelInputs


@register_backend
class CompileBackend(Backend):
    name = "compile"
    precision = "bf16"
    description = "torch.compile (inductor, freezing) on the bf16-cast model"

    def availability(self) -> Availability:
        if not any(shutil.which(cc) for cc in ("g++", "c++", "clang++")):
            return Availability.no(
                "torch.compile's inductor needs a C++ compiler on PATH (install g++)"
            )
        try:
            import torch._inductor.config  # noqa: F401
        except Exception as exc:  # pragma: no cover - broken torch install
            return Availability.no(f"torch inductor cannot be imported: {exc}")
        return Availability.yes()

    def prepare(self, reference: ReferenceModel, example: ModelInputs) -> Runner:
        import torch._inductor.config as inductor_config

        start = perf_counter()
        inductor_config.freezing = True  # fold weights into the graph: needs inference mode
        model = copy.deepcopy(reference.model).to(torch.bfloat16).eval()
        runner = TorchRunner(
            model,
            reference.processor,
            vision=torch.compile(model.vision, dynamic=False),
            decoder=torch.compile(model.language_model, dynamic=True),
        )
        # compile now, not during latency rounds: the first pass compiles prefill and decode, the
        # second recompiles decode once for the KV-cache layout that growth produces
        for _ in range(2):
            runner.generate(example, 4, force_length=True)
        self.prepare_info.seconds = perf_counter() - start
        self.prepare_info.details["compiled"] = "vision (static), decoder (dynamic shapes)"
        return runner
