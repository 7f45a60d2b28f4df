"""Bad input never goes green and never shows a traceback (issue 10).

One row per bad input: what the sandbox holds, the options, the exit status and a fragment of the
one message that must name the value or the file. Exit 4 (usage error) for everything found before
the work starts; exit 1 only where a backend's test really fails (a baseline file it cannot use).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pytest_cxrperf.model.presets import PRESETS
from pytest_cxrperf.model.study import sample_dir

from .conftest import FAST

USAGE, FAILED, OK = 4, 1, 0
LIST_ONLY = ("--cxr-suite", "--co", "-q")
EQUIVALENCE = ("-m", "cxr_equivalence", "--cxr-max-new-tokens=4")
LATENCY = (
    "--cxr-suite",
    "-m",
    "cxr_latency",
    "--cxr-threads=1",
    "--cxr-max-new-tokens=4",
    "--cxr-rounds=40",
)
root_can_write_anything = pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders"
)


# ---- sandbox builders ---------------------------------------------------------------------------
def studies(path: Path) -> Path:
    """A copy of the shipped studies in ``path/studies``."""
    target = path / "studies"
    shutil.copytree(sample_dir(), target)
    return target


def study_with(
    change: Callable[[Path], None],
) -> Callable[[Path], None]:
    return lambda path: change(studies(path))


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` (no pixel data needs to be decoded to
    learn the size: the check must refuse it from the header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def replace_with_folder(path: Path) -> None:
    path.unlink()
    path.mkdir()


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def edit_json(path: Path, **changes: object) -> None:
    data = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path.write_text(json.dumps(data))


def checkpoint(change: Callable[[dict], None] | None = None, pickle_only: bool = False):
    def build(path: Path) -> None:
        folder = path / "ckpt"
        folder.mkdir()
        if pickle_only:
            (folder / "pytorch_model.bin").write_bytes(b"\x80\x04")
            return
        config = PRESETS["tiny"].to_dict()
        if change is not None:
            change(config)
        (folder / "cxrperf_config.json").write_text(json.dumps(config))
        (folder / "model.safetensors").write_bytes(b"")  # never read: the config fails first

    return build


def dicom_study(change: Callable[[Path, Path], None]) -> Callable[[Path], None]:
    """A phantom DICOM study in ``path/dicom`` (pa.dcm + lateral.dcm), then ``change(pa, lat)``."""

    def build(path: Path) -> None:
        from pytest_cxrperf.synth.dicom import write_dicom_studies

        frontal, lateral = write_dicom_studies(path / "dicom", count=1, size=64)
        change(frontal, lateral)

    return build


def as_ct(path: Path) -> None:
    import pydicom

    ds = pydicom.dcmread(path)
    ds.Modality = "CT"
    ds.save_as(path)


def synth(*args: object) -> None:
    """``cxrperf synth ...`` in a child process: pytester restores sys.modules after each test,
    and torch's operator libraries cannot be imported twice into one process."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "pytest_cxrperf.cli", "synth", *map(str, args)]
    subprocess.run(command, check=True, capture_output=True)


def maira2(change: Callable[[dict], None]) -> Callable[[Path], None]:
    """A synthetic MAIRA-2-layout checkpoint in ``path/maira2`` whose config.json is changed."""

    def build(path: Path) -> None:
        folder = path / "maira2"
        synth("checkpoint", folder)
        config = json.loads((folder / "config.json").read_text())
        change(config)
        (folder / "config.json").write_text(json.dumps(config))

    return build


def cxrreportgen(path: Path) -> None:
    """An MLflow folder shaped like CXRReportGen's (pyfunc, pickled loader) whose artifacts hold
    safetensors of a layout this project does not read (written by hand: no torch here)."""
    folder = path / "cxrreportgen"
    checkpoints = folder / "artifacts" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (folder / "MLmodel").write_text(
        "flavors:\n  python_function:\n    artifacts:\n      model_dir:\n"
        "        path: artifacts/checkpoints\n    loader_module: mlflow.pyfunc.model\n"
        "    python_model: python_model.pkl\nmetadata:\n  base_model_name: CxrReportGen\n"
    )
    (folder / "python_model.pkl").write_bytes(b"\x80\x04")
    header = json.dumps({"encoder.weight": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})
    data = struct.pack("<Q", len(header)) + header.encode() + b"\0" * 4
    (checkpoints / "model.safetensors").write_bytes(data)


def a_file(name: str) -> Callable[[Path], None]:
    return lambda path: (path / name).write_text("not a folder\n")


def read_only(name: str) -> Callable[[Path], None]:
    def build(path: Path) -> None:
        (path / name).mkdir()
        (path / name).chmod(0o555)

    return build


# what a recorded baseline file is turned into (the latency test must fail, naming the file)
BASELINE_DAMAGE: dict[str, Callable[[str], str]] = {
    "corrupt": lambda text: text.replace('"samples_s"', '"samples_s" ::', 1),
    "truncated": lambda text: text[: len(text) // 2],
    "merge-conflict": lambda text: "<<<<<<< HEAD\n" + text + "=======\n{}\n>>>>>>> other\n",
    "wrong-schema": lambda text: text.replace("pytest-cxrperf/latency-baseline", "something-else"),
    "infinite-sample": lambda text: _samples(text, "Infinity"),
    "nan-sample": lambda text: _samples(text, "NaN"),
    "absurd-sample": lambda text: _samples(text, "1e-300"),
}


def _samples(text: str, value: str) -> str:
    data = json.loads(text)
    data["samples_s"] = ["@"] * len(data["samples_s"])
    return json.dumps(data).replace('"@"', value)


@dataclass(frozen=True)
class Row:
    id: str
    args: tuple[str, ...]
    code: int
    fragment: str
    setup: Callable[[Path], None] | None = None
    ini: str = ""
    env: dict[str, str] = field(default_factory=dict)
    damage: str | None = None  # record eager's baseline first, then damage it (BASELINE_DAMAGE)
    marks: tuple[pytest.MarkDecorator, ...] = ()


ROWS = [
    # ---- a sane run stays green ------------------------------------------------------------------
    Row("good-run-lists-its-tests", LIST_ONLY, OK, "test_equivalence"),
    Row("empty-ini-backend-means-default", LIST_ONLY, OK, "[eager", ini="cxr_backend ="),
    # ---- options ---------------------------------------------------------------------------------
    Row("empty-backend", ("--cxr-backend=", *LIST_ONLY), USAGE, "--cxr-backend is given but empty"),
    Row("empty-model", ("--cxr-model=", *LIST_ONLY), USAGE, "--cxr-model is given but empty"),
    Row("unknown-backend", ("--cxr-backend=nope", *LIST_ONLY), USAGE, "unknown backend 'nope'"),
    Row("unavailable-backend", ("--cxr-backend=missing",), USAGE, "pip install frobnicate"),
    Row("all-and-names", ("--cxr-backend=all,eager",), USAGE, "'all' cannot be combined"),
    Row("backend-twice", ("--cxr-backend=eager,eager",), USAGE, "names a backend twice"),
    Row("unknown-modifier", ("--cxr-backend=eager+fast=2",), USAGE, "unknown modifier 'fast'"),
    Row("slowdown-below-one", ("--cxr-backend=eager+slow=0.5",), USAGE, "between 1 and 100"),
    Row("rounds-not-a-number", ("--cxr-rounds=zero",), USAGE, "--cxr-rounds='zero' is not an"),
    Row("rounds-zero", ("--cxr-rounds=0",), USAGE, "--cxr-rounds=0 must be at least 1"),
    Row("threads-zero", ("--cxr-threads=0",), USAGE, "--cxr-threads=0 must be at least 1"),
    Row("warmup-negative", ("--cxr-warmup=-1",), USAGE, "--cxr-warmup=-1 must be at least 0"),
    Row("threshold-not-a-number", ("--cxr-threshold=ten",), USAGE, "--cxr-threshold='ten'"),
    Row("alpha-too-large", ("--cxr-alpha=0.9",), USAGE, "--cxr-alpha='0.9' must be above 0"),
    Row("session-noise-word", ("--cxr-session-noise=high",), USAGE, "--cxr-session-noise='high'"),
    Row("missing-baseline-policy", ("--cxr-missing-baseline=maybe",), USAGE, "'maybe'"),
    Row(
        "threads-beyond-the-cores-warns",
        ("--cxr-threads=999", *LIST_ONLY),
        OK,
        "--cxr-threads=999 exceeds the",
    ),
    # ---- ini overrides ---------------------------------------------------------------------------
    Row(
        "tolerance-unknown-precision",
        LIST_ONLY,
        USAGE,
        "'fp64.prefill_rel_err' names neither a precision (fp32, bf16, int8-weights, int4-weights, "
        "int8)",
        ini="cxr_tolerances =\n    fp64.prefill_rel_err = 0.1",
    ),
    Row(
        "tolerance-unknown-metric",
        LIST_ONLY,
        USAGE,
        "unknown metric",
        ini="cxr_tolerances =\n    bf16.teacher_top = 0.5",
    ),
    Row(
        "tolerance-not-a-line",
        LIST_ONLY,
        USAGE,
        "must look like 'bf16.prefill_rel_err = 0.08'",
        ini="cxr_tolerances =\n    bf16",
    ),
    Row(
        "tolerance-negative",
        LIST_ONLY,
        USAGE,
        "fp32.prefill_rel_err = -1 is out of range; prefill_rel_err must be >= 0",
        ini="cxr_tolerances =\n    fp32.prefill_rel_err = -1",
    ),
    Row(
        "tolerance-above-one",
        LIST_ONLY,
        USAGE,
        "teacher_top1 must be between 0 and 1",
        ini="cxr_tolerances =\n    fp32.teacher_top1 = 5",
    ),
    Row(
        "tolerance-not-finite",
        LIST_ONLY,
        USAGE,
        "bf16.tie_margin = nan is out of range",
        ini="cxr_tolerances =\n    bf16.tie_margin = nan",
    ),
    Row(
        "threshold-unknown-backend",
        LIST_ONLY,
        USAGE,
        "cxr_thresholds: 'openvnio' is not a backend; known backends: eager",
        ini="cxr_thresholds =\n    openvnio = 0.15",
    ),
    Row(
        "threshold-for-a-slowdown-label",
        LIST_ONLY,
        USAGE,
        "write 'eager = ...'",
        ini="cxr_thresholds =\n    eager+slow = 0.2",
    ),
    # ---- model -----------------------------------------------------------------------------------
    Row("unknown-preset", ("--cxr-model=huge", *LIST_ONLY), USAGE, "--cxr-model='huge' is neither"),
    Row(
        "model-dir-missing",
        ("--cxr-model={path}/nothing-here", *LIST_ONLY),
        USAGE,
        "nothing-here does not exist",
    ),
    Row(
        "pickle-weights",
        ("--cxr-model={path}/ckpt", *LIST_ONLY),
        USAGE,
        "pytorch_model.bin); they are refused",
        setup=checkpoint(pickle_only=True),
    ),
    Row(
        "config-transformers-rejects",
        ("--cxr-model={path}/ckpt", *LIST_ONLY),
        USAGE,
        "cxrperf_config.json: transformers rejects this architecture",
        setup=checkpoint(lambda c: c["decoder"].update(hidden_size=130)),
    ),
    Row(
        "config-unknown-key",
        ("--cxr-model={path}/ckpt", *LIST_ONLY),
        USAGE,
        "cxrperf_config.json is not a valid architecture config",
        setup=checkpoint(lambda c: c.update(colour="blue")),
    ),
    Row(
        "published-layout-unknown-model-type",
        ("--cxr-model={path}/maira2", *LIST_ONLY),
        USAGE,
        "model_type 'llava_next' is not supported; supported: maira2",
        setup=maira2(lambda c: c.update(model_type="llava_next")),
    ),
    Row(
        "published-layout-misshaped-tensor",
        ("--cxr-model={path}/maira2", *LIST_ONLY),
        USAGE,
        "multi_modal_projector.layers.0.weight has shape (128, 64), config.json needs (128, 32)",
        setup=maira2(lambda c: c["vision_config"].update(hidden_size=32, num_attention_heads=2)),
    ),
    Row(
        "mlflow-cxrreportgen-unsupported-artifacts",
        ("--cxr-model={path}/cxrreportgen", *LIST_ONLY),
        USAGE,
        "is an MLflow pyfunc model (base_model_name CxrReportGen) whose loader is the pickled "
        "python_model.pkl",
        setup=cxrreportgen,
    ),
    # ---- studies and images ----------------------------------------------------------------------
    Row(
        "study-folder-missing",
        ("--cxr-studies={path}/none", *LIST_ONLY),
        USAGE,
        "study folder",
    ),
    Row(
        "study-folder-empty",
        ("--cxr-studies={path}", *LIST_ONLY),
        USAGE,
        "holds no *.json study files",
        setup=lambda path: None,
    ),
    Row(
        "study-json-syntax",
        ("--cxr-studies={path}/studies", *LIST_ONLY),
        USAGE,
        "study-003.json is not valid JSON",
        setup=study_with(lambda s: (s / "study-003.json").write_text('{"frontal": ')),
    ),
    Row(
        "study-not-utf8",
        ("--cxr-studies={path}/studies", *LIST_ONLY),
        USAGE,
        "study-003.json is not UTF-8 text",
        setup=study_with(lambda s: (s / "study-003.json").write_bytes(b'{"frontal": "\xff"}')),
    ),
    Row(
        "study-without-frontal",
        ("--cxr-studies={path}/studies", *LIST_ONLY),
        USAGE,
        "study-003.json needs a 'frontal' image",
        setup=study_with(lambda s: edit_json(s / "study-003.json", frontal=None)),
    ),
    Row(
        "image-missing",
        ("--cxr-studies={path}/studies", *LIST_ONLY),
        USAGE,
        "study-002-lateral.png does not exist (the lateral view of study file",
        setup=study_with(lambda s: (s / "study-002-lateral.png").unlink()),
    ),
    Row(
        "image-truncated",
        ("--cxr-studies={path}/studies", *LIST_ONLY),
        USAGE,
        "study-004-frontal.png is corrupt or truncated",
        setup=study_with(lambda s: truncate(s / "study-004-frontal.png")),
    ),
    Row(
        "image-is-text",
        ("--cxr-studies={path}/studies", *LIST_ONLY),
        USAGE,
        "study-001-frontal.png cannot be read as an image",
        setup=study_with(lambda s: (s / "study-001-frontal.png").write_text("a radiograph\n")),
    ),
    Row(
        "image-huge",
        ("--cxr-studies={path}/studies", *LIST_ONLY),
        USAGE,
        "study-001-frontal.png has more than the 64,000,000 pixels accepted",
        setup=study_with(
            lambda s: (s / "study-001-frontal.png").write_bytes(png_claiming(20000, 20000))
        ),
    ),
    Row(
        "image-over-the-limit",
        ("--cxr-studies={path}/studies", *LIST_ONLY),
        USAGE,
        "study-001-frontal.png is 9000x9000 pixels, more than the 64,000,000 accepted",
        setup=study_with(
            lambda s: (s / "study-001-frontal.png").write_bytes(png_claiming(9000, 9000))
        ),
    ),
    Row(
        "image-is-a-directory",
        ("--cxr-studies={path}/studies", *LIST_ONLY),
        USAGE,
        "study-001-frontal.png is a directory",
        setup=study_with(lambda s: replace_with_folder(s / "study-001-frontal.png")),
    ),
    Row(
        "dicom-truncated",
        ("--cxr-studies={path}/dicom", *LIST_ONLY),
        USAGE,
        "pa.dcm has corrupt or truncated pixel data",
        setup=dicom_study(lambda frontal, _lateral: truncate(frontal)),
    ),
    Row(
        "dicom-ct",
        ("--cxr-studies={path}/dicom", *LIST_ONLY),
        USAGE,
        "pa.dcm is a CT image (Modality CT), not a radiograph",
        setup=dicom_study(lambda frontal, _lateral: as_ct(frontal)),
    ),
    Row(
        "dicom-no-frontal",
        ("--cxr-studies={path}/dicom", *LIST_ONLY),
        USAGE,
        "has no frontal view (ViewPosition PA or AP); it holds lateral.dcm (LATERAL)",
        setup=dicom_study(lambda frontal, _lateral: frontal.unlink()),
    ),
    # ---- output paths ----------------------------------------------------------------------------
    Row(
        "json-path-is-a-directory",
        ("--cxr-json={path}", *LIST_ONLY),
        USAGE,
        "is a directory; give a file path",
    ),
    Row(
        "json-parent-is-a-file",
        ("--cxr-json={path}/taken/out.json", *EQUIVALENCE),
        USAGE,
        "taken is a file, not a directory",
        setup=a_file("taken"),
    ),
    Row(
        "json-folder-read-only",
        ("--cxr-json={path}/locked/out.json", *LIST_ONLY),
        USAGE,
        "cannot be written",
        setup=read_only("locked"),
        marks=(root_can_write_anything,),
    ),
    Row(
        "baseline-store-is-a-file",
        ("--cxr-baseline-dir={path}/taken", *LIST_ONLY),
        USAGE,
        "baseline store",
        setup=a_file("taken"),
    ),
    Row(
        "baseline-store-under-a-file",
        ("--cxr-baseline-dir={path}/taken/store", "--cxr-update-baselines", *LIST_ONLY),
        USAGE,
        "lies under the file",
        setup=a_file("taken"),
    ),
    Row(
        "baseline-store-read-only",
        ("--cxr-baseline-dir={path}/locked", "--cxr-update-baselines", *LIST_ONLY),
        USAGE,
        "--cxr-update-baselines must write it",
        setup=read_only("locked"),
        marks=(root_can_write_anything,),
    ),
    Row(
        "openvino-cache-under-a-file",
        ("--cxr-backend=openvino-f32", *LIST_ONLY),
        USAGE,
        "set CXRPERF_CACHE_DIR to a writable folder",
        setup=a_file("taken"),
        env={"CXRPERF_CACHE_DIR": "{path}/taken"},
    ),
    # ---- baseline files: that backend's latency test fails, naming the file ----------------------
    *(
        Row(f"baseline-{name}", LATENCY, FAILED, "eager.json", damage=name)
        for name in BASELINE_DAMAGE
    ),
]


def _fill(text: str, path: Path) -> str:
    return text.replace("{path}", str(path))


@pytest.mark.parametrize("row", [pytest.param(r, id=r.id, marks=r.marks) for r in ROWS])
def test_bad_input(suite: pytest.Pytester, row: Row, monkeypatch: pytest.MonkeyPatch) -> None:
    path = suite.path
    if row.id.startswith("openvino"):
        pytest.importorskip("openvino")
    if row.setup is not None:
        row.setup(path)
    if row.ini:
        suite.makeini("[pytest]\n" + row.ini + "\n")
    for name, value in row.env.items():
        monkeypatch.setenv(name, _fill(value, path))
    args = [*FAST, "-W", "default", *(_fill(a, path) for a in row.args)]
    if row.damage is not None:
        recorded = suite.runpytest_subprocess(*args, "--cxr-update-baselines")
        assert recorded.ret == OK, recorded.stdout.str()
        files = sorted((path / "baselines").rglob("eager.json"))
        assert files, "no baseline was recorded"
        for file in files:
            file.write_text(BASELINE_DAMAGE[row.damage](file.read_text()))
    result = suite.runpytest_subprocess(*args)
    output = result.stdout.str() + "\n" + result.stderr.str()
    assert result.ret == row.code, output
    assert row.fragment in output, output
    assert "Traceback" not in output, output
