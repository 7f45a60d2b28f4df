"""torch.compile (inductor, freezing): Intel's upstream successor to IPEX, in two precisions.

* ``compile``: the bf16-cast model where bf16 is native; the fp32 model on a CPU that would
  emulate bf16 (the machine class decides: :func:`.cpu_support.compile_dtype`).
* ``compile-int8``: the fp32 model with torchao's int8 dynamic quantization of every
  ``nn.Linear`` (int8 weights per channel, activations quantized per token at run time), which
  inductor lowers to oneDNN/VNNI int8 GEMMs. Measured on ``bench`` here, it beat the same recipe
  on the bf16-cast model (vision 0.83 s against 1.01 s, decode 26 against 41 ms per token) and
  kept eager fp32's tokens, so fp32 is the base (README, "Quantized backends").

Compilation happens once per session in :meth:`prepare` (with warm-up generations on the example
study, so no compile time leaks into latency); inductor's on-disk cache makes later sessions
faster.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import os
import shutil
from time import perf_counter
from typing import TYPE_CHECKING

import torch

from .base import Availability, Backend, Runner
from .torch_runner import TorchRunner

if TYPE_CHECKING:
    from ..model.architecture import CXRReportModel
    from ..model.loader import ReferenceModel
    from ..model.processor import CXRProcessor, ModelInputs


TORCHAO_HINT = "pip install 'pytest-cxrperf[torchao]'"


def _compiler_availability() -> Availability:
    if not any(shutil.which(cc) for cc in ("g++", "c++", "clang++")):
        return Availability.no(
            "torch.compile's inductor needs a C++ compiler on PATH (install g++)"
        )
    try:
        import torch._inductor.config  # noqa: F401
    except Exception as exc:  # pragma: no cover - broken torch install
        return Availability.no(f"torch inductor cannot be imported: {exc}")
    return Availability.yes()


_INDUCTOR_CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"
_inductor_root: str | None = None  # the directory before this process chose one per class


def inductor_cache_dir(cpu_key: str, root: str) -> str:
    """``<root>/cxrperf-<hash of the machine class's CPU key>``: inductor's cache for one class."""
    return os.path.join(root, "cxrperf-" + hashlib.sha256(cpu_key.encode()).hexdigest()[:12])


def use_class_inductor_cache() -> str:
    """Points inductor's on-disk cache at a directory of this machine class's own, under the
    user's ``TORCHINDUCTOR_CACHE_DIR`` or inductor's default, and returns it.

    Inductor's cache did not tell a vector-ISA cap apart: with ``ATEN_CPU_CAPABILITY=avx2`` on an
    AVX-512 host, compile-int8 reused kernels from an uncapped run and every report began with
    token 0 (it matched eager fp32 with a fresh cache). A cache that travels between runners of
    two classes (a CI cache restored on another CPU) is the same hazard, so each class compiles
    into its own."""
    global _inductor_root
    from ..machine import machine_class

    if _inductor_root is None:
        from torch._inductor.runtime.cache_dir_utils import default_cache_dir

        _inductor_root = os.environ.get(_INDUCTOR_CACHE_ENV) or default_cache_dir()
    chosen = inductor_cache_dir(machine_class(0).cpu_key, _inductor_root)
    os.environ[_INDUCTOR_CACHE_ENV] = chosen
    return chosen


def compiled_runner(model: CXRReportModel, processor: CXRProcessor, example: ModelInputs) -> Runner:
    """``model`` (already cast or quantized) compiled with freezing, then warmed up on ``example``.

    The first pass compiles prefill and decode, the second recompiles decode once for the
    KV-cache layout that growth produces: no compilation is left for the latency rounds.
    """
    import torch._inductor.config as inductor_config

    use_class_inductor_cache()
    inductor_config.freezing = True  # fold weights into the graph: needs inference mode
    runner = TorchRunner(
        model,
        processor,
        vision=torch.compile(model.vision, dynamic=False),
        decoder=torch.compile(model.language_model, dynamic=True),
    )
    for _ in range(2):
        runner.generate(example, 4, force_length=True)
    return runner


def int8_dynamic_copy(
    model: CXRReportModel, dtype: torch.dtype = torch.float32
) -> tuple[CXRReportModel, str]:
    """A copy of ``model`` in ``dtype`` with torchao int8 dynamic quantization of every
    ``nn.Linear``, and torchao's version. ``model`` itself is left as it is."""
    try:
        import torchao
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_
    except Exception as exc:  # installed but broken, or a release without these names
        raise RuntimeError(
            f"compile-int8 needs torchao's Int8DynamicActivationInt8WeightConfig and quantize_ "
            f"({type(exc).__name__}: {exc}); {TORCHAO_HINT}"
        ) from exc
    copied = copy.deepcopy(model).to(dtype).eval()
    quantize_(copied, Int8DynamicActivationInt8WeightConfig())
    return copied, str(getattr(torchao, "__version__", "unknown"))


class CompileBackend(Backend):
    name = "compile"
    precision = "bf16"
    description = (
        "torch.compile (inductor, freezing) on the bf16-cast model (fp32 on a CPU without "
        "native bf16)"
    )

    def __init__(self, threads: int | None = None) -> None:
        super().__init__(threads)
        from .cpu_support import compile_dtype

        # the machine class picks the dtype: bf16 only where it is native
        chosen, self.class_choice = compile_dtype()
        self.precision = chosen  # type: ignore[misc]

    def availability(self) -> Availability:
        return _compiler_availability()

    def cpu_notes(self) -> list[str]:
        if self.class_choice is None:
            return super().cpu_notes()
        return [f"{self.name}: {self.class_choice}"]

    def prepare(self, reference: ReferenceModel, example: ModelInputs) -> Runner:
        start = perf_counter()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float32
        model = copy.deepcopy(reference.model).to(dtype).eval()
        runner = compiled_runner(model, reference.processor, example)
        self.prepare_info.seconds = perf_counter() - start
        self.prepare_info.details["compiled"] = "vision (static), decoder (dynamic shapes)"
        self.prepare_info.details["dtype"] = self.precision
        if self.class_choice is not None:
            self.prepare_info.details["class_choice"] = self.class_choice
        return runner


class CompileInt8Backend(Backend):
    name = "compile-int8"
    precision = "int8"
    description = (
        "torch.compile (inductor, freezing) of the fp32 model with torchao int8 dynamic "
        "quantization (int8 weights and per-token int8 activations) of every linear layer"
    )

    def availability(self) -> Availability:
        if importlib.util.find_spec("torchao") is None:
            return Availability.no(f"torchao is not installed; {TORCHAO_HINT}")
        return _compiler_availability()

    def prepare(self, reference: ReferenceModel, example: ModelInputs) -> Runner:
        start = perf_counter()
        model, version = int8_dynamic_copy(reference.model)
        quantize_s = perf_counter() - start
        runner = compiled_runner(model, reference.processor, example)
        self.prepare_info.seconds = perf_counter() - start
        self.prepare_info.details.update(
            {
                "compiled": "vision (static), decoder (dynamic shapes)",
                "quantization": "torchao Int8DynamicActivationInt8WeightConfig on the fp32 model",
                "quantize_s": round(quantize_s, 3),
                "torchao": version,
            }
        )
        return runner
