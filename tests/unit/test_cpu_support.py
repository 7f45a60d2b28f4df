"""What a CPU can run and why a backend is fast or slow there, on three recorded CPUs' cpuinfo:
an AVX2-only Zen 3 (no AVX-512, VNNI or AMX), this project's AVX-512 Zen 4 and an AMX Sapphire
Rapids, read through ``CXRPERF_CPUINFO`` as the plugin would on those hosts."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_cxrperf import machine
from pytest_cxrperf.backends import cpu_support, ipex
from pytest_cxrperf.backends.base import Availability
from pytest_cxrperf.backends.cpu_support import (
    amx,
    bf16_native,
    int8_dot_native,
    ipex_bf16_unsupported,
    speed_notes,
)
from pytest_cxrperf.backends.registry import get_backend_class

CPUINFO = Path(__file__).resolve().parents[1] / "data" / "cpuinfo"
ZEN3 = CPUINFO / "avx2-zen3.txt"
ZEN4 = CPUINFO / "avx512-zen4.txt"
SPR = CPUINFO / "spr-amx.txt"
ARM_PLAIN = frozenset({"fp", "asimd", "evtstrm", "crc32"})
ARM_NEOVERSE_V1 = ARM_PLAIN | {"asimddp", "bf16", "i8mm", "sve"}


# each test sets the cap it is about: one in the caller's environment would move them all
pytestmark = pytest.mark.usefixtures("no_isa_cap")


def flags_of(path: Path, monkeypatch: pytest.MonkeyPatch) -> frozenset[str]:
    monkeypatch.setenv(machine.CPUINFO_ENV, str(path))
    return machine.cpu_flags()


@pytest.mark.parametrize(
    ("path", "bf16", "int8", "tiles"),
    [(ZEN3, False, False, False), (ZEN4, True, True, False), (SPR, True, True, True)],
    ids=["zen3", "zen4", "spr"],
)
def test_features_of_each_cpu(monkeypatch, path, bf16, int8, tiles):
    flags = flags_of(path, monkeypatch)
    assert (bf16_native(flags), int8_dot_native(flags), amx(flags)) == (bf16, int8, tiles)
    assert (bf16_native(), int8_dot_native(), amx()) == (bf16, int8, tiles)  # default: cpu_flags


def test_arm_features():
    assert not bf16_native(ARM_PLAIN) and not int8_dot_native(ARM_PLAIN)
    assert bf16_native(ARM_NEOVERSE_V1) and int8_dot_native(ARM_NEOVERSE_V1)
    assert not amx(ARM_NEOVERSE_V1)


def test_amx_needs_a_compute_unit_beside_the_tiles():
    assert not amx({"avx2", "amx_tile"})
    assert amx({"avx2", "amx_tile", "amx_int8"})


def test_ipex_bf16_prepack_needs_avx512_bw_vl_dq_or_avx_ne_convert(monkeypatch):
    reason = ipex_bf16_unsupported(flags_of(ZEN3, monkeypatch))
    assert reason is not None
    assert "weight prepack" in reason
    assert "lacks avx_ne_convert and avx512bw, avx512vl, avx512dq" in reason
    assert ipex_bf16_unsupported(flags_of(ZEN4, monkeypatch)) is None
    assert ipex_bf16_unsupported(flags_of(SPR, monkeypatch)) is None
    only_bw = {"sse2", "avx2", "avx512f", "avx512bw"}
    assert "lacks avx_ne_convert and avx512vl, avx512dq" in (ipex_bf16_unsupported(only_bw) or "")
    assert ipex_bf16_unsupported({"sse2", "avx2", "avx_ne_convert"}) is None  # e.g. Arrow Lake


def test_ipex_needs_x86():
    assert ipex_bf16_unsupported(ARM_NEOVERSE_V1) == "IPEX needs an x86 CPU (this one is not x86)"


def test_speed_notes_on_avx2(monkeypatch):
    flags = flags_of(ZEN3, monkeypatch)
    assert speed_notes("eager", "fp32", flags) == []
    assert speed_notes("eager-bf16", "bf16", flags) == [
        "eager-bf16: bf16 is emulated on this CPU (no AVX512_BF16 or AMX): expect it slower than "
        "fp32"
    ]
    for precision in cpu_support.INT8_PRECISIONS:
        assert speed_notes("q", precision, flags) == [
            "q: int8 dot products without VNNI (AVX2 VPMADDUBSW/VPMADDWD path)"
        ]


def test_speed_notes_on_avx512_and_amx(monkeypatch):
    zen4 = flags_of(ZEN4, monkeypatch)
    assert speed_notes("eager-bf16", "bf16", zen4) == []
    assert speed_notes("compile-int8", "int8", zen4) == []
    spr = flags_of(SPR, monkeypatch)
    assert speed_notes("eager", "fp32", spr) == []
    assert speed_notes("eager-bf16", "bf16", spr) == ["eager-bf16: AMX used for bf16"]
    assert speed_notes("openvino-int8", "int8-weights", spr) == ["openvino-int8: AMX used for int8"]


def test_speed_notes_on_arm():
    assert speed_notes("eager-bf16", "bf16", ARM_PLAIN) == [
        "eager-bf16: bf16 is emulated on this CPU (no BF16): expect it slower than fp32"
    ]
    assert "without SDOT or I8MM" in speed_notes("compile-int8", "int8", ARM_PLAIN)[0]
    assert speed_notes("eager-bf16", "bf16", ARM_NEOVERSE_V1) == []


def test_the_avx2_file_is_another_machine_class(monkeypatch):
    monkeypatch.setenv(machine.CPUINFO_ENV, str(ZEN3))
    zen3 = machine.machine_class(1)
    monkeypatch.setenv(machine.CPUINFO_ENV, str(ZEN4))
    zen4 = machine.machine_class(1)
    assert not [f for f in zen3.features if f.startswith("avx512")]
    assert "avx2" in zen3.features and "avx512_bf16" in zen4.features
    assert (zen3.family, zen3.model, zen3.microarchitecture) == (25, 1, "Zen 3")
    assert zen4.microarchitecture == "Zen 4"
    assert zen3.key != zen4.key


def test_ipex_is_unavailable_on_avx2_with_the_cpu_reason(monkeypatch):
    """The CPU is asked before the package (no environment helps such a CPU) and is not cached:
    the answer follows ``CXRPERF_CPUINFO`` within one process. The package's part is stubbed, so
    IPEX is never imported here (in the ipex environment it would be)."""
    asked: list[str] = []

    def package() -> Availability:
        asked.append("package")
        return Availability.yes()

    monkeypatch.setattr(ipex, "_ipex_package_availability", package)
    flags = flags_of(ZEN3, monkeypatch)
    cpu = ipex.ipex_cpu_availability(flags)
    assert not cpu.ok and cpu.reason == ipex_bf16_unsupported(flags)
    assert ipex.ipex_cpu_availability(flags_of(SPR, monkeypatch)).ok
    for name in ("ipex", "ipex-llm"):
        monkeypatch.setenv(machine.CPUINFO_ENV, str(ZEN3))
        availability = get_backend_class(name)().availability()
        assert not availability.ok and "weight prepack" in availability.reason, name
        assert not asked  # the package is not asked on such a CPU
        monkeypatch.setenv(machine.CPUINFO_ENV, str(SPR))
        assert "weight prepack" not in get_backend_class(name)().availability().reason, name
        assert asked
        asked.clear()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("eager", []),
        ("eager-bf16", ["eager-bf16: bf16 is emulated on this CPU (no AVX512_BF16 or AMX)"]),
        ("compile-int8", ["compile-int8: int8 dot products without VNNI"]),
    ],
)
def test_backend_cpu_notes_under_the_avx2_file(monkeypatch, name, expected):
    monkeypatch.setenv(machine.CPUINFO_ENV, str(ZEN3))
    notes = get_backend_class(name)().cpu_notes()
    assert len(notes) == len(expected)
    assert all(note.startswith(prefix) for note, prefix in zip(notes, expected, strict=True))
    monkeypatch.setenv(machine.CPUINFO_ENV, str(ZEN4))
    assert get_backend_class(name)().cpu_notes() == []


def test_compile_takes_its_dtype_from_the_machine_class(monkeypatch):
    """bf16 is a speed choice for ``compile``: fp32 where bf16 would be emulated (it ran five times
    slower than the reference there), bf16 where it is native; the choice is said."""
    from pytest_cxrperf.backends.cpu_support import compile_dtype

    assert compile_dtype(flags_of(ZEN4, monkeypatch)) == ("bf16", None)
    assert compile_dtype(flags_of(SPR, monkeypatch)) == ("bf16", None)
    dtype, reason = compile_dtype(flags_of(ZEN3, monkeypatch))
    assert dtype == "fp32" and reason is not None
    assert "no AVX512_BF16 or AMX" in reason and "43.4 s" in reason
    assert compile_dtype(ARM_NEOVERSE_V1)[0] == "bf16"
    assert compile_dtype(ARM_PLAIN)[0] == "fp32"

    monkeypatch.setenv(machine.CPUINFO_ENV, str(ZEN3))
    on_avx2 = get_backend_class("compile")()
    assert on_avx2.precision == "fp32"
    assert on_avx2.cpu_notes() == [f"compile: {reason}"]
    monkeypatch.setenv(machine.CPUINFO_ENV, str(ZEN4))
    on_avx512 = get_backend_class("compile")()
    assert on_avx512.precision == "bf16" and on_avx512.cpu_notes() == []
    assert type(on_avx512).precision == "bf16"  # the class default is untouched


def test_an_isa_cap_makes_an_avx512_host_its_own_avx2_class(monkeypatch):
    """``ONEDNN_MAX_CPU_ISA=AVX2`` makes torch's and IPEX's oneDNN run AVX2 kernels on an AVX-512
    host (bf16 emulated, int8 without VNNI, IPEX's bf16 prepack refused: measured on this project's
    Zen 4): the plugin decides from the features the cap leaves, and the class is another one,
    neither the host's nor a real AVX2 CPU's."""
    zen4 = flags_of(ZEN4, monkeypatch)
    uncapped = machine.machine_class(1)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx2")
    capped = machine.cpu_flags()
    assert machine.isa_cap() == "AVX2"
    assert [f for f in machine.CLASS_FEATURES if f in capped] == ["avx2"]
    assert "fma" in capped and capped < zen4  # only the class features go
    cls = machine.machine_class(1)
    assert cls.features == ("avx2",) and (cls.family, cls.model) == (
        uncapped.family,
        uncapped.model,
    )
    assert cls.key != uncapped.key
    assert "ONEDNN_MAX_CPU_ISA=AVX2" in cls.describe()
    said = machine.class_differences(cls, uncapped)
    assert (
        "ISA caps none (this: ONEDNN_MAX_CPU_ISA=AVX2)" in said
        and "avx512_bf16 (stored only)" in said
    )
    assert machine.MachineClass.from_dict(cls.to_dict()) == cls
    assert ipex_bf16_unsupported() is not None and not ipex.ipex_cpu_availability().ok
    assert cpu_support.compile_dtype()[0] == "fp32"
    assert "bf16 is emulated" in speed_notes("eager-bf16", "bf16")[0]
    assert "without VNNI" in speed_notes("compile-int8", "int8")[0]


@pytest.mark.parametrize(
    ("name", "value", "features"),
    [
        (
            "ONEDNN_MAX_CPU_ISA",
            "AVX512_CORE",
            ("avx2", "avx512f", "avx512bw", "avx512vl", "avx512dq"),
        ),
        (
            "DNNL_MAX_CPU_ISA",
            "AVX512_CORE_VNNI",
            ("avx2", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_vnni"),
        ),
        ("ONEDNN_MAX_CPU_ISA", "ALL", None),
        ("ONEDNN_MAX_CPU_ISA", "no-such-isa", None),  # oneDNN ignores a value it does not know
    ],
)
def test_isa_cap_values(monkeypatch, name, value, features):
    flags_of(ZEN4, monkeypatch)
    uncapped = machine.machine_class(1)
    monkeypatch.setenv(name, value)
    cls = machine.machine_class(1)
    assert cls.features == (features or uncapped.features)
    assert cls.isa_cap == ("" if features is None else value)


@pytest.mark.skipif(
    importlib.util.find_spec("intel_extension_for_pytorch") is None,
    reason="IPEX is installed in the ipex environment only (tox -e ipex)",
)
def test_ipex_own_oneDNN_agrees_with_the_cpu_and_follows_the_isa_cap(monkeypatch):
    """What IPEX's oneDNN answers is what its prepack asserts: on this host it agrees with the
    features the plugin reads, and under ``ONEDNN_MAX_CPU_ISA=AVX2`` it says no, naming the cap
    (oneDNN reads the cap once per process: each answer comes from a fresh one)."""
    code = (
        "from pytest_cxrperf.backends.ipex import ipex_onednn_availability as a\n"
        "r = a(); print('yes' if r.ok else 'no'); print(r.reason)"
    )
    caps = (*machine.ISA_CAP_ENVS, machine.ATEN_CAP_ENV)
    env = {k: v for k, v in os.environ.items() if k not in (*caps, "CXRPERF_CPUINFO")}

    def answer(**extra: str) -> list[str]:
        out = subprocess.run(
            [sys.executable, "-c", code], env={**env, **extra}, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.splitlines()

    monkeypatch.delenv(machine.CPUINFO_ENV, raising=False)
    assert answer()[0] == ("yes" if ipex_bf16_unsupported() is None else "no")
    capped = answer(ONEDNN_MAX_CPU_ISA="AVX2")
    assert capped[0] == "no" and "ONEDNN_MAX_CPU_ISA=AVX2" in capped[1], capped
    aten = answer(ATEN_CPU_CAPABILITY="avx2")  # IPEX's check follows ATen's cap as well
    assert aten[0] == "no" and "ATEN_CPU_CAPABILITY=avx2" in aten[1], aten


def test_openvino_says_when_it_ran_f32_for_a_bf16_hint():
    """On an AVX2-only CPU OpenVINO's CPU plugin keeps f32 for a bf16 hint without a word: the
    backend reports the precision the compiled model reports, and says why (a hint it honoured, or
    none given, says nothing)."""
    from pytest_cxrperf.backends.openvino import OpenVINOBf16Backend, precision_fallback

    said = precision_fallback("openvino-bf16", "bf16", "f32")
    assert said is not None and said.startswith("openvino-bf16: OpenVINO runs f32, not the bf16")
    assert said.endswith("judged as fp32")
    assert precision_fallback("openvino-bf16", "bf16", "bf16") is None
    assert precision_fallback("openvino", None, "f32") is None
    backend = OpenVINOBf16Backend()
    backend._ran = "f32"
    assert said in backend.cpu_notes()
    backend._ran = "bf16"
    assert not [n for n in backend.cpu_notes() if "not the bf16" in n]


def test_openvino_under_an_isa_cap(monkeypatch):
    """OpenVINO's plugin picks bf16 from the CPU, not the cap, while oneDNN beneath it follows the
    cap: under ``AVX2`` the f32-weight backends ask for f32 (what the plugin picks on an AVX2
    CPU), and the compressed-weight ones are not run, with the reason. Without a cap, or with one
    that leaves AVX-512, OpenVINO decides alone."""
    from pytest_cxrperf.backends.openvino import OpenVINOF32Backend, OpenVINOW8A8Int4Backend

    flags_of(ZEN4, monkeypatch)
    assert cpu_support.openvino_capped_precision() is None
    assert cpu_support.openvino_isa_cap_unsupported("w8a8-int4") is None
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")
    assert cpu_support.openvino_capped_precision() is None
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert cpu_support.openvino_capped_precision() == "f32"
    assert OpenVINOF32Backend().compile_config()["INFERENCE_PRECISION_HINT"] == "f32"
    assert cpu_support.openvino_isa_cap_unsupported("f32") is None
    reason = cpu_support.openvino_isa_cap_unsupported("w8a8-int4")
    assert reason is not None and "ONEDNN_MAX_CPU_ISA=AVX2" in reason
    if importlib.util.find_spec("openvino") is not None:
        availability = OpenVINOW8A8Int4Backend().availability()
        assert not availability.ok and availability.reason == reason
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    assert not cpu_support.openvino_bf16_path(flags_of(ZEN3, monkeypatch))
    assert cpu_support.openvino_bf16_path(flags_of(SPR, monkeypatch))
