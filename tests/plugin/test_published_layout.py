"""The suite end to end on a synthetic checkpoint in MAIRA-2's published layout and phantom
DICOM studies (issue 13): the equivalence tests, eager fp32 against itself and a twin."""

from __future__ import annotations

import pytest

from .conftest import FAST
from .test_bad_input import synth


def test_suite_runs_on_maira2_layout_and_dicom(suite: pytest.Pytester) -> None:
    pytest.importorskip("pydicom")
    model = suite.path / "maira2"
    synth("checkpoint", model, "--shards", 2)
    synth("dicom", suite.path / "dicom", "--count", 2, "--size", 128)
    result = suite.runpytest_subprocess(
        *FAST,
        "-v",  # the findings agreement of passing backends is printed with -v
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


def test_mlflow_folder_runs_its_checkpoint_and_says_so(suite: pytest.Pytester) -> None:
    """An MLflow folder (CXRReportGen's form) whose artifacts hold a MAIRA-2-layout checkpoint:
    the checkpoint runs and the summary names the folder it came from."""
    folder = suite.path / "mlflow"
    synth("checkpoint", folder / "artifacts" / "checkpoints")
    (folder / "MLmodel").write_text(
        "flavors:\n  python_function:\n    loader_module: mlflow.pyfunc.model\n"
        "    python_model: python_model.pkl\n"
    )
    (folder / "python_model.pkl").write_bytes(b"\x80\x04")  # never opened
    result = suite.runpytest_subprocess(
        *FAST,
        "-m",
        "cxr_equivalence",
        "--cxr-max-new-tokens=2",
        "--cxr-backend=eager",
        f"--cxr-model={folder}",
    )
    output = result.stdout.str()
    assert result.ret == 0, output + result.stderr.str()
    assert f"note: --cxr-model={folder} is an MLflow pyfunc model" in output
    assert "the weights in artifacts/checkpoints were loaded as the Hugging Face layout" in output
