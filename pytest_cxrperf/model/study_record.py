"""The :class:`Study` record: one study's images and report context, however it was read.

A module of its own, below everything that makes or reads one: :mod:`.study` reads study JSON
files and folders, :mod:`.dicom` groups DICOM files into studies, :mod:`.processor` turns a study
into model inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Study:
    name: str
    frontal: Path
    lateral: Path | None = None
    prior: Path | None = None
    indication: str = ""
    technique: str = ""
    comparison: str = ""
    reference_findings: str | None = None  # ground-truth report text, when known
    source: Path | None = None  # the study's JSON file

    def images(self) -> list[tuple[str, Path]]:
        views = [("frontal", self.frontal), ("lateral", self.lateral), ("prior", self.prior)]
        return [(view, path) for view, path in views if path is not None]
