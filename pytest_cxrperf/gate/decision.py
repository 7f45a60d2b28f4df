"""The latency gate's decision: regressed, unchanged, improved, or not yet known.

**What is compared.** Absolute seconds are not: on a shared runner the same code ran 34 ms and
57 ms a minute apart, and runners of one type differed by 68 %. Every backend is judged by a
*ratio to an in-run control* measured in the same interleaved rounds: a non-reference backend by
its time over eager fp32's (its speedup), eager fp32 itself by its time over a fixed machine-speed
probe (:mod:`pytest_cxrperf.probe`). A slower machine slows both halves and the ratio stays put;
a slower backend moves it. Absolute seconds are shown beside it (same machine and environment
only) but never decide.

**Three-way, sequential.** With T = log(1 + threshold), at each planned look:

* regressed  - the interval lies wholly above T/2 (surely more than half the threshold slower);
* improved   - wholly below -T/2;
* unchanged  - wholly inside (-3T/4, 3T/4) (surely well below the threshold either way);
* not yet known - anything else: the campaign measures more batches, up to its cap, and a run
  that ends there says so instead of guessing.

When the gate looks and at what error levels is the plan (:mod:`pytest_cxrperf.gate.plan`); the
batch statistics, the drift a run cannot see and a disturbed machine's share of it are
:mod:`pytest_cxrperf.gate.drift`.

Chromium's Pinpoint answers "different / same / unknown" in the same spirit, and asv judges on raw
samples with an effect-size factor.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, NamedTuple

from ..backends.registry import REFERENCE_BACKEND
from .drift import (
    DRIFT_BLOCKS,
    blocks_of,
    by_session,
    drift_variance,
    session_batches,
    shift_words,
)
from .plan import DEFAULT_ALPHA, DEFAULT_THRESHOLD
from .stats import t_quantile


class Status(str, Enum):
    """Every status of a latency comparison and verdict. A ``str`` enum: it compares equal to, and
    serializes to JSON as, its value (the strings the JSON report has always held)."""

    REGRESSED = "regressed"
    IMPROVED = "improved"
    UNCHANGED = "unchanged"  # a comparison's; the verdict says OK
    UNKNOWN = "not yet known"
    SHOWN = "shown"  # the absolute comparison: shown, never judged
    # verdict statuses beyond the comparison's
    OK = "ok"
    MISSING = "no baseline"
    INCOMPARABLE = "incomparable"
    ERROR = "error"
    UPDATED = "updated"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


REGRESSED, IMPROVED, UNCHANGED, UNKNOWN = (
    Status.REGRESSED,
    Status.IMPROVED,
    Status.UNCHANGED,
    Status.UNKNOWN,
)
OK, MISSING, INCOMPARABLE, ERROR, UPDATED = (
    Status.OK,
    Status.MISSING,
    Status.INCOMPARABLE,
    Status.ERROR,
    Status.UPDATED,
)

# the reference backend (eager fp32): every other backend is compared with it, and it is the in-run
# control of their latency; eager itself is timed against the machine probe
CONTROL_EAGER, CONTROL_PROBE = REFERENCE_BACKEND, "probe"


@dataclass(frozen=True)
class Comparison:
    """One check of the current run against its baseline, in ratio terms (> 1 is slower)."""

    kind: str  # "relative" (decides) or "absolute" (seconds, shown only)
    control: str | None  # what the ratio is taken over: "eager", "probe"; None for absolute
    baseline_median: float  # median ratio (or seconds) of the baseline
    current_median: float
    ratio: float  # exp(mean batch statistic difference): current / baseline
    interval: tuple[float, float] | None  # of the ratio, at the plan's per-look level
    n_baseline: int  # rounds
    n_current: int
    batches: tuple[int, int]  # (baseline, current)
    status: Status  # regressed | improved | unchanged | not yet known (shown: absolute)
    sessions: tuple[int, int] = (1, 1)  # fresh processes behind each side (baseline, current)
    drift_sd: float | None = None  # the drift counted beyond the batches' spread (sd, log)
    control_shift: float | None = None  # log(current / baseline median of the control's seconds)

    @property
    def change(self) -> float:
        return self.ratio - 1.0

    def describe(self) -> str:
        if self.kind == "absolute":
            unit, what = "s", "absolute (shown, not judged)"
        else:
            unit = "x eager time" if self.control == CONTROL_EAGER else "x probe time"
            control = "eager fp32 control" if self.control == CONTROL_EAGER else "machine probe"
            what = f"relative to the {control}"
        interval = f" [{self.interval[0]:.3f}, {self.interval[1]:.3f}]" if self.interval else ""
        way = "slower" if self.ratio >= 1 else "faster"
        offset = (
            f", counting drift of sd {self.drift_sd:.1%} at this run's length "
            f"({self.sessions[0]} baseline session{'s' if self.sessions[0] != 1 else ''})"
            if self.drift_sd
            else ""
        )
        if self.control_shift is not None:
            offset += f"; the control ran {shift_words(self.control_shift)}"
        return (
            f"{what}: baseline {self.baseline_median:.4g} {unit} (n={self.n_baseline}) -> "
            f"current {self.current_median:.4g} {unit} (n={self.n_current}, "
            f"{self.batches[1]} batches vs {self.batches[0]}), ratio {self.ratio:.3f}{interval}, "
            f"{abs(self.change):.1%} {way}{offset}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "control": self.control,
            "status": self.status,
            "baseline_median": self.baseline_median,
            "current_median": self.current_median,
            "ratio": self.ratio,
            "interval": list(self.interval) if self.interval is not None else None,
            "n_baseline": self.n_baseline,
            "n_current": self.n_current,
            "batches": list(self.batches),
            "sessions": list(self.sessions),
            "drift_sd": self.drift_sd,
            "control_shift": self.control_shift,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Comparison:
        interval = data.get("interval")
        sessions = data.get("sessions") or (1, 1)
        return cls(
            kind=data["kind"],
            control=data.get("control"),
            baseline_median=float(data["baseline_median"]),
            current_median=float(data["current_median"]),
            ratio=float(data["ratio"]),
            interval=(float(interval[0]), float(interval[1])) if interval else None,
            n_baseline=int(data["n_baseline"]),
            n_current=int(data["n_current"]),
            batches=(int(data["batches"][0]), int(data["batches"][1])),
            status=Status(data["status"]),
            sessions=(int(sessions[0]), int(sessions[1])),
            drift_sd=float(data["drift_sd"]) if data.get("drift_sd") is not None else None,
            control_shift=(
                float(data["control_shift"]) if data.get("control_shift") is not None else None
            ),
        )


class Estimate(NamedTuple):
    """What :func:`compare_batches` found: the change as a ratio (current / baseline), its
    interval, the three-way status, and the drift (sd, log scale) it counted."""

    ratio: float
    interval: tuple[float, float] | None
    status: Status
    drift_sd: float = 0.0


def control_shift(baseline: Timings, current: Timings) -> float | None:
    """log(current / baseline median of the control's seconds): how much slower (> 0) the machine
    ran the control than when the baseline was recorded. Only on the same machine type (another
    one's speed says nothing of load), and only where both sides timed a control."""
    if baseline.fingerprint != current.fingerprint:
        return None
    if not baseline.control_samples_s or not current.control_samples_s:
        return None
    before = statistics.median(baseline.control_samples_s)
    after = statistics.median(current.control_samples_s)
    if before <= 0 or after <= 0:
        return None
    return math.log(after / before)


def pressure_excess(baseline: Timings, current: Timings) -> float | None:
    """How much more of its time this run's machine had a task waiting for a CPU than the
    baseline's (median shares; a baseline recorded without it counts as a quiet machine). None
    where this run measured none."""
    if not current.pressure:
        return None
    before = statistics.median(baseline.pressure) if baseline.pressure else 0.0
    return max(0.0, statistics.median(current.pressure) - before)


def compare_batches(
    baseline: Sequence[float],
    current: Sequence[float],
    threshold: float,
    alpha_each: float,
    margin: float = 0.5,
    within: float = 0.75,
    *,
    baseline_sessions: Sequence[int] = (),
    session_noise: float = 0.0,
    beta_each: float | None = None,
    disturbance_sd: float = 0.0,
    current_sessions: Sequence[int] = (),
) -> Estimate:
    """The change (ratio), its interval and the three-way status, from batch statistics.

    ``baseline_sessions``: the baseline's batches per session, in order (empty: one session);
    ``current_sessions`` the same for the current side (a merged refresh compared by ``cxrperf
    baselines compare``): its drift is counted per session, by the sessions' share of its mean.
    The interval counts two noises. The batch-to-batch spread (pooled over the current run and
    the baseline's blocks) shrinks as batches accumulate. The drift at the current run's time
    scale (:func:`drift_variance`, from the baseline's blocks as long as the current run or, for a
    long run, at least :data:`DRIFT_BLOCKS` of them, and the prior ``session_noise``) does not:
    it enters the current side whole, and the baseline's side by its share (more blocks and more
    sessions, less of it). Their sum gets Student's t with the Welch-Satterthwaite degrees of
    freedom (the drift's variance counted as known).

    Two levels, as in a pair of one-sided tests: a change (regressed, improved) must clear the
    interval at ``alpha_each``, the false-alarm level; "unchanged" at ``beta_each`` (default: the
    same), the chance of passing a slowdown of the full threshold as unchanged. The returned
    interval is the change's.

    ``disturbance_sd``: drift (sd, log) of the current run alone, for conditions unlike the
    baseline's (:func:`disturbance_drift_sd`); it adds to the drift counted."""
    m, k = len(baseline), len(current)
    if m < 1 or k < 1:
        raise ValueError("both sides need at least one batch")
    difference = statistics.fmean(current) - statistics.fmean(baseline)
    groups = by_session(baseline, baseline_sessions)
    cur_groups = by_session(current, current_sessions)
    cur_sizes = [len(g) for g in cur_groups]
    # the batch noise: spread within sessions, pooled over both sides
    squares = sum((x - statistics.fmean(g)) ** 2 for g in (*groups, *cur_groups) if g for x in g)
    df = sum(len(g) - 1 for g in (*groups, *cur_groups) if g)
    if df < 1:
        return Estimate(math.exp(difference), None, UNKNOWN)
    batch_variance = squares / df
    # blocks as long as this run (its longest session); shorter where that leaves too few to
    # estimate from (drift read at a shorter time scale is, if anything, larger: slow wander
    # averages out over longer blocks, a per-process offset does not change)
    stretch = max(cur_sizes)
    size = stretch
    while size > 2 and len(blocks_of(groups, size)) < DRIFT_BLOCKS:
        size -= 1
    drift = drift_variance(blocks_of(groups, size), session_noise, batch_variance)
    # the baseline's mean averages its blocks' drift, but not below its sessions' share
    base_share = max(stretch / m, sum((len(g) / m) ** 2 for g in groups))
    batch_part = batch_variance * (1.0 / m + 1.0 / k)
    cur_share = sum((n / k) ** 2 for n in cur_sizes)  # 1 for one session
    drift_part = drift * (cur_share + min(1.0, base_share)) + disturbance_sd**2
    total = batch_part + drift_part
    df_effective = df * (total / batch_part) ** 2 if batch_part > 0 else 1e6
    df_effective = min(df_effective, 1e6)
    half = t_quantile(1.0 - alpha_each, df_effective) * math.sqrt(total)
    low, high = difference - half, difference + half
    near = t_quantile(1.0 - (alpha_each if beta_each is None else beta_each), df_effective)
    near_half = near * math.sqrt(total)
    top = math.log1p(threshold)
    if low > top * margin:
        status = REGRESSED
    elif high < -top * margin:
        status = IMPROVED
    elif abs(difference) + near_half < top * within:
        status = UNCHANGED
    else:
        status = UNKNOWN
    interval = (math.exp(low), math.exp(high))
    return Estimate(math.exp(difference), interval, status, math.sqrt(drift + disturbance_sd**2))


@dataclass(frozen=True)
class Timings:
    """What the gate needs of a run (or of a stored baseline): per-round seconds of the backend
    and of its control in the same rounds (eager fp32, or the machine probe for eager itself)."""

    samples_s: Sequence[float]
    control_samples_s: Sequence[float] | None
    fingerprint: str
    new_tokens: int
    environment: str = ""
    control: str = CONTROL_EAGER
    session_rounds: tuple[int, ...] = ()  # rounds per fresh process, in order (empty: one)
    pressure: Sequence[float] = ()  # per round, the CPU pressure share (empty: not measured)

    def batches(self, batch_rounds: int) -> list[list[float]]:
        """The batch statistics, grouped by session."""
        return session_batches(
            self.samples_s, self.control_samples_s or (), batch_rounds, self.session_rounds
        )

    def ratios(self) -> list[float] | None:
        if not self.control_samples_s:
            return None
        return [s / c for s, c in zip(self.samples_s, self.control_samples_s, strict=True)]


@dataclass(frozen=True)
class Verdict:
    backend: str
    status: Status  # ok | regressed | improved | not yet known | no baseline | incomparable | ...
    failed: bool
    threshold: float = DEFAULT_THRESHOLD
    alpha: float = DEFAULT_ALPHA
    baseline_path: str | None = None
    absolute: Comparison | None = None
    relative: Comparison | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    measure: str = "latency"  # what is gated: "latency", "throughput" or "memory"

    @property
    def final(self) -> bool:
        """Is more measuring pointless? Everything but "not yet known" is."""
        return self.status != UNKNOWN

    @property
    def warning(self) -> bool:
        """A status the user should see even though the test passes."""
        return not self.failed and self.status in (MISSING, INCOMPARABLE, ERROR, UNKNOWN)

    @property
    def comparisons(self) -> list[Comparison]:
        return [c for c in (self.relative, self.absolute) if c is not None]

    def short(self) -> str:
        """The summary table's verdict column."""
        if self.status in (REGRESSED, IMPROVED) and self.relative is not None:
            text = self.status.upper() if self.failed else self.status
            return f"{text} {self._change()}"
        if self.status == OK and self.relative is not None:
            return f"ok {self._change()}"
        if self.status == UNKNOWN and self.relative is not None:
            text = "NOT YET KNOWN" if self.failed else "not yet known"
            return f"{text} {self._change()}"
        return self.status.upper() if self.failed else self.status

    def _change(self) -> str:
        """The relative change in the measure's own direction: time for latency, studies per
        hour for throughput (its rounds time a worklist, so 25 % more time is 20 % fewer
        studies per hour, shown as -20 %)."""
        assert self.relative is not None
        change = self.relative.change
        if self.measure == "throughput":
            return f"{1.0 / (1.0 + change) - 1.0:+.0%} studies/h"
        return f"{change:+.0%}"

    @property
    def message(self) -> str:
        m = self.measure
        head = {
            REGRESSED: f"{m} regression",
            IMPROVED: f"{m} improved",
            OK: f"{m} unchanged",
            UNKNOWN: f"{m} change not yet known (the evidence stayed unclear up to the cap)",
            MISSING: f"no {m} baseline",
            INCOMPARABLE: f"no comparable {m} baseline",
            ERROR: f"{m} baseline unusable",
            UPDATED: f"{m} baseline written",
        }.get(self.status, str(self.status))
        alpha = f", alpha {self.alpha:g}" if self.measure != "memory" else ""
        lines = [f"{self.backend}: {head} (threshold {self.threshold:.0%}{alpha})"]
        if self.baseline_path:
            lines.append(f"  baseline: {self.baseline_path}")
        if self.measure != "memory":  # a memory verdict says its figures in its notes
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
            "notes": list(self.notes),
            "measure": self.measure,
        }

    @classmethod
    def from_dict(cls, backend: str, data: dict[str, Any]) -> Verdict:
        """The inverse of :meth:`as_dict` (the JSON report keys verdicts by backend)."""
        return cls(
            backend=backend,
            status=Status(data["status"]),
            failed=bool(data["failed"]),
            threshold=float(data.get("threshold", DEFAULT_THRESHOLD)),
            alpha=float(data.get("alpha", DEFAULT_ALPHA)),
            baseline_path=data.get("baseline"),
            absolute=Comparison.from_dict(data["absolute"]) if data.get("absolute") else None,
            relative=Comparison.from_dict(data["relative"]) if data.get("relative") else None,
            notes=tuple(data.get("notes", ())),
            measure=str(data.get("measure", "latency")),
        )
