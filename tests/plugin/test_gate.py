"""The latency gate through real pytest runs of the suite (pytester).

The gate's behaviour is tested on injected timings, not the wall clock: every run here reads
the seconds it judges from a seeded model (``CXRPERF_SIMULATED_TIMINGS``, see
:mod:`pytest_cxrperf.simulated`) through the real campaign, statistics and baseline store, so a
neighbour on the cores cannot change a verdict. The backends still generate, so stage timings,
memory and outputs are real. One end-to-end test times for real and accepts "not yet known", but
never a wrong verdict. The false-alarm and detection rates at 10 % are measured by
scripts/gate_accuracy.py, not asserted by a timed test.
"""

import itertools
import json
import statistics
import sys

import pytest

from pytest_cxrperf.cli import main as cxrperf
from pytest_cxrperf.machine import machine_class
from pytest_cxrperf.simulated import ENV_VAR

TWIN = '''

@register_backend
class TwinBackend(Backend):
    """eager fp32 under another name: a non-reference backend as fast as its eager control."""

    name = "twin"
    precision = "fp32"

    def prepare(self, reference, example):
        return TorchRunner(reference.model, reference.processor)
'''

# one thread: the fingerprint is predictable and the two cores are not fought over; batches of
# 5 rounds, at most 24 batches or 40 s per campaign
GATE = [
    "-m",
    "cxr_latency",
    "--cxr-model=tiny",
    "--cxr-threads=1",
    "--cxr-rounds=120",
    "--cxr-batch-rounds=5",
    "--cxr-time-budget=40",
    "--cxr-warmup=1",
    "--cxr-max-new-tokens=8",
    "-p",
    "no:cacheprovider",
    "-W",
    "default",
]
FP = machine_class(1).key
SEEDS = itertools.count(1)
QUIET = {"seconds": {"eager": 0.02, "twin": 0.02, "probe": 0.01}, "noise": 0.02}


def simulate(pytester, monkeypatch, **model):
    """The next runs' timings: ``QUIET`` updated with ``model``, a fresh seed per call."""
    path = pytester.path / f"timings-{next(SEEDS)}.json"
    path.write_text(json.dumps({**QUIET, "seed": next(SEEDS), **model}))
    monkeypatch.setenv(ENV_VAR, str(path))


@pytest.fixture
def gate(suite, monkeypatch):
    conftest = suite.path / "conftest.py"
    conftest.write_text(conftest.read_text() + TWIN)
    suite.simulate = lambda **model: simulate(suite, monkeypatch, **model)
    suite.simulate()
    return suite


def run(pytester, *args):
    if hasattr(pytester, "simulate"):
        pytester.simulate()  # each run its own draws
    return pytester.runpytest_subprocess(*GATE, *args)


def stored(pytester, backend, machine=FP):
    return pytester.path / "baselines" / machine / "tiny" / f"{backend}.json"


def record(pytester, backends="eager,twin"):
    result = run(pytester, f"--cxr-backend={backends}", "--cxr-update-baselines")
    assert result.ret == 0, result.stdout.str()
    return result


def test_missing_baseline_warns_by_default_and_fails_when_strict(gate):
    target = gate.path / "out.json"
    result = run(gate, "--cxr-backend=eager", f"--cxr-json={target}")
    assert result.ret == 0, result.stdout.str()
    report = json.loads(target.read_text())
    assert report["backends"]["eager"]["latency_gate"]["status"] == "no baseline"
    assert report["settings"]["threshold"] == 0.1
    result.stdout.fnmatch_lines(
        [
            "*BaselineWarning: eager: no latency baseline*",
            f"*no baseline for machine class {FP} (none stored for this model)*",
            "*--cxr-update-baselines*",
        ]
    )
    result.stdout.fnmatch_lines(["*timings SIMULATED from*"])
    result.stdout.fnmatch_lines(["eager *fp32*no baseline*"])  # the summary's verdict column

    strict = run(gate, "--cxr-backend=eager", "--cxr-missing-baseline=fail")
    assert strict.ret == pytest.ExitCode.TESTS_FAILED
    strict.stdout.fnmatch_lines(["*eager: no latency baseline*", "*NO BASELINE*"])


def test_refresh_then_unchanged_passes_and_a_slowdown_fails(gate):
    first = record(gate)
    first.stdout.fnmatch_lines(["baselines written under *"])
    first.stdout.fnmatch_lines([f"eager *{FP}/tiny/eager.json*"])
    first.stdout.fnmatch_lines([f"twin *{FP}/tiny/twin.json*"])
    data = json.loads(stored(gate, "twin").read_text())
    assert data["schema_version"] == 3 and data["settings"]["new_tokens"] == 8
    assert data["machine_class"]["key"] == FP and len(data["pressure"]) == len(data["samples_s"])
    assert data["control"] == "eager" and data["environment"].startswith("py")
    assert len(data["samples_s"]) == len(data["control_samples_s"]) >= 15
    eager = json.loads(stored(gate, "eager").read_text())
    assert eager["control"] == "probe" and eager["probe_repeats"] >= 1
    assert len(eager["control_samples_s"]) == len(eager["samples_s"])  # the probe's rounds

    unchanged = run(gate, "--cxr-backend=eager,twin")
    assert unchanged.ret == 0, unchanged.stdout.str()
    assert "REGRESSED" not in unchanged.stdout.str()

    slowed = run(gate, "--cxr-backend=twin+slow=1.5,eager+slow=1.5")
    assert slowed.ret == pytest.ExitCode.TESTS_FAILED, slowed.stdout.str()
    assert slowed.parseoutcomes()["failed"] == 2
    slowed.stdout.fnmatch_lines(
        [
            "*twin+slow=1.5: latency regression (threshold 10%, alpha 0.01)*",
            f"*baseline: *{FP}/tiny/twin.json*",
            "*relative to the eager fp32 control: baseline * x eager time * -> current *ratio 1.*"
            "slower*regressed*",
        ]
    )
    slowed.stdout.fnmatch_lines(
        ["*eager+slow=1.5: latency regression*", "*eager.json*", "*relative to the machine probe*"]
    )
    slowed.stdout.fnmatch_lines(["twin+slow=1.5 *REGRESSED +*"])  # the summary's verdict column
    assert not list((gate.path / "baselines").rglob("*slow*"))

    again = record(gate, "twin")
    again.stdout.fnmatch_lines(["baselines written under *", "twin * -> *twin.json*"])
    leftovers = [p.name for p in stored(gate, "twin").parent.iterdir()]
    assert sorted(leftovers) == ["eager.json", "twin.json"]  # no temp files


def test_clear_evidence_stops_at_the_first_look(gate):
    """A 3x slowdown is clear after 3 batches: the campaign stops there, far below its cap."""
    record(gate, "eager,twin")
    result = run(gate, "--cxr-backend=twin+slow=3")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["latency: 15 interleaved rounds in * (stopped: decided;*"])


def test_a_stage_slowdown_burns_cpu_and_is_caught(gate):
    """Decode only, three times its work: computation in the generating thread, judged like a
    real regression of that stage."""
    record(gate, "eager,twin")
    target = gate.path / "out.json"
    result = run(gate, "--cxr-backend=twin+slow=3+stage=decode", f"--cxr-json={target}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    result.stdout.fnmatch_lines(["twin+slow=3+stage=decode *REGRESSED +*"])
    report = json.loads(target.read_text())["backends"]
    now = report["twin+slow=3+stage=decode"]["stage_medians_s"]
    before = json.loads(stored(gate, "twin").read_text())["stage_medians_s"]
    # the stage times are real: the decode step against the same run's prompt, a control a load
    # stretches alike (per token against the baseline's alone read 1.4x beside three busy
    # processes, 2.5 ms against 1.8)
    assert now["per_token_s"] / now["prefill_s"] > 1.5 * before["per_token_s"] / before["prefill_s"]


def test_unclear_evidence_is_not_yet_known_and_fails_only_when_strict(gate):
    """A threshold of 0.1 %: no run can bound its noise that tightly, so the answer at the cap is
    "not yet known", a visible warning; --cxr-unknown=fail makes it fail."""
    record(gate, "eager,twin")
    tight = ["--cxr-backend=twin", "--cxr-threshold=0.001", "--cxr-rounds=30"]
    result = run(gate, *tight)
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*latency change not yet known*", "*--cxr-unknown=fail*"])
    result.stdout.fnmatch_lines(["twin *not yet known*"])
    result.stdout.fnmatch_lines(["latency: 30 interleaved rounds * (stopped: cap;*"])
    strict = run(gate, *tight, "--cxr-unknown=fail")
    assert strict.ret == pytest.ExitCode.TESTS_FAILED
    strict.stdout.fnmatch_lines(["twin *NOT YET KNOWN*"])


def test_update_never_stores_a_slowed_spec_but_judges_it(gate):
    # x3, not x1.5: a one-session baseline is judged with a wide drift allowance (sd ~8 %), and
    # with the other xdist worker busy, x1.5 once stayed "not yet known" ([1.017, 2.073]) in CI
    result = run(gate, "--cxr-backend=eager,eager+slow=3", "--cxr-update-baselines")
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # judged against the eager just written
    result.stdout.fnmatch_lines(["*a synthetic slowdown is never stored as a baseline*"])
    assert [p.name for p in stored(gate, "eager").parent.iterdir()] == ["eager.json"]


def test_corrupt_baseline_fails_the_backend_and_is_left_alone(gate):
    path = stored(gate, "eager")
    path.parent.mkdir(parents=True)
    path.write_text('{"schema": "pytest-cxrperf/latency-baseline", "schema_version": 2, "samp')
    for extra in ([], ["--cxr-update-baselines"]):
        result = run(gate, "--cxr-backend=eager", *extra)
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        result.stdout.fnmatch_lines(
            ["*latency baseline unusable*", f"*{path}: truncated JSON*left as it is*"]
        )
        result.stdout.fnmatch_lines(["eager *ERROR*"])
    assert path.read_text().endswith('"samp')


def test_another_class_baseline_is_never_judged(gate):
    """Baselines of an AVX-512 class on an AVX2 host (here: of another class than this one):
    no verdict against them, whatever they say; the run warns, names the nearest class and what
    differs, and fails only under --cxr-missing-baseline=fail."""
    record(gate)
    here = machine_class(1)
    other = dict(here.to_dict(), features=["avx2"], cores=64)
    other["key"] = f"{here.vendor}-f1m1-avx2-64c-t1/{here.environment}"
    for backend in ("eager", "twin"):
        data = json.loads(stored(gate, backend).read_text())
        stored(gate, backend).unlink()
        data["fingerprint"], data["machine_class"] = other["key"], other
        data["samples_s"] = [s * 3 for s in data["samples_s"]]  # 3x slower: never compared
        target = stored(gate, backend, other["key"])
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(data))

    result = run(gate, "--cxr-backend=eager,twin")
    assert result.ret == 0, result.stdout.str()
    out = result.stdout.str()
    assert "REGRESSED" not in out and "IMPROVED" not in out and "improved" not in out
    result.stdout.fnmatch_lines(
        [f"*no baseline for machine class {FP} (nearest stored: {other['key']}; differs in: *"]
    )
    missing = [f for f in here.features if f != "avx2"]
    assert all(f in out for f in missing) and "64 cores (this: " in out
    strict = run(gate, "--cxr-backend=twin", "--cxr-missing-baseline=fail")
    assert strict.ret == pytest.ExitCode.TESTS_FAILED
    strict.stdout.fnmatch_lines(["twin *NO BASELINE*"])


def test_a_pre_class_baseline_of_this_host_is_read_and_migrated(gate):
    """A file of the old layout (host fingerprint, schema 2) recorded on this host is judged,
    with a note, and `cxrperf baselines migrate` moves it into the class layout."""
    from pytest_cxrperf.machine import legacy_fingerprint

    record(gate, "eager,twin")
    old = legacy_fingerprint(1)
    for backend in ("eager", "twin"):
        data = json.loads(stored(gate, backend).read_text())
        stored(gate, backend).unlink()
        data.update(fingerprint=old, schema_version=2)
        data.pop("machine_class")
        target = stored(gate, backend, old)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(data))
    result = run(gate, "--cxr-backend=twin", "-v")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*read from the pre-class layout*cxrperf baselines migrate*"])
    assert "no baseline" not in result.stdout.str()
    done = gate.run(
        sys.executable, "-m", "pytest_cxrperf.cli", "baselines", "migrate",
        f"--baseline-dir={gate.path / 'baselines'}",
    )  # fmt: skip
    assert done.ret == 0, done.stdout.str()
    done.stdout.fnmatch_lines(["2 migrated, 0 left"])
    assert json.loads(stored(gate, "twin").read_text())["schema_version"] == 3


def test_an_overloaded_machine_never_convicts_unchanged_code(gate):
    """Three runnable tasks on two cores: every round's CPU pressure is high, and time slicing
    moved eager's ratio to the probe by 25 % and twin's to eager by 20 %. Not yet known (saying
    why), never regressed."""
    record(gate, "eager,twin")
    gate.simulate(pressure=0.4, factor={"eager": 1.25, "twin": 1.2})
    result = gate.runpytest_subprocess(*GATE, "--cxr-backend=eager,twin")
    assert result.ret == 0, result.stdout.str()
    out = result.stdout.str()
    assert "REGRESSED" not in out
    result.stdout.fnmatch_lines(["*CPU contended: a runnable task waited for a CPU in 40%*"])
    result.stdout.fnmatch_lines(["eager *not yet known*"])


def test_no_change_is_decided_on_three_rounds(gate):
    """Batches of one round: a x3 slowdown is clear at 3 batches, but the gate waits for 10
    rounds before it says so."""
    record(gate, "eager,twin")
    result = run(gate, "--cxr-backend=twin+slow=3", "--cxr-batch-rounds=1")
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    result.stdout.fnmatch_lines(["latency: 12 interleaved rounds in * (stopped: decided;*"])


def test_end_to_end_on_the_real_clock_never_gives_a_wrong_verdict(gate, monkeypatch):
    """Timed for real (a neighbour may share the cores): an unchanged twin is ok or not yet
    known, never regressed or improved."""
    monkeypatch.delenv(ENV_VAR)
    del gate.simulate
    record(gate, "eager,twin")
    result = run(gate, "--cxr-backend=eager,twin", "--cxr-json=real.json")
    assert result.ret == 0, result.stdout.str()
    report = json.loads((gate.path / "real.json").read_text())["backends"]
    for backend in ("eager", "twin"):
        assert report[backend]["latency_gate"]["status"] in ("ok", "not yet known")
    assert "SIMULATED" not in result.stdout.str()


def test_a_disturbed_machine_is_not_yet_known_not_regressed(gate):
    """The baseline was recorded on a machine running twice as fast (every round halved, on
    this machine type), and twin's ratio to eager was 30 % lower: judged on the ratio alone, a
    regression. So far from the baseline's conditions the ratio is not trusted: a warning that
    says why, exit 0."""
    record(gate, "eager,twin")
    path = stored(gate, "twin")
    data = json.loads(path.read_text())
    data["samples_s"] = [s * 0.5 / 1.3 for s in data["samples_s"]]
    data["control_samples_s"] = [s * 0.5 for s in data["control_samples_s"]]
    path.write_text(json.dumps(data))

    result = run(gate, "--cxr-backend=twin", "--cxr-rounds=30")
    assert result.ret == 0, result.stdout.str()
    assert "REGRESSED" not in result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "*twin: latency change not yet known*",
            "*machine disturbed: the eager fp32 control ran *% slower than when the baseline was"
            " recorded*",
        ]
    )
    result.stdout.fnmatch_lines(["twin *not yet known +*"])


def test_improvement_is_reported_and_fails_on_request(gate):
    record(gate, "eager,twin")
    path = stored(gate, "twin")
    data = json.loads(path.read_text())
    data["samples_s"] = [s * 3 for s in data["samples_s"]]  # the baseline was 3x slower
    path.write_text(json.dumps(data))

    result = run(gate, "--cxr-backend=twin")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["twin *improved -*"])
    strict = run(gate, "--cxr-backend=twin", "--cxr-fail-on-improvement")
    assert strict.ret == pytest.ExitCode.TESTS_FAILED
    strict.stdout.fnmatch_lines(["*twin: latency improved*", "*refresh the baseline*"])


# ---- the cxrperf command ------------------------------------------------------------------
def test_cli_refresh_show_and_compare(gate, capsys, monkeypatch):
    result = gate.run(
        sys.executable,
        "-m",
        "pytest_cxrperf.cli",
        "baselines",
        "refresh",
        "--backend=eager",
        "--threads=1",
        "--model=tiny",
        "--rounds=12",
        "--max-new-tokens=8",
        "--",
        "-p",
        "no:cacheprovider",
    )
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(
        ["baselines in * (before -> after):", f"{FP}/tiny/eager.json *new*"]
    )

    monkeypatch.chdir(gate.path)
    assert cxrperf(["baselines", "show", "--threads=1"]) == 0
    out = capsys.readouterr().out
    assert f"* {FP}" in out and "eager" in out and "fp32" in out

    before = gate.path / "baselines"
    after = gate.path / "after"
    data = json.loads(stored(gate, "eager").read_text())
    # what follows tests the compare command, not the statistics (tests/unit/test_decision.py):
    # the refreshed rounds are replaced by steady ones around their medians, because 5 rounds
    # measured beside another xdist worker can be noisy enough that even x3 is honestly "not yet
    # known" (seen once in CI: interval [0.97, 9.3]); 12 rounds (3 batches of 4): no change is
    # decided on fewer than 10
    for key in ("samples_s", "control_samples_s"):
        middle = statistics.median(data[key])
        data[key] = [middle * (1 + 0.01 * (i % 3 - 1)) for i in range(len(data[key]))]
    stored(gate, "eager").write_text(json.dumps(data))
    # three times slower in every round
    data["samples_s"] = [s * 3.0 for s in data["samples_s"]]
    target = after / FP / "tiny" / "eager.json"
    target.parent.mkdir(parents=True)
    target.write_text(json.dumps(data))
    assert cxrperf(["baselines", "compare", str(before), str(after)]) == 1
    out = capsys.readouterr().out
    assert "REGRESSED +200%" in out
    assert cxrperf(["baselines", "compare", str(before), str(before)]) == 0
    assert cxrperf(["baselines", "compare", str(stored(gate, "eager")), str(target)]) == 1
    capsys.readouterr()

    target.write_text("{")
    assert cxrperf(["baselines", "compare", str(before), str(after)]) == 2
    assert "truncated JSON" in capsys.readouterr().out


def refresh_sessions(pytester, backends, sessions=2):
    return pytester.run(
        sys.executable, "-m", "pytest_cxrperf.cli", "baselines", "refresh", f"--backend={backends}",
        "--threads=1", "--model=tiny", "--rounds=6", "--max-new-tokens=8",
        f"--sessions={sessions}", "--", "-p", "no:cacheprovider",
    )  # fmt: skip


def test_cli_refresh_merges_sessions(gate):
    """Each fresh process carries its own offset: --sessions N merges N processes' rounds."""
    result = refresh_sessions(gate, "eager,twin")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(["*2 sessions merged (before -> after):*", "*eager.json*new*"])
    for backend in ("eager", "twin"):
        data = json.loads(stored(gate, backend).read_text())
        assert data["settings"]["sessions"] == 2
        assert len(data["samples_s"]) == len(data["control_samples_s"]) == 12
    probe = json.loads(stored(gate, "eager").read_text())["probe_repeats"]
    again = refresh_sessions(gate, "eager")
    assert again.ret == 0, again.stdout.str() + again.stderr.str()
    # the stored probe size carries over, so old and new rounds stay comparable
    assert json.loads(stored(gate, "eager").read_text())["probe_repeats"] == probe


def test_memory_baselines_of_a_latency_only_refresh_compare_with_the_whole_suite(gate):
    """A refresh runs the latency tests alone, the main job equivalence first: both prepare the
    backends in the order they were asked for, so the memory gate can compare them."""
    record(gate, "twin,eager")
    whole = [a for a in GATE if a not in ("-m", "cxr_latency")]
    target = gate.path / "whole.json"
    result = gate.runpytest_subprocess(*whole, "--cxr-backend=twin,eager", f"--cxr-json={target}")
    assert result.ret == 0, result.stdout.str()
    report = json.loads(target.read_text())["backends"]
    for backend, before in (("twin", []), ("eager", ["twin"])):
        assert json.loads(stored(gate, backend).read_text())["memory_context"] == before
        assert report[backend]["memory"]["context"] == before
        assert report[backend]["memory_gate"]["status"] != "incomparable", report[backend]


def test_a_class_without_baselines_saves_candidates_for_review(gate):
    """--cxr-save-missing: the run stays green, times those backends to the cap and writes what it
    would record to a store of its own (a CI artifact); the gate's store is untouched."""
    candidates = gate.path / "candidates"
    result = run(gate, "--cxr-backend=eager,twin", f"--cxr-save-missing={candidates}", "-v")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*candidate baseline for machine class * saved to *twin.json*"])
    saved = json.loads((candidates / FP / "tiny" / "twin.json").read_text())
    assert saved["machine_class"]["key"] == FP and len(saved["samples_s"]) == 120  # the cap
    assert not (gate.path / "baselines").exists()
