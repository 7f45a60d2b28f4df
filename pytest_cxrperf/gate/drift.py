"""Batch statistics and the drift a run cannot see, for the latency gate's decision
(:mod:`pytest_cxrperf.gate.decision`).

**Batch means.** The rounds of a run are cut into batches of consecutive rounds, and each batch
gives one statistic: log(median backend time / median control time). Machine speed drifts over
tens of seconds, so single rounds are not independent draws; batch statistics nearly are, and
their spread (pooled over the baseline's batches and this run's) measures the noise *including*
that drift. The change is the difference of the two sides' mean batch statistics, with a
t interval.

**Drift the run cannot see.** A run's batch-to-batch spread misses what stays constant for the
length of the run: each fresh process's own offset, and machine drift slower than the run
(measured on this runner: eager fp32 over the probe 1.67 to 1.81 between processes, each tight
within its own; one-minute windows of a baseline spread as widely). That variance is estimated from
the baseline, cut into blocks as long as the current run (within its sessions; several sessions
from ``cxrperf baselines refresh --sessions N``), as the blocks' spread beyond their batch noise,
pooled with a prior (``--cxr-session-noise``, default 3 %). It enters the current side whole and
the baseline's side by its share, and does not shrink with more batches of one run.

**A disturbed machine.** The ratio stays put only while the machine slows a backend and its control
alike, and a loaded machine does not. Measured here (toy model, one thread, README point 3b):
beside two loops streaming memory the probe ran 64 % slower and eager fp32's ratio to it moved
19 %, which the gate alone called a regression; a CI run on a loaded host moved it 17 %. So the
control's own shift against the baseline's, on the same machine type, is a measure of how far this
run's conditions are from the baseline's, and beyond
:data:`~pytest_cxrperf.gate.plan.DISTURBANCE_FREE` (10 %, a quiet machine's difference between days
here) the excess counts as drift of sd :data:`~pytest_cxrperf.gate.plan.DISTURBANCE_DRIFT` (0.5)
times it, on the current side. A disturbed run then ends "not yet known" (and says why) instead of
failing or passing on a ratio the load has moved.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

# what the prior drift (the plan's session noise) is worth, in the baseline blocks' degrees of
# freedom
PRIOR_BLOCKS = 2
DRIFT_BLOCKS = 16  # blocks a drift estimate wants; a long run's is read at a shorter scale


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
