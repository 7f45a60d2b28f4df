"""The latency gate's decision: regressed, unchanged, improved, or not yet known.

**What is compared.** Absolute seconds are not: on a shared runner the same code ran 34 ms and
57 ms a minute apart, and runners of one type differed by 68 %. Every backend is judged by a
*ratio to an in-run control* measured in the same interleaved rounds: a non-reference backend by
its time over eager fp32's (its speedup), eager fp32 itself by its time over a fixed machine-speed
probe (:mod:`pytest_cxrperf.probe`). A slower machine slows both halves and the ratio stays put;
a slower backend moves it. Absolute seconds are shown beside it (same machine and environment
only) but never decide.

**Batch means.** The rounds of a run are cut into batches of consecutive rounds, and each batch
gives one statistic: log(median backend time / median control time). Machine speed drifts over
tens of seconds, so single rounds are not independent draws; batch statistics nearly are, and
their spread (pooled over the baseline's batches and this run's) measures the noise *including*
that drift. The change is the difference of the two sides' mean batch statistics, with a
t interval.

**Three-way, sequential.** With T = log(1 + threshold), at each planned look:

* regressed  - the interval lies wholly above T/2 (surely more than half the threshold slower);
* improved   - wholly below -T/2;
* unchanged  - wholly inside (-3T/4, 3T/4) (surely well below the threshold either way);
* not yet known - anything else: the campaign measures more batches, up to its cap, and a run
  that ends there says so instead of guessing.

**Drift the run cannot see.** A run's batch-to-batch spread misses what stays constant for the
length of the run: each fresh process's own offset, and machine drift slower than the run
(measured on this runner: eager fp32 over the probe 1.67 to 1.81 between processes, each tight
within its own; one-minute windows of a baseline spread as widely). That variance is estimated from
the baseline, cut into blocks as long as the current run (within its sessions; several sessions
from ``cxrperf baselines refresh --sessions N``), as the blocks' spread beyond their batch noise,
pooled with a prior (``--cxr-session-noise``, default 3 %). It enters the current side whole and
the baseline's side by its share, and does not shrink with more batches of one run.

**A disturbed machine.** The ratio stays put only while the machine slows a backend and its
control alike, and a loaded machine does not. Measured here (toy model, one thread, README point
3b): beside two loops streaming memory the probe ran 64 % slower and eager fp32's ratio to it
moved 19 %, which the gate alone called a regression; a CI run on a loaded host moved it 17 %.
So the control's own shift against the baseline's, on the same machine type, is a measure of how
far this run's conditions are from the baseline's, and beyond :data:`DISTURBANCE_FREE` (10 %, a
quiet machine's difference between days here) the excess counts as drift of sd
:data:`DISTURBANCE_DRIFT` (0.5) times it, on the current side. A disturbed run then ends
"not yet known" (and says why) instead of failing or passing on a ratio the load has moved.

A change (regressed, improved) needs its interval at level 1 - alpha / (looks x backends):
Bonferroni over the planned looks and the run's backends, so the chance that *any* backend of an
unchanged run is wrongly failed stays below alpha (default 1 %), however many looks were taken.
"Unchanged" needs ``|change| + half-width < 3T/4`` at level 1 - beta / looks (beta 5 %): the chance
that a backend slowed by the full threshold passes as unchanged. The margins (T/2, 3T/4) were
chosen by scripts/gate_accuracy.py on recorded sessions (README): with the "unchanged" bound at T,
a full-threshold slowdown in a session that ran 3 % fast was called unchanged in 5 % of runs.
Slowdowns between T/2 and 3T/4 are the indifference zone.

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
from .stats import t_quantile

DEFAULT_THRESHOLD = 0.10
DEFAULT_ALPHA = 0.01
MISSING_POLICIES = ("warn", "fail")
UNKNOWN_POLICIES = ("warn", "fail")
MIN_BATCHES = 3  # per side: fewer cannot bound the noise
# prior sd of the drift a run's own batches cannot show (log scale), until the baseline says more
DEFAULT_SESSION_NOISE = 0.03
PRIOR_BLOCKS = 2  # what that prior is worth, in the baseline blocks' degrees of freedom
DRIFT_BLOCKS = 16  # blocks a drift estimate wants; a long run's is read at a shorter scale
DEFAULT_BETA = 0.05
# how far (log) the control's median may move from the baseline's before the ratio is trusted less
DISTURBANCE_FREE = math.log1p(0.10)
# the drift (sd, log) counted per unit of the control's shift beyond that
DISTURBANCE_DRIFT = 0.5
# CPU pressure (share of a round in which a runnable task waited for a CPU, median over the run)
# above the baseline's that counts as no disturbance, and the drift (sd, log) per unit beyond it
PRESSURE_FREE = 0.05
PRESSURE_DRIFT = 0.5
# a change (regressed, improved) is never decided on fewer rounds of the current run: a few
# rounds of a loaded machine can sit together at one scheduler phase
MIN_CHANGE_ROUNDS = 10


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
class Plan:
    """When the gate looks and how often: batches of ``batch_rounds`` rounds; looks after
    3, 6, 12, 24, ... batches (each look doubles the data), and at ``max_batches``."""

    batch_rounds: int
    max_batches: int
    backends: int = 1  # how many backends share the run's false-alarm budget
    threshold: float = DEFAULT_THRESHOLD
    alpha: float = DEFAULT_ALPHA
    margin: float = 0.5  # a regression (improvement) must surely exceed margin x threshold
    within: float = 0.75  # "unchanged" must surely lie within +-within x threshold
    session_noise: float = DEFAULT_SESSION_NOISE  # prior sd of the unseen drift (log scale)
    beta: float = DEFAULT_BETA  # chance that a full-threshold slowdown is called unchanged
    disturbance_free: float = DISTURBANCE_FREE  # control shift (log) counted as no disturbance
    disturbance_drift: float = DISTURBANCE_DRIFT  # drift sd per unit of shift beyond that
    pressure_free: float = PRESSURE_FREE  # CPU pressure above the baseline's counted as none
    pressure_drift: float = PRESSURE_DRIFT  # drift sd per unit of pressure beyond that
    min_change_rounds: int = MIN_CHANGE_ROUNDS  # rounds a regressed/improved answer needs

    def looks(self) -> list[int]:
        """Batch counts at which the decision is taken (the last one is the cap)."""
        if self.max_batches < MIN_BATCHES:
            return []
        looks, k = [], MIN_BATCHES
        while k < self.max_batches:
            looks.append(k)
            k *= 2
        return [*looks, self.max_batches]

    @property
    def beta_each(self) -> float:
        """The level of one "unchanged" interval: beta split over the looks (a miss is one
        backend's, so it is not split over backends)."""
        return self.beta / max(1, len(self.looks()))

    @property
    def alpha_each(self) -> float:
        """The error level of one interval: alpha split over every look and backend."""
        return self.alpha / (max(1, len(self.looks())) * max(1, self.backends))


def session_batches(
    samples: Sequence[float],
    controls: Sequence[float],
    batch_rounds: int,
    session_rounds: Sequence[int] = (),
) -> list[list[float]]:
    """Per full batch of consecutive rounds, the median of the rounds' log(sample / control),
    grouped by session (``session_rounds``: rounds per session, in order; one group when unknown).

    Measured on recorded runs here, the median of per-round log ratios varied less from batch to
    batch than the ratio of the two medians, or of lower quantiles or minima. A batch never spans
    two sessions; each session's leftover rounds make no batch."""
    n = min(len(samples), len(controls))
    sizes = list(session_rounds) if session_rounds and sum(session_rounds) == n else [n]
    groups, start = [], 0
    for size in sizes:
        full = size // batch_rounds * batch_rounds
        pairs = zip(samples[start : start + full], controls[start : start + full], strict=True)
        logs = [math.log(s / c) for s, c in pairs]
        start += size
        groups.append(
            [statistics.median(logs[i : i + batch_rounds]) for i in range(0, full, batch_rounds)]
        )
    return groups


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


def blocks_of(groups: Sequence[Sequence[float]], size: int) -> list[list[float]]:
    """Consecutive blocks of ``size`` batch statistics, each within one session (the leftover
    batches at a session's end make no block)."""
    if size < 1:
        return []
    return [list(g[i : i + size]) for g in groups for i in range(0, len(g) - size + 1, size)]


def drift_variance(
    blocks: Sequence[Sequence[float]], prior_sd: float, batch_variance: float | None = None
) -> float:
    """The variance of a run's mean that its own batches cannot show (log scale).

    The machine's speed wanders on every time scale, and a fresh process adds an offset of its
    own (measured on this runner: eager fp32 over the probe at 1.67 to 1.81 between loaded
    processes, each tight within its own). A run of k batches sees one stretch of that; its
    batch-to-batch spread does not contain it. The baseline, longer and (merged with ``cxrperf
    baselines refresh --sessions N``) from several processes, does: its blocks spread more than
    their batch noise explains, and that excess is the drift. The batch noise is the blocks' own
    spread within them (``batch_variance`` where blocks of one batch have none). Few blocks
    estimate it poorly, so the estimate is pooled with the prior (``prior_sd``, worth
    :data:`PRIOR_BLOCKS` blocks' degrees of freedom)."""
    usable = [b for b in blocks if b]
    prior = prior_sd**2
    if len(usable) < 2:
        return prior
    df_within = sum(len(b) - 1 for b in usable)
    if df_within > 0:
        within = sum((x - statistics.fmean(b)) ** 2 for b in usable for x in b) / df_within
    else:
        within = batch_variance or 0.0
    size = statistics.fmean(len(b) for b in usable)
    spread = statistics.variance([statistics.fmean(b) for b in usable])
    observed = spread - within / size  # unbiased, so may fall below zero: clipped once pooled
    df = len(usable) - 1
    return max(0.0, (PRIOR_BLOCKS * prior + df * observed) / (PRIOR_BLOCKS + df))


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


def shift_words(shift: float) -> str:
    """A control's shift (log) in words: "26% slower", "9% faster"."""
    moved = math.expm1(shift)
    return f"{abs(moved):.0%} {'slower' if moved >= 0 else 'faster'}"


def disturbance_drift_sd(shift: float | None, free: float, per_unit: float) -> float:
    """The drift (sd, log) a control's shift counts for: ``per_unit`` times the part of
    ``|shift|`` beyond ``free`` (a loaded machine slows a backend and its control unalike)."""
    if shift is None:
        return 0.0
    return per_unit * max(0.0, abs(shift) - free)


def by_session(values: Sequence[float], sizes: Sequence[int]) -> list[list[float]]:
    """``values`` cut into consecutive sessions of ``sizes`` (one session where the sizes do not
    add up to them); empty sessions are left out."""
    if sum(sizes) != len(values):
        return [list(values)]
    groups, start = [], 0
    for size in sizes:
        if size > 0:
            groups.append(list(values[start : start + size]))
        start += size
    return groups


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
    measure: str = "latency"  # what is gated: "latency" or "memory"

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
            return f"{text} {self.relative.change:+.0%}"
        if self.status == OK and self.relative is not None:
            return f"ok {self.relative.change:+.0%}"
        if self.status == UNKNOWN and self.relative is not None:
            text = "NOT YET KNOWN" if self.failed else "not yet known"
            return f"{text} {self.relative.change:+.0%}"
        return self.status.upper() if self.failed else self.status

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
        alpha = f", alpha {self.alpha:g}" if self.measure == "latency" else ""
        lines = [f"{self.backend}: {head} (threshold {self.threshold:.0%}{alpha})"]
        if self.baseline_path:
            lines.append(f"  baseline: {self.baseline_path}")
        if self.measure == "latency":  # a memory verdict says its figures in its notes
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
