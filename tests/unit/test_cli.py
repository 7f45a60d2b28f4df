"""`cxrperf baselines show/compare` and the calibration simulation, on fabricated baselines."""

import shutil
import subprocess
from pathlib import Path

import pytest

from pytest_cxrperf.cli import main
from pytest_cxrperf.cli.snapshots import load_side
from pytest_cxrperf.gate.baselines import Baseline, BaselineStore
from pytest_cxrperf.gate.calibration import calibrate_backend

FP = "cpu-x-2c-t2-12345678"


def make(backend="openvino", scale=1.0, n=10):
    samples = tuple(scale * (0.5 + (i % 5) / 500) for i in range(n))
    control = tuple((0.25 if backend == "eager" else 1.0) + (i % 5) / 500 for i in range(n))
    return Baseline(
        backend=backend, model="tiny", fingerprint=FP, samples_s=samples,
        control_samples_s=control, new_tokens=32, threads=2, rounds=n, precision="fp32",
        created="2025-01-01T00:00:00+00:00", libraries={"torch": "2.13.0"},
        control="probe" if backend == "eager" else "eager",
    )  # fmt: skip


@pytest.fixture
def stores(tmp_path):
    before, after = BaselineStore(tmp_path / "a"), BaselineStore(tmp_path / "b")
    for store in (before, after):
        store.write(make("eager"))
    before.write(make("openvino"))
    after.write(make("openvino", scale=1.5))  # 50% slower, also relative to the control
    after.write(make("compile"))  # new
    return before.root, after.root


def test_compare_stores_fails_on_a_regression(stores, capsys):
    a, b = stores
    assert main(["baselines", "compare", str(a), str(b)]) == 1
    out = capsys.readouterr().out
    assert "openvino.json" in out and "REGRESSED +50%" in out
    assert "compile.json" in out and "new" in out
    assert main(["baselines", "compare", str(a), str(a)]) == 0
    assert main(["baselines", "compare", str(b), str(a)]) == 0  # faster: improved, not failed
    assert "improved" in capsys.readouterr().out
    assert main(["baselines", "compare", str(b), str(a), "--fail-on-improvement"]) == 1


def test_compare_two_files(stores):
    a, b = stores
    old, new = a / FP / "tiny" / "openvino.json", b / FP / "tiny" / "openvino.json"
    assert main(["baselines", "compare", str(old), str(new)]) == 1
    # 50 % slower is below half of a 250 % threshold: unchanged
    assert main(["baselines", "compare", str(old), str(new), "--threshold", "250%"]) == 0
    assert main(["baselines", "compare", str(old), str(b)]) == 2  # a file and a store


def test_compare_reads_a_git_revision(stores, tmp_path, monkeypatch, capsys):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    a, b = stores
    repo = tmp_path / "repo"
    shutil.copytree(a, repo / "baselines")
    monkeypatch.chdir(repo)

    def git(*args):
        subprocess.run(["git", *args], check=True, capture_output=True)

    git("init", "-q")
    git("add", "baselines")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "baselines")
    snapshot, single = load_side("HEAD:baselines")
    assert not single and set(snapshot) == {f"{FP}/tiny/eager.json", f"{FP}/tiny/openvino.json"}
    assert main(["baselines", "compare", "HEAD:baselines", str(b)]) == 1
    assert main(["baselines", "compare", "HEAD:baselines", "baselines"]) == 0
    assert load_side("HEAD:not-there") == ({}, False)  # no baselines yet on that branch
    capsys.readouterr()
    assert main(["baselines", "compare", "no-such-rev:baselines", "baselines"]) == 2


def test_compare_reads_the_machine_class_layout_from_git(tmp_path, monkeypatch, capsys):
    """The committed store (``<cpu>/<environment>/<model>/<backend>.json``) read from a git
    revision holds what the directory holds: a slowed copy of a baseline then fails."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    committed = Path(__file__).resolve().parents[2] / "baselines"
    repo = tmp_path / "repo"
    shutil.copytree(committed, repo / "baselines")
    monkeypatch.chdir(repo)
    commit = ("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "b")
    for args in (("init", "-q"), ("add", "baselines"), commit):
        subprocess.run(["git", *args], check=True, capture_output=True)
    from_git, _ = load_side("HEAD:baselines")
    from_dir, _ = load_side("baselines")
    assert from_git.keys() == from_dir.keys() and len(from_git) >= 10
    assert all(len(Path(key).parts) == 4 for key in from_git)
    assert main(["baselines", "compare", "HEAD:baselines", "baselines"]) == 0
    capsys.readouterr()


def test_show_lists_baselines_and_errors(stores, capsys):
    a, _ = stores
    (a / FP / "tiny" / "compile.json").write_text("{")
    assert main(["baselines", "show", "--baseline-dir", str(a)]) == 2
    out = capsys.readouterr().out
    assert "openvino" in out and "0.50x" not in out and "ERROR" in out
    assert main(["baselines", "show", "--baseline-dir", str(a / "none")]) == 2
    assert "does not exist; pass --baseline-dir" in capsys.readouterr().err


def test_unknown_options_are_refused_outside_pytest_commands(capsys):
    with pytest.raises(SystemExit):
        main(["baselines", "show", "--cxr-backend=eager"])


def test_findings_is_wired_or_says_why_not(capsys):
    try:
        code = main(["findings", "--help"])
    except SystemExit as exc:  # argparse's --help
        code = exc.code
    assert code in (0, 2)
    captured = capsys.readouterr()
    assert "findings" in captured.out + captured.err


def test_calibration_simulation_detects_big_slowdowns_and_rarely_cries_wolf():
    import random

    rng = random.Random(0)
    control = [rng.lognormvariate(0, 0.05) for _ in range(30)]
    samples = [c * 0.5 * rng.lognormvariate(0, 0.02) for c in control]
    result = calibrate_backend(
        samples, control, rounds=10, baseline_rounds=10, threshold=0.1, alpha=0.05, trials=100
    )
    assert result["false_alarm"] <= 0.1
    assert result[1.5] >= 0.95
    assert result["smallest"] is not None and 1.1 < result["smallest"] < 1.5
