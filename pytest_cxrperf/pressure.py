"""CPU pressure: how much of a round the machine's runnable tasks spent waiting for a CPU.

A ratio to an in-run control holds while the machine slows a backend and its control alike. Time
slicing does not: with more runnable tasks than cores (a CI job beside another, a busy loop
beside a two-thread backend), each timed call loses a share of its wall time that depends on when
the scheduler ran the neighbour, not on the code. Linux's pressure stall information says how
much: ``/proc/pressure/cpu``'s ``some`` line counts the microseconds in which at least one
runnable task waited for a CPU. Measured here (2 cores): 1% with one busy neighbour beside a
one-thread loop (no slowdown), 50% with two (the loop's CPU share fell to 78 %).

The campaign reads it around every round; the gate counts a run's pressure beyond the
baseline's as drift it cannot see (:mod:`pytest_cxrperf.gate.decision`), so an overloaded
machine ends "not yet known" rather than convicting unchanged code. Where the file is missing
(no PSI in the kernel, another OS) nothing is read and the control's shift is the only measure.
"""

from __future__ import annotations

from pathlib import Path

PSI_PATH = Path("/proc/pressure/cpu")


def stalled_seconds(path: Path = PSI_PATH) -> float | None:
    """Cumulative seconds in which some runnable task waited for a CPU (None: not available)."""
    try:
        text = path.read_text(encoding="ascii")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("some "):
            for field in line.split():
                if field.startswith("total="):
                    try:
                        return int(field[6:]) / 1e6
                    except ValueError:
                        return None
    return None


def share(stalled_before: float | None, stalled_after: float | None, wall_s: float) -> float | None:
    """The share (0..1) of ``wall_s`` in which some runnable task waited for a CPU."""
    if stalled_before is None or stalled_after is None or wall_s <= 0:
        return None
    return min(1.0, max(0.0, (stalled_after - stalled_before) / wall_s))
