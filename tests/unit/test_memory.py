"""Peak memory: the sampling child process and the memory gate."""

import time

import pytest

from pytest_cxrperf import memory
from pytest_cxrperf.gate.decision import IMPROVED, INCOMPARABLE, MISSING, OK, REGRESSED
from pytest_cxrperf.gate.memory import judge_memory, memory_figures
from pytest_cxrperf.memory import MemorySampler, sampled, supported


def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / (1024 * 1024)


@pytest.mark.skipif(not supported(), reason="memory is sampled through /proc (Linux)")
def test_the_sampler_sees_a_step_allocate_and_touch_memory():
    def allocate():
        block = bytearray(160 * 1024 * 1024)
        block[::4096] = b"x" * len(block[::4096])  # touch every page: resident
        time.sleep(0.05)
        return len(block)

    size, peak = sampled(allocate)
    assert size == 160 * 1024 * 1024
    assert peak is not None
    assert 140 <= peak.delta_mib <= 200, peak
    # the issue asks for at least 100 Hz: the sampler asks for it; what it achieves is a
    # property of the machine's load (87 Hz at load 10 on 2 cores), reported as sample_hz in
    # every run, and no unit test gates on the clock
    assert MemorySampler().interval <= 1 / 100 and peak.hz > 0, peak
    _, idle = sampled(lambda: time.sleep(0.02))
    assert idle is not None and idle.delta_mib < 20


def test_memory_figures_leave_out_what_was_not_measured():
    assert memory_figures(12.345, None) == {"prepare": 12.35}


@pytest.mark.parametrize(
    "current, status, failed",
    [
        ({"prepare": 400.0, "generate": 50.0}, OK, False),
        ({"prepare": 470.0, "generate": 50.0}, REGRESSED, True),  # +17.5 %, +70 MiB
        ({"prepare": 400.0, "generate": 75.0}, OK, False),  # +50 % but under the 32 MiB floor
        ({"prepare": 300.0, "generate": 50.0}, IMPROVED, False),
    ],
)
def test_the_memory_gate_needs_the_threshold_and_the_floor(current, status, failed):
    verdict = judge_memory("openvino", current, {"prepare": 400.0, "generate": 50.0}, 0.10)
    assert (verdict.status, verdict.failed) == (status, failed)
    assert verdict.measure == "memory"
    assert "memory" in verdict.message and "alpha" not in verdict.message


def test_a_baseline_without_memory_figures_follows_the_missing_policy():
    warn = judge_memory("eager", {"prepare": 1.0}, {}, 0.1)
    assert (warn.status, warn.failed) == (MISSING, False)
    assert "refresh it to gate memory" in warn.message
    strict = judge_memory("eager", {"prepare": 1.0}, None, 0.1, missing="fail")
    assert strict.failed


def test_memory_compares_only_runs_with_the_same_preparation_history():
    figures = {"prepare": 400.0, "generate": 90.0}
    same = judge_memory("twin", figures, figures, 0.1, context=(("eager",), ("eager",)))
    assert same.status == OK
    other = judge_memory(
        "twin", {"prepare": 400.0, "generate": 190.0}, figures, 0.1, context=((), ("eager",))
    )
    assert (other.status, other.failed) == (INCOMPARABLE, False)
    assert "same selection of backends" in other.message


def test_free_memory_is_released_before_a_step(monkeypatch):
    """A step's peak is taken over a heap whose free pages went back to the system first."""
    calls = []
    monkeypatch.setattr(memory, "release_free_memory", lambda: calls.append("trim") or True)
    _, peak = memory.sampled(lambda: calls.append("step"))
    assert calls == ["trim", "step"] and peak is not None


@pytest.mark.skipif(not supported(), reason="memory is sampled through /proc (Linux)")
def test_release_free_memory_lowers_resident_memory_after_a_large_free():
    """glibc keeps small freed blocks resident; malloc_trim hands them back."""
    if not memory.release_free_memory():
        pytest.skip("no glibc malloc_trim here")
    import ctypes

    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    blocks = [libc.malloc(4096) for _ in range(40_000)]  # ~160 MB of heap, below the mmap threshold
    guard = libc.malloc(4096)  # above them: free() alone cannot shrink the heap past it
    for block in blocks:
        ctypes.memset(block, 1, 4096)
    for block in blocks:
        libc.free(block)
    held = rss_mib()
    memory.release_free_memory()
    released = held - rss_mib()
    libc.free(guard)
    assert released > 100, released
