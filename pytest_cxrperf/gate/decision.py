"""The latency gate's decision: is the current run slower than its baseline, beyond doubt?

A backend **regresses** only when both hold:

* the effect is past the threshold: median(current) / median(baseline) > 1 + threshold
  (default 10 %, per-backend overrides in ini), and
* it is statistically significant on the raw samples: a one-sided Mann-Whitney U test (current
  slower than baseline) gives p < alpha (default 0.05).

**Improved** is the mirror image (ratio < 1 / (1 + threshold) and the U test the other way).
asv decides the same way (an effect-size factor and a test on raw samples); comparing one mean with
another, as ``--benchmark-compare-fail`` does, cries wolf whenever a neighbour steals the cores.

Why the U test: it is a rank test, so one 28 s outlier among 4 s runs counts as "one slower sample"
and no more; it assumes nothing about the shape of the timing distribution; its false-alarm rate is
at most alpha when nothing changed and the runs are exchangeable (the threshold lowers it further).
A percentile bootstrap interval of the median ratio (seeded) is reported to show the uncertainty.

Two checks, each deciding as above:

* **absolute**: the backend's samples against the baseline's, only when the baseline was recorded
  on a machine with the same fingerprint (a different CPU makes absolute times meaningless);
* **relative**: per-round ratios backend / eager-control against the baseline's ratios. The eager
  fp32 control runs just before each timed round (interleaved pairs), so a machine-wide slowdown
  slows both halves of a pair and cancels; this is the check that carries a baseline to another
  runner. It does not apply to the reference backend itself (eager over eager is 1).

When both apply, an absolute change counts unless the in-run eager control moved the same way
significantly: then the whole machine was slower (or faster) and the relative check speaks for the
backend. The reference backend has only the absolute check, so gate it on a quiet runner or give it
a larger threshold.

False alarms: alpha bounds them only while runs are exchangeable. Between runs the machine drifts,
which the threshold must absorb. scripts/gate_accuracy.py measured on a shared 2-core runner (tiny
model, 32 tokens, 10 rounds each side, threshold 10 %): 0-3 % false alarms for the combined check,
5-17 % for the absolute check alone (30 % with all cores oversubscribed by other jobs). With a
20-round baseline, a 25 % slowdown was caught in 40 of 40 trials.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .stats import mann_whitney_u, median_ratio_interval

DEFAULT_THRESHOLD = 0.10
DEFAULT_ALPHA = 0.05
MISSING_POLICIES = ("warn", "fail")

REGRESSED, IMPROVED, UNCHANGED = "regressed", "improved", "unchanged"


@dataclass(frozen=True)
class Comparison:
    """One check: current samples against baseline samples."""

    kind: str  # "absolute" (seconds), "relative" (backend / eager control), "control" (eager)
    baseline_median: float
    current_median: float
    ratio: float  # current / baseline medians: > 1 is slower
    interval: tuple[float, float] | None  # bootstrap interval of the ratio
    p_slower: float  # one-sided U test: current slower than baseline
    p_faster: float
    n_baseline: int
    n_current: int
    status: str  # regressed | improved | unchanged

    @property
    def change(self) -> float:
        return self.ratio - 1.0

    def describe(self) -> str:
        unit = "s" if self.kind in ("absolute", "control") else "x eager time"
        interval = (
            f" [{self.interval[0]:.3f}, {self.interval[1]:.3f}]"
            if self.interval is not None
            else ""
        )
        p = self.p_slower if self.ratio >= 1 else self.p_faster
        way = "slower" if self.ratio >= 1 else "faster"
        return (
            f"{self.kind}: baseline {self.baseline_median:.4g} {unit} (n={self.n_baseline}) -> "
            f"current {self.current_median:.4g} {unit} (n={self.n_current}), ratio "
            f"{self.ratio:.3f}{interval}, {abs(self.change):.1%} {way}, p={p:.3g}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "status": self.status,
            "baseline_median": self.baseline_median,
            "current_median": self.current_median,
            "ratio": self.ratio,
            "interval": list(self.interval) if self.interval is not None else None,
            "p_slower": self.p_slower,
            "p_faster": self.p_faster,
            "n_baseline": self.n_baseline,
            "n_current": self.n_current,
        }


def compare_samples(
    kind: str,
    baseline: Sequence[float],
    current: Sequence[float],
    threshold: float = DEFAULT_THRESHOLD,
    alpha: float = DEFAULT_ALPHA,
    *,
    interval: bool = True,
    seed: int = 0,
) -> Comparison:
    import statistics

    test = mann_whitney_u(current, baseline)
    base_median = statistics.median(baseline)
    cur_median = statistics.median(current)
    ratio = cur_median / base_median if base_median > 0 else float("inf")
    if ratio > 1.0 + threshold and test.p_greater < alpha:
        status = REGRESSED
    elif ratio < 1.0 / (1.0 + threshold) and test.p_less < alpha:
        status = IMPROVED
    else:
        status = UNCHANGED
    return Comparison(
        kind=kind,
        baseline_median=base_median,
        current_median=cur_median,
        ratio=ratio,
        interval=median_ratio_interval(current, baseline, seed=seed) if interval else None,
        p_slower=test.p_greater,
        p_faster=test.p_less,
        n_baseline=len(baseline),
        n_current=len(current),
        status=status,
    )


@dataclass(frozen=True)
class Timings:
    """What the gate needs of a run (or of a stored baseline)."""

    samples_s: Sequence[float]
    control_samples_s: Sequence[float] | None  # None for the reference backend itself
    fingerprint: str
    new_tokens: int
    is_reference: bool = False  # the eager fp32 reference: its speedup over itself is 1

    def ratios(self) -> list[float] | None:
        if self.control_samples_s is None:
            return [1.0] * len(self.samples_s) if self.is_reference else None
        return [s / c for s, c in zip(self.samples_s, self.control_samples_s, strict=True)]


# verdict statuses
OK, MISSING, INCOMPARABLE, ERROR, UPDATED = "ok", "no baseline", "incomparable", "error", "updated"


@dataclass(frozen=True)
class Verdict:
    backend: str
    status: str  # ok | regressed | improved | no baseline | incomparable | error | updated
    failed: bool
    threshold: float = DEFAULT_THRESHOLD
    alpha: float = DEFAULT_ALPHA
    baseline_path: str | None = None
    absolute: Comparison | None = None
    relative: Comparison | None = None
    control: Comparison | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def warning(self) -> bool:
        """A status the user should see even though the test passes."""
        return not self.failed and self.status in (MISSING, INCOMPARABLE, ERROR)

    @property
    def comparisons(self) -> list[Comparison]:
        return [c for c in (self.relative, self.absolute, self.control) if c is not None]

    def short(self) -> str:
        """The summary table's verdict column."""
        if self.status in (REGRESSED, IMPROVED):
            deciding = self.deciding()
            text = self.status.upper() if self.failed else self.status
            if deciding is not None:
                text += f" {deciding.change:+.0%} ({deciding.kind})"
            return text
        if self.status == OK:
            kinds = "+".join(c.kind for c in (self.relative, self.absolute) if c is not None)
            return f"ok ({kinds})" if kinds else "ok"
        return self.status.upper() if self.failed else self.status

    def deciding(self) -> Comparison | None:
        for c in (self.relative, self.absolute):
            if c is not None and c.status == self.status:
                return c
        return None

    @property
    def message(self) -> str:
        head = {
            REGRESSED: "latency regression",
            IMPROVED: "latency improved",
            OK: "latency unchanged",
            MISSING: "no latency baseline",
            INCOMPARABLE: "no comparable latency baseline",
            ERROR: "latency baseline unusable",
            UPDATED: "latency baseline written",
        }.get(self.status, self.status)
        lines = [f"{self.backend}: {head} (threshold {self.threshold:.0%}, alpha {self.alpha:g})"]
        if self.baseline_path:
            lines.append(f"  baseline: {self.baseline_path}")
        lines += [f"  {c.describe()}  -> {c.status}" for c in self.comparisons]
        lines += [f"  {note}" for note in self.notes]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "failed": self.failed,
            "threshold": self.threshold,
            "alpha": self.alpha,
            "baseline": self.baseline_path,
            "absolute": self.absolute.as_dict() if self.absolute else None,
            "relative": self.relative.as_dict() if self.relative else None,
            "control": self.control.as_dict() if self.control else None,
            "notes": list(self.notes),
        }


def judge(
    backend: str,
    current: Timings,
    baseline: Timings | None,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    alpha: float = DEFAULT_ALPHA,
    missing: str = "warn",
    fail_on_improvement: bool = False,
    baseline_path: str | None = None,
    interval: bool = True,
) -> Verdict:
    """Decide one backend. ``missing`` is the policy for no (comparable) baseline: warn | fail."""
    if missing not in MISSING_POLICIES:
        raise ValueError(f"missing-baseline policy must be one of {MISSING_POLICIES}")

    def verdict(
        status: str,
        failed: bool,
        notes: Sequence[str],
        absolute: Comparison | None = None,
        relative: Comparison | None = None,
        control: Comparison | None = None,
    ) -> Verdict:
        return Verdict(
            backend, status, failed, threshold, alpha, baseline_path,
            absolute, relative, control, tuple(notes),
        )  # fmt: skip

    if baseline is None:
        hint = "record one with --cxr-update-baselines (or `cxrperf baselines refresh`)"
        return verdict(MISSING, missing == "fail", [hint])
    if baseline.new_tokens != current.new_tokens:
        hint = (
            f"the baseline was recorded with {baseline.new_tokens} new tokens, this run "
            f"generates {current.new_tokens}: rerun with --cxr-max-new-tokens="
            f"{baseline.new_tokens} or refresh the baseline"
        )
        return verdict(INCOMPARABLE, missing == "fail", [hint])
    notes: list[str] = []
    same_machine = baseline.fingerprint == current.fingerprint
    absolute = relative = control = None
    if same_machine:
        absolute = compare_samples(
            "absolute", baseline.samples_s, current.samples_s, threshold, alpha, interval=interval
        )
    else:
        notes.append(
            f"foreign machine: the baseline was recorded on {baseline.fingerprint}, this is "
            f"{current.fingerprint}: absolute check skipped, relative check used"
        )
    current_ratios, baseline_ratios = current.ratios(), baseline.ratios()
    if not current.is_reference and current_ratios is not None and baseline_ratios is not None:
        relative = compare_samples(
            "relative", baseline_ratios, current_ratios, threshold, alpha, interval=interval
        )
        if baseline.control_samples_s is None:
            notes.append("relative check against the reference's own speedup (1 by definition)")
        elif same_machine and current.control_samples_s is not None:
            control = compare_samples(
                "control",
                baseline.control_samples_s,
                current.control_samples_s,
                threshold,
                alpha,
                interval=False,
            )
    elif not current.is_reference:
        notes.append("relative check skipped: no interleaved eager control samples on one side")
    if absolute is None and relative is None:
        notes.append(
            "the reference backend has only the absolute check, which needs a baseline from this "
            "machine: record one with --cxr-update-baselines"
            if current.is_reference
            else "no check applies: record a baseline here with --cxr-update-baselines"
        )
        return verdict(INCOMPARABLE, missing == "fail", notes)
    counted = [c for c in (relative, absolute) if c is not None]
    if absolute is not None and relative is not None and control is not None:
        shifted = absolute.status != UNCHANGED and absolute.status != relative.status
        same_way = (absolute.status == REGRESSED and control.p_slower < alpha) or (
            absolute.status == IMPROVED and control.p_faster < alpha
        )
        if shifted and same_way:
            counted.remove(absolute)
            notes.append(
                f"the absolute change is not counted: the eager control in this run moved "
                f"{control.change:+.1%} too (p={min(control.p_slower, control.p_faster):.3g}), "
                "so the whole machine was slower or faster; the relative check decides"
            )
    statuses = {c.status for c in counted}
    if REGRESSED in statuses:
        status, failed = REGRESSED, True
    elif IMPROVED in statuses:
        status, failed = IMPROVED, fail_on_improvement
        if fail_on_improvement:
            notes.append(
                "--cxr-fail-on-improvement: refresh the baseline with --cxr-update-baselines"
            )
    else:
        status, failed = OK, False
    return verdict(status, failed, notes, absolute, relative, control)
