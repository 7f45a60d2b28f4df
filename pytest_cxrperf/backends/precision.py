"""The precisions a backend declares, and what each one implies: the one place they are listed.

A backend's ``precision`` (:class:`~pytest_cxrperf.backends.base.Backend`) chooses its default
equivalence tolerances (:mod:`pytest_cxrperf.gate.equivalence`), the ceiling its roofline is held
to (:mod:`pytest_cxrperf.roofline`) and the CPU notes it gets
(:mod:`pytest_cxrperf.backends.cpu_support`); ``cxr_tolerances`` keys name a precision or a backend
(:mod:`pytest_cxrperf.validation`). Plain data, no torch: settings are checked before any backend
is imported.
"""

from __future__ import annotations

PRECISIONS = ("fp32", "bf16", "int8-weights", "int4-weights", "int8")
# the precisions whose speed turns on int8 dot products (VNNI, AMX-INT8): see cpu_support
INT8_PRECISIONS = ("int8", "int8-weights", "int4-weights")

# the allowed range of each equivalence tolerance (see gate/equivalence.py): (low, high or None)
TOLERANCE_RANGES: dict[str, tuple[float, float | None]] = {
    "tie_margin": (0.0, None),
    "prefill_rel_err": (0.0, None),
    "teacher_top1": (0.0, 1.0),
}
METRICS = tuple(TOLERANCE_RANGES)  # the tolerance metrics, as cxr_tolerances keys end

DEFAULT_TOLERANCES: dict[str, dict[str, float]] = {
    "fp32": {"tie_margin": 1e-3, "prefill_rel_err": 1e-4, "teacher_top1": 1.0},
    "bf16": {"tie_margin": 0.5, "prefill_rel_err": 0.05, "teacher_top1": 0.9},
    "int8-weights": {"tie_margin": 1.0, "prefill_rel_err": 0.15, "teacher_top1": 0.8},
    # int4 group-wise weights: ~4x the int8 weight error per group
    "int4-weights": {"tie_margin": 1.5, "prefill_rel_err": 0.25, "teacher_top1": 0.7},
    # int8 weights *and* activations (W8A8): activation rounding on top of weight rounding
    "int8": {"tie_margin": 1.5, "prefill_rel_err": 0.25, "teacher_top1": 0.7},
}

# precision -> (the ceiling its compute runs against, bytes per stored weight); int8 weights are
# unpacked to bf16 by OpenVINO's CPU plugin, so int8-/int4-weight backends are held to the bf16
# ceiling, W8A8 to the int8 one (see roofline.py)
PRECISION_ROOFS: dict[str, tuple[str, float]] = {
    "fp32": ("fp32", 4.0),
    "bf16": ("bf16", 2.0),
    "int8-weights": ("bf16", 1.0),
    "int4-weights": ("bf16", 0.5 + 4.0 / 64),  # 4 bits + an f16 scale and a u8 zero per 64
    "int8": ("int8", 1.0),
}
