"""The memory gate: a backend's peak memory against its baseline's, per step.

Memory, unlike time, barely varies between runs of the same code and selection, so there is no
sequential test: a step regresses when its peak exceeds the baseline's by more than the threshold
(the latency threshold, 10 % by default) *and* by more than a floor in MiB, which keeps small
models' few-MiB deltas, where allocator reuse dominates, from failing anyone.
"""

from __future__ import annotations

from collections.abc import Mapping

from .decision import IMPROVED, INCOMPARABLE, MISSING, OK, REGRESSED, Comparison, Status, Verdict

STEPS = ("prepare", "generate")  # the figures stored per baseline (MiB)
DEFAULT_FLOOR_MIB = 32.0


def memory_figures(prepare_mib: float | None, generate_mib: float | None) -> dict[str, float]:
    """The figures a baseline stores, from a run's measurement (steps not measured are left out)."""
    found = {"prepare": prepare_mib, "generate": generate_mib}
    return {step: round(float(v), 2) for step, v in found.items() if v is not None}


def judge_memory(
    backend: str,
    current: Mapping[str, float],
    baseline: Mapping[str, float] | None,
    threshold: float,
    *,
    floor_mib: float = DEFAULT_FLOOR_MIB,
    baseline_path: str | None = None,
    missing: str = "warn",
    context: tuple[tuple[str, ...], tuple[str, ...]] = ((), ()),
    missing_note: str | None = None,
) -> Verdict:
    """Regressed when any step grew past ``threshold`` and ``floor_mib``; improved when one shrank
    as much (never a failure: refresh the baseline); ok otherwise; missing without figures (a
    failure under the ``missing`` policy "fail", as for latency); incomparable when ``context``
    (the backends prepared before, this run's and the baseline's) differs."""
    steps = [s for s in STEPS if s in current and baseline and s in baseline]
    if not baseline or not steps:
        note = missing_note or "no memory figures in the baseline: refresh it to gate memory"
        return Verdict(
            backend,
            MISSING,
            missing == "fail",
            threshold,
            0.0,
            baseline_path,
            notes=(note,),
            measure="memory",
        )
    assert baseline is not None
    now_before, then_before = context
    if now_before != then_before:
        note = (
            f"the baseline's figures were taken after preparing {list(then_before) or 'nothing'}, "
            f"this run's after {list(now_before) or 'nothing'}: peak deltas depend on what the "
            "allocator already holds, so memory is judged only against a baseline recorded with "
            "the same selection of backends"
        )
        return Verdict(
            backend, INCOMPARABLE, False, threshold, 0.0, baseline_path, notes=(note,),
            measure="memory",
        )  # fmt: skip
    comparisons, worst = [], OK
    for step in steps:
        before, now = float(baseline[step]), float(current[step])
        grew = now - before
        status: Status = Status.UNCHANGED
        if grew > floor_mib and now > before * (1 + threshold):
            status = REGRESSED
        elif -grew > floor_mib and now < before * (1 - threshold):
            status = IMPROVED
        ratio = now / before if before > 0 else float("inf") if now > 0 else 1.0
        comparisons.append(
            Comparison(f"memory:{step}", None, before, now, ratio, None, 1, 1, (0, 0), status)
        )
        if status == REGRESSED or (status == IMPROVED and worst == OK):
            worst = status
    notes = tuple(
        f"peak memory while {'preparing' if c.kind.endswith('prepare') else 'generating'}: "
        f"{c.baseline_median:.1f} MiB -> {c.current_median:.1f} MiB ({c.status})"
        for c in comparisons
    )
    return Verdict(
        backend,
        worst,
        worst == REGRESSED,
        threshold,
        0.0,
        baseline_path,
        relative=max(comparisons, key=lambda c: c.current_median - c.baseline_median),
        notes=(*notes, f"floor {floor_mib:g} MiB"),
        measure="memory",
    )
