"""What this CPU can run and why a backend is fast or slow on it: the one place that reads features.

A backend's speed relative to eager fp32 turns on a few ISA features: bf16 is native only with
AVX512_BF16 or AMX (Arm: BF16) and is emulated through fp32 otherwise, so ``eager-bf16`` can be
*slower* than fp32; int8 dot products need VNNI (Arm: dot-product/I8MM) or fall back to the AVX2
widening multiplies; AMX tiles speed both. IPEX's bf16 weight prepack refuses to run at all
without AVX-NE-CONVERT or AVX-512 BW/VL/DQ. Every function takes the CPU's feature names as
``/proc/cpuinfo`` spells them (default: :func:`pytest_cxrperf.machine.cpu_flags`, which honours
``CXRPERF_CPUINFO``), so another class's CPU can be reasoned about here. No torch: the plugin asks
before any backend is imported.
"""

from __future__ import annotations

import platform
from collections.abc import Collection

from .precision import INT8_PRECISIONS

# what IPEX's bf16 weight prepack asserts: AVX-NE-CONVERT alone, or all three AVX-512 subsets
IPEX_BF16_AVX512 = ("avx512bw", "avx512vl", "avx512dq")
IPEX_BF16_NE_CONVERT = "avx_ne_convert"
_X86_MARKERS = frozenset({"sse", "sse2", "avx", "avx2"})
_ARM_MARKERS = frozenset({"asimd", "neon", "fp", "evtstrm"})
_X86_MACHINES = frozenset({"x86_64", "amd64", "i386", "i686", "x86"})


def _features(features: Collection[str] | None) -> frozenset[str]:
    if features is None:
        from ..machine import cpu_flags

        return cpu_flags()
    return frozenset(features)


def is_x86(features: Collection[str] | None = None) -> bool:
    """Whether the CPU is x86, from its features (a simulated cpuinfo names another CPU than the
    host's); with none that tell, the host's architecture."""
    found = _features(features)
    if found & _X86_MARKERS:
        return True
    if found & _ARM_MARKERS:
        return False
    return platform.machine().lower() in _X86_MACHINES


def bf16_native(features: Collection[str] | None = None) -> bool:
    """bf16 arithmetic in hardware (AVX512_BF16 or AMX-BF16; Arm: BF16), not emulated in fp32."""
    found = _features(features)
    if is_x86(found):
        return bool(found & {"avx512_bf16", "amx_bf16"})
    return "bf16" in found


def int8_dot_native(features: Collection[str] | None = None) -> bool:
    """int8 dot-product instructions (AVX512-VNNI, AVX-VNNI or AMX-INT8; Arm: SDOT or I8MM)."""
    found = _features(features)
    if is_x86(found):
        return bool(found & {"avx512_vnni", "avx_vnni", "amx_int8"})
    return bool(found & {"asimddp", "i8mm"})


def amx(features: Collection[str] | None = None) -> bool:
    """AMX tiles with a bf16 or int8 unit (Sapphire Rapids and later)."""
    found = _features(features)
    return "amx_tile" in found and bool(found & {"amx_bf16", "amx_int8"})


def ipex_bf16_unsupported(features: Collection[str] | None = None) -> str | None:
    """Why IPEX's bf16 weight prepack cannot run on this CPU, naming what it lacks; None if it can.

    ``ipex.optimize(dtype=bfloat16)`` asserts AVX-NE-CONVERT, or AVX-512 BW, VL and DQ, and fails
    mid-prepare otherwise ("BF16 weight prepack needs the cpu support ..."): saying so before
    preparing turns a crash on an AVX2-only host into a reasoned skip.
    """
    found = _features(features)
    if not is_x86(found):
        return "IPEX needs an x86 CPU (this one is not x86)"
    if IPEX_BF16_NE_CONVERT in found:
        return None
    missing = [f for f in IPEX_BF16_AVX512 if f not in found]
    if not missing:
        return None
    return (
        "IPEX's bf16 weight prepack needs avx_ne_convert, or avx512bw, avx512vl and avx512dq; "
        f"this CPU lacks avx_ne_convert and {', '.join(missing)}"
    )


def speed_notes(
    backend_name: str, precision: str, features: Collection[str] | None = None
) -> list[str]:
    """Notices that explain ``backend_name``'s speed on this CPU, each prefixed with its name: a
    bf16 backend slower than fp32 or an int8 one without its fast path is the CPU, not a
    regression. fp32 gets none."""
    found = _features(features)
    x86 = is_x86(found)
    notes: list[str] = []
    if precision == "bf16":
        if not bf16_native(found):
            missing = "AVX512_BF16 or AMX" if x86 else "BF16"
            notes.append(f"bf16 is emulated on this CPU (no {missing}): expect it slower than fp32")
        elif amx(found) and "amx_bf16" in found:
            notes.append("AMX used for bf16")
    elif precision in INT8_PRECISIONS:
        if not int8_dot_native(found):
            notes.append(
                "int8 dot products without VNNI (AVX2 VPMADDUBSW/VPMADDWD path)"
                if x86
                else "int8 dot products without SDOT or I8MM (plain NEON path)"
            )
        elif amx(found) and "amx_int8" in found:
            notes.append("AMX used for int8")
    return [f"{backend_name}: {note}" for note in notes]


def matmul_paths(features: Collection[str] | None = None) -> dict[str, str | None]:
    """The instructions each matmul ceiling of this CPU runs on: ``fp32`` (FMA width), ``bf16``
    (None where bf16 is emulated: an emulation is no ceiling) and ``int8`` (VNNI, AMX, or the AVX2
    widening multiplies VPMADDUBSW/VPMADDWD that oneDNN and fbgemm use without VNNI)."""
    found = _features(features)
    if not is_x86(found):
        return {
            "fp32": "NEON/SVE FMA",
            "bf16": "BF16" if "bf16" in found else None,
            "int8": "SDOT/I8MM" if int8_dot_native(found) else "NEON widening multiplies",
        }
    avx512 = "avx512f" in found
    if amx(found) and "amx_bf16" in found:
        bf16: str | None = "AMX-BF16"
    elif "avx512_bf16" in found:
        bf16 = "AVX512_BF16"
    else:
        bf16 = None
    if amx(found) and "amx_int8" in found:
        int8 = "AMX-INT8"
    elif "avx512_vnni" in found:
        int8 = "AVX512-VNNI"
    elif "avx_vnni" in found:
        int8 = "AVX-VNNI"
    else:
        int8 = ("AVX-512" if avx512 else "AVX2") + " VPMADDUBSW/VPMADDWD (no VNNI)"
    fp32 = "AVX-512 FMA" if avx512 else "AVX2 FMA" if "fma" in found or "avx2" in found else "SSE"
    return {"fp32": fp32, "bf16": bf16, "int8": int8}


# Settings a backend takes from the machine class, one place for all: backend name -> what it
# chooses and from which features. Only choices measured on the class they are made for belong
# here, with the measurement.
COMPILE_BF16_EMULATED_SLOWDOWN = (
    "compiled bf16 took 43.4 s against eager fp32's 8.3 s on a 2-core AVX2 EPYC (bench preset, "
    "one interleaved run; issues 25 and 26)"
)


def compile_dtype(features: Collection[str] | None = None) -> tuple[str, str | None]:
    """The precision ``compile`` (torch.compile, IPEX's upstream successor) runs in on this CPU:
    bf16 where bf16 is native, fp32 where it would be emulated, with the reason (None where the
    default stands).

    bf16 there is a speed choice, not what the backend is for (``eager-bf16`` measures bf16
    itself, on every CPU): without AVX512_BF16/AMX it is emulated through fp32 and compiled bf16
    ran five times slower than the fp32 reference, so ``compile`` takes fp32 there and is held to
    fp32's tolerances."""
    found = _features(features)
    if bf16_native(found):
        return "bf16", None
    missing = "AVX512_BF16 or AMX" if is_x86(found) else "BF16"
    return "fp32", (
        f"fp32 chosen for this machine class: bf16 would be emulated (no {missing}); "
        f"{COMPILE_BF16_EMULATED_SLOWDOWN}"
    )


def openvino_bf16_path(features: Collection[str] | None = None) -> bool:
    """Whether OpenVINO's CPU plugin takes bf16 on this CPU: with AVX-512 (F, BW, VL, DQ: native
    with AVX512_BF16 or AMX, emulated without) or AVX2-VNNI-2 (AVX-NE-CONVERT marks it); elsewhere
    it keeps f32 for a bf16 hint and chooses f32 by default."""
    found = _features(features)
    if not is_x86(found):
        return "bf16" in found
    return all(f in found for f in ("avx512f", *IPEX_BF16_AVX512)) or IPEX_BF16_NE_CONVERT in found


def openvino_capped_precision(features: Collection[str] | None = None) -> str | None:
    """The inference precision the OpenVINO backends ask for under an ISA cap
    (``ONEDNN_MAX_CPU_ISA``) that leaves OpenVINO no bf16 path: ``"f32"``, what its plugin
    chooses on such a CPU; None without a cap or where bf16 stays. Its plugin decides bf16 from
    the CPU, not the cap, while the oneDNN kernels beneath it follow the cap, so without this a
    capped run failed to create its bf16 GEMMs ("could not create a primitive descriptor")."""
    from ..machine import isa_cap

    if isa_cap() is None or openvino_bf16_path(features):
        return None
    return "f32"


def openvino_isa_cap_unsupported(weights: str) -> str | None:
    """Why an OpenVINO backend with ``weights`` other than f32 cannot run under an ISA cap
    (``ONEDNN_MAX_CPU_ISA``), None where it can. The plugin's own kernels for compressed weights
    and PagedAttention pick their instructions from the CPU while oneDNN beneath them follows the
    cap: under ``AVX2`` on this project's Zen 4 the int8-weight vision encoder returned no image
    features and the paged decoder no logits. A cap reproduces torch's and IPEX's behaviour on
    another class, not OpenVINO's, so these are not run there rather than run wrong."""
    from ..machine import ISA_CAP_ENVS, active_caps, isa_cap

    if isa_cap() is None or weights == "f32":
        return None
    cap = next(c for c in active_caps() if c.split("=", 1)[0] in ISA_CAP_ENVS)
    return (
        f"OpenVINO's {weights}-weight kernels do not follow {cap} (they returned empty "
        "outputs under a cap); unset it to run this backend"
    )
