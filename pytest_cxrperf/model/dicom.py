"""DICOM radiographs through pydicom: pixels as the radiologist sees them, and study grouping.

A DICOM image becomes the same float32 [0, 1] grayscale array a PNG does (bright = dense), after
the display pipeline the standard defines: stored values -> modality LUT (rescale slope/intercept)
-> VOI LUT (a LUT, else window centre/width) -> MONOCHROME1 inverted. Compressed transfer syntaxes
are decoded by the plugins pydicom uses; when none is installed the error names the package.

A folder without study ``*.json`` files is read as DICOM files grouped by StudyInstanceUID;
ViewPosition (PA / AP / LATERAL) says which image is the frontal and which the lateral view.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import StudyError
from .formats import MAX_IMAGE_PIXELS
from .study_record import Study

RADIOGRAPH_MODALITIES = ("CR", "DX", "DR", "RG")  # computed / digital radiography
FRONTAL_VIEWS = ("PA", "AP")  # PA first: the preferred frontal view when a study has both
LATERAL_VIEWS = ("LATERAL", "LL", "RL", "LAT")
MAX_DIMENSION = 16_384
MIN_DIMENSION = 16
_MONOCHROME = ("MONOCHROME1", "MONOCHROME2")

# transfer syntax UID prefix/UID -> what to install when pydicom has no decoder for it
_DECODER_PACKAGES = {
    "1.2.840.10008.1.2.4.50": "pylibjpeg pylibjpeg-libjpeg (or pillow)",  # JPEG baseline
    "1.2.840.10008.1.2.4.51": "pylibjpeg pylibjpeg-libjpeg (or pillow)",  # JPEG extended
    "1.2.840.10008.1.2.4.57": "pylibjpeg pylibjpeg-libjpeg",  # JPEG lossless
    "1.2.840.10008.1.2.4.70": "pylibjpeg pylibjpeg-libjpeg",  # JPEG lossless SV1
    "1.2.840.10008.1.2.4.80": "pylibjpeg pylibjpeg-libjpeg (or pyjpegls)",  # JPEG-LS lossless
    "1.2.840.10008.1.2.4.81": "pylibjpeg pylibjpeg-libjpeg (or pyjpegls)",  # JPEG-LS near-lossless
    "1.2.840.10008.1.2.4.90": "pylibjpeg pylibjpeg-openjpeg",  # JPEG 2000 lossless
    "1.2.840.10008.1.2.4.91": "pylibjpeg pylibjpeg-openjpeg",  # JPEG 2000
    "1.2.840.10008.1.2.4.201": "pylibjpeg pylibjpeg-openjpeg",  # HTJ2K
    "1.2.840.10008.1.2.4.202": "pylibjpeg pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.203": "pylibjpeg pylibjpeg-openjpeg",
}


def is_dicom(path: Path) -> bool:
    """A ``.dcm``/``.dicom`` name, or the ``DICM`` magic at byte 128 (exports often have no
    extension)."""
    if path.suffix.lower() in (".dcm", ".dicom"):
        return True
    try:
        with path.open("rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def _read(path: Path, *, pixels: bool) -> Any:
    try:
        import pydicom
        from pydicom.errors import InvalidDicomError
    except ImportError as exc:  # pragma: no cover - pydicom is a dependency
        raise StudyError(
            f"image {path} is DICOM but pydicom is not installed: pip install pydicom"
        ) from exc
    if not path.is_file():
        raise StudyError(f"image {path} does not exist")
    try:
        return pydicom.dcmread(path, stop_before_pixels=not pixels)
    except InvalidDicomError as exc:
        raise StudyError(f"image {path} is not a DICOM file ({exc})") from exc
    except (OSError, EOFError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StudyError(f"image {path} is a corrupt or truncated DICOM file: {exc}") from exc


def _check_header(ds: Any, path: Path) -> None:
    """Everything about a file that can be refused without decoding its pixels."""
    modality = str(getattr(ds, "Modality", "") or "")
    if modality and modality not in RADIOGRAPH_MODALITIES:
        raise StudyError(
            f"image {path} is a {modality} image (Modality {modality}), not a radiograph; "
            f"only {', '.join(RADIOGRAPH_MODALITIES)} are accepted: remove it from the study"
        )
    if "PixelData" not in ds:
        raise StudyError(
            f"image {path} has no pixel data (a DICOM {getattr(ds, 'SOPClassUID', 'object')!s} "
            "without an image); remove it from the study"
        )
    photometric = str(getattr(ds, "PhotometricInterpretation", "") or "")
    samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    if samples != 1 or photometric not in _MONOCHROME:
        raise StudyError(
            f"image {path} is {photometric or 'colour'} with {samples} samples per pixel; a "
            "radiograph is MONOCHROME1 or MONOCHROME2 grayscale: export the original radiograph"
        )
    rows, columns = int(getattr(ds, "Rows", 0) or 0), int(getattr(ds, "Columns", 0) or 0)
    if not (MIN_DIMENSION <= rows <= MAX_DIMENSION and MIN_DIMENSION <= columns <= MAX_DIMENSION):
        raise StudyError(
            f"image {path} claims {columns}x{rows} pixels; a radiograph has between "
            f"{MIN_DIMENSION} and {MAX_DIMENSION} on each side: fix or downsample the file"
        )
    if rows * columns > MAX_IMAGE_PIXELS:
        raise StudyError(
            f"image {path} is {columns}x{rows} pixels, more than the "
            f"{MAX_IMAGE_PIXELS:,} accepted; downsample it first"
        )
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if frames != 1:
        raise StudyError(f"image {path} has {frames} frames; a radiograph has one: split the file")


def _decode(ds: Any, path: Path) -> np.ndarray:
    syntax = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")
    try:
        return np.asarray(ds.pixel_array)
    except (NotImplementedError, RuntimeError, ImportError) as exc:
        package = _DECODER_PACKAGES.get(syntax)
        if package is None:
            raise StudyError(
                f"image {path}: pixel data cannot be decoded (transfer syntax {syntax}): {exc}"
            ) from exc
        raise StudyError(
            f"image {path} is compressed (transfer syntax {syntax}) and no installed package "
            f"decodes it: pip install {package}"
        ) from exc
    except (ValueError, EOFError, OSError, AttributeError, KeyError, TypeError) as exc:
        raise StudyError(f"image {path} has corrupt or truncated pixel data: {exc}") from exc


def display_pixels(ds: Any, path: Path) -> np.ndarray:
    """Decoded stored values -> float64 display values, bright = dense."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    stored = _decode(ds, path)
    if stored.ndim != 2:
        raise StudyError(f"image {path} decodes to shape {stored.shape}, not one 2-D image")
    try:
        modality = np.asarray(apply_modality_lut(stored, ds))
        if modality.dtype.kind == "f" and np.array_equal(modality, np.round(modality)):
            modality = modality.astype(np.int64)  # a VOI LUT is indexed by integers
        values = np.asarray(apply_voi_lut(modality, ds), dtype=np.float64)
    except (ValueError, IndexError, TypeError, KeyError) as exc:
        raise StudyError(f"image {path} has an unusable modality or VOI LUT: {exc}") from exc
    if str(ds.PhotometricInterpretation) == "MONOCHROME1":  # low values are white: invert
        values = -values
    return values


def load_dicom_grayscale(path: Path) -> np.ndarray:
    """A DICOM radiograph as float32 grayscale in [0, 1]; every problem is a :class:`StudyError`
    naming the file."""
    ds = _read(path, pixels=True)
    _check_header(ds, path)
    values = display_pixels(ds, path)
    if not np.isfinite(values).all():
        raise StudyError(f"image {path} contains NaN or infinite pixel values")
    low, high = float(values.min()), float(values.max())
    if high - low < 1e-12:
        return np.zeros_like(values, dtype=np.float32)
    return ((values - low) / (high - low)).astype(np.float32)


@dataclass(frozen=True)
class _Header:
    path: Path
    study_uid: str
    view: str  # "frontal" | "lateral" | ""
    position: str
    order: tuple[int, str]  # PA before AP; then the file name


def _view(position: str) -> str:
    if position in FRONTAL_VIEWS:
        return "frontal"
    if position in LATERAL_VIEWS:
        return "lateral"
    return ""


def _header(path: Path) -> _Header:
    ds = _read(path, pixels=False)
    position = str(getattr(ds, "ViewPosition", "") or "").strip().upper()
    uid = str(getattr(ds, "StudyInstanceUID", "") or "").strip()
    if not uid:
        raise StudyError(f"DICOM file {path} has no StudyInstanceUID; it cannot be grouped")
    rank = FRONTAL_VIEWS.index(position) if position in FRONTAL_VIEWS else len(FRONTAL_VIEWS)
    return _Header(path, uid, _view(position), position, (rank, path.name))


def dicom_files(folder: Path) -> list[Path]:
    """The DICOM files under ``folder`` (recursively), sorted."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and is_dicom(p))


def _technique(frontal: str, lateral: bool) -> str:
    return (
        f"{frontal} and lateral views of the chest." if lateral else f"{frontal} view of the chest."
    )


def load_dicom_studies(folder: Path) -> list[Study]:
    """One study per StudyInstanceUID of the DICOM files under ``folder``, sorted by UID.

    The frontal view is a PA image (else AP), the lateral a LATERAL/LL/RL one; other images of a
    study are ignored. A study without a frontal view is refused (MAIRA-2 needs one)."""
    groups: dict[str, list[_Header]] = {}
    for path in dicom_files(folder):
        header = _header(path)
        groups.setdefault(header.study_uid, []).append(header)
    studies = []
    for uid, headers in sorted(groups.items()):
        frontals = sorted((h for h in headers if h.view == "frontal"), key=lambda h: h.order)
        laterals = sorted((h for h in headers if h.view == "lateral"), key=lambda h: h.path.name)
        if not frontals:
            found = ", ".join(f"{h.path.name} ({h.position or 'no ViewPosition'})" for h in headers)
            raise StudyError(
                f"DICOM study {uid} in {folder} has no frontal view (ViewPosition PA or AP); "
                f"it holds {found}: add the frontal image or remove the study"
            )
        frontal = frontals[0]
        studies.append(
            Study(
                name=f"study-{uid}",
                frontal=frontal.path,
                lateral=laterals[0].path if laterals else None,
                technique=_technique(frontal.position, bool(laterals)),
                source=frontal.path,
            )
        )
    return studies
