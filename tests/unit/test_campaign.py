"""The interleaved latency campaign and the CPU-burning synthetic slowdown (no pytest internals)."""

import time
from types import SimpleNamespace

import pytest

from pytest_cxrperf.backends import slowdown
from pytest_cxrperf.backends.base import StageTimings
from pytest_cxrperf.backends.slowdown import SlowedRunner, burn
from pytest_cxrperf.errors import SettingsError
from pytest_cxrperf.latency import Subject, run_campaign
from pytest_cxrperf.settings import BackendSpec


class FakeClock:
    """Each job advances time by its own cost: deterministic 'seconds'."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def job(clock, name, cost, log):
    def run():
        log.append(name)
        clock.now += cost
        return name

    return run


def test_rounds_interleave_every_subject_with_its_control_and_decided_ones_leave():
    clock, log = FakeClock(), []
    subjects = [
        Subject("eager", job(clock, "eager", 1.0, log), "probe"),
        Subject("fast", job(clock, "fast", 0.5, log), "eager"),
        Subject("slow", job(clock, "slow", 2.0, log), "eager"),
    ]
    controls = {"eager": job(clock, "eager", 1.0, log), "probe": job(clock, "probe", 0.25, log)}
    looks_seen = []

    def decide(label, series, final):
        looks_seen.append((label, len(series.samples_s), final))
        return label == "fast" or final  # "fast" is clear at the first look

    campaign = run_campaign(
        subjects, controls, batch_rounds=2, looks=[3, 6], decide=decide,
        time_budget_s=1e9, warmup=1, seed=1, clock=clock,
    )  # fmt: skip
    fast, slow, eager = (campaign.series[k] for k in ("fast", "slow", "eager"))
    assert len(fast.samples_s) == 6 and len(slow.samples_s) == len(eager.samples_s) == 12
    assert fast.samples_s == [0.5] * 6 and fast.control_samples_s == [1.0] * 6
    assert eager.control_samples_s == [0.25] * 12  # eager fp32 is timed against the probe
    assert campaign.rounds == 12 and campaign.stopped == "cap" and campaign.looks == 2
    assert ("fast", 6, False) in looks_seen and ("slow", 12, True) in looks_seen
    # eager runs once per round even though it is both a subject and the others' control
    timed = log[5:]  # after the warm-up (3 subjects + 2 controls)
    assert timed[:4].count("eager") == 1 and len(timed) == 6 * 4 + 6 * 3


def test_the_time_budget_ends_the_campaign_at_a_batch_boundary():
    clock, log = FakeClock(), []
    subjects = [Subject("b", job(clock, "b", 1.0, log), "eager")]
    controls = {"eager": job(clock, "eager", 1.0, log)}
    finals = []

    def decide(label, series, final):
        finals.append(final)
        return False

    campaign = run_campaign(
        subjects, controls, batch_rounds=5, looks=[3, 6, 100], decide=decide,
        time_budget_s=45.0, warmup=0, clock=clock,
    )  # fmt: skip
    assert campaign.stopped == "time budget"
    assert campaign.rounds % 5 == 0 and 20 <= campaign.rounds <= 30
    assert finals[-1] is True


def test_stopping_early_when_everything_is_decided():
    clock, log = FakeClock(), []
    subjects = [Subject("b", job(clock, "b", 1.0, log), "eager")]
    campaign = run_campaign(
        subjects, {"eager": job(clock, "eager", 1.0, log)}, batch_rounds=1, looks=[3, 6],
        decide=lambda *a: True, time_budget_s=1e9, warmup=0, clock=clock,
    )  # fmt: skip
    assert campaign.stopped == "decided" and campaign.rounds == 3


def test_no_look_planned_is_an_error():
    with pytest.raises(ValueError, match="minimum batches"):
        run_campaign([], {}, batch_rounds=1, looks=[], decide=lambda *a: True, time_budget_s=1)


class StagedRunner:
    """A GreedyLoop-shaped runner whose stages sleep (so their wall time is known)."""

    def __init__(self):
        self.calls = {"_encode": 0, "_prefill": 0, "_step": 0}

    def _encode(self, *a):
        self.calls["_encode"] += 1
        time.sleep(0.002)

    def _prefill(self, *a):
        self.calls["_prefill"] += 1
        time.sleep(0.002)

    def _step(self, *a):
        self.calls["_step"] += 1
        time.sleep(0.001)

    def generate(self, inputs, max_new_tokens, **kwargs):
        t0 = time.perf_counter()
        self._encode()
        t1 = time.perf_counter()
        self._prefill()
        t2 = time.perf_counter()
        steps = []
        for _ in range(max_new_tokens - 1):
            s = time.perf_counter()
            self._step()
            steps.append(time.perf_counter() - s)
        return SimpleNamespace(timings=StageTimings(t1 - t0, t2 - t1, tuple(steps)))

    def score(self, inputs, target_ids):
        return None


def cpu_seconds(fn):
    start = time.thread_time()
    fn()
    return time.thread_time() - start


def test_the_slowdown_burns_cpu_in_the_generating_thread():
    """A sleep is invisible to CPU time and not stretched by a contended CPU; the burn is both."""
    inner = StagedRunner()
    slowed = SlowedRunner(inner, 3.0)
    slowed.calibrate(None, 4)
    assert set(slowed.iterations) == {"vision", "prefill", "decode"}
    plain = cpu_seconds(lambda: inner.generate(None, 4))
    burnt = cpu_seconds(lambda: slowed.generate(None, 4))
    # the inner runner only sleeps (~0 CPU); the slowed one computes about 2 x its wall time
    assert burnt > plain + 0.005
    assert inner.calls["_step"] > 0  # the copy shares the inner runner's stages


def test_a_stage_slowdown_touches_that_stage_only(monkeypatch):
    """Decode x2: every decode step burns the work of one more step (its ~1 ms at the calibrated
    rate, fixed here so that nothing depends on this machine's speed), vision and prefill none."""
    monkeypatch.setattr(slowdown, "burn_rate", lambda **kwargs: 1_000_000.0)  # iterations / s
    inner = StagedRunner()
    slowed = SlowedRunner(inner, 2.0, stage="decode")
    slowed.calibrate(None, 6)
    assert list(slowed.iterations) == ["decode"]
    assert 1_000 <= slowed.iterations["decode"] <= 20_000  # a step sleeps 1 ms (at most 20)
    burnt = []
    monkeypatch.setattr(slowdown, "burn", burnt.append)
    calls = dict(inner.calls)
    slowed.generate(None, 6)
    assert burnt == [slowed.iterations["decode"]] * 5  # one burn per decode step, nothing else
    assert (
        inner.calls["_step"] - calls["_step"] == 5
        and inner.calls["_encode"] == calls["_encode"] + 1
    )


def test_a_runner_without_stages_gets_a_whole_generation_burn_and_refuses_a_stage():
    class Opaque:
        def generate(self, inputs, max_new_tokens, **kwargs):
            time.sleep(0.002)
            return SimpleNamespace(timings=StageTimings(0.001, 0.001, (0.0,)))

    slowed = SlowedRunner(Opaque(), 2.0)
    slowed.calibrate(None, 2)
    assert cpu_seconds(lambda: slowed.generate(None, 2)) > 0.0005
    with pytest.raises(ValueError, match="no separate stages"):
        SlowedRunner(Opaque(), 2.0, stage="decode").calibrate(None, 2)


def test_burn_is_deterministic_work():
    assert burn(1000) == burn(1000)


def test_slowdown_specs_parse_with_a_stage():
    spec = BackendSpec.parse("openvino+slow=1.1+stage=decode")
    assert (spec.name, spec.slow, spec.stage) == ("openvino", 1.1, "decode")
    assert spec.label == "openvino+slow=1.1+stage=decode"
    with pytest.raises(SettingsError, match="choose one of vision, prefill, decode"):
        BackendSpec.parse("eager+slow=1.1+stage=lm_head")
    with pytest.raises(SettingsError, match="without a slowdown"):
        BackendSpec.parse("eager+stage=decode")
