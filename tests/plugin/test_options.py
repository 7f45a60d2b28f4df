"""The plugin's behaviour, through real pytest runs of the suite (pytester)."""

import json

import pytest

from .conftest import FAST


def run(suite, *args):
    return suite.runpytest_subprocess(*FAST, *args)


def test_parametrized_over_selected_backends_with_names_as_ids(suite):
    result = run(suite, "--cxr-backend=eager,eager-bf16", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["*test_latency*[[]eager[]]*"])
    result.stdout.fnmatch_lines(["*test_latency*[[]eager-bf16[]]*"])
    result.stdout.fnmatch_lines(["*test_equivalence*[[]eager-bf16-study-001-token_ids[]]*"])
    assert "test_latency[compile]" not in result.stdout.str()
    assert result.ret == 0


def test_unknown_backend_is_a_usage_error(suite):
    result = run(suite, "--cxr-backend=eager,nope")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown backend 'nope'*known backends:*eager*"])


def test_named_unavailable_backend_is_an_error_with_the_reason(suite):
    result = run(suite, "--cxr-backend=missing")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*'missing' was requested but cannot run here*pip install frobnicate*"]
    )


def test_all_skips_unavailable_backends_visibly(suite):
    result = run(suite, "--cxr-backend=all", "-k", "missing or eager and not bf16", "-rs")
    assert result.ret == 0
    out = result.stdout.str()
    assert "cxrperf: not run: missing: missing needs the 'frobnicate' package" in out
    result.stdout.fnmatch_lines(["*cxrperf summary*", "not run: missing: *frobnicate*"])
    result.stdout.fnmatch_lines(["SKIPPED*missing: *frobnicate*"])


def test_equivalence_failure_fails_the_run_and_names_the_check(suite):
    result = run(suite, "--cxr-backend=eager,wrong", "-k", "equivalence")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["*wrong on study-*: first difference at step 0*", "*equivalence FAILED: wrong:*"]
    )
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] >= 3  # token ids, prefill logits, teacher-forced top-1 per study
    assert "eager" in result.stdout.str()


def test_passing_run_prints_the_table_and_writes_json(suite):
    target = suite.path / "out" / "results.json"
    result = run(suite, "--cxr-backend=eager,eager-bf16", f"--cxr-json={target}")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "*cxrperf summary*",
            "backend*precision*rounds*mean s*std s*median s*speedup*equivalence*",
            "eager *fp32*3*1.00x*ok (*studies)*",
            "eager-bf16 *bf16*3*ok (*studies)*",
        ]
    )
    data = json.loads(target.read_text())
    assert data["schema_version"] == 1
    assert data["settings"]["max_new_tokens"] == 40 and data["settings"]["rounds"] == 3
    assert {"cpu", "cores", "isa", "fingerprint", "libraries"} <= set(data["machine"])
    assert data["model"]["name"] == "toy" and data["model"]["parameters"] > 0
    eager = data["backends"]["eager"]
    for key in (
        "median_s",
        "mean_s",
        "stdev_s",
        "samples_s",
        "speedup_vs_eager",
        "stage_medians_s",
    ):
        assert key in eager
    assert len(eager["samples_s"]) == 3
    assert eager["speedup_vs_eager"] == 1.0
    assert set(eager["stage_medians_s"]) >= {"vision_s", "prefill_s", "per_token_s"}
    bf16 = data["backends"]["eager-bf16"]
    assert len(bf16["control_samples_s"]) == 3  # interleaved eager control rounds
    assert bf16["equivalence_ok"] is True
    assert bf16["equivalence"]["study-001"]["prefill_logits"]["rel_err"] < 0.05


def test_settings_from_ini(suite):
    suite.makeini(
        """
        [pytest]
        cxr_backend = eager-bf16
        cxr_rounds = 3
        cxr_max_new_tokens = 3
        cxr_tolerances =
            bf16.teacher_top1 = 0.5
        """
    )
    result = suite.runpytest_subprocess("--cxr-suite", "--cxr-warmup=0", "--collect-only")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*cxrperf: model=toy backends=eager-bf16 *rounds=3*new_tokens=3*"])


def test_bad_ini_tolerance_is_a_usage_error(suite):
    suite.makeini(
        """
        [pytest]
        cxr_tolerances =
            bf16.teacher_top = 0.5
        """
    )
    result = suite.runpytest_subprocess("--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*cxr_tolerances: unknown metric*bf16.teacher_top*"])


def test_bad_model_is_a_clear_error(suite, tmp_path):
    result = run(suite, f"--cxr-model={tmp_path / 'nothing-here'}", "-k", "latency")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*model directory*does not exist*"])


def test_bad_option_value_is_a_usage_error(suite):
    result = run(suite, "--cxr-rounds=zero")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--cxr-rounds='zero' is not an integer*"])
