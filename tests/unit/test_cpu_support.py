"""What a CPU can run and why a backend is fast or slow there, on three recorded CPUs' cpuinfo:
an AVX2-only Zen 3 (no AVX-512, VNNI or AMX), this project's AVX-512 Zen 4 and an AMX Sapphire
Rapids, read through ``CXRPERF_CPUINFO`` as the plugin would on those hosts."""

from __future__ import annotations

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
