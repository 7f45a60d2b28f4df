"""Sample synthetic studies: a phantom, its ground-truth findings and a radiologist-style report.

``sample_study(seed)`` is deterministic. Training and held-out sets use disjoint seed ranges
(:data:`HELD_OUT_SEED_BASE`). :func:`write_study` saves a study in the format
:func:`pytest_cxrperf.model.study.load_study` reads (PNG images + JSON with a ``findings`` key).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..gate.findings import Finding
from .phantom import (
    CARDIOMEGALY_GRADES,
    EFFUSION_SIZES,
    NODULE_ZONES,
    PNEUMOTHORAX_SIZES,
    PhantomSpec,
    render_lateral,
    render_with_masks,
    to_uint8,
    to_uint16,
)
from .reports import ground_truth, write_report

HELD_OUT_SEED_BASE = 1_000_000  # training seeds stay below, held-out seeds start here
MAX_POSITIVES = 3  # keeps reports short (about 40 tokens at most)

INDICATIONS = (
    "Shortness of breath.",
    "Cough and fever.",
    "Chest pain.",
    "Evaluate for pneumonia.",
    "Trauma.",
    "Preoperative evaluation.",
    "Hypoxia.",
    "Line placement.",
)
FRONTAL_TECHNIQUES = ("PA view of the chest.", "Portable AP view of the chest.", "Frontal view.")
LATERAL_TECHNIQUE = "PA and lateral views of the chest."
COMPARISONS = ("None.", "", "Prior study.", "Chest radiograph from yesterday.")


@dataclass(frozen=True)
class SyntheticStudy:
    seed: int
    spec: PhantomSpec
    frontal: np.ndarray  # float32 [0, 1], square
    lateral: np.ndarray | None
    findings: tuple[Finding, ...]  # ground truth, as extract() reads the report
    report: str
    indication: str
    technique: str
    comparison: str
    masks: dict[str, np.ndarray] | None = None  # where findings were drawn (with_masks=True)


def _side(rng: np.random.Generator) -> str:
    return "left" if rng.random() < 0.5 else "right"


PREVALENCE = {  # probability that a study shows each finding (before the MAX_POSITIVES cap)
    "devices": 0.26,
    "effusion": 0.3,
    "pneumothorax": 0.16,
    "cardiomegaly": 0.25,
    "consolidation": 0.22,
    "nodule": 0.14,
}


def obscured(spec: PhantomSpec) -> bool:
    """True when a moderate or large effusion would hide a finding drawn on the same side.

    Fluid hides the lower lobe (and, when large, the mid lung), so a consolidation or nodule there
    could not be seen; such combinations are not sampled.
    """
    if spec.effusion is None or spec.effusion_size == "small":
        return False
    wet = {"left", "right"} if spec.effusion == "bilateral" else {spec.effusion}
    if spec.consolidation in wet:
        return True
    return spec.nodule in wet and spec.nodule_zone == "mid" and spec.effusion_size == "large"


def sample_spec(
    rng: np.random.Generator, prevalence: dict[str, float] | None = None
) -> PhantomSpec:
    """Draw findings with rough clinical prevalences, at most :data:`MAX_POSITIVES` of them, none
    of them hidden by an effusion (:func:`obscured`)."""
    p = {**PREVALENCE, **(prevalence or {})}
    while True:
        devices: tuple[str, ...] = ()
        u = rng.random() / p["devices"]  # ett 46%, one line 31%, both 23% of device studies
        if u < 0.46:
            devices = ("ett",)
        elif u < 0.77:
            devices = (f"cvc-{_side(rng)}",)
        elif u < 1.0:
            devices = ("ett", f"cvc-{_side(rng)}")
        effusion = None
        if rng.random() < p["effusion"]:
            v = rng.random()
            effusion = "bilateral" if v < 0.3 else _side(rng)
        pneumothorax = _side(rng) if rng.random() < p["pneumothorax"] else None
        cardiomegaly = (
            CARDIOMEGALY_GRADES[int(rng.integers(2))] if rng.random() < p["cardiomegaly"] else None
        )
        consolidation = _side(rng) if rng.random() < p["consolidation"] else None
        nodule = _side(rng) if rng.random() < p["nodule"] else None
        spec = PhantomSpec(
            effusion=effusion,
            effusion_size=EFFUSION_SIZES[int(rng.integers(3))],
            pneumothorax=pneumothorax,
            pneumothorax_size=PNEUMOTHORAX_SIZES[int(rng.integers(2))],
            cardiomegaly=cardiomegaly,
            consolidation=consolidation,
            consolidation_density="dense" if rng.random() < 0.55 else "faint",
            nodule=nodule,
            nodule_zone=NODULE_ZONES[int(rng.integers(2))],
            devices=devices,
        )
        if spec.positives() <= MAX_POSITIVES and not obscured(spec):
            return spec


def sample_study(
    seed: int,
    size: int = 256,
    lateral: bool | None = False,
    spec: PhantomSpec | None = None,
    with_masks: bool = False,
    prevalence: dict[str, float] | None = None,
) -> SyntheticStudy:
    """A deterministic study. ``lateral=None`` adds a lateral view to about one study in five.

    ``prevalence`` overrides :data:`PREVALENCE` (training oversamples the rarer findings).
    """
    rng = np.random.default_rng([seed, 7])
    drawn = sample_spec(rng, prevalence)
    spec = spec or drawn
    with_lateral = bool(rng.random() < 0.2) if lateral is None else lateral
    report = write_report(spec, rng)
    indication = INDICATIONS[int(rng.integers(len(INDICATIONS)))]
    technique = (
        LATERAL_TECHNIQUE
        if with_lateral
        else FRONTAL_TECHNIQUES[int(rng.integers(len(FRONTAL_TECHNIQUES)))]
    )
    comparison = COMPARISONS[int(rng.integers(len(COMPARISONS)))]
    frontal, masks = render_with_masks(spec, size=size, seed=seed)
    return SyntheticStudy(
        seed=seed,
        spec=spec,
        frontal=frontal,
        lateral=render_lateral(spec, size=size, seed=seed) if with_lateral else None,
        findings=tuple(ground_truth(spec)),
        report=report,
        indication=indication,
        technique=technique,
        comparison=comparison,
        masks=masks if with_masks else None,
    )


def _save_png(image: np.ndarray, path: Path, bits: int) -> None:
    if bits == 16:
        Image.fromarray(to_uint16(image)).save(path)  # PIL stores uint16 as mode I;16
    elif bits == 8:
        Image.fromarray(to_uint8(image), mode="L").save(path)
    else:
        raise ValueError("bits must be 8 or 16")


def write_study(study: SyntheticStudy, directory: str | Path, name: str, bits: int = 8) -> Path:
    """Save ``<name>-frontal.png`` (+ ``-lateral.png``) and ``<name>.json``; returns the JSON."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    meta: dict[str, str] = {"name": name, "frontal": f"{name}-frontal.png"}
    _save_png(study.frontal, folder / meta["frontal"], bits)
    if study.lateral is not None:
        meta["lateral"] = f"{name}-lateral.png"
        _save_png(study.lateral, folder / meta["lateral"], bits)
    meta.update(
        indication=study.indication,
        technique=study.technique,
        comparison=study.comparison,
        findings=study.report,
    )
    path = folder / f"{name}.json"
    path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return path
