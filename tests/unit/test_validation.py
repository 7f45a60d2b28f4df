"""The up-front checks of :mod:`pytest_cxrperf.validation` and the files they guard (issue 10)."""

import json
import math
import os
import re
import stat
from pathlib import Path

import pytest

from pytest_cxrperf import validation
from pytest_cxrperf.atomic import default_file_mode, write_json_atomic
from pytest_cxrperf.cli import main
from pytest_cxrperf.errors import SettingsError
from pytest_cxrperf.gate.baselines import SCHEMA_VERSION, Baseline, BaselineError

BACKENDS = ["eager", "eager-bf16", "openvino"]


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        (
            "fp64.prefill_rel_err",
            0.1,
            "names neither a precision (fp32, bf16, int8-weights, int4-weights, int8)",
        ),
        ("eager.prefil_rel_err", 0.1, "unknown metric"),
        ("fp32.prefill_rel_err", -1.0, "prefill_rel_err must be >= 0"),
        ("fp32.teacher_top1", 5.0, "teacher_top1 must be between 0 and 1"),
        ("bf16.tie_margin", math.inf, "out of range"),
        ("bf16.tie_margin", math.nan, "out of range"),
    ],
)
def test_bad_tolerances_are_refused(key, value, fragment):
    with pytest.raises(SettingsError) as caught:
        validation.check_tolerances({key: value}, BACKENDS)
    assert fragment in str(caught.value)


def test_good_tolerances_pass():
    validation.check_tolerances(
        {"bf16.teacher_top1": 1.0, "openvino.tie_margin": 0.0, "int8-weights.prefill_rel_err": 2},
        BACKENDS,
    )


def test_thresholds_must_name_backends():
    validation.check_thresholds({"openvino": 0.15}, BACKENDS)
    with pytest.raises(SettingsError, match="'openvnio' is not a backend; known backends: eager"):
        validation.check_thresholds({"openvnio": 0.15}, BACKENDS)
    with pytest.raises(SettingsError, match=re.escape("write 'eager = ...'")):
        validation.check_thresholds({"eager+slow=1.5": 0.2}, BACKENDS)


def test_explicitly_empty_options_are_refused():
    validation.check_empty_options({"cxr_backend": None, "cxr_update_baselines": None})
    with pytest.raises(SettingsError, match="--cxr-backend is given but empty"):
        validation.check_empty_options({"cxr_backend": " "})


def test_threads_beyond_the_cores_warn():
    cores = validation.cores_available()
    assert validation.threads_warning(cores) is None
    assert f"exceeds the {cores} core(s)" in str(validation.threads_warning(cores + 1))


def test_unwritable_places_are_refused_up_front(tmp_path, monkeypatch):
    monkeypatch.setattr(validation, "_writable", lambda folder: False)
    with pytest.raises(SettingsError, match="cannot be written"):
        validation.check_output_file(tmp_path / "out.json", "--cxr-json")
    with pytest.raises(SettingsError, match="--cxr-update-baselines must write it"):
        validation.check_baseline_store(tmp_path / "store", update=True)
    validation.check_baseline_store(tmp_path / "store", update=False)  # only read: fine


def test_openvino_cache_must_be_writable(tmp_path, monkeypatch):
    from pytest_cxrperf.backends.base import Availability
    from pytest_cxrperf.session import ResolvedBackend
    from pytest_cxrperf.settings import BackendSpec

    monkeypatch.setenv("CXRPERF_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(validation, "_writable", lambda folder: False)
    eager = ResolvedBackend(BackendSpec("eager"), None, Availability(True))
    openvino = ResolvedBackend(BackendSpec("openvino"), None, Availability(True))
    validation.check_openvino_cache([eager])  # no OpenVINO backend: the cache is not needed
    with pytest.raises(SettingsError, match="set CXRPERF_CACHE_DIR to a writable folder"):
        validation.check_openvino_cache([eager, openvino])


@pytest.mark.parametrize("value", ["Infinity", "NaN", "1e-300", "0", "-1"])
def test_baseline_samples_must_be_finite_and_measurable(value):
    data = {
        "schema": "pytest-cxrperf/latency-baseline",
        "samples_s": [0.5, 0.5],
        "backend": "eager",
        "model": "toy",
        "fingerprint": "fp",
        "settings": {"new_tokens": 8, "threads": 1, "rounds": 2},
    }
    text = json.dumps(data).replace("[0.5, 0.5]", f"[0.5, {value}]")
    loaded = {**json.loads(text), "schema_version": SCHEMA_VERSION}
    with pytest.raises(BaselineError, match="samples_s"):
        Baseline.from_json(loaded, "b.json")


def test_json_report_is_readable_like_any_new_file(tmp_path):
    target = tmp_path / "out.json"
    old = os.umask(0o022)
    try:
        assert default_file_mode() == 0o644
        write_json_atomic(target, {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert json.loads(target.read_text()) == {"a": 1}


def test_show_refuses_a_store_that_is_a_file(tmp_path, capsys):
    store = tmp_path / "baselines"
    store.write_text("")
    assert main(["baselines", "show", "--baseline-dir", str(store)]) == 2
    assert "is a file, not a baseline store folder" in capsys.readouterr().err


def test_a_path_under_a_file_is_named(tmp_path):
    (tmp_path / "taken").write_text("")
    with pytest.raises(SettingsError, match="lies under the file"):
        validation.check_baseline_store(Path(tmp_path / "taken" / "store"), update=False)
