"""The calibration simulation (`cxrperf calibrate`) on generated rounds: the rates it reports
move the way the gate's sharpness does."""

import random

import pytest

from pytest_cxrperf.gate.calibration import calibrate_backend, review_plan

TRIALS = 40  # simulated runs per slowdown: enough to separate the cases below, and quick
ALPHA = 0.05  # looser than the gate's default, so that x1.10 is caught now and then


def rounds(n=30, machine_sd=0.02, own_sd=0.01, seed=0):
    """Paired rounds: the control (eager) carries the machine's noise; the backend runs at half
    its time with that noise and its own on top."""
    rng = random.Random(seed)
    control = [rng.lognormvariate(0, machine_sd) for _ in range(n)]
    samples = [c * 0.5 * rng.lognormvariate(0, own_sd) for c in control]
    return samples, control


def simulate(samples, control, *, threshold=0.1, n=10, trials=TRIALS, **kwargs):
    return calibrate_backend(
        samples, control, rounds=n, baseline_rounds=n, threshold=threshold,
        alpha=ALPHA, trials=trials, **kwargs,
    )  # fmt: skip


@pytest.fixture(scope="module")
def quiet():
    return simulate(*rounds())


def test_review_plan_looks_once_over_every_stored_round():
    assert review_plan(45, 0.1, 0.05) == review_plan(45, 0.1, 0.05)
    plan = review_plan(45, 0.15, 0.01)
    assert (plan.batch_rounds, plan.max_batches, plan.backends) == (10, 4, 1)
    assert (plan.threshold, plan.alpha) == (0.15, 0.01)
    short = review_plan(20, 0.1, 0.05)  # short baselines: batches of one round
    assert (short.batch_rounds, short.max_batches) == (1, 20)
    assert review_plan(0, 0.1, 0.05).max_batches == 1


def test_rates_are_shares_of_the_trials_and_grow_with_the_slowdown(quiet):
    assert set(quiet) == {"false_alarm", 1.1, 1.25, 1.5, "smallest"}
    for key in ("false_alarm", 1.1, 1.25, 1.5):
        assert 0.0 <= quiet[key] <= 1.0
        assert (quiet[key] * TRIALS) == pytest.approx(round(quiet[key] * TRIALS))
    assert quiet["false_alarm"] <= 0.05  # no slowdown: (almost) never called regressed
    assert quiet["false_alarm"] <= quiet[1.1] <= quiet[1.25] <= quiet[1.5]
    assert quiet[1.5] == 1.0
    # the smallest slowdown caught 90 % of the time: above the threshold, below x1.25 (caught)
    assert 1.1 < quiet["smallest"] <= 1.25


def test_the_same_seed_gives_the_same_answer():
    samples, control = rounds()
    first = simulate(samples, control, trials=10, seed=3)
    assert simulate(samples, control, trials=10, seed=3) == first


def test_noise_of_the_backend_itself_blunts_the_gate(quiet):
    noisy = simulate(*rounds(own_sd=0.15))
    assert noisy[1.25] < quiet[1.25]
    assert noisy[1.5] < 1.0
    assert noisy["smallest"] is None or noisy["smallest"] > quiet["smallest"] + 0.1


def test_machine_noise_shared_with_the_control_is_divided_out(quiet):
    """Backend and control rounds are resampled in pairs: a machine that drifts 15 % from round
    to round, alike for both, leaves the gate about as sharp as a quiet one."""
    drifting = simulate(*rounds(machine_sd=0.15))
    assert drifting["false_alarm"] <= 0.05
    assert drifting[1.25] >= 0.9
    assert drifting["smallest"] is not None and drifting["smallest"] < 1.2


def test_a_larger_threshold_lets_small_slowdowns_pass(quiet):
    wide = simulate(*rounds(), threshold=0.3)
    assert wide[1.1] == 0.0 < quiet[1.1]
    assert wide["smallest"] > 1.3 > quiet["smallest"]


def test_too_few_rounds_never_decide_a_change():
    few = simulate(*rounds(), n=5)
    assert few["false_alarm"] == few[1.1] == few[1.25] == few[1.5] == 0.0
    assert few["smallest"] is None
