"""How sharp the gate is on this machine, simulated from measured rounds (``cxrperf calibrate``):
the false-alarm rate, the detection rate of synthetic slowdowns, and the smallest slowdown caught
most of the time. Pure: samples in, rates out; the command runs the suite and prints."""

from __future__ import annotations

from typing import Any

from .decision import CONTROL_EAGER, REGRESSED, Timings
from .judge import judge
from .plan import Plan


def review_plan(rounds: int, threshold: float, alpha: float) -> Plan:
    """One look over every stored round, in batches of 10 (of 1 for short baselines)."""
    batch = 10 if rounds >= 30 else 1
    return Plan(batch, max(1, rounds // batch), 1, threshold, alpha)


def calibrate_backend(
    samples: list[float],
    control: list[float] | None,
    *,
    rounds: int,
    baseline_rounds: int,
    threshold: float,
    alpha: float,
    trials: int = 200,
    target: float = 0.9,
    seed: int = 0,
    control_kind: str = CONTROL_EAGER,
) -> dict[Any, Any]:
    """Detection rate of the gate for synthetic slowdowns, by resampling measured rounds (pairs of
    backend and control stay together), and the smallest slowdown caught ``target`` of the time."""
    import numpy as np

    rng = np.random.default_rng(seed)
    values = np.asarray(samples, dtype=float)
    ctrl = np.asarray(control, dtype=float) if control is not None else None

    def draw(n: int, factor: float, fingerprint: str) -> Timings:
        index = rng.integers(0, values.size, size=n)
        return Timings(
            tuple(values[index] * factor),
            tuple(ctrl[index]) if ctrl is not None else None,
            fingerprint,
            new_tokens=1,
            control=control_kind,
        )

    def rate(factor: float) -> float:
        hits = 0
        for _ in range(trials):
            base = draw(baseline_rounds, 1.0, "m")
            cur = draw(rounds, factor, "m")
            verdict = judge(
                "b", cur, base, review_plan(min(rounds, baseline_rounds), threshold, alpha)
            )
            hits += verdict.status == REGRESSED
        return hits / trials

    out: dict[Any, Any] = {"false_alarm": rate(1.0)}
    for factor in (1.1, 1.25, 1.5):
        out[factor] = rate(factor)
    # bisection: the detection rate grows with the slowdown (up to simulation noise)
    low, high = 1.0 + threshold, 3.0
    out["smallest"] = None
    if rate(high) >= target:
        while high - low > 0.01:
            middle = (low + high) / 2
            if rate(middle) >= target:
                high = middle
            else:
                low = middle
        out["smallest"] = high
    return out
