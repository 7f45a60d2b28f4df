"""DICOM radiographs: the display pipeline, study grouping and clear errors (issue 13)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")

from pytest_cxrperf.errors import StudyError  # noqa: E402
from pytest_cxrperf.model.dicom import load_dicom_grayscale  # noqa: E402
from pytest_cxrperf.model.processor import load_grayscale  # noqa: E402
from pytest_cxrperf.model.study import check_studies, load_studies  # noqa: E402
from pytest_cxrperf.synth.dicom import write_dicom, write_dicom_studies  # noqa: E402
from pytest_cxrperf.synth.phantom import base_phantom  # noqa: E402

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


def bundled(name: str) -> Path:
    path = TEST_FILES / name
    if not path.is_file():
        pytest.skip(f"pydicom does not bundle {name}")
    return path


@pytest.fixture(scope="module")
def phantom() -> np.ndarray:
    return base_phantom(size=64, seed=3)


@pytest.mark.parametrize("photometric", ["MONOCHROME1", "MONOCHROME2"])
@pytest.mark.parametrize("bits", [8, 10, 12, 16])
def test_phantom_round_trips_through_dicom(tmp_path, phantom, photometric, bits):
    path = write_dicom(
        phantom, tmp_path / "x.dcm", photometric=photometric, bits=bits, slope=2, intercept=-1024
    )
    assert pydicom.dcmread(path).PhotometricInterpretation == photometric
    gray = load_grayscale(path)
    expected = (phantom - phantom.min()) / (phantom.max() - phantom.min())
    assert gray.dtype == np.float32 and gray.shape == phantom.shape
    np.testing.assert_allclose(gray, expected, atol=2.5 / 255 if bits == 8 else 2e-3)


def test_window_is_applied(tmp_path, phantom):
    """A narrow window saturates what lies outside it: the display is not the raw values."""
    path = write_dicom(phantom, tmp_path / "w.dcm", bits=12, window=(2048, 1024))
    gray = load_dicom_grayscale(path)
    stored = np.round(phantom * 4095)
    assert np.all(gray[stored <= 1536] == 0.0) and np.all(gray[stored >= 2560] == 1.0)


def test_extensionless_dicom_is_recognised(tmp_path, phantom):
    path = write_dicom(phantom, tmp_path / "IM0001")
    assert load_grayscale(path).shape == phantom.shape


def test_folder_of_dicoms_is_grouped_by_study(tmp_path):
    write_dicom_studies(tmp_path / "dicom", count=3, size=64)
    studies = load_studies(tmp_path / "dicom")
    assert len(studies) == 3
    for study in studies:
        assert study.frontal.parent == study.lateral.parent  # type: ignore[union-attr]
        assert study.frontal.name == "pa.dcm" and study.lateral.name == "lateral.dcm"  # type: ignore[union-attr]
        assert study.technique == "PA and lateral views of the chest."
    assert check_studies(tmp_path / "dicom") == studies


def test_pa_is_preferred_over_ap(tmp_path, phantom):
    write_dicom(phantom, tmp_path / "a.dcm", view="AP", study_uid="1.2.3", seed=1)
    write_dicom(phantom, tmp_path / "b.dcm", view="PA", study_uid="1.2.3", seed=1)
    (study,) = load_studies(tmp_path)
    assert study.frontal.name == "b.dcm" and study.lateral is None


def test_json_study_may_point_at_dicom(tmp_path, phantom):
    write_dicom(phantom, tmp_path / "f.dcm")
    (tmp_path / "s.json").write_text(json.dumps({"frontal": "f.dcm", "indication": "Cough."}))
    (study,) = check_studies(tmp_path)
    assert study.frontal == tmp_path / "f.dcm" and study.indication == "Cough."


def test_study_without_frontal_view_is_refused(tmp_path, phantom):
    write_dicom(phantom, tmp_path / "lat.dcm", view="LATERAL", study_uid="1.2.3")
    with pytest.raises(StudyError, match=r"no frontal view .*lat\.dcm \(LATERAL\)"):
        load_studies(tmp_path)


def test_ct_is_refused(tmp_path, phantom):
    path = write_dicom(phantom, tmp_path / "ct.dcm", modality="CT")
    with pytest.raises(StudyError, match=r"CT image .* not a radiograph"):
        load_grayscale(path)
    with pytest.raises(StudyError, match="not a radiograph"):
        load_grayscale(bundled("CT_small.dcm"))


def test_truncated_dicom_is_a_clear_error(tmp_path, phantom):
    path = write_dicom(phantom, tmp_path / "t.dcm", bits=16)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(StudyError, match="truncated"):
        load_grayscale(path)
    header_only = tmp_path / "h.dcm"
    header_only.write_bytes(path.read_bytes()[:200])
    with pytest.raises(StudyError, match=r"h\.dcm"):
        load_grayscale(header_only)


def test_junk_with_dicom_name_is_a_clear_error(tmp_path):
    path = tmp_path / "junk.dcm"
    path.write_bytes(b"hello, not dicom" * 4)
    with pytest.raises(StudyError, match=r"junk\.dcm"):
        load_grayscale(path)


def test_no_pixel_data_is_refused(tmp_path, phantom):
    path = write_dicom(phantom, tmp_path / "p.dcm")
    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.save_as(path)
    with pytest.raises(StudyError, match="no pixel data"):
        load_grayscale(path)


def test_rgb_is_refused(tmp_path, phantom):
    path = write_dicom(phantom, tmp_path / "rgb.dcm", bits=8)
    ds = pydicom.dcmread(path)
    rgb = np.repeat(ds.pixel_array[..., None], 3, axis=-1)
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.PixelData = rgb.tobytes()
    ds.save_as(path)
    with pytest.raises(StudyError, match="RGB with 3 samples per pixel"):
        load_grayscale(path)
    with pytest.raises(StudyError, match="OT image"):  # a colour secondary capture
        load_dicom_grayscale(bundled("SC_rgb_small_odd.dcm"))


def test_absurd_dimensions_are_refused_before_decoding(tmp_path, phantom):
    path = write_dicom(phantom, tmp_path / "big.dcm")
    ds = pydicom.dcmread(path)
    ds.Rows = 60_000
    ds.save_as(path)
    with pytest.raises(StudyError, match="claims 64x60000 pixels"):
        load_grayscale(path)


def test_compressed_without_decoder_names_the_package():
    from pytest_cxrperf.model.dicom import _decode

    path = bundled("MR_small_jpeg_ls_lossless.dcm")
    ds = pydicom.dcmread(path)
    try:
        ds.pixel_array  # noqa: B018
    except Exception:
        with pytest.raises(StudyError, match=r"pip install pylibjpeg pylibjpeg-libjpeg"):
            _decode(ds, path)
    else:
        pytest.skip("a JPEG-LS decoder is installed")


@pytest.mark.parametrize(
    "name", ["MR_small_RLE.dcm", "MR_small_bigendian.dcm", "MR_small_jp2klossless.dcm"]
)
def test_odd_encodings_decode_alike(name):
    """RLE, big-endian and JPEG 2000 lossless files decode to the display values of the plain
    one (pydicom's bundled MR images: the Modality check is skipped, the pixel pipeline is what
    is tested)."""
    from pytest_cxrperf.model.dicom import display_pixels

    if name.endswith("jp2klossless.dcm"):
        try:
            pydicom.dcmread(bundled(name)).pixel_array  # noqa: B018
        except Exception:
            pytest.skip("no JPEG 2000 decoder (pillow with openjpeg, or pylibjpeg-openjpeg)")
    reference = display_pixels(pydicom.dcmread(bundled("MR_small.dcm")), Path("ref"))
    values = display_pixels(pydicom.dcmread(bundled(name)), Path(name))
    np.testing.assert_array_equal(values, reference)


def test_voi_lut_sequence_is_applied(tmp_path, phantom):
    """A VOI LUT (here one that reverses the grey scale) wins over the raw values."""
    from pydicom.dataset import Dataset

    path = write_dicom(phantom, tmp_path / "lut.dcm", bits=12)
    ds = pydicom.dcmread(path)
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 16]
    item.add_new(0x00283006, "US", list(range(4095, -1, -1)))  # LUTData
    ds.VOILUTSequence = [item]
    ds.save_as(path)
    gray = load_dicom_grayscale(path)
    expected = (phantom - phantom.min()) / (phantom.max() - phantom.min())
    np.testing.assert_allclose(gray, 1.0 - expected, atol=2e-3)
