"""``cxrperf synth``: the synthetic stand-ins CI runs end to end (issue 13)."""

import pytest

from pytest_cxrperf.cli import main as cxrperf
from pytest_cxrperf.model.loader import check_model
from pytest_cxrperf.model.study import check_studies


def test_synth_writes_a_loadable_checkpoint_and_dicom_studies(tmp_path, capsys):
    pytest.importorskip("pydicom")
    assert cxrperf(["synth", "checkpoint", str(tmp_path / "m"), "--layout", "maira2"]) == 0
    assert cxrperf(["synth", "dicom", str(tmp_path / "d"), "--count", "3", "--size", "64"]) == 0
    out = capsys.readouterr().out
    assert "maira2-layout checkpoint (tiny)" in out and "wrote 6 DICOM files" in out
    assert (tmp_path / "m" / "model.safetensors.index.json").is_file()
    check_model(str(tmp_path / "m"))
    assert len(check_studies(tmp_path / "d")) == 3
