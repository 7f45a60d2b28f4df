"""The gate's statistics, checked against brute force and known values (no scipy needed)."""

import itertools
import random
from math import comb

import pytest

from pytest_cxrperf.gate import stats
from pytest_cxrperf.gate.stats import Summary, mann_whitney_u, median_ratio_interval


def brute_force(current, baseline):
    """Exact one-sided p-values by enumerating every split of the pooled samples."""
    pooled = list(current) + list(baseline)
    ranks = stats._midranks(pooled)
    observed = sum(ranks[: len(current)])
    sums = [
        sum(ranks[i] for i in pick)
        for pick in itertools.combinations(range(len(pooled)), len(current))
    ]
    greater = sum(s >= observed - 1e-9 for s in sums) / len(sums)
    less = sum(s <= observed + 1e-9 for s in sums) / len(sums)
    return greater, less


def test_complete_separation_of_five_against_five():
    test = mann_whitney_u([6, 7, 8, 9, 10], [1, 2, 3, 4, 5])
    assert test.exact
    assert test.u == 25
    assert test.p_greater == pytest.approx(1 / comb(10, 5))  # 1/252: the smallest p at 5 vs 5
    assert test.p_less == 1.0


@pytest.mark.parametrize("seed", range(8))
def test_exact_p_values_match_enumeration_with_and_without_ties(seed):
    rng = random.Random(seed)
    n1, n2 = rng.randint(1, 7), rng.randint(1, 7)
    # coarse values give ties inside and across the groups
    current = [rng.choice([1.0, 1.5, 2.0, 2.5, 3.0]) for _ in range(n1)]
    baseline = [rng.choice([1.0, 1.5, 2.0]) for _ in range(n2)]
    test = mann_whitney_u(current, baseline)
    greater, less = brute_force(current, baseline)
    assert test.p_greater == pytest.approx(greater)
    assert test.p_less == pytest.approx(less)


def test_a_constant_baseline_is_handled_exactly():
    # e.g. the reference's own speedup ratios, all exactly 1
    test = mann_whitney_u([1.4, 1.6, 1.5, 1.55, 1.45], [1.0] * 5)
    assert test.p_greater == pytest.approx(1 / 252)
    assert mann_whitney_u([1.0] * 4, [1.0] * 4).p_greater == 1.0


def test_swapping_sides_swaps_the_tails():
    rng = random.Random(3)
    x = [rng.gauss(1.0, 0.1) for _ in range(9)]
    y = [rng.gauss(1.1, 0.1) for _ in range(6)]
    a, b = mann_whitney_u(x, y), mann_whitney_u(y, x)
    assert a.p_greater == pytest.approx(b.p_less)
    assert a.p_less == pytest.approx(b.p_greater)
    assert a.u + b.u == pytest.approx(len(x) * len(y))


def test_normal_approximation_agrees_with_the_exact_distribution(monkeypatch):
    rng = random.Random(5)
    x = [rng.lognormvariate(0.05, 0.2) for _ in range(25)]
    y = [rng.lognormvariate(0.0, 0.2) for _ in range(25)]
    y[:5] = x[:5]  # some ties across groups
    exact = mann_whitney_u(x, y)
    monkeypatch.setattr(stats, "EXACT_LIMIT", 0)
    approx = mann_whitney_u(x, y)
    assert exact.exact and not approx.exact
    assert approx.p_greater == pytest.approx(exact.p_greater, abs=0.01)
    assert approx.p_less == pytest.approx(exact.p_less, abs=0.01)


def test_large_samples_use_the_normal_approximation():
    test = mann_whitney_u([2.0 + i / 100 for i in range(40)], [1.0 + i / 100 for i in range(40)])
    assert not test.exact
    assert test.p_greater < 1e-10


def test_empty_side_is_an_error():
    with pytest.raises(ValueError):
        mann_whitney_u([], [1.0])


def test_bootstrap_interval_is_seeded_and_brackets_the_ratio():
    current = [2.0, 2.1, 1.9, 2.05, 1.95, 2.2, 1.8]
    baseline = [1.0, 1.02, 0.98, 1.01, 0.99, 1.03, 0.97]
    low, high = median_ratio_interval(current, baseline)
    assert (low, high) == median_ratio_interval(current, baseline)
    assert low <= 2.0 / 1.0 <= high
    assert low > 1.5 and high < 2.5


def test_bootstrap_interval_narrows_with_more_samples():
    rng = random.Random(0)

    def width(n):
        x = [rng.gauss(1.2, 0.1) for _ in range(n)]
        y = [rng.gauss(1.0, 0.1) for _ in range(n)]
        low, high = median_ratio_interval(x, y)
        return high - low

    assert width(100) < width(5)


def test_summary():
    s = Summary.of([1.0, 2.0, 3.0])
    assert (s.n, s.median, s.mean, s.minimum, s.maximum) == (3, 2.0, 2.0, 1.0, 3.0)
    assert s.cv == pytest.approx(0.5)
    with pytest.raises(ValueError):
        Summary.of([])
