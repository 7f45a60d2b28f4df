"""MLflow model folders (CXRReportGen's only distribution, the Azure ML registry): a supported
checkpoint in the artifacts loads; anything else is a clear error that reports what is there; the
pickled loader and the code folder are never run (issue 13)."""

from __future__ import annotations

import json
import pickle
import re
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import save_file

from pytest_cxrperf.errors import ModelLoadError
from pytest_cxrperf.model import mlflow_layout
from pytest_cxrperf.model.loader import build_preset, check_model, load_model, save_checkpoint
from pytest_cxrperf.synth.checkpoint import write_maira2_checkpoint

# the shape of the Azure ML registry's MLmodel for a pyfunc model (values are this test's own)
MLMODEL = """\
flavors:
  python_function:
    artifacts:
      model_dir:
        path: artifacts/checkpoints
        uri: /build/agent/checkpoints
    cloudpickle_version: 2.2.1
    code: code
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.pyfunc.model
    python_model: python_model.pkl
    python_version: 3.10.14
metadata:
  base_model_name: CxrReportGen
  base_model_task: image-text-to-text
mlflow_version: 2.19.0
model_size_bytes: 123
signature:
  inputs: '[{"type": "binary", "name": "frontal_image", "required": true}, {"type":
    "string", "name": "indication", "required": false}]'
  outputs: '[{"type": "string", "name": "output", "required": true}]'
  params: null
"""


class _Trap:
    """Unpickling this creates the marker file: the proof that nothing was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import builtins

        return builtins.open, (str(self.marker), "w")


def mlflow_folder(root: Path, marker: Path, mlmodel: str = MLMODEL) -> Path:
    """An MLflow folder whose pickled loader, pickle weights and code would each leave
    ``marker`` behind if they were ever run; the artifacts are left to the test."""
    folder = root / "cxrreportgen"
    (folder / "code").mkdir(parents=True)
    (folder / "MLmodel").write_text(mlmodel)
    trap = pickle.dumps(_Trap(marker))
    (folder / "python_model.pkl").write_bytes(trap)
    (folder / "code" / "cxr_scoring.py").write_text(f"open({str(marker)!r}, 'w')\n")
    (folder / "conda.yaml").write_text("dependencies: []\n")
    (folder / "artifacts").mkdir()
    return folder


def test_the_trap_is_real(tmp_path):
    """The pickle used below does create its marker when it is unpickled."""
    marker = tmp_path / "sprung"
    pickle.loads(pickle.dumps(_Trap(marker)))
    assert marker.exists()


@pytest.fixture(scope="module")
def maira2(tmp_path_factory) -> Path:
    return write_maira2_checkpoint(tmp_path_factory.mktemp("maira2") / "ckpt", shards=2)


def test_maira2_checkpoint_in_the_artifacts_loads(maira2, tmp_path):
    marker = tmp_path / "code-ran"
    folder = mlflow_folder(tmp_path, marker)
    shutil.copytree(maira2, folder / "artifacts" / "checkpoints")
    check_model(str(folder))
    reference = load_model(str(folder))
    assert reference.name == str(folder)  # its baselines are filed under the folder given
    assert reference.config.extra.get("layout") == "maira2"
    [notice] = reference.notices
    assert "artifacts/checkpoints" in notice and "'maira2'" in notice
    assert "CxrReportGen" in notice and "its code is not run" in notice
    assert not marker.exists()
    assert "cxr_scoring" not in sys.modules


def test_own_format_in_an_undeclared_artifacts_folder_loads(tmp_path):
    marker = tmp_path / "code-ran"
    mlmodel = "flavors:\n  python_function:\n    loader_module: my_loader\n"
    folder = mlflow_folder(tmp_path, marker, mlmodel)
    save_checkpoint(build_preset("tiny"), folder / "artifacts" / "v1.0.0")
    reference = load_model(str(folder))
    assert "artifacts/v1.0.0" in reference.notices[0]
    assert "cxrperf_config.json" in reference.notices[0]
    assert not marker.exists()


def test_the_notice_reaches_the_session(maira2, tmp_path):
    from pytest_cxrperf.session import CxrSession

    folder = mlflow_folder(tmp_path, tmp_path / "code-ran")
    shutil.copytree(maira2, folder / "artifacts" / "checkpoints")
    session = CxrSession(SimpleNamespace(model=str(folder)), [])  # type: ignore[arg-type]
    assert session.reference.name == str(folder)
    assert any("artifacts/checkpoints" in n for n in session.notices)


def _unknown_weights(folder: Path) -> None:
    checkpoints = folder / "artifacts" / "checkpoints"
    checkpoints.mkdir(parents=True)
    state = {
        "encoder.blocks.0.attn.weight": torch.zeros(4, 4),
        "encoder.blocks.1.attn.weight": torch.zeros(4, 4),
        "decoder.layers.0.mlp.weight": torch.zeros(4, 4),
        "head.weight": torch.zeros(2, 4),
    }
    save_file(state, str(checkpoints / "model.safetensors"))
    (checkpoints / "pytorch_model.bin").write_bytes(pickle.dumps(_Trap(folder / "bin-read")))
    (checkpoints / "prompt.txt").write_text("never read\n")


@pytest.mark.parametrize("parser", ["yaml", "minimal"])
def test_cxrreportgen_without_a_supported_layout_is_refused(tmp_path, monkeypatch, parser):
    if parser == "minimal":
        monkeypatch.setitem(sys.modules, "yaml", None)  # import yaml raises ImportError
    marker = tmp_path / "code-ran"
    folder = mlflow_folder(tmp_path, marker)
    _unknown_weights(folder)
    for check in (check_model, load_model):
        with pytest.raises(ModelLoadError) as caught:
            check(str(folder))
        message = str(caught.value)
        assert "MLflow pyfunc model (base_model_name CxrReportGen)" in message
        assert "the pickled python_model.pkl" in message
        assert "never executes code from a model folder" in message
        assert "model_dir at artifacts/checkpoints" in message
        assert "artifacts/checkpoints/model.safetensors (" in message
        assert re.search(r"checkpoints/pytorch_model.bin \(\d+ B, pickle: not opened\)", message)
        assert "1 safetensors file(s) hold 4 tensors" in message
        assert "named decoder.layers.*, encoder.blocks.*, head.*" in message
        assert "cxrperf_config.json + model.safetensors" in message
        assert "model_type maira2" in message
        assert '"Your own model and studies"' in message
    assert not marker.exists()
    assert not (folder / "bin-read").exists()
    assert "cxr_scoring" not in sys.modules


def test_unsupported_model_type_and_unreadable_header_are_reported(tmp_path):
    folder = mlflow_folder(tmp_path, tmp_path / "code-ran")
    checkpoints = folder / "artifacts" / "checkpoints"
    checkpoints.mkdir()
    (checkpoints / "config.json").write_text(json.dumps({"model_type": "other_vlm"}))
    (checkpoints / "model-00001-of-00002.safetensors").write_bytes(b"\xff" * 16)
    with pytest.raises(ModelLoadError) as caught:
        check_model(str(folder))
    message = str(caught.value)
    assert "config.json has model_type 'other_vlm' (supported: maira2)" in message
    assert "header unreadable: model-00001-of-00002.safetensors (claims a" in message


def test_missing_artifacts_are_named(tmp_path):
    folder = mlflow_folder(tmp_path, tmp_path / "code-ran")
    with pytest.raises(ModelLoadError, match=r"artifacts/checkpoints does not exist"):
        check_model(str(folder))


def test_many_files_are_listed_up_to_ten(tmp_path):
    folder = mlflow_folder(tmp_path, tmp_path / "code-ran")
    checkpoints = folder / "artifacts" / "checkpoints"
    checkpoints.mkdir()
    for i in range(13):
        (checkpoints / f"part-{i:02d}.npy").write_bytes(b"\0" * 2048)
    with pytest.raises(ModelLoadError) as caught:
        check_model(str(folder))
    message = str(caught.value)
    assert "part-09.npy (2.0 KiB) and 3 more" in message
    assert "part-10.npy" not in message


@pytest.mark.parametrize("parser", ["yaml", "minimal"])
@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("flavors: {python_function: [\n", {"yaml": "while parsing", "minimal": "no 'flavors'"}),
        ("- just\n- a list\n", {"yaml": "not a mapping", "minimal": "no 'flavors' mapping"}),
        ("mlflow_version: 2.19.0\n", {"yaml": "no 'flavors'", "minimal": "no 'flavors'"}),
        ("flavors:\n  a: 1\n  oops\n", {"yaml": "could not find expected", "minimal": "line 3"}),
        (
            "flavors: !!python/object/apply:os.system ['true']\n",
            {"yaml": "could not determine a constructor", "minimal": "no 'flavors'"},
        ),
    ],
    ids=["syntax", "list", "no-flavors", "not-key-value", "python-tag"],
)
def test_malformed_mlmodel_is_a_clear_error(tmp_path, monkeypatch, parser, text, detail):
    if parser == "minimal":
        monkeypatch.setitem(sys.modules, "yaml", None)
    folder = mlflow_folder(tmp_path, tmp_path / "code-ran", text)
    with pytest.raises(ModelLoadError, match="MLmodel is not a valid MLflow MLmodel") as caught:
        check_model(str(folder))
    assert detail[parser] in str(caught.value)
    assert "pass that checkpoint folder itself, or fix the file" in str(caught.value)


def test_mlmodel_not_utf8(tmp_path):
    folder = mlflow_folder(tmp_path, tmp_path / "code-ran")
    (folder / "MLmodel").write_bytes(b"flavors:\n  \xff\xfe\n")
    with pytest.raises(ModelLoadError, match="is not a readable MLmodel file"):
        load_model(str(folder))


def test_minimal_parser_reads_what_is_needed():
    data = mlflow_layout.parse_minimal(MLMODEL + "saved:\n- one\n- two: 2\n  three: 3\nlast: x\n")
    pyfunc = data["flavors"]["python_function"]
    assert pyfunc["artifacts"]["model_dir"]["path"] == "artifacts/checkpoints"
    assert pyfunc["python_model"] == "python_model.pkl"
    assert data["metadata"]["base_model_name"] == "CxrReportGen"
    assert data["signature"]["params"] is None
    assert data["last"] == "x"
    with pytest.raises(ValueError, match="line 2 is not 'key: value'"):
        mlflow_layout.parse_minimal("flavors:\n  {oops}\n")


def test_name_prefixes():
    assert mlflow_layout.name_prefix("text_decoder.model.layers.3.mlp.weight") == (
        "text_decoder.model"
    )
    assert mlflow_layout.name_prefix("blocks.0.weight") == "blocks"
    assert mlflow_layout.name_prefix("lm_head.weight") == "lm_head"
    assert mlflow_layout.name_prefix("scale") == "scale"


def test_a_checkpoint_folder_with_an_mlmodel_loads_as_itself(maira2, tmp_path):
    """An MLmodel beside config.json does not hide the checkpoint at the root."""
    folder = Path(shutil.copytree(maira2, tmp_path / "both"))
    (folder / "MLmodel").write_text("not yaml at all: [\n")
    check_model(str(folder))
