"""Templated findings reports for phantoms, phrased the way a radiologist dictates them.

A report walks a fixed search pattern -- support devices, lungs, pleura, heart -- and states every
observation it checks: positives with laterality and severity (``Small left pleural effusion.``),
negatives (``No pleural effusion or pneumothorax.``), and hedged readings of faint findings
(``Patchy opacity in the right lower lobe may represent consolidation.``). Each statement has
several phrasings, the first one preferred (:func:`phrasing_weights`); every phrasing of a phantom
states the same findings, so ``extract(write_report(spec, rng)) == ground_truth(spec)`` whatever
phrasing is drawn (tested).
"""

from __future__ import annotations

import numpy as np

from ..gate.findings import Finding
from .phantom import PhantomSpec

Choice = list[str]
MAX_REPORT_WORDS = 32


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _devices(spec: PhantomSpec) -> Choice:
    ett = "ett" in spec.devices
    cvc = next((d.split("-")[1] for d in spec.devices if d.startswith("cvc-")), None)
    if ett and cvc:
        return [
            f"Endotracheal tube and {cvc} central venous catheter in place.",
            f"Endotracheal tube in place. {_cap(cvc)} central line in place.",
        ]
    if ett:
        return [
            "Endotracheal tube in place.",
            "An endotracheal tube is in place.",
            "Endotracheal tube tip above the carina.",
        ]
    if cvc:
        return [
            f"{_cap(cvc)} central venous catheter in place.",
            f"{_cap(cvc)} internal jugular catheter tip in the superior vena cava.",
            f"{_cap(cvc)}-sided central line in place.",
        ]
    return [""]


def _lungs(spec: PhantomSpec) -> Choice:
    if spec.consolidation is None:
        cons = [
            "No focal consolidation.",
            "There is no focal consolidation.",
            "The lungs are free of consolidation.",
        ]
        if spec.nodule is None:
            cons.append("The lungs are clear without focal consolidation.")
    elif spec.consolidation_density == "dense":
        side = spec.consolidation
        cons = [
            f"{_cap(side)} lower lobe consolidation.",
            f"There is consolidation in the {side} lower lobe.",
            f"Focal consolidation in the {side} lung base.",
        ]
    else:  # faint: a hedged reading
        side = spec.consolidation
        cons = [
            f"Patchy opacity in the {side} lower lobe may represent consolidation.",
            f"Hazy {side} basilar opacity, possibly consolidation.",
            f"{_cap(side)} lower lobe opacity, which may represent early consolidation.",
        ]
    if spec.nodule is None:
        return cons
    side, nodule_zone = spec.nodule, f"{spec.nodule_zone} lung"
    nod = [
        f"A small nodule is seen in the {side} {nodule_zone}.",
        f"{_cap(side)} {nodule_zone} nodule.",
        f"There is a nodular opacity in the {side} {nodule_zone}.",
    ]
    return [f"{a} {b}" for a in nod for b in cons]


def _pleura(spec: PhantomSpec) -> Choice:
    eff, ptx = spec.effusion, spec.pneumothorax
    esize, psize = spec.effusion_size, spec.pneumothorax_size
    if eff is None and ptx is None:
        return [
            "No pleural effusion or pneumothorax.",
            "There is no pleural effusion or pneumothorax.",
            "No effusion or pneumothorax is seen.",
            "The costophrenic angles are sharp. No pneumothorax.",
        ]
    if eff is not None:
        plural = eff == "bilateral"
        noun = "pleural effusions" if plural else "pleural effusion"
        effusion = f"{esize} {eff} {noun}"
        there = "There are" if plural else "There is a"
        verb = "are" if plural else "is"
    if ptx is None:
        options = [
            f"{_cap(effusion)}. No pneumothorax.",
            f"{there} {effusion} without pneumothorax.",
            f"{_cap(effusion)} {verb} present. There is no pneumothorax.",
        ]
        if esize == "small":
            angle = "both costophrenic angles" if plural else f"the {eff} costophrenic angle"
            options.append(f"Blunting of {angle}, consistent with small {noun}. No pneumothorax.")
        return options
    apical = " apical" if psize == "small" else ""
    pneumothorax = f"{psize} {ptx}{apical} pneumothorax"
    if eff is None:
        return [
            f"{_cap(pneumothorax)}. No pleural effusion.",
            f"There is a {pneumothorax}. No pleural effusion is seen.",
            f"{_cap(pneumothorax)} without pleural effusion.",
        ]
    return [
        f"{_cap(effusion)} and {pneumothorax}.",
        f"{there} {effusion}. There is also a {pneumothorax}.",
    ]


def _heart(spec: PhantomSpec) -> Choice:
    if spec.cardiomegaly is None:
        return [
            "Heart size is normal.",
            "The cardiac silhouette is normal in size.",
            "Normal heart size.",
        ]
    if spec.cardiomegaly == "mild":
        return [
            "Mild cardiomegaly.",
            "The heart is mildly enlarged.",
            "The cardiac silhouette is mildly enlarged.",
        ]
    return [
        "Moderate cardiomegaly.",
        "The heart is moderately enlarged.",
        "Moderate enlargement of the cardiac silhouette.",
    ]


def report_sections(spec: PhantomSpec) -> list[Choice]:
    """The phrasings of each part of the report, in dictation order."""
    return [_devices(spec), _lungs(spec), _pleura(spec), _heart(spec)]


def phrasing_weights(count: int) -> np.ndarray:
    """How often each phrasing is used: the first is the preferred one (``1/k**2``, normalised).

    A radiologist has a habit; a model trained on these reports therefore writes the first
    phrasing with a clear margin, and a lower-precision backend does not flip between phrasings.
    """
    weights = 1.0 / np.arange(1, count + 1, dtype=np.float64) ** 2
    return weights / weights.sum()


def write_report(spec: PhantomSpec, rng: np.random.Generator | int = 0) -> str:
    """One phrasing of ``spec``'s findings, drawn with ``rng`` (:func:`phrasing_weights`).

    A draw longer than :data:`MAX_REPORT_WORDS` words (about 40 tokens) falls back to the shortest
    phrasing of every part.
    """
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    sections = report_sections(spec)
    parts = [
        options[int(gen.choice(len(options), p=phrasing_weights(len(options))))]
        for options in sections
    ]
    text = " ".join(p for p in parts if p)
    if len(text.split()) > MAX_REPORT_WORDS:
        shortest = [min(options, key=lambda o: (len(o.split()), len(o))) for options in sections]
        text = " ".join(p for p in shortest if p)
    return text


def canonical_report(spec: PhantomSpec) -> str:
    """The preferred phrasing of every part (what the toy model writes)."""
    return " ".join(p[0] for p in report_sections(spec) if p[0])


def all_reports(spec: PhantomSpec) -> list[str]:
    """Every phrasing of ``spec`` (for tests)."""
    texts = [""]
    for options in report_sections(spec):
        texts = [f"{t} {o}".strip() for t in texts for o in options]
    return texts


def ground_truth(spec: PhantomSpec) -> list[Finding]:
    """What the report states, as :func:`pytest_cxrperf.gate.findings.extract` reads it."""
    out: list[Finding] = []
    if spec.devices:
        cvc = next((d.split("-")[1] for d in spec.devices if d.startswith("cvc-")), "none")
        out.append(Finding("Support Devices", "present", cvc))
    if spec.consolidation is None:
        out.append(Finding("Consolidation", "absent"))
    elif spec.consolidation_density == "dense":
        out.append(Finding("Consolidation", "present", spec.consolidation))
    else:
        out.append(Finding("Lung Opacity", "present", spec.consolidation))
        out.append(Finding("Consolidation", "uncertain", spec.consolidation))
    if spec.nodule is not None:
        out.append(Finding("Lung Lesion", "present", spec.nodule))
    if spec.effusion is None:
        out.append(Finding("Pleural Effusion", "absent"))
    else:
        out.append(Finding("Pleural Effusion", "present", spec.effusion))
    if spec.pneumothorax is None:
        out.append(Finding("Pneumothorax", "absent"))
    else:
        out.append(Finding("Pneumothorax", "present", spec.pneumothorax))
    out.append(Finding("Cardiomegaly", "absent" if spec.cardiomegaly is None else "present"))
    if not any(f.status != "absent" and f.label != "Support Devices" for f in out):
        out.append(Finding("No Finding", "present"))
    return sorted(out, key=Finding.sort_key)
