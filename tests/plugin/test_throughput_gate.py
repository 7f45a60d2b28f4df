"""The throughput test and its gate through real pytest runs of the suite (pytester).

As in test_gate.py, the seconds the gate judges come from a seeded model
(``CXRPERF_SIMULATED_TIMINGS``) through the real campaign, statistics and baseline store, so a
neighbour on the cores cannot change a verdict; the backends still generate their batched
worklists, so modes, tokens, memory and the batched reports' equivalence are real.
"""

import json

import pytest

from pytest_cxrperf.machine import machine_class

from .test_gate import TWIN, simulate

FP = machine_class(1).key
THROUGHPUT = [
    "-m",
    "cxr_throughput",
    "--cxr-throughput",
    "--cxr-model=tiny",
    "--cxr-threads=1",
    "--cxr-rounds=48",
    "--cxr-time-budget=60",
    "--cxr-warmup=1",
    "--cxr-max-new-tokens=6",
    "--cxr-concurrency=2",
    "--cxr-worklist=4",
    "-p",
    "no:cacheprovider",
    "-W",
    "default",
]
# a batched worklist of 4 takes 3 x one eager generation, one at a time 6 x
PADDING_BUG = '''

class PaddingBugRunner(TorchRunner):
    """Right alone, wrong in a batch (as a padding bug would be): every batched token shifted."""

    batch_mode = "static batching with a padding bug"

    def run_batched(self, items, concurrency, max_new_tokens, **kwargs):
        from dataclasses import replace

        from pytest_cxrperf.backends.batching import run_batched

        plain = TorchRunner(self.model, self.processor)
        run = run_batched(plain, items, concurrency, max_new_tokens, **kwargs)
        shifted = tuple(replace(o, token_ids=[t + 1 for t in o.token_ids]) for o in run.outputs)
        return replace(run, outputs=shifted, mode=self.batch_mode)


@register_backend
class PaddingBugBackend(Backend):
    name = "padding-bug"
    precision = "fp32"

    def prepare(self, reference, example):
        return PaddingBugRunner(reference.model, reference.processor)
'''
SECONDS = {
    "eager": 0.02,
    "probe": 0.01,
    "eager throughput": 0.06,
    "twin throughput": 0.06,
    "eager one at a time": 0.12,
    "twin one at a time": 0.12,
}


@pytest.fixture
def gate(suite, monkeypatch):
    conftest = suite.path / "conftest.py"
    conftest.write_text(conftest.read_text() + TWIN + PADDING_BUG)
    suite.simulate = lambda **model: simulate(suite, monkeypatch, seconds=SECONDS, **model)
    return suite


def run(pytester, *args):
    pytester.simulate()  # each run its own draws
    return pytester.runpytest_subprocess(*THROUGHPUT, *args)


def stored(pytester, backend, concurrency=2, worklist=4):
    name = f"{backend}.throughput-c{concurrency}-w{worklist}.json"
    return pytester.path / "baselines" / FP / "tiny" / name


def test_refresh_then_unchanged_passes_and_a_slowdown_fails(gate):
    first = run(gate, "--cxr-backend=eager,twin", "--cxr-update-baselines")
    assert first.ret == 0, first.stdout.str()
    data = json.loads(stored(gate, "twin").read_text())
    assert data["backend"] == "twin.throughput-c2-w4" and data["control"] == "eager"
    assert len(data["samples_s"]) == len(data["control_samples_s"]) >= 10
    assert data["model_info"]["throughput"]["concurrency"] == 2
    assert stored(gate, "eager").is_file()

    target = gate.path / "out.json"
    unchanged = run(gate, "--cxr-backend=eager,twin", f"--cxr-json={target}")
    assert unchanged.ret == 0, unchanged.stdout.str()
    assert "REGRESSED" not in unchanged.stdout.str() and "regression" not in unchanged.stdout.str()
    figures = json.loads(target.read_text())["backends"]["twin"]["throughput"]
    assert figures["concurrency"] == 2 and figures["worklist"] == 4
    assert figures["mode"].startswith("static batching")
    assert figures["gate"]["status"] in ("ok", "not yet known")
    assert figures["gate"]["measure"] == "throughput"
    assert figures["speedup_vs_sequential"] > 1.5  # the simulated 0.12 s against 0.06 s
    assert len(figures["latencies_s"]) == 4 and figures["tokens"] == 4 * 6
    checks = {c for study in figures["equivalence"].values() for c in study}
    assert checks == {"batched_vs_single", "batched_vs_reference", "clinical_findings"}
    assert all(c["ok"] for study in figures["equivalence"].values() for c in study.values())

    slowed = run(gate, "--cxr-backend=twin+slow=1.5")
    assert slowed.ret == pytest.ExitCode.TESTS_FAILED, slowed.stdout.str()
    slowed.stdout.fnmatch_lines(
        [
            "*twin+slow=1.5: throughput regression (threshold 10%, alpha 0.01)*",
            f"*baseline: *{FP}/tiny/twin.throughput-c2-w4.json*",
        ]
    )
    assert not list((gate.path / "baselines").rglob("*slow*"))


def test_another_concurrency_has_no_baseline_and_is_never_compared(gate):
    assert run(gate, "--cxr-backend=twin", "--cxr-update-baselines").ret == 0
    other = run(gate, "--cxr-backend=twin", "--cxr-concurrency=4", "--cxr-worklist=8")
    assert other.ret == 0, other.stdout.str()
    other.stdout.fnmatch_lines(["*twin: no throughput baseline*"])
    strict = run(gate, "--cxr-backend=twin", "--cxr-concurrency=4", "--cxr-missing-baseline=fail")
    assert strict.ret == pytest.ExitCode.TESTS_FAILED


def test_a_batched_report_that_differs_fails_its_backend(gate):
    """``padding-bug`` is right alone and wrong in a batch: its batched-equivalence test fails,
    naming the study and the step, and the run fails."""
    result = run(gate, "--cxr-backend=padding-bug")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] == 1 and outcomes["passed"] == 1  # the throughput test itself runs
    result.stdout.fnmatch_lines(
        [
            "*padding-bug batched (static batching with a padding bug):*",
            "*against padding-bug alone: first difference at step 0*not a near tie*",
        ]
    )


def test_the_throughput_tests_run_only_when_asked(suite):
    result = suite.runpytest_subprocess(
        "--cxr-backend=eager", "--cxr-model=tiny", "--co", "-q", "-p", "no:cacheprovider"
    )
    assert "test_throughput" not in result.stdout.str()
    asked = suite.runpytest_subprocess(
        "--cxr-backend=eager", "--cxr-model=tiny", "--cxr-throughput", "--co", "-q"
    )
    asked.stdout.fnmatch_lines(["*test_throughput.py::test_throughput[[]eager[]]*"])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--cxr-concurrency=0"], "*--cxr-concurrency=0 must be at least 1*"),
        (
            ["--cxr-concurrency=5", "--cxr-worklist=4"],
            "*--cxr-concurrency=5: more studies in flight than the worklist's 4*",
        ),
        (["--cxr-cost-per-hour=-2"], "*--cxr-cost-per-hour '-2': must be a positive number*"),
        (["--cxr-cost-per-hour=cheap"], "*--cxr-cost-per-hour 'cheap': not a number*"),
        (
            ["--cxr-model=maira2", "--cxr-concurrency=500", "--cxr-worklist=500"],
            "*--cxr-concurrency=500: 500 studies in flight of up to * tokens need about * GiB*",
        ),
    ],
)
def test_bad_throughput_options_are_usage_errors_before_any_model(suite, options, message):
    result = suite.runpytest_subprocess("--cxr-throughput", *options, "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
