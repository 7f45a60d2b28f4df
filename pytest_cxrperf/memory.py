"""Peak memory of a step (preparing a backend, one generation), sampled from a separate process.

A child process reads this process's resident set (``/proc/PID/statm``) and the system's
``MemAvailable`` (``/proc/meminfo``) every few milliseconds (200 Hz asked, the achieved rate is
reported) while the step runs, so sampling never runs in the measured thread and is never part of
a timed round. Peaks are reported as deltas over the value just before the step: every backend
lives in one process, and the delta is what the step itself added. RSS misses memory-mapped
files another process could reclaim (OpenVINO maps its IR): the fall of MemAvailable is reported
beside it, as OpenVINO's own benchmark tool does.

Before each step, the C allocator is asked to hand its free memory back to the system
(:func:`release_free_memory`, glibc's ``malloc_trim``), so that what a step "adds" does not depend
on how much freed memory earlier steps left resident for it to reuse.

Linux only (``/proc``); elsewhere :func:`supported` is False and nothing is measured.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
MIB = 1024 * 1024
DEFAULT_HZ = 200.0

# the sampler child: stdlib only, started with -I (isolated) so it imports nothing of ours
_CHILD = r"""
import json, os, select, sys, time
pid, interval = int(sys.argv[1]), float(sys.argv[2])
page = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * page
def available():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0
first_rss, first_avail = rss(), available()
peak, low, n, start = first_rss, first_avail, 1, time.perf_counter()
sys.stdout.write("ready\n"); sys.stdout.flush()
while True:
    ready, _, _ = select.select([sys.stdin], [], [], interval)
    try:
        r, a = rss(), available()
    except OSError:
        break
    peak, low, n = max(peak, r), min(low, a), n + 1
    if ready:
        break
seconds = time.perf_counter() - start
sys.stdout.write(json.dumps({"first_rss": first_rss, "peak_rss": peak, "first_available":
    first_avail, "min_available": low, "samples": n, "seconds": seconds}) + "\n")
sys.stdout.flush()
"""


def supported() -> bool:
    return Path(f"/proc/{os.getpid()}/statm").exists() and Path("/proc/meminfo").exists()


@dataclass(frozen=True)
class Peak:
    """What one sampled step used, in MiB."""

    before_rss_mib: float
    peak_rss_mib: float
    available_drop_mib: float  # MemAvailable just before the step minus its lowest value during it
    samples: int
    seconds: float

    @property
    def delta_mib(self) -> float:
        return max(0.0, self.peak_rss_mib - self.before_rss_mib)

    @property
    def hz(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else 0.0


class MemorySampler:
    """``with MemorySampler() as sampler: step()`` then ``sampler.peak``."""

    def __init__(self, hz: float = DEFAULT_HZ, pid: int | None = None) -> None:
        self.interval = 1.0 / hz
        self.pid = os.getpid() if pid is None else pid
        self.peak: Peak | None = None
        self._child: subprocess.Popen[str] | None = None

    def __enter__(self) -> MemorySampler:
        self._child = subprocess.Popen(
            [sys.executable, "-I", "-c", _CHILD, str(self.pid), str(self.interval)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._child.stdout is not None
        if self._child.stdout.readline().strip() != "ready":
            self._child.kill()
            raise RuntimeError("the memory sampler did not start")
        return self

    def __exit__(self, *exc: Any) -> None:
        child, self._child = self._child, None
        if child is None:
            return
        try:
            out, _ = child.communicate("stop\n", timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            return
        lines = [line for line in out.splitlines() if line.startswith("{")]
        if not lines:
            return
        data = json.loads(lines[-1])
        self.peak = Peak(
            before_rss_mib=data["first_rss"] / MIB,
            peak_rss_mib=data["peak_rss"] / MIB,
            available_drop_mib=max(0.0, (data["first_available"] - data["min_available"]) / MIB),
            samples=int(data["samples"]),
            seconds=float(data["seconds"]),
        )


@lru_cache(maxsize=1)
def _malloc_trim() -> Any:
    """glibc's ``malloc_trim`` from this process's own symbols (None without glibc)."""
    import ctypes

    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def release_free_memory() -> bool:
    """Return the C heap's free pages to the system (glibc ``malloc_trim(0)``, every arena), so
    that a step's peak over the value before it counts what the step allocates, not whether
    earlier steps left freed memory resident. False where there is no glibc."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


def sampled(step: Callable[[], T], hz: float = DEFAULT_HZ) -> tuple[T, Peak | None]:
    """Run ``step`` while a child samples this process; ``(its result, the peak or None)``."""
    if not supported():
        return step(), None
    release_free_memory()
    sampler = MemorySampler(hz)
    with sampler:
        result = step()
    return result, sampler.peak
