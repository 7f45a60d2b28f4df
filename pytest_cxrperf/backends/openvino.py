"""OpenVINO backends: the model exported to IR (:mod:`.openvino_export`), run on the CPU plugin.

Seven variants differ in what they compile (and the two W8A8 ones in their runner, below):

* ``openvino``: the plugin's defaults on this CPU (bf16 where the CPU has AVX512-BF16 or AMX,
  else f32; u8 KV cache). ``precision`` is set from what the compiled model reports.
* ``openvino-f32``: f32 inference and f32 KV cache; must match eager fp32 token for token.
* ``openvino-bf16``: bf16 inference with a bf16 KV cache.
* ``openvino-int8``: NNCF int8 (asymmetric, per-channel) weight compression of every part. The
  plugin decompresses the weights inside its GEMM kernels and computes in its default precision
  (bf16 here: profiles show ``FullyConnectedCompressed`` on bf16 brgemm, not int8 VNNI), so it
  mostly saves memory bandwidth: decode gains, prefill barely does.
* ``openvino-int4``: int4 group-wise (INT4_ASYM, group 64) decoder weights, int8 elsewhere.
  Decode gains over int8; prefill loses (int4 unpacking in compute-bound GEMMs) and, on the
  random-weight ``bench`` decoder, leaves its prefill-logit tolerance.
* ``openvino-w8a8``: NNCF post-training W8A8 (``nncf.quantize``, SmoothQuant, calibrated on the
  package's phantom studies) of the vision encoder and of a separate stateless prefill IR
  (``prefill.xml``): int8 VNNI kernels for the compute-bound stages; int8 weights for decode.
* ``openvino-w8a8-int4``: openvino-w8a8's vision and prefill with int4 decode weights, the
  fastest measured combination (README, "Quantized backends").

The two W8A8 variants run their prompt and decode steps on PagedAttention over one shared KV
cache (:class:`.openvino_paged.PagedRunner`; a worklist: continuous batching); the others use
:class:`OpenVINORunner` (a stateless prompt IR whose present KV is loaded into the stateful decode
IR; a worklist: OpenVINO streams, :mod:`.openvino_streams`).

Export and compilation happen in :meth:`prepare` and are reported in ``prepare_info``, never in
latency. Every variant warms up on the example study so first-inference kernel creation is paid
there too.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Callable
from dataclasses import replace
from time import perf_counter
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from .base import Availability, Backend, PrepareInfo, Runner
from .cpu_support import openvino_capped_precision, openvino_isa_cap_unsupported
from .openvino_paged import PagedRunner, to_paged
from .openvino_parts import OpenVINOParts
from .openvino_streams import STREAMS, StreamPool

if TYPE_CHECKING:
    import openvino as ov

    from ..model.loader import ReferenceModel
    from ..model.processor import CXRProcessor, ModelInputs
    from .batching import BatchRun
    from .openvino_cache import CacheEntry

INSTALL_HINT = "pip install 'pytest-cxrperf[openvino]'"


def _type_name(ov_type: Any) -> str:
    """An OpenVINO element type as its short name ("bf16", "f32", "u8")."""
    to_string = getattr(ov_type, "to_string", None)
    return str(to_string() if callable(to_string) else ov_type)


def _precision_name(ov_type: Any) -> str:
    """OpenVINO inference precision -> this project's precision label."""
    return "bf16" if _type_name(ov_type) in ("bf16", "bfloat16") else "fp32"


# the tolerances a weight mode is held to; w8a8-int4 mixes int8 activations (vision, prefill) with
# int4 weights (decode): "int8" and "int4-weights" have the same tolerances
WEIGHT_PRECISION = {
    "int8": "int8-weights",
    "int4": "int4-weights",
    "w8a8": "int8",
    "w8a8-int4": "int8",
}


class OpenVINORunner(OpenVINOParts):
    """Greedy generation over the compiled parts; same loop and timing as TorchRunner.

    ``prefill`` is the prompt IR (stateless, no past, present out:
    :func:`.openvino_export.convert_prefill`): it runs the prompt (and :meth:`score`) and its
    present KV is loaded into the stateful ``decoder``'s variables, which then runs one token per
    step with the cache kept inside OpenVINO. See the module docstring of
    :mod:`.openvino_export` for why prefill does not use the stateful model.

    Both IRs are exported with batch 1 (``inputs_embeds [1, S, D]``, ``beam_idx [1]``), and a
    dynamic batch would change the IR every single-study latency baseline was measured on. A
    worklist with several studies in flight runs on OpenVINO streams instead
    (:mod:`.openvino_streams`: one infer request set, with its own state, per study in flight,
    over the IR compiled once more for throughput); with one in flight, on this runner.
    """

    batch_mode = STREAMS
    streams: StreamPool | None = None  # set by the backend's prepare

    def __init__(
        self,
        vision: ov.CompiledModel,
        embed: ov.CompiledModel,
        prefill: ov.CompiledModel,
        decoder: ov.CompiledModel,
        processor: CXRProcessor,
    ) -> None:
        super().__init__(vision, embed, prefill, decoder, processor)
        self._beam = np.zeros(1, dtype=np.int32)
        pasts = [n for port in prefill.inputs for n in port.get_names() if n.startswith("past_")]
        if pasts:
            raise ValueError(
                f"prefill takes a past cache ({pasts[0]}, ...): compile "
                "openvino_export.prompt_only(model) instead, which starts from an empty one"
            )
        # by every name of an output: the plugin may add others and pick one of those as "any"
        presents = [n for o in prefill.outputs for n in o.get_names() if n.startswith("present.")]
        # variables are named input+output ("past_key_values.0.keypresent.0.key")
        self._state_sources = []
        for state in self._decoder.query_state():
            matches = [name for name in presents if state.name.endswith(name)]
            if len(matches) != 1:
                raise RuntimeError(f"cannot tell which prefill output feeds state {state.name!r}")
            self._state_sources.append((state, matches[0]))

    @staticmethod
    def _feed(embeds: np.ndarray, past: int, logits_indices: np.ndarray) -> dict[str, np.ndarray]:
        length = embeds.shape[1]
        return {
            "inputs_embeds": embeds,
            "attention_mask": np.ones((1, past + length), dtype=np.int64),
            "position_ids": np.arange(past, past + length, dtype=np.int64)[None, :],
            "logits_indices": logits_indices,
        }

    def _run_prefill(self, embeds: np.ndarray, logits_indices: np.ndarray) -> np.ndarray:
        """The whole sequence through the prompt IR; logits [K, vocab] (a view)."""
        self._prefill_request.infer(self._feed(embeds, 0, logits_indices))
        return self._prefill_request.get_tensor("logits").data[0]

    def _load_cache(self) -> None:
        """Prefill's present KV -> the stateful decoder's variables (in its KV-cache precision)."""
        self._decoder.reset_state()
        for state, output in self._state_sources:
            state.state = self._prefill_request.get_tensor(output)

    def _prefill(self, embeds: np.ndarray) -> tuple[torch.Tensor, Any]:  # type: ignore[override]
        past = embeds.shape[1]
        logits = self._run_prefill(embeds, np.array([past - 1], dtype=np.int64))[-1]
        self._load_cache()
        return torch.from_numpy(logits.astype(np.float32, copy=True)), past

    def _step(self, token: int, state: Any) -> tuple[torch.Tensor, Any]:  # type: ignore[override]
        feed = self._feed(self._token_embedding(token), state, self._last)
        feed["beam_idx"] = self._beam
        self._decoder.infer(feed)
        logits = self._decoder.get_tensor("logits").data[0][-1]
        return torch.from_numpy(logits.astype(np.float32, copy=True)), state + 1

    def run_batched(
        self,
        items: list[ModelInputs],
        concurrency: int,
        max_new_tokens: int,
        *,
        force_length: bool = False,
        return_logits: bool = False,
        clock: Callable[[], float] = perf_counter,
    ) -> BatchRun:
        """``items`` with ``concurrency`` studies in flight on the stream pool; with one (or no
        pool: a runner built by hand), one after another on this latency-compiled runner."""
        from .batching import run_one_at_a_time

        if concurrency == 1 or self.streams is None:
            run = run_one_at_a_time(
                self, items, max_new_tokens, force_length=force_length,
                return_logits=return_logits, clock=clock,
            )  # fmt: skip
            return replace(run, mode=self.batch_mode, batched=self.streams is not None)
        return self.streams.run(
            items, concurrency, max_new_tokens, force_length=force_length,
            return_logits=return_logits, clock=clock,
        )  # fmt: skip


def _stream_pool(
    core: Any,
    models: dict[str, Any],
    config: dict[str, Any],
    reference: ReferenceModel,
    threads: int | None,
) -> StreamPool:
    """The stateful parts compiled once more for throughput (on first use), with the backend's
    other properties unchanged: see :mod:`.openvino_streams`."""

    def compile_parts(extra: dict[str, Any]) -> dict[str, Any]:
        properties = {**config, **extra}
        return {name: core.compile_model(m, "CPU", properties) for name, m in models.items()}

    def make_runner(parts: dict[str, Any]) -> OpenVINORunner:
        return OpenVINORunner(**parts, processor=reference.processor)

    return StreamPool(compile_parts, make_runner, threads)


class _OpenVINOBackend(Backend):
    """Shared prepare: export (or reuse) the IR, compile the four parts, warm up."""

    weights: ClassVar[str] = "f32"  # one of openvino_export.WEIGHT_MODES: what the IR stores
    config: ClassVar[dict[str, str]] = {}  # compile properties on top of the plugin's defaults
    needs: ClassVar[tuple[str, ...]] = ("openvino",)

    def __init__(
        self, threads: int | None = None, cache_dir: str | os.PathLike[str] | None = None
    ) -> None:
        super().__init__(threads)
        self.cache_dir = cache_dir
        self._built: tuple[str, CacheEntry] | None = None  # what build() exported, for prepare
        self._ran: str | None = None  # the inference precision the compiled decoder reports

    def availability(self) -> Availability:
        for module in self.needs:
            try:
                # openvino is imported for real (0.2 s) to catch a broken native library; nncf
                # (pure Python, 1.5 s to import) is only looked up
                if module == "openvino":
                    importlib.import_module(module)
                elif importlib.util.find_spec(module) is None:
                    raise ImportError(f"no module named {module!r}")
            except Exception as exc:  # ImportError, or a broken native library
                return Availability.no(f"{module} cannot be imported ({exc}); {INSTALL_HINT}")
        capped = openvino_isa_cap_unsupported(self.weights)
        return Availability.no(capped) if capped else Availability.yes()

    def compile_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1", **self.config}
        capped = openvino_capped_precision()
        if capped:  # an ISA cap OpenVINO's plugin does not see (cpu_support says why)
            config["INFERENCE_PRECISION_HINT"] = capped
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = int(self.threads)
        return config

    def build(self, reference: ReferenceModel) -> None:
        """Export the IR into the on-disk cache now (or verify the cached entry), outside the
        measured preparation."""
        from .openvino_export import export_entry

        entry = export_entry(reference, weights=self.weights, cache_dir=self.cache_dir)
        self._built = (reference.weights_hash, entry)

    def prepare(self, reference: ReferenceModel, example: ModelInputs) -> Runner:
        import openvino as ov

        from .openvino_export import IR_FILES, PAGED_MODES, export_entry

        self.prepare_info = PrepareInfo()
        start = perf_counter()
        built, self._built = self._built, None
        if built is not None and built[0] == reference.weights_hash and built[1].path.is_dir():
            entry = built[1]
        else:
            entry = export_entry(reference, weights=self.weights, cache_dir=self.cache_dir)
        compile_start = perf_counter()
        core = ov.Core()
        config = self.compile_config()
        vision, embed, decoder, prefill = (core.read_model(str(entry.path / f)) for f in IR_FILES)
        paged = self.weights in PAGED_MODES
        if paged:
            prefill, decoder = to_paged(prefill), to_paged(decoder)
        models = {"vision": vision, "embed": embed, "prefill": prefill, "decoder": decoder}
        compiled = {name: core.compile_model(m, "CPU", config) for name, m in models.items()}
        compile_s = perf_counter() - compile_start
        decoder_property = compiled["decoder"].get_property
        inference = decoder_property("INFERENCE_PRECISION_HINT")
        # precision is a ClassVar on Backend; the instance reports what the plugin really runs
        real = WEIGHT_PRECISION.get(self.weights) or _precision_name(inference)
        self.precision = real  # type: ignore[misc]
        self._ran = _type_name(inference)
        runner_class = PagedRunner if paged else OpenVINORunner
        runner = runner_class(**compiled, processor=reference.processor)
        if isinstance(runner, OpenVINORunner):
            runner.streams = _stream_pool(core, models, config, reference, self.threads)
        warm_start = perf_counter()
        runner.generate(example, 2, force_length=True)  # first-inference kernel creation
        self.prepare_info.seconds = perf_counter() - start
        details: dict[str, object] = {
            "cache": "hit" if entry.hit else "miss",
            "cache_dir": str(entry.path),
            "export_s": round(entry.export_s, 3),
            "verify_s": round(entry.verify_s, 3),
            "compile_s": round(compile_s, 3),
            "warmup_s": round(perf_counter() - warm_start, 3),
            "weights": self.weights,
            "attention": "paged (PagedAttention, one shared KV cache)" if paged else "stateful",
            "inference_precision": _type_name(inference),
            "kv_cache_precision": _type_name(decoder_property("KV_CACHE_PRECISION")),
            "threads": int(decoder_property("INFERENCE_NUM_THREADS")),
            "openvino": ov.get_version(),
        }
        if entry.rebuilt_because:
            details["rebuilt_because"] = entry.rebuilt_because
        if openvino_capped_precision():
            details["class_choice"] = (
                "f32 asked for: an ISA cap leaves OpenVINO no bf16 path (cpu_support)"
            )
        self.prepare_info.details.update(details)
        return runner

    def cpu_notes(self) -> list[str]:
        notes = super().cpu_notes()
        said = precision_fallback(self.name, self.config.get("INFERENCE_PRECISION_HINT"), self._ran)
        return [*notes, said] if said else notes


def precision_fallback(backend_name: str, asked: str | None, ran: str | None) -> str | None:
    """The notice for a backend whose asked-for inference precision the plugin replaced (None
    where it ran what was asked, or nothing was asked): OpenVINO's CPU plugin takes a bf16 hint
    only on AVX-512 (native with AVX512_BF16 or AMX, emulated without) or AVX2-VNNI-2, and keeps
    f32 elsewhere without a word, so ``openvino-bf16`` on an AVX2-only runner runs f32."""
    if not asked or not ran or asked == ran:
        return None
    return (
        f"{backend_name}: OpenVINO runs {ran}, not the {asked} asked for: this CPU has no {asked} "
        "path in its CPU plugin (bf16 needs AVX-512 or AVX2-VNNI-2); reported and judged as "
        f"{_precision_name(ran)}"
    )


class OpenVINOBackend(_OpenVINOBackend):
    name = "openvino"
    precision = "bf16"  # replaced per instance by what the plugin really uses
    description = "OpenVINO CPU plugin with its default precision (bf16 where the CPU has it)"

    def __init__(
        self, threads: int | None = None, cache_dir: str | os.PathLike[str] | None = None
    ) -> None:
        super().__init__(threads, cache_dir)
        try:
            import openvino as ov

            hint = ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT")
            self.precision = _precision_name(hint)  # type: ignore[misc]
        except Exception:  # not installed: availability() says so
            pass


class OpenVINOF32Backend(_OpenVINOBackend):
    name = "openvino-f32"
    precision = "fp32"
    description = "OpenVINO CPU plugin, f32 inference and f32 KV cache"
    config: ClassVar[dict[str, str]] = {
        "INFERENCE_PRECISION_HINT": "f32",
        "KV_CACHE_PRECISION": "f32",
    }


class OpenVINOBf16Backend(_OpenVINOBackend):
    name = "openvino-bf16"
    precision = "bf16"
    description = "OpenVINO CPU plugin, bf16 inference and bf16 KV cache"
    config: ClassVar[dict[str, str]] = {
        "INFERENCE_PRECISION_HINT": "bf16",
        "KV_CACHE_PRECISION": "bf16",
    }


class OpenVINOInt8Backend(_OpenVINOBackend):
    name = "openvino-int8"
    precision = "int8-weights"
    description = "OpenVINO with NNCF int8 weight compression (default compute precision)"
    weights = "int8"
    needs = ("openvino", "nncf")


class OpenVINOInt4Backend(_OpenVINOBackend):  # lost: not registered (README, "Backends")
    name = "openvino-int4"
    precision = "int4-weights"
    description = (
        "OpenVINO with NNCF int4 group-wise (asymmetric, group 64) weight compression of the "
        "decoder, int8 weights elsewhere"
    )
    weights = "int4"
    needs = ("openvino", "nncf")


# The paged cache quantizes keys per token, as the stateful cache does, not per channel (the paged
# node's default here): the paged form changes the attention, not the cache's precision. On bench
# the cost was within noise (2.019 against 1.985 s per generation, 8 shuffled rounds); on the CI's
# random MAIRA-2-layout checkpoint per-channel keys flipped a near tie (logit margin 0.011) that
# per-token keys and the stateful form resolve as eager fp32 does (README, "Quantized backends").
PAGED_CONFIG = {"KEY_CACHE_QUANT_MODE": "BY_TOKEN"}


class OpenVINOW8A8Backend(_OpenVINOBackend):
    name = "openvino-w8a8"
    precision = "int8"
    description = (
        "OpenVINO with NNCF post-training W8A8 quantization (int8 weights and activations, "
        "calibrated on the phantom studies) of the vision encoder and prefill; int8 weights for "
        "decode"
    )
    weights = "w8a8"
    config: ClassVar[dict[str, str]] = PAGED_CONFIG
    needs = ("openvino", "nncf")


class OpenVINOW8A8Int4Backend(_OpenVINOBackend):
    name = "openvino-w8a8-int4"
    precision = "int8"
    description = (
        "openvino-w8a8's W8A8 vision encoder and prefill with openvino-int4's int4 decode weights: "
        "each stage in its fastest measured form"
    )
    weights = "w8a8-int4"
    config: ClassVar[dict[str, str]] = PAGED_CONFIG
    needs = ("openvino", "nncf")
