"""The plugin on another class of CPU (``CXRPERF_CPUINFO``): an AVX2-only Zen 3 says why bf16 is
slow there, in the summary's notes, instead of leaving a slow row to read as a regression."""

from pathlib import Path

from pytest_cxrperf.machine import CPUINFO_ENV

from .conftest import FAST

ZEN3 = Path(__file__).resolve().parents[1] / "data" / "cpuinfo" / "avx2-zen3.txt"


def test_an_avx2_cpu_notes_that_bf16_is_emulated(suite, monkeypatch):
    monkeypatch.setenv(CPUINFO_ENV, str(ZEN3))
    result = suite.runpytest_subprocess(
        *FAST,
        "--cxr-model=tiny",
        "--cxr-backend=eager,eager-bf16",
        "-m",
        "cxr_equivalence",
        "--cxr-max-new-tokens=4",
    )
    assert result.ret == 0, result.stdout.str()
    notes = [line for line in result.stdout.lines if line.startswith("note:")]
    said = (
        "note: eager-bf16: bf16 is emulated on this CPU (no AVX512_BF16 or AMX): expect it slower "
        "than fp32"
    )
    assert notes.count(said) == 1, notes
    assert not [n for n in notes if n.startswith("note: eager:")]  # fp32 gets none
