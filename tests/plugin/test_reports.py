"""The report files of a real run: Markdown (and the GitHub job summary), HTML, BMF, and
pytest-benchmark's own JSON of our latency tests."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_cxrperf.machine import machine_class

from .conftest import FAST

CHECK_HTML = Path(__file__).resolve().parents[2] / "scripts" / "check_html.py"


def test_a_failing_run_writes_every_report_and_the_job_summary(suite, monkeypatch):
    out = suite.path / "out"
    summary = suite.path / "step-summary.md"
    summary.write_text("## an earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = suite.runpytest_subprocess(
        *FAST,
        "--cxr-backend=eager,wrong",
        f"--cxr-markdown={out / 'cxrperf.md'}",
        f"--cxr-html={out / 'cxrperf.html'}",
        f"--cxr-bmf={out / 'bmf.json'}",
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    # the terminal: the table first, detail only for the backend that failed
    result.stdout.fnmatch_lines(["*cxrperf summary*", "backend *precision*rounds*"])
    result.stdout.fnmatch_lines(["equivalence FAILED: wrong: study-001: *token_ids*"])
    result.stdout.fnmatch_lines(["passed: eager (details with -v)"])
    assert "findings: eager:" not in result.stdout.str()

    text = (out / "cxrperf.md").read_text()
    assert text.startswith("## :x: cxrperf: FAILED - 1 of 2 backend(s) failed a gate or check")
    assert "- wrong: equivalence FAILED:" in text and "| wrong | :x: fail |" in text
    assert "<details><summary>:x: wrong</summary>" in text
    posted = summary.read_text()
    assert posted.startswith("## an earlier step\n") and text.strip() in posted

    page = (out / "cxrperf.html").read_text()
    assert "data:image/png;base64," in page  # the shipped studies' images, embedded
    assert page.count("<h3>study-") == 4 and "<svg" in page
    if shutil.which("chromium"):  # the real report renders without a console message
        shot = out / "cxrperf.png"
        done = subprocess.run(
            [sys.executable, str(CHECK_HTML), str(out / "cxrperf.html"), "--screenshot", str(shot)],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr

    bmf = json.loads((out / "bmf.json").read_text())
    # each machine class is its own history (as its baselines are)
    base = f"cxrperf/{machine_class(len(os.sched_getaffinity(0))).key}/toy"  # default threads
    assert {f"{base}/eager", f"{base}/wrong", f"{base}/wrong/prefill"} <= set(bmf)
    assert bmf[f"{base}/eager"]["latency"]["value"] > 0


def fake_ceilings(cache_dir, threads):
    """A ceilings cache file for this machine, so that the run reads it instead of measuring."""
    from pytest_cxrperf.ceilings import Ceilings, cache_path
    from pytest_cxrperf.machine import environment_id

    path = cache_path(threads, cache_dir)
    path.parent.mkdir(parents=True)
    stored = Ceilings(
        10.0, 20.0, None, 5.0, threads, machine_class(threads).cpu_key, environment_id(), {}
    )
    path.write_text(json.dumps(stored.to_dict()))


def test_pytest_benchmark_json_holds_our_rounds_and_stage_medians(suite, monkeypatch):
    """... and the roofline column reads this machine's cached ceilings."""
    target = suite.path / "benchmark.json"
    monkeypatch.setenv("CXRPERF_CACHE_DIR", str(suite.path / "cache"))
    fake_ceilings(suite.path / "cache", threads=1)
    result = suite.runpytest_subprocess(
        *FAST,
        "--cxr-backend=eager",
        "--cxr-threads=1",
        "-m",
        "cxr_latency",
        f"--benchmark-json={target}",
        f"--cxr-json={suite.path / 'results.json'}",
    )
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(
        ["backend *decode ms/tok*roofline v/p/d*", "eager *fp32* %*", "roofline v/p/d: *cached*"]
    )
    results = json.loads((suite.path / "results.json").read_text())
    assert results["roofline"]["ceilings"]["fp32_gflops"] == 10.0
    assert set(results["backends"]["eager"]["roofline"]) == {"vision", "prefill", "decode"}
    assert results["model"]["cost"]["prompt_length"] > 0
    data = json.loads(target.read_text())
    (bench,) = [b for b in data["benchmarks"] if b["name"] == "test_latency[eager]"]
    assert bench["stats"]["rounds"] == 3 and bench["stats"]["median"] > 0
    extra = bench["extra_info"]
    assert extra["backend"] == "eager" and extra["control"] == "probe"
    assert len(extra["control_samples_s"]) == 3
    for key in ("median_vision_s", "median_prefill_s", "median_per_token_s", "median_total_s"):
        assert extra[key] > 0, key


@pytest.mark.parametrize(
    "option, problem",
    [("--cxr-markdown", "is a directory"), ("--cxr-html", "is a file, not a directory")],
)
def test_a_report_path_that_cannot_be_written_is_a_usage_error(suite, option, problem):
    (suite.path / "afile").write_text("")
    path = suite.path if problem == "is a directory" else suite.path / "afile" / "r.html"
    result = suite.runpytest_subprocess(*FAST, "--cxr-backend=eager", f"{option}={path}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{option} {path}*{problem}*"])


NOISY = '''

@register_backend
class NoisyBackend(Backend):
    """eager fp32 that has something to say when it is used."""

    name = "noisy"
    precision = "fp32"

    def notice(self):
        return "noisy is archived by its vendor: measure its successors beside it"

    def prepare(self, reference, example):
        return TorchRunner(reference.model, reference.processor)
'''


def test_a_backends_notice_is_said_once_in_the_terminal_and_kept_in_the_json(suite):
    conftest = suite.path / "conftest.py"
    conftest.write_text(conftest.read_text() + NOISY)
    target = suite.path / "out.json"
    result = suite.runpytest_subprocess(
        *FAST, "--cxr-backend=eager,noisy", "-m", "cxr_equivalence", f"--cxr-json={target}"
    )
    assert result.ret == 0, result.stdout.str()
    said = "note: noisy is archived by its vendor: measure its successors beside it"
    assert result.stdout.str().count(said) == 1
    report = json.loads(target.read_text())
    assert report["notices"] == [said.removeprefix("note: ")]
