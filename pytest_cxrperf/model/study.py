"""Studies from files: one study's JSON (a :class:`~.study_record.Study`: the frontal image,
optional lateral and prior, and the report context), or a folder of them (else of DICOM files)."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from ..errors import StudyError
from .dicom import dicom_files, load_dicom_studies
from .formats import MAX_IMAGE_PIXELS
from .study_record import Study

_TEXT_FIELDS = ("indication", "technique", "comparison")
_IMAGE_FIELDS = ("frontal", "lateral", "prior")


def load_study(metadata_path: str | Path) -> Study:
    """Read ``<name>.json``: image paths are relative to the JSON file's folder."""
    path = Path(metadata_path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise StudyError(f"study file {path} does not exist") from exc
    except UnicodeDecodeError as exc:
        raise StudyError(f"study file {path} is not UTF-8 text ({exc}); save it as UTF-8") from exc
    except IsADirectoryError as exc:
        raise StudyError(f"study file {path} is a directory; move or rename it") from exc
    except OSError as exc:
        raise StudyError(f"study file {path} cannot be read ({exc.strerror or exc})") from exc
    except json.JSONDecodeError as exc:
        raise StudyError(f"study file {path} is not valid JSON: {exc}; fix the file") from exc
    if not isinstance(data, dict):
        raise StudyError(f"study file {path} must hold a JSON object")
    unknown = sorted(set(data) - {*_TEXT_FIELDS, *_IMAGE_FIELDS, "name", "findings"})
    if unknown:
        raise StudyError(f"study file {path} has unknown keys {unknown}")
    if not data.get("frontal"):
        raise StudyError(f"study file {path} needs a 'frontal' image")
    images: dict[str, Path | None] = {}
    for key in _IMAGE_FIELDS:
        value = data.get(key)
        if value is not None and not isinstance(value, str):
            raise StudyError(f"study file {path}: '{key}' must be a file name")
        images[key] = (path.parent / value) if value else None
    texts: dict[str, str] = {}
    for key in _TEXT_FIELDS:
        value = data.get(key) or ""
        if not isinstance(value, str):
            raise StudyError(f"study file {path}: '{key}' must be text")
        texts[key] = value.strip()
    findings = data.get("findings")
    return Study(
        name=str(data.get("name") or path.stem),
        frontal=images["frontal"],  # type: ignore[arg-type]
        lateral=images["lateral"],
        prior=images["prior"],
        reference_findings=findings if isinstance(findings, str) else None,
        source=path,
        **texts,
    )


def sample_dir() -> Path:
    return Path(str(resources.files("pytest_cxrperf").joinpath("data", "studies")))


def load_studies(directory: str | Path | None = None) -> list[Study]:
    """All ``*.json`` studies of a folder (the shipped samples by default), sorted by name; a
    folder without any is read as DICOM files grouped by StudyInstanceUID."""
    folder = Path(directory) if directory is not None else sample_dir()
    if not folder.is_dir():
        what = "is not a directory" if folder.exists() else "does not exist"
        raise StudyError(
            f"study folder {folder} {what}; pass a folder of study *.json files or DICOM files"
        )
    studies = [load_study(p) for p in sorted(folder.glob("*.json"))]
    if not studies and dicom_files(folder):
        studies = load_dicom_studies(folder)
    if not studies:
        raise StudyError(f"study folder {folder} holds no *.json study files and no DICOM files")
    return studies


def check_image(path: Path) -> None:
    """Open and decode an image once, as the processor will (size limit first, then every pixel),
    so that a bad file is one clear :class:`StudyError` before any backend runs."""
    from PIL import Image

    from .processor import load_grayscale

    if path.is_dir():
        raise StudyError(f"image {path} is a directory, not an image file")
    try:
        load_grayscale(path)
    except StudyError as exc:
        if isinstance(exc.__cause__, Image.DecompressionBombError):  # PIL refuses before we ask
            raise StudyError(
                f"image {path} has more than the {MAX_IMAGE_PIXELS:,} pixels accepted "
                f"({exc.__cause__}); downsample it first"
            ) from None
        raise


def check_studies(directory: str | Path | None = None) -> list[Study]:
    """:func:`load_studies`, then every image of every study decoded once; errors name the study
    file and the image."""
    studies = load_studies(directory)
    for study in studies:
        for view, image in study.images():
            try:
                check_image(image)
            except StudyError as exc:
                where = study.source or study.name
                raise StudyError(
                    f"{exc} (the {view} view of study file {where}); fix or replace the image, "
                    "or remove the study"
                ) from None
    return studies
