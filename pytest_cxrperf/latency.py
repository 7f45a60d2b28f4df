"""The timing campaign: every timed backend, eager fp32 and the machine probe, interleaved.

One campaign per run measures all the backends whose latency tests were collected, together:
each round runs every backend still undecided once, in a fresh random order, together with its
control (eager fp32, or the machine probe for eager itself). So every backend sees the same
machine states over the same minutes, never two timed things run at once, and a backend's ratio
to its control is taken over the very rounds it ran in.

After each planned look (batches of rounds, see :class:`~pytest_cxrperf.gate.plan.Plan`) the
``decide`` callback judges every backend still measured; a backend with a final answer leaves the
rounds (clear evidence stops early), the others buy more rounds, up to the cap in rounds or the
time budget, whichever comes first. No pytest and no torch here.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .gate.decision import CONTROL_EAGER, CONTROL_PROBE

__all__ = ["CONTROL_EAGER", "CONTROL_PROBE", "Campaign", "Series", "Subject", "run_campaign"]


@dataclass
class Subject:
    """A timed backend: ``run()`` does one fixed-length generation and returns its stage
    timings; ``control`` names what its ratio is taken over."""

    label: str
    run: Callable[[], Any]
    control: str


@dataclass
class Series:
    """One subject's rounds: its seconds, its control's seconds in the same rounds, its stages."""

    samples_s: list[float] = field(default_factory=list)
    control_samples_s: list[float] = field(default_factory=list)
    stages: list[Any] = field(default_factory=list)
    # per round: the share of it in which some runnable task waited for a CPU (empty: unknown)
    pressure: list[float] = field(default_factory=list)


@dataclass
class Campaign:
    series: dict[str, Series]
    rounds: int
    seconds: float
    stopped: str  # "decided" | "cap" | "time budget"
    looks: int


def run_campaign(
    subjects: list[Subject],
    controls: dict[str, Callable[[], Any]],
    *,
    batch_rounds: int,
    looks: list[int],
    decide: Callable[[str, Series, bool], bool],
    time_budget_s: float,
    warmup: int = 1,
    seed: int = 0,
    clock: Callable[[], float] = time.perf_counter,
    stalled: Callable[[], float | None] | None = None,
) -> Campaign:
    """Measure ``subjects`` interleaved with the ``controls`` they name, until each is decided.

    ``controls`` maps a control name to its runner; a subject whose label equals a control's
    name (eager fp32 when it is timed itself) shares that control's rounds. ``looks`` are batch
    counts; the last one is the cap. ``decide(label, series, final)`` returns True when the
    subject's answer is final (it then leaves the rounds). ``stalled``: cumulative seconds of CPU
    pressure (:func:`pytest_cxrperf.pressure.stalled_seconds`), read around every round."""
    from .pressure import share

    if not looks:
        raise ValueError("no look planned: the cap is below the gate's minimum batches")
    rng = random.Random(seed)
    series = {s.label: Series() for s in subjects}
    active = {s.label: s for s in subjects}

    def timed(run: Callable[[], Any]) -> tuple[float, Any]:
        start = clock()
        out = run()
        return clock() - start, out

    for _ in range(warmup):
        for subject in subjects:
            subject.run()
        for name in {s.control for s in subjects}:
            controls[name]()
    look_rounds = [k * batch_rounds for k in looks]
    cap = look_rounds[-1]
    started, rounds, taken, stopped = clock(), 0, 0, "cap"
    while active:
        needed = {s.control for s in active.values()}
        jobs: list[tuple[str, Callable[[], Any]]] = [
            (label, s.run) for label, s in active.items() if label not in needed
        ]
        jobs += [(name, active[name].run if name in active else controls[name]) for name in needed]
        rng.shuffle(jobs)
        seconds: dict[str, float] = {}
        outputs: dict[str, Any] = {}
        stalled_before, round_start = stalled() if stalled else None, clock()
        for name, run in jobs:
            seconds[name], outputs[name] = timed(run)
        pressure = share(stalled_before, stalled() if stalled else None, clock() - round_start)
        for label, subject in active.items():
            record = series[label]
            record.samples_s.append(seconds[label])
            record.control_samples_s.append(seconds[subject.control])
            record.stages.append(outputs[label])
            if pressure is not None and len(record.pressure) == len(record.samples_s) - 1:
                record.pressure.append(pressure)
        rounds += 1
        over_time = clock() - started >= time_budget_s
        at_batch_end = rounds % batch_rounds == 0
        if rounds in look_rounds or (over_time and at_batch_end):
            final = rounds >= cap or over_time
            taken += 1
            for label in list(active):
                if decide(label, series[label], final):
                    del active[label]
            if final:
                stopped = "cap" if rounds >= cap else "time budget"
                break
    else:
        stopped = "decided"
    return Campaign(series, rounds, clock() - started, stopped, taken)
