"""The latency gate through real pytest runs of the suite (pytester).

Timing on a shared machine is noisy, so no test here depends on absolute speed: baselines are
recorded in the same test seconds before they are used, the backend under test is a "twin" of
eager fp32 (so the interleaved relative check applies), and a synthetic 1.5x slowdown is far beyond
the noise on every round. The unchanged-passes test uses a 30% threshold: it checks the plumbing
(stored, found, judged, reported, exit 0); the false-alarm rate at 10% is measured by
scripts/gate_accuracy.py, not asserted by a timed test.
"""

import json
import sys

import pytest

from pytest_cxrperf.cli import main as cxrperf
from pytest_cxrperf.machine import fingerprint

TWIN = '''

@register_backend
class TwinBackend(Backend):
    """eager fp32 under another name: a non-reference backend as fast as its eager control."""

    name = "twin"
    precision = "fp32"

    def prepare(self, reference, example):
        return TorchRunner(reference.model, reference.processor)
'''

# one thread: the fingerprint is predictable and the two cores are not fought over
GATE = [
    "-m",
    "cxr_latency",
    "--cxr-model=tiny",
    "--cxr-threads=1",
    "--cxr-rounds=10",
    "--cxr-warmup=1",
    "--cxr-max-new-tokens=8",
    "-p",
    "no:cacheprovider",
    "-W",
    "default",
]
FP = fingerprint(1)


@pytest.fixture
def gate(suite):
    conftest = suite.path / "conftest.py"
    conftest.write_text(conftest.read_text() + TWIN)
    return suite


def run(pytester, *args):
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
        ["*BaselineWarning: eager: no latency baseline*", "*--cxr-update-baselines*"]
    )
    result.stdout.fnmatch_lines(["eager *fp32*no baseline*"])  # the summary's verdict column

    strict = run(gate, "--cxr-backend=eager", "--cxr-missing-baseline=fail")
    assert strict.ret == pytest.ExitCode.TESTS_FAILED
    strict.stdout.fnmatch_lines(["*eager: no latency baseline*", "*NO BASELINE*"])


def test_refresh_then_unchanged_passes_and_a_slowdown_fails(gate):
    first = record(gate)
    first.stdout.fnmatch_lines(["baselines written under *", "*new*"])
    first.stdout.fnmatch_lines([f"eager *new*{FP}/tiny/eager.json*"])
    first.stdout.fnmatch_lines([f"twin *new*{FP}/tiny/twin.json*"])
    data = json.loads(stored(gate, "twin").read_text())
    assert data["schema_version"] == 1 and data["settings"]["new_tokens"] == 8
    assert len(data["samples_s"]) == len(data["control_samples_s"]) == 10
    assert json.loads(stored(gate, "eager").read_text())["control_samples_s"] is None

    unchanged = run(gate, "--cxr-backend=twin", "--cxr-threshold=0.3")
    assert unchanged.ret == 0, unchanged.stdout.str()
    unchanged.stdout.fnmatch_lines(["twin *ok (relative+absolute)*"])

    slowed = run(gate, "--cxr-backend=twin+slow=1.5,eager+slow=1.5")
    assert slowed.ret == pytest.ExitCode.TESTS_FAILED, slowed.stdout.str()
    assert slowed.parseoutcomes()["failed"] == 2
    slowed.stdout.fnmatch_lines(
        [
            "*twin+slow=1.5: latency regression (threshold 10%, alpha 0.05)*",
            f"*baseline: *{FP}/tiny/twin.json*",
            "*relative: baseline * x eager time * -> current *ratio 1.*slower, p=*regressed*",
        ]
    )
    slowed.stdout.fnmatch_lines(["*eager+slow=1.5: latency regression*", "*eager.json*"])
    slowed.stdout.fnmatch_lines(["twin+slow=1.5 *REGRESSED +*"])  # the summary's verdict column
    assert not list((gate.path / "baselines").rglob("*slow*"))

    again = record(gate, "twin")
    again.stdout.fnmatch_lines(["baselines written under *", "twin * -> *twin.json*"])
    leftovers = [p.name for p in stored(gate, "twin").parent.iterdir()]
    assert sorted(leftovers) == ["eager.json", "twin.json"]  # no temp files


def test_update_never_stores_a_slowed_spec_but_judges_it(gate):
    result = run(gate, "--cxr-backend=eager,eager+slow=1.5", "--cxr-update-baselines")
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # judged against the eager just written
    result.stdout.fnmatch_lines(["*a synthetic slowdown is never stored as a baseline*"])
    assert [p.name for p in stored(gate, "eager").parent.iterdir()] == ["eager.json"]


def test_corrupt_baseline_fails_the_backend_and_is_left_alone(gate):
    path = stored(gate, "eager")
    path.parent.mkdir(parents=True)
    path.write_text('{"schema": "pytest-cxrperf/latency-baseline", "schema_version": 1, "samp')
    for extra in ([], ["--cxr-update-baselines"]):
        result = run(gate, "--cxr-backend=eager", *extra)
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        result.stdout.fnmatch_lines(
            ["*latency baseline unusable*", f"*{path}: truncated JSON*left as it is*"]
        )
        result.stdout.fnmatch_lines(["eager *ERROR*"])
    assert path.read_text().endswith('"samp')


def test_foreign_machine_baseline_uses_the_relative_check(gate):
    record(gate)
    foreign = "other-cpu-64c-t64-0badc0de"
    for backend in ("eager", "twin"):
        data = json.loads(stored(gate, backend).read_text())
        stored(gate, backend).unlink()
        data["fingerprint"] = foreign
        data["samples_s"] = [s * 3 for s in data["samples_s"]]  # another machine, another speed
        if data["control_samples_s"]:
            data["control_samples_s"] = [s * 3 for s in data["control_samples_s"]]
        target = stored(gate, backend, foreign)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(data))

    result = run(gate, "--cxr-backend=eager,twin", "--cxr-threshold=0.3")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "*foreign machine: the baseline was recorded on other-cpu-*"
            "absolute check skipped, relative check used*"
        ]
    )
    result.stdout.fnmatch_lines(["twin *ok (relative)*"])
    result.stdout.fnmatch_lines(["eager *incomparable*"])
    result.stdout.fnmatch_lines(["*the reference backend has only the absolute check*"])

    strict = run(gate, "--cxr-backend=eager", "--cxr-missing-baseline=fail")
    assert strict.ret == pytest.ExitCode.TESTS_FAILED


def test_improvement_is_reported_and_fails_on_request(gate):
    record(gate, "twin")
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
        "--rounds=5",
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
    data["samples_s"] = [s * 1.5 for s in data["samples_s"]]
    target = after / FP / "tiny" / "eager.json"
    target.parent.mkdir(parents=True)
    target.write_text(json.dumps(data))
    assert cxrperf(["baselines", "compare", str(before), str(after)]) == 1
    out = capsys.readouterr().out
    assert "REGRESSED +50% (absolute)" in out
    assert cxrperf(["baselines", "compare", str(before), str(before)]) == 0
    assert cxrperf(["baselines", "compare", str(stored(gate, "eager")), str(target)]) == 1
    capsys.readouterr()

    target.write_text("{")
    assert cxrperf(["baselines", "compare", str(before), str(after)]) == 2
    assert "truncated JSON" in capsys.readouterr().out
