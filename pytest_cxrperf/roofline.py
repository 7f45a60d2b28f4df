"""Each stage's achieved fraction of this machine's ceiling (a roofline per stage).

* **vision** and **prefill** are compute-bound on a CPU (hundreds to thousands of tokens through
  every weight): achieved = stage FLOPs / stage seconds, against the matmul ceiling of the
  precision the backend *computes* in (int8 weights are unpacked to bf16 by OpenVINO's CPU
  plugin, so int8-/int4-weight backends are held to the bf16 ceiling; W8A8 to the int8 one).
  A fraction above 1 means the stage ran faster kernels than assumed: the plugin's dynamic
  activation quantization can put int8-weight vision encoders on int8 kernels.
* **decode** is memory-bound (one token through every weight): achieved = bytes read per token /
  seconds per token (weights at the backend's storage precision, plus the KV cache), against the
  memory bandwidth.

FLOPs are counted from the model's dense layers: 2 x parameters x tokens for every linear layer,
plus attention (QK^T and AV: 4 T^2 d per layer, halved for the causal prefill). Norms, activations
and softmax are left out: a lower bound on the work, so fractions are, if anything, understated.

:func:`model_cost` reads a torch model; everything else is pure and torch-free. A run counts the
model's work once (on the process that timed it) and stores it, as plain numbers, in
``RunResults.model["cost"]``; :func:`fill_roofline` then turns every timed backend's stage medians
into fractions, once, on the process that writes the reports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from .backends.precision import PRECISION_ROOFS

if TYPE_CHECKING:
    from .ceilings import Ceilings
    from .results import RunResults

DEFAULT_KV_BYTES = {"fp32": 4.0}  # eager/f32 backends keep an f32 cache; the others 2 (bf16)
# a KV cache element type a backend reports (OpenVINO's ``kv_cache_precision``) -> bytes
KV_ELEMENT_BYTES = {"u8": 1.0, "i8": 1.0, "f16": 2.0, "bf16": 2.0, "f32": 4.0}
STAGES = ("vision", "prefill", "decode")


@dataclass(frozen=True)
class ModelCost:
    """Work per stage of one generation on one study."""

    vision_flops: float  # all images of the study, encoder + projector
    prefill_flops: float  # the whole prompt through the decoder, logits for the last position
    decode_weight_params: float  # weights every decode step reads (decoder linears + lm_head)
    kv_elements_per_position: float  # 2 x layers x kv_heads x head_dim
    prompt_length: int

    def decode_bytes(
        self, precision: str, kv_bytes: float | None = None, new_tokens: int = 0
    ) -> float:
        """Bytes read by one decode step at a context of prompt + ``new_tokens``."""
        weight_bytes = PRECISION_ROOFS[precision][1]
        kv = DEFAULT_KV_BYTES.get(precision, 2.0) if kv_bytes is None else kv_bytes
        context = self.prompt_length + new_tokens
        return (
            self.decode_weight_params * weight_bytes + self.kv_elements_per_position * context * kv
        )

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelCost:
        return cls(
            vision_flops=float(data["vision_flops"]),
            prefill_flops=float(data["prefill_flops"]),
            decode_weight_params=float(data["decode_weight_params"]),
            kv_elements_per_position=float(data["kv_elements_per_position"]),
            prompt_length=int(data["prompt_length"]),
        )


def roofline_fractions(
    model_info: ModelCost,
    stage_medians: Mapping[str, float],
    precision: str,
    ceilings: Ceilings,
    *,
    kv_bytes: float | None = None,
    new_tokens: int = 32,
) -> dict[str, dict[str, Any]]:
    """Per stage: achieved rate, the ceiling it is held to, and the fraction (0..1, or above 1
    when the model of the work is off).

    ``stage_medians`` uses :func:`pytest_cxrperf.backends.timings.stage_medians`' keys
    (``vision_s``, ``prefill_s``, ``per_token_s``); a stage missing or at zero is left out.
    ``new_tokens``: the decode context grows by this over the generation; its midpoint counts.
    """
    if precision not in PRECISION_ROOFS:
        raise ValueError(f"no roofline for precision {precision!r}; known: {list(PRECISION_ROOFS)}")
    compute = PRECISION_ROOFS[precision][0]
    ceiling_name = f"{compute} matmul"
    if compute == "bf16" and ceilings.bf16_gflops is None:
        # emulated bf16 has no ceiling of its own: the hardware's is fp32's, and the emulation's
        # cost shows as the gap to it
        compute, ceiling_name = "fp32", "fp32 matmul (bf16 emulated on this CPU)"
    peak = {
        "fp32": ceilings.fp32_gflops,
        "bf16": ceilings.bf16_gflops,
        "int8": ceilings.int8_gops,
    }[compute]
    unit = "GOP/s" if compute == "int8" else "GFLOP/s"
    result: dict[str, dict[str, Any]] = {}
    for stage, key, work in (
        ("vision", "vision_s", model_info.vision_flops),
        ("prefill", "prefill_s", model_info.prefill_flops),
    ):
        seconds = stage_medians.get(key, 0.0)
        if seconds > 0 and peak:
            achieved = work / seconds / 1e9
            result[stage] = {
                "achieved": achieved,
                "ceiling": peak,
                "ceiling_name": ceiling_name,
                "unit": unit,
                "fraction": achieved / peak,
            }
    per_token = stage_medians.get("per_token_s", 0.0)
    if per_token > 0 and ceilings.bandwidth_gbs:
        moved = model_info.decode_bytes(precision, kv_bytes, new_tokens // 2)
        achieved = moved / per_token / 1e9
        result["decode"] = {
            "achieved": achieved,
            "ceiling": ceilings.bandwidth_gbs,
            "ceiling_name": "memory bandwidth",
            "unit": "GB/s",
            "fraction": achieved / ceilings.bandwidth_gbs,
        }
    return result


def fill_roofline(results: RunResults, ceilings: Ceilings | None, source: str) -> None:
    """Every timed backend's fractions of ``ceilings``, into ``results`` (and what they are of,
    into ``results.roofline``); where there can be none, ``results.roofline.note`` says why.

    ``source``: where the ceilings came from, or, without ceilings, why there are none.
    The work is ``results.model["cost"]`` (one timed generation); the decode context grows by
    the run's ``max_new_tokens``; a backend that reports its KV cache's element type (OpenVINO's
    u8 cache) is charged those bytes, the others their precision's default.
    """
    from .backends.timings import stage_medians
    from .results import RooflineBasis

    if ceilings is None:
        results.roofline = RooflineBasis(note=source)
        return
    basis = RooflineBasis(ceilings=ceilings.to_dict(), source=source)
    results.roofline = basis
    try:
        cost = ModelCost.from_dict(results.model["cost"])
    except (KeyError, TypeError, ValueError):
        basis.note = "the model's work was not counted in this run (no model cost)"
        return
    new_tokens = int(results.settings.get("max_new_tokens") or 32)
    for result in results.backends.values():
        if not result.stages or result.precision not in PRECISION_ROOFS:
            continue
        kv = KV_ELEMENT_BYTES.get(str(result.prepare_details.get("kv_cache_precision", "")))
        result.roofline = roofline_fractions(
            cost,
            stage_medians(result.stages),
            result.precision,
            ceilings,
            kv_bytes=kv,
            new_tokens=new_tokens,
        )


def model_cost(model: Any, prompt_length: int, images: int = 1) -> ModelCost:
    """Count the work of a :class:`~pytest_cxrperf.model.architecture.CXRReportModel`."""
    from torch import nn

    config = model.config
    tokens = config.image_tokens_per_image + 1  # patches + CLS through the encoder
    vision_flops = 0.0
    for module in model.vision.modules():
        if isinstance(module, nn.Linear | nn.Conv2d):
            weights = float(module.weight.numel())
            # the patch embedding runs once per patch; linears once per token
            vision_flops += (
                2.0 * weights * (tokens - 1 if isinstance(module, nn.Conv2d) else tokens)
            )
    v_layers = int(config.vision["num_hidden_layers"])
    v_dim = int(config.vision["hidden_size"])
    vision_flops += 4.0 * tokens**2 * v_dim * v_layers
    vision_flops *= images

    lm: Any = model.language_model
    head = lm.get_output_embeddings()
    head_params = float(head.weight.numel()) if head is not None else 0.0
    body_params = sum(
        float(m.weight.numel()) for m in lm.modules() if isinstance(m, nn.Linear) and m is not head
    )
    cfg = lm.config
    layers = int(cfg.num_hidden_layers)
    heads = int(cfg.num_attention_heads)
    hidden = int(cfg.hidden_size)
    head_dim = int(getattr(cfg, "head_dim", None) or hidden // heads)
    kv_heads = int(getattr(cfg, "num_key_value_heads", None) or heads)
    attention = 2.0 * prompt_length**2 * heads * head_dim * layers  # causal: half of 4 L^2 d
    return ModelCost(
        vision_flops=vision_flops,
        prefill_flops=2.0 * body_params * prompt_length + attention + 2.0 * head_params,
        decode_weight_params=body_params + head_params,
        kv_elements_per_position=2.0 * layers * kv_heads * head_dim,
        prompt_length=prompt_length,
    )
