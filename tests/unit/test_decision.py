"""The gate's decision on synthetic samples: effect past the threshold AND significant."""

import random

import pytest

from pytest_cxrperf.gate.decision import (
    IMPROVED,
    INCOMPARABLE,
    MISSING,
    OK,
    REGRESSED,
    Timings,
    compare_samples,
    judge,
)

HERE, THERE = "cpu-a-2c-t2-11111111", "cpu-b-8c-t8-22222222"


def noisy(median, n=10, cv=0.03, seed=0):
    rng = random.Random(seed)
    return tuple(median * rng.lognormvariate(0.0, cv) for _ in range(n))


def timings(samples, control=None, fingerprint=HERE, tokens=32, reference=False):
    return Timings(samples, control, fingerprint, tokens, is_reference=reference)


def backend_run(factor=1.0, machine=1.0, seed=0, fingerprint=HERE, n=10):
    """A backend at 0.5 s with an interleaved eager control at 1.0 s; ``machine`` slows both."""
    control = noisy(1.0 * machine, n, seed=seed)
    samples = tuple(
        c * 0.5 * factor * r for c, r in zip(control, noisy(1.0, n, 0.02, seed + 100), strict=True)
    )
    return timings(samples, control, fingerprint)


def test_unchanged_passes():
    verdict = judge("openvino", backend_run(seed=1), backend_run(seed=2))
    assert verdict.status == OK and not verdict.failed
    assert verdict.absolute is not None and verdict.relative is not None
    assert verdict.short() == "ok (relative+absolute)"


def test_regression_fails_with_numbers_in_the_message():
    verdict = judge(
        "openvino", backend_run(1.5, seed=1), backend_run(seed=2), baseline_path="b.json"
    )
    assert verdict.status == REGRESSED and verdict.failed
    assert verdict.relative.status == REGRESSED and verdict.absolute.status == REGRESSED
    message = verdict.message
    for text in ("latency regression", "baseline", "current", "ratio 1.", "p=", "b.json", "["):
        assert text in message
    assert verdict.short().startswith("REGRESSED +5")


def test_significant_but_below_threshold_passes():
    base, cur = noisy(1.0, 20, 0.005, 1), noisy(1.05, 20, 0.005, 2)
    comparison = compare_samples("absolute", base, cur, threshold=0.10)
    assert comparison.p_slower < 0.001
    assert comparison.status == "unchanged"


def test_past_threshold_but_not_significant_passes():
    comparison = compare_samples("absolute", (1.0, 1.3), (1.2, 1.6), threshold=0.10)
    assert comparison.ratio > 1.1
    assert comparison.p_slower > 0.05
    assert comparison.status == "unchanged"


def test_improvement_is_reported_and_fails_only_on_request():
    faster, base = backend_run(0.6, seed=1), backend_run(seed=2)
    verdict = judge("openvino", faster, base)
    assert verdict.status == IMPROVED and not verdict.failed
    strict = judge("openvino", faster, base, fail_on_improvement=True)
    assert strict.failed and "--cxr-update-baselines" in strict.message


def test_machine_wide_slowdown_is_not_a_regression():
    # a neighbour job makes everything, the eager control included, twice as slow
    verdict = judge("openvino", backend_run(machine=2.0, seed=1), backend_run(seed=2))
    assert verdict.absolute.status == REGRESSED
    assert verdict.relative.status == "unchanged"
    assert verdict.status == OK and not verdict.failed
    assert any("whole machine" in note for note in verdict.notes)


def test_absolute_regression_with_a_steady_control_counts():
    base = backend_run(seed=2)
    cur = backend_run(1.5, seed=1)
    verdict = judge("openvino", cur, base)
    assert verdict.control is not None and verdict.control.status == "unchanged"
    assert verdict.failed


def test_foreign_machine_uses_the_relative_check_only():
    verdict = judge("openvino", backend_run(seed=1), backend_run(seed=2, fingerprint=THERE))
    assert verdict.absolute is None and verdict.relative is not None
    assert verdict.status == OK
    assert "foreign machine" in verdict.message and "absolute check skipped" in verdict.message
    slowed = judge("openvino", backend_run(1.5, seed=1), backend_run(seed=2, fingerprint=THERE))
    assert slowed.failed


def test_reference_backend_has_only_the_absolute_check():
    base = timings(noisy(1.0, seed=1), reference=True)
    verdict = judge("eager", timings(noisy(1.0, seed=2), reference=True), base)
    assert verdict.relative is None and verdict.status == OK
    foreign = timings(noisy(1.0, seed=1), fingerprint=THERE, reference=True)
    cur = timings(noisy(1.0, seed=2), reference=True)
    assert judge("eager", cur, foreign).status == INCOMPARABLE
    assert not judge("eager", cur, foreign).failed
    assert judge("eager", cur, foreign, missing="fail").failed


def test_slowed_reference_is_judged_against_its_base_with_both_checks():
    base = timings(noisy(1.0, seed=1), reference=True)
    control = noisy(1.0, seed=3)
    cur = timings(tuple(c * 1.25 for c in control), control)  # eager+slow=1.25
    verdict = judge("eager+slow=1.25", cur, base)
    assert verdict.relative is not None and verdict.relative.baseline_median == 1.0
    assert verdict.status == REGRESSED
    # and on another machine, the relative check alone still catches it
    foreign = timings(noisy(3.0, seed=1), fingerprint=THERE, reference=True)
    assert judge("eager+slow=1.25", cur, foreign).status == REGRESSED


@pytest.mark.parametrize("policy, failed", [("warn", False), ("fail", True)])
def test_missing_baseline_follows_the_policy(policy, failed):
    verdict = judge("openvino", backend_run(), None, missing=policy)
    assert verdict.status == MISSING and verdict.failed is failed
    assert verdict.warning is (not failed)
    assert "--cxr-update-baselines" in verdict.message


def test_other_token_count_is_incomparable():
    base = backend_run()
    cur = Timings(base.samples_s, base.control_samples_s, HERE, new_tokens=8)
    verdict = judge("openvino", cur, base)
    assert verdict.status == INCOMPARABLE
    assert "--cxr-max-new-tokens=32" in verdict.message


def test_verdict_serialises():
    data = judge("openvino", backend_run(1.5, seed=1), backend_run(seed=2)).as_dict()
    assert data["status"] == REGRESSED and data["relative"]["ratio"] > 1.4
    assert data["absolute"]["interval"][0] > 1.0
