"""Intel Extension for PyTorch backends, as in the published CXRReportGen study.

IPEX is archived by Intel: its last release, 2.8, needs torch 2.8.x, so these backends live in
their own environment (``tox -e ipex``). Intel's advice is upstream PyTorch (oneDNN bf16 GEMMs and
``torch.compile``): the ``eager-bf16`` and ``compile`` backends measure that path beside them.

* ``ipex`` -- the study's recipe: ``ipex.optimize(model, dtype=torch.bfloat16)`` on the bf16 model.
* ``ipex-llm`` -- ``ipex.llm.optimize`` on the decoder (fused attention/RoPE, IPEX's KV cache),
  ``ipex.optimize`` on the vision tower. ``ipex.llm.optimize`` supports the transformers release
  IPEX validated (4.51.3); the ipex environment pins it.

Both prepack bf16 weights, which IPEX allows only with AVX-NE-CONVERT or AVX-512 BW/VL/DQ: on
an AVX2-only CPU they are unavailable with that reason (:mod:`.cpu_support`), never a crash
mid-prepare.
"""

from __future__ import annotations

import copy
from collections.abc import Collection
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from time import perf_counter
from typing import TYPE_CHECKING, Any

import torch

from ..machine import active_caps
from .base import Availability, Backend, Runner
from .cpu_support import ipex_bf16_unsupported
from .torch_runner import TorchRunner

if TYPE_CHECKING:
    from ..model.loader import ReferenceModel
    from ..model.processor import ModelInputs

ARCHIVED_NOTICE = (
    "Intel Extension for PyTorch is archived by Intel (last release 2.8, torch 2.8.x only). "
    "Intel recommends upstream PyTorch instead: bf16 through oneDNN/AMX and torch.compile, "
    "measured here as the 'eager-bf16' and 'compile' backends."
)
HOW_TO_GET = "run it in the ipex environment: tox -e ipex -- --cxr-backend=all"
TESTED_TRANSFORMERS = "4.51.3"


def ipex_cpu_availability(features: Collection[str] | None = None) -> Availability:
    """Whether this CPU can run IPEX's bf16 weight prepack (both backends' recipes do): asked
    before the package, since on such a CPU no environment helps. Not cached: the CPU comes from
    ``CXRPERF_CPUINFO`` when set, which tests change within one process."""
    reason = ipex_bf16_unsupported(features)
    return Availability.no(reason) if reason else Availability.yes()


def ipex_availability() -> Availability:
    """Whether both IPEX backends can run here: the CPU, then the installed package."""
    cpu = ipex_cpu_availability()
    return cpu if not cpu.ok else _ipex_package_availability()


@lru_cache(maxsize=1)
def _ipex_package_availability() -> Availability:
    """The package's part, cached: importing IPEX is slow and its answer fixed per process."""
    try:
        ipex_version = version("intel-extension-for-pytorch")
    except PackageNotFoundError:
        return Availability.no(
            "intel-extension-for-pytorch is not installed here (IPEX 2.8 needs torch 2.8.x, this "
            f"environment has torch {torch.__version__.split('+')[0]}); {HOW_TO_GET}"
        )
    major_minor = ".".join(torch.__version__.split("+")[0].split(".")[:2])
    if not ipex_version.startswith(major_minor + "."):
        return Availability.no(
            f"intel-extension-for-pytorch {ipex_version} does not match torch {torch.__version__}; "
            f"{HOW_TO_GET}"
        )
    try:
        import intel_extension_for_pytorch  # noqa: F401
    except Exception as exc:  # IPEX raises plain Exceptions on ABI mismatch
        return Availability.no(f"intel_extension_for_pytorch failed to import: {exc}; {HOW_TO_GET}")
    return ipex_onednn_availability()


def ipex_onednn_availability() -> Availability:
    """IPEX's own answer to what its bf16 weight prepack asserts, asked of the oneDNN it ships.

    The CPU's features are asked first (:func:`ipex_cpu_availability`, the ISA cap applied as
    oneDNN applies it), but oneDNN decides, and a hypervisor may hide what ``/proc/cpuinfo``
    lists. Where they disagree this answer wins, so the backend is ``not run`` with the reason
    instead of failing mid-prepare."""
    import intel_extension_for_pytorch._C as core

    has_bf16 = getattr(core, "onednn_has_bf16_support", None)
    if has_bf16 is None or has_bf16():
        return Availability.yes()
    # IPEX's check follows ATen's cap too: ATEN_CPU_CAPABILITY=avx2 alone makes it say no
    caps = active_caps()
    return Availability.no(
        "IPEX's bf16 weight prepack cannot run here: its oneDNN finds neither avx_ne_convert nor "
        "avx512bw, avx512vl and avx512dq"
        + (f" ({', '.join(caps)} caps the instruction set)" if caps else "")
    )


class IpexLlmRunner(TorchRunner):
    """``ipex.llm.optimize`` replaces the decoder's forward: it takes IPEX's own KV-cache tuples
    (``past_key_values``, started from None) and a 2D attention mask, and returns a tuple.

    No static batching: :mod:`.batched_torch` drives a transformers ``DynamicCache`` with left
    padding, which IPEX's cache tuples and fused attention do not take; a worklist runs one study
    at a time."""

    static_batching = False
    batch_mode = "one at a time (ipex.llm keeps its own KV-cache tuples: no batched path)"

    def _prefill(self, embeds: torch.Tensor) -> tuple[torch.Tensor, Any]:
        length = embeds.shape[1]
        out = self._decoder(
            inputs_embeds=embeds,
            past_key_values=None,
            use_cache=True,
            attention_mask=torch.ones(1, length, dtype=torch.long),
            return_dict=False,
        )
        return out[0][0, -1].float(), (out[1], length)

    def _step(self, token: int, state: Any) -> tuple[torch.Tensor, Any]:
        past, length = state
        length += 1
        out = self._decoder(
            input_ids=torch.tensor([[token]]),
            past_key_values=past,
            use_cache=True,
            attention_mask=torch.ones(1, length, dtype=torch.long),
            return_dict=False,
        )
        return out[0][0, -1].float(), (out[1], length)

    def _all_logits(self, embeds: torch.Tensor) -> torch.Tensor:
        out = self._decoder(
            inputs_embeds=embeds,
            past_key_values=None,
            use_cache=True,
            attention_mask=torch.ones(1, embeds.shape[1], dtype=torch.long),
            return_dict=False,
        )
        logits = out[0][0]
        if logits.shape[0] != embeds.shape[1]:
            raise RuntimeError("ipex.llm returned logits for the last position only")
        return logits


class _IpexBackend(Backend):
    precision = "bf16"

    def availability(self) -> Availability:
        return ipex_availability()

    def notice(self) -> str | None:
        return ARCHIVED_NOTICE


class IpexBackend(_IpexBackend):
    name = "ipex"
    description = "IPEX ipex.optimize(dtype=bf16), the published study's recipe (archived)"

    def prepare(self, reference: ReferenceModel, example: ModelInputs) -> Runner:
        import intel_extension_for_pytorch as ipex

        start = perf_counter()
        model = copy.deepcopy(reference.model).to(torch.bfloat16).eval()
        model = ipex.optimize(model, dtype=torch.bfloat16, inplace=True)
        runner = TorchRunner(model, reference.processor)
        runner.generate(example, 2, force_length=True)
        self.prepare_info.seconds = perf_counter() - start
        return runner


class IpexLlmBackend(_IpexBackend):
    name = "ipex-llm"
    description = "IPEX ipex.llm.optimize on the decoder (bf16, fused attention), archived"

    def availability(self) -> Availability:
        base = ipex_availability()
        if not base.ok:
            return base
        try:
            found = version("transformers")
        except PackageNotFoundError:  # pragma: no cover - transformers is a dependency
            found = "missing"
        if found != TESTED_TRANSFORMERS:
            return Availability.no(
                f"ipex.llm.optimize supports transformers {TESTED_TRANSFORMERS}, found {found}; "
                f"{HOW_TO_GET}"
            )
        return Availability.yes()

    def prepare(self, reference: ReferenceModel, example: ModelInputs) -> Runner:
        import intel_extension_for_pytorch as ipex

        start = perf_counter()
        model = copy.deepcopy(reference.model).to(torch.bfloat16).eval()
        model.vision = ipex.optimize(model.vision, dtype=torch.bfloat16, inplace=True)
        decoder: Any = ipex.llm.optimize(
            model.language_model, dtype=torch.bfloat16, inplace=True, deployment_mode=False
        )
        model.language_model = decoder
        runner = IpexLlmRunner(model, reference.processor)
        runner.generate(example, 2, force_length=True)
        self.prepare_info.seconds = perf_counter() - start
        return runner
