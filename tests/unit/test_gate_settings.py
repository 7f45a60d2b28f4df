"""The latency gate's options and ini values."""

from pathlib import Path

import pytest

from pytest_cxrperf.errors import SettingsError
from pytest_cxrperf.settings import build_settings, parse_fraction, parse_thresholds

LISTS = ("cxr_tolerances", "cxr_thresholds")


def settings_from(cli=None, ini=None, rootdir=None):
    cli, ini = cli or {}, ini or {}
    return build_settings(
        lambda n: cli.get(n), lambda n: ini.get(n, [] if n in LISTS else ""), rootdir
    )


def test_gate_defaults(tmp_path):
    s = settings_from(rootdir=tmp_path)
    assert s.baseline_dir == tmp_path / "baselines"
    assert (s.threshold, s.alpha, s.missing_baseline) == (0.10, 0.01, "warn")
    assert (s.time_budget_s, s.batch_rounds, s.unknown) == (100.0, 0, "warn")
    assert not s.update_baselines and not s.fail_on_improvement


def test_baseline_dir_cli_is_relative_to_cwd_ini_to_rootdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert (
        settings_from({"cxr_baseline_dir": "here"}, rootdir=Path("/r")).baseline_dir
        == tmp_path / "here"
    )
    assert settings_from(
        ini={"cxr_baseline_dir": "perf/bl"}, rootdir=Path("/r")
    ).baseline_dir == Path("/r/perf/bl")
    assert settings_from(ini={"cxr_baseline_dir": "/abs"}).baseline_dir == Path("/abs")


def test_thresholds_and_flags():
    s = settings_from(
        {"cxr_threshold": "15%", "cxr_update_baselines": True, "cxr_alpha": "0.01"},
        {
            "cxr_thresholds": ["openvino = 0.2", "# comment", "compile=25%"],
            "cxr_fail_on_improvement": "true",
            "cxr_missing_baseline": "fail",
        },
    )
    assert s.threshold == pytest.approx(0.15) and s.alpha == 0.01
    assert s.threshold_for("openvino") == 0.2 and s.threshold_for("compile") == 0.25
    assert s.threshold_for("eager") == pytest.approx(0.15)
    assert s.update_baselines and s.fail_on_improvement and s.missing_baseline == "fail"


@pytest.mark.parametrize(
    "cli, ini, message",
    [
        (
            {"cxr_missing_baseline": "maybe"},
            {},
            "--cxr-missing-baseline='maybe': choose one of warn, fail",
        ),
        ({"cxr_threshold": "ten"}, {}, "--cxr-threshold='ten' is not a number"),
        ({"cxr_threshold": "0"}, {}, "must be above 0"),
        ({"cxr_alpha": "0.7"}, {}, "--cxr-alpha='0.7' must be above 0 and below 0.5"),
        ({}, {"cxr_thresholds": ["openvino"]}, "must look like 'openvino = 0.15'"),
        ({}, {"cxr_fail_on_improvement": "perhaps"}, "write true or false"),
    ],
)
def test_invalid_gate_settings(cli, ini, message):
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        settings_from(cli, ini)


def test_parse_helpers():
    assert parse_fraction("x", "10%") == pytest.approx(0.1)
    assert parse_thresholds([" ipex = 0.3 "]) == {"ipex": 0.3}
