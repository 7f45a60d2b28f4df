"""Phantom studies written as DICOM radiographs (DX), for tests and CI.

``write_dicom`` stores one [0, 1] image with a chosen photometric interpretation, bit depth,
rescale slope/intercept and window; ``write_dicom_studies`` writes a folder of studies (frontal +
lateral) that :func:`pytest_cxrperf.model.study.load_studies` groups by StudyInstanceUID. UIDs are
derived from the seed, so the files are identical on every run.

``cxrperf synth dicom DIR [--count N] [--size PX]`` writes such a folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .studies import sample_study

PHOTOMETRICS = ("MONOCHROME1", "MONOCHROME2")
_DX_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation


def _uid(*parts: object) -> str:
    from pydicom.uid import generate_uid

    return str(generate_uid(entropy_srcs=[str(p) for p in parts]))


def write_dicom(
    image: np.ndarray,
    path: str | Path,
    *,
    view: str = "PA",
    photometric: str = "MONOCHROME2",
    bits: int = 12,
    slope: float = 1.0,
    intercept: float = 0.0,
    window: tuple[float, float] | None = None,
    modality: str = "DX",
    study_uid: str | None = None,
    seed: int = 0,
) -> Path:
    """Store ``image`` (float [0, 1], bright = dense) as an uncompressed DICOM file.

    The stored values are ``(display - intercept) / slope``, inverted for MONOCHROME1, on
    ``bits`` bits (8 to 16), so that a reader that applies the display pipeline gets ``image``
    back (up to quantisation). ``window`` = (centre, width) in rescaled units."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import UID, ExplicitVRLittleEndian

    if photometric not in PHOTOMETRICS:
        raise ValueError(f"photometric must be one of {PHOTOMETRICS}")
    if not 8 <= bits <= 16:
        raise ValueError("bits must be between 8 and 16")
    top = (1 << bits) - 1
    display = np.clip(np.asarray(image, dtype=np.float64), 0.0, 1.0)
    if photometric == "MONOCHROME1":
        display = 1.0 - display
    stored = np.round(display * top).astype(np.uint8 if bits == 8 else np.uint16)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    study_uid = study_uid or _uid("study", seed)
    instance_uid = _uid("instance", seed, view, target.name)

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(_DX_IMAGE_STORAGE)
    meta.MediaStorageSOPInstanceUID = UID(instance_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = _DX_IMAGE_STORAGE
    ds.SOPInstanceUID = instance_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = _uid("series", seed, view)
    ds.Modality = modality
    ds.PatientID = f"PHANTOM-{seed}"
    ds.PatientName = "Phantom^Chest"
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = view
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 8 if bits == 8 else 16
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    ds.RescaleSlope = f"{slope:g}"
    ds.RescaleIntercept = f"{intercept:g}"
    ds.RescaleType = "US"
    if window is not None:
        ds.WindowCenter = f"{window[0]:g}"
        ds.WindowWidth = f"{window[1]:g}"
    ds.PixelData = stored.tobytes()
    ds.save_as(target, enforce_file_format=True)
    return target


# (photometric, bits) per study, so a folder exercises both interpretations and several depths
VARIANTS = (("MONOCHROME2", 12), ("MONOCHROME1", 16), ("MONOCHROME2", 8), ("MONOCHROME1", 10))


def write_dicom_studies(
    directory: str | Path, count: int = 2, size: int = 256, seed: int = 0
) -> list[Path]:
    """``count`` phantom studies (frontal PA + lateral) under ``directory/<study>/``; returns the
    files written."""
    folder = Path(directory)
    written = []
    for index in range(count):
        study = sample_study(seed + index, size=size, lateral=True)
        photometric, bits = VARIANTS[index % len(VARIANTS)]
        uid = _uid("study", seed + index)
        top = float((1 << bits) - 1)
        for view, image in (("PA", study.frontal), ("LATERAL", study.lateral)):
            assert image is not None
            written.append(
                write_dicom(
                    image,
                    folder / f"study-{index + 1:03d}" / f"{view.lower()}.dcm",
                    view=view,
                    photometric=photometric,
                    bits=bits,
                    slope=2.0,
                    intercept=-1000.0,
                    window=(top - 1000.0, 2.0 * top),  # the whole rescaled range
                    study_uid=uid,
                    seed=seed + index,
                )
            )
    return written
