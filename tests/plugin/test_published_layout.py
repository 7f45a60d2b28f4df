"""The suite end to end on a synthetic checkpoint in MAIRA-2's published layout and phantom
DICOM studies (issue 13): the equivalence tests, eager fp32 against itself and a twin."""

from __future__ import annotations

import pytest

from pytest_cxrperf.synth.checkpoint import write_maira2_checkpoint
from pytest_cxrperf.synth.dicom import write_dicom_studies

from .conftest import FAST


def test_suite_runs_on_maira2_layout_and_dicom(suite: pytest.Pytester) -> None:
    pytest.importorskip("pydicom")
    model = write_maira2_checkpoint(suite.path / "maira2", shards=2)
    write_dicom_studies(suite.path / "dicom", count=2, size=128)
    result = suite.runpytest_subprocess(
        *FAST,
        "-m",
        "cxr_equivalence",
        "--cxr-max-new-tokens=4",
        "--cxr-backend=eager,eager-bf16",
        f"--cxr-model={model}",
        f"--cxr-studies={suite.path / 'dicom'}",
    )
    output = result.stdout.str()
    assert result.ret == 0, output + result.stderr.str()
    assert f"model {model}" in output
    assert "eager-bf16: 2/2 studies agree with eager fp32" in output
