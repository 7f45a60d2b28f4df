"""Summary statistics of latency samples (no pytest, no torch)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    stdev: float
    median: float
    minimum: float
    maximum: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Summary:
        if not samples:
            raise ValueError("no samples")
        values = [float(s) for s in samples]
        return cls(
            n=len(values),
            mean=statistics.fmean(values),
            stdev=statistics.stdev(values) if len(values) > 1 else 0.0,
            median=statistics.median(values),
            minimum=min(values),
            maximum=max(values),
        )

    @property
    def cv(self) -> float:
        return self.stdev / self.mean if self.mean else 0.0


# ---- two-sample tests on raw latency samples ---------------------------------------------------
#
# The gate compares the raw samples of a baseline with those of the current run. Timing samples on
# shared CI runners are skewed and heavy-tailed (a neighbour steals the cores for a while), so the
# test must not assume normality: the Mann-Whitney U test (a rank test) and a percentile bootstrap
# of the median ratio make no assumption about the distribution's shape.

EXACT_LIMIT = 60  # combined sample size up to which the U test uses its exact distribution


@dataclass(frozen=True)
class RankTest:
    """Mann-Whitney U of ``current`` against ``baseline``; one-sided p-values both ways."""

    u: float  # pairs (current, baseline) with current > baseline, ties counting 1/2
    n_current: int
    n_baseline: int
    p_greater: float  # evidence that current is slower (stochastically greater)
    p_less: float  # evidence that current is faster
    exact: bool

    @property
    def p_two_sided(self) -> float:
        return min(1.0, 2.0 * min(self.p_greater, self.p_less))


def _midranks(values: Sequence[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        rank = (i + j) / 2.0 + 1.0
        for k in range(i, j + 1):
            ranks[order[k]] = rank
        i = j + 1
    return ranks


def mann_whitney_u(current: Sequence[float], baseline: Sequence[float]) -> RankTest:
    """Mann-Whitney U test of ``current`` against ``baseline``.

    Up to :data:`EXACT_LIMIT` samples in all the p-values come from the exact permutation
    distribution of the rank sum, conditional on the ties (so a tie-heavy sample such as a constant
    baseline is handled exactly); beyond it, the normal approximation with tie and continuity
    correction. With 5 vs 5 samples the smallest one-sided p-value is 1/252 = 0.004.
    """
    x = [float(v) for v in current]
    y = [float(v) for v in baseline]
    n1, n2 = len(x), len(y)
    if n1 == 0 or n2 == 0:
        raise ValueError("the U test needs samples on both sides")
    ranks = _midranks(x + y)
    rank_sum = sum(ranks[:n1])
    u = rank_sum - n1 * (n1 + 1) / 2.0
    n = n1 + n2
    if n <= EXACT_LIMIT:
        p_greater, p_less = _exact_rank_sum_tails(ranks, n1, rank_sum)
        return RankTest(u, n1, n2, p_greater, p_less, exact=True)
    import math

    mean = n1 * n2 / 2.0
    counts: dict[float, int] = {}
    for r in ranks:
        counts[r] = counts.get(r, 0) + 1
    tie_term = sum(t**3 - t for t in counts.values()) / (n * (n - 1))
    variance = n1 * n2 / 12.0 * ((n + 1) - tie_term)
    if variance <= 0:  # every value tied: no evidence either way
        return RankTest(u, n1, n2, 1.0, 1.0, exact=False)
    sd = math.sqrt(variance)
    z_greater = (u - mean - 0.5) / sd
    z_less = (u - mean + 0.5) / sd
    p_greater = 0.5 * math.erfc(z_greater / math.sqrt(2.0))
    p_less = 0.5 * math.erfc(-z_less / math.sqrt(2.0))
    return RankTest(u, n1, n2, min(1.0, p_greater), min(1.0, p_less), exact=False)


def _exact_rank_sum_tails(ranks: list[float], n1: int, observed: float) -> tuple[float, float]:
    """P(rank sum >= observed) and P(rank sum <= observed) over all ways to pick n1 of the pooled
    samples, by dynamic programming over doubled (hence integer) mid-ranks."""
    import numpy as np

    scores = [round(2 * r) for r in ranks]
    total = sum(scores)
    # ways[k, s]: subsets of size k with doubled rank sum s (floats: C(60, 30) ~ 1e17 is exact
    # enough, and a p-value needs no more than a few significant digits)
    ways = np.zeros((n1 + 1, total + 1))
    ways[0, 0] = 1.0
    for score in scores:
        ways[1:, score:] += ways[:-1, : total + 1 - score].copy()
    dist = ways[n1]
    target = round(2 * observed)
    count = dist.sum()
    p_greater = float(dist[target:].sum() / count)
    p_less = float(dist[: target + 1].sum() / count)
    return min(1.0, p_greater), min(1.0, p_less)


def median_ratio_interval(
    current: Sequence[float],
    baseline: Sequence[float],
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of median(current) / median(baseline).

    Each side is resampled independently with a seeded generator, so the same samples always give
    the same interval. With few samples the interval is coarse (a 5-sample median can only take a
    handful of values): it is reported to show the uncertainty, the decision uses the U test.
    """
    import numpy as np

    x = np.asarray(current, dtype=float)
    y = np.asarray(baseline, dtype=float)
    if x.size == 0 or y.size == 0:
        raise ValueError("the interval needs samples on both sides")
    rng = np.random.default_rng(seed)
    mx = np.median(x[rng.integers(0, x.size, size=(resamples, x.size))], axis=1)
    my = np.median(y[rng.integers(0, y.size, size=(resamples, y.size))], axis=1)
    ratios = mx / my
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(ratios, [tail, 1.0 - tail])
    return float(low), float(high)


# ---- Student's t (for the batch-means interval; no scipy) --------------------------------------
def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularized incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-14:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b)."""
    import math

    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom."""
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t (bisection on :func:`t_cdf`; p in (0, 1))."""
    if not 0.0 < p < 1.0:
        raise ValueError("p must be in (0, 1)")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        high *= 2.0
    for _ in range(200):
        middle = (low + high) / 2.0
        if t_cdf(middle, df) < p:
            low = middle
        else:
            high = middle
        if high - low < 1e-10 * max(1.0, high):
            break
    return (low + high) / 2.0
