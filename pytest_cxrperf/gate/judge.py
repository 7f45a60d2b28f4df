"""One backend judged at one look: a run's timings and its baseline's to a :class:`Verdict`.

Before any statistics, :func:`judge` checks that the two sides can be compared at all: a missing
baseline is "no baseline", one of another machine class, another number of new tokens, another
control or too few batches is "incomparable" (each with what to do next; ``--cxr-missing-baseline``
says whether that fails). Then the control's shift and the CPU pressure against the baseline's
are counted as drift (:mod:`pytest_cxrperf.gate.drift`), the batch statistics are compared
(:func:`~pytest_cxrperf.gate.decision.compare_batches`) at the plan's levels
(:mod:`pytest_cxrperf.gate.plan`), and a change is never decided on fewer than the plan's
``min_change_rounds``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

from .decision import (
    CONTROL_PROBE,
    IMPROVED,
    INCOMPARABLE,
    MISSING,
    OK,
    REGRESSED,
    UNCHANGED,
    UNKNOWN,
    Comparison,
    Status,
    Timings,
    Verdict,
    compare_batches,
    control_shift,
    pressure_excess,
)
from .drift import disturbance_drift_sd, shift_words
from .plan import MIN_BATCHES, MISSING_POLICIES, Plan


def judge(
    backend: str,
    current: Timings,
    baseline: Timings | None,
    plan: Plan,
    *,
    final: bool = True,
    missing: str = "warn",
    unknown: str = "warn",
    fail_on_improvement: bool = False,
    baseline_path: str | None = None,
    missing_hint: str | None = None,
) -> Verdict:
    """Decide one backend at one look. ``final``: no more batches will come (the cap, or the
    time budget, was reached), so "not yet known" is the answer rather than a reason to go on.
    ``missing`` / ``unknown``: the policy (warn | fail) for no comparable baseline and for an
    answer that stayed unclear."""
    if missing not in MISSING_POLICIES:
        raise ValueError(f"missing-baseline policy must be one of {MISSING_POLICIES}")
    threshold, alpha = plan.threshold, plan.alpha

    def verdict(status: Status, failed: bool, notes: Sequence[str], **checks: Any) -> Verdict:
        return Verdict(
            backend, status, failed, threshold, alpha, baseline_path, notes=tuple(notes), **checks
        )

    if baseline is None:
        hint = "record one with --cxr-update-baselines (or `cxrperf baselines refresh`)"
        return verdict(MISSING, missing == "fail", [n for n in (missing_hint, hint) if n])
    if baseline.fingerprint != current.fingerprint or baseline.environment != current.environment:
        hint = (
            f"the baseline was recorded for machine class {baseline.fingerprint} "
            f"({baseline.environment or 'no environment'}), this is {current.fingerprint} "
            f"({current.environment or 'no environment'}): timings of two classes are never "
            "compared; record one for this class with `cxrperf baselines refresh`"
        )
        return verdict(INCOMPARABLE, missing == "fail", [hint])
    if baseline.new_tokens != current.new_tokens:
        hint = (
            f"the baseline was recorded with {baseline.new_tokens} new tokens, this run "
            f"generates {current.new_tokens}: rerun with --cxr-max-new-tokens="
            f"{baseline.new_tokens} or refresh the baseline"
        )
        return verdict(INCOMPARABLE, missing == "fail", [hint])
    if baseline.control != current.control or baseline.ratios() is None:
        hint = (
            f"the baseline's rounds were timed against {baseline.control or 'no control'}, this "
            f"run's against {current.control}: refresh it with --cxr-update-baselines"
        )
        return verdict(INCOMPARABLE, missing == "fail", [hint])
    size = plan.batch_rounds
    base_ratios, cur_ratios = baseline.ratios(), current.ratios()
    assert base_ratios is not None and cur_ratios is not None
    base_groups, cur_groups = baseline.batches(size), current.batches(size)
    base_stats = [x for g in base_groups for x in g]
    if len(base_stats) < MIN_BATCHES:
        hint = (
            f"the baseline holds {len(baseline.samples_s)} rounds, {len(base_stats)} batches of "
            f"{size}: the gate needs {MIN_BATCHES} batches ({MIN_BATCHES * size} rounds) to "
            "bound the noise; refresh it with --cxr-update-baselines"
        )
        return verdict(INCOMPARABLE, missing == "fail", [hint])
    cur_stats = [x for g in cur_groups for x in g]
    notes: list[str] = []
    drift_sd: float | None = None
    shift = control_shift(baseline, current)
    disturbance = disturbance_drift_sd(shift, plan.disturbance_free, plan.disturbance_drift)
    pressure = pressure_excess(baseline, current)
    contention = disturbance_drift_sd(pressure, plan.pressure_free, plan.pressure_drift)
    if pressure is not None and pressure > plan.pressure_free:
        now, then = statistics.median(current.pressure), statistics.median(baseline.pressure or [0])
        notes.append(
            f"CPU contended: a runnable task waited for a CPU in {now:.0%} of this run's time "
            f"(baseline {then:.0%}); time slicing does not slow a backend and its control alike, "
            f"so beyond {plan.pressure_free:.0%} that counts as drift of sd {contention:.1%} "
            f"({plan.pressure_drift:g} x the excess)"
        )
    if shift is not None and disturbance > 0:
        control = "machine probe" if current.control == CONTROL_PROBE else "eager fp32 control"
        notes.append(
            f"machine disturbed: the {control} ran {shift_words(shift)} than when the baseline "
            "was recorded; a "
            "loaded machine does not slow a backend and its control alike, so beyond "
            f"{math.expm1(plan.disturbance_free):.0%} that counts as drift of sd "
            f"{disturbance:.1%} ({plan.disturbance_drift:g} x the excess)"
        )
    if not cur_stats:
        ratio, interval, status = 1.0, None, UNKNOWN
        notes.append(f"fewer than {size} rounds measured: no batch to judge")
    else:
        ratio, interval, status, drift_sd = compare_batches(
            base_stats,
            cur_stats,
            threshold,
            plan.alpha_each,
            plan.margin,
            plan.within,
            baseline_sessions=[len(g) for g in base_groups],
            session_noise=plan.session_noise,
            beta_each=plan.beta_each,
            disturbance_sd=math.hypot(disturbance, contention),
            current_sessions=[len(g) for g in cur_groups],
        )
        if status in (REGRESSED, IMPROVED) and len(current.samples_s) < plan.min_change_rounds:
            notes.append(
                f"{status} on {len(current.samples_s)} rounds is not decided: a change needs "
                f"{plan.min_change_rounds} rounds of this run (raise --cxr-rounds if capped)"
            )
            status = UNKNOWN
    relative = Comparison(
        kind="relative",
        control=current.control,
        baseline_median=statistics.median(base_ratios),
        current_median=statistics.median(cur_ratios) if cur_ratios else float("nan"),
        ratio=ratio,
        interval=interval,
        n_baseline=len(base_ratios),
        n_current=len(cur_ratios),
        batches=(len(base_stats), len(cur_stats)),
        status=status,
        sessions=(len(base_groups), len(cur_groups)),
        drift_sd=drift_sd,
        control_shift=shift,
    )
    absolute = None
    if current.samples_s:
        base_median = statistics.median(baseline.samples_s)
        cur_median = statistics.median(current.samples_s)
        absolute = Comparison(
            "absolute", None, base_median, cur_median, cur_median / base_median, None,
            len(baseline.samples_s), len(current.samples_s), (0, 0), Status.SHOWN,
        )  # fmt: skip
    if status == REGRESSED:
        return verdict(REGRESSED, True, notes, absolute=absolute, relative=relative)
    if status == IMPROVED:
        if fail_on_improvement:
            notes.append(
                "--cxr-fail-on-improvement: refresh the baseline with --cxr-update-baselines"
            )
        return verdict(IMPROVED, fail_on_improvement, notes, absolute=absolute, relative=relative)
    if status == UNCHANGED:
        return verdict(OK, False, notes, absolute=absolute, relative=relative)
    if final:
        notes.append(
            "the interval still straddles a decision bound: rerun, raise --cxr-rounds or "
            "--cxr-time-budget, or quiet the machine (--cxr-unknown=fail makes this fail)"
        )
    return verdict(
        UNKNOWN, final and unknown == "fail", notes, absolute=absolute, relative=relative
    )
