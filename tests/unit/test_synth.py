"""Synthetic phantoms, their reports, and the round trip report -> extract() -> ground truth."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from pytest_cxrperf.gate.findings import Finding, extract
from pytest_cxrperf.model.study import load_study
from pytest_cxrperf.synth.phantom import PhantomSpec, base_phantom, render, render_lateral
from pytest_cxrperf.synth.reports import (
    MAX_REPORT_WORDS,
    all_reports,
    canonical_report,
    ground_truth,
    write_report,
)
from pytest_cxrperf.synth.studies import HELD_OUT_SEED_BASE, sample_spec, sample_study, write_study

SIZE = 128  # small renders keep the tests fast


def _diff(spec: PhantomSpec, seed: int = 3) -> np.ndarray:
    return np.abs(render(spec, SIZE, seed) - render(PhantomSpec(), SIZE, seed))


def _region(image: np.ndarray, rows: tuple[float, float], cols: tuple[float, float]) -> float:
    n = image.shape[0]
    return float(
        image[int(rows[0] * n) : int(rows[1] * n), int(cols[0] * n) : int(cols[1] * n)].sum()
    )


# patient's right is the image's left
IMAGE_LEFT, IMAGE_RIGHT = (0.0, 0.5), (0.5, 1.0)


def test_phantom_is_deterministic_and_in_range() -> None:
    spec = PhantomSpec(effusion="left", pneumothorax="right", devices=("ett",))
    a, b = render(spec, SIZE, seed=5), render(spec, SIZE, seed=5)
    assert a.dtype == np.float32 and a.shape == (SIZE, SIZE)
    assert np.array_equal(a, b)
    assert a.min() >= 0.0 and a.max() <= 1.0
    assert not np.array_equal(a, render(spec, SIZE, seed=6))
    assert np.array_equal(base_phantom(SIZE, 2), render(PhantomSpec(), SIZE, 2))
    lateral = render_lateral(spec, SIZE, seed=5)
    assert np.array_equal(lateral, render_lateral(spec, SIZE, seed=5))


def test_normal_phantom_looks_like_a_chest() -> None:
    image = render(PhantomSpec(), 256, seed=0)
    n = 256
    lung = image[int(0.45 * n), int(0.3 * n)]  # right mid lung: air, dark
    heart = image[int(0.62 * n), int(0.58 * n)]  # heart shadow: soft tissue
    abdomen = image[int(0.92 * n), int(0.3 * n)]
    assert lung < 0.35 < heart and lung < abdomen


@pytest.mark.parametrize(
    ("spec", "expected", "other"),
    [
        (PhantomSpec(effusion="right"), ((0.6, 0.85), IMAGE_LEFT), ((0.6, 0.85), IMAGE_RIGHT)),
        (
            PhantomSpec(effusion="left", effusion_size="large"),
            ((0.5, 0.85), IMAGE_RIGHT),
            ((0.5, 0.85), IMAGE_LEFT),
        ),
        (PhantomSpec(pneumothorax="right"), ((0.1, 0.55), IMAGE_LEFT), ((0.1, 0.55), IMAGE_RIGHT)),
        (
            PhantomSpec(pneumothorax="left", pneumothorax_size="large"),
            ((0.1, 0.85), IMAGE_RIGHT),
            ((0.1, 0.85), IMAGE_LEFT),
        ),
        (
            PhantomSpec(consolidation="right"),
            ((0.55, 0.85), IMAGE_LEFT),
            ((0.55, 0.85), IMAGE_RIGHT),
        ),
        (
            PhantomSpec(consolidation="left", consolidation_density="faint"),
            ((0.55, 0.85), IMAGE_RIGHT),
            ((0.55, 0.85), IMAGE_LEFT),
        ),
        (PhantomSpec(nodule="right"), ((0.2, 0.6), IMAGE_LEFT), ((0.2, 0.6), IMAGE_RIGHT)),
        (
            PhantomSpec(devices=("cvc-right",)),
            ((0.0, 0.45), (0.3, 0.5)),
            ((0.0, 0.45), (0.55, 0.9)),
        ),
        (PhantomSpec(devices=("ett",)), ((0.0, 0.32), (0.45, 0.55)), ((0.4, 1.0), (0.0, 1.0))),
    ],
)
def test_findings_change_the_image_where_expected(spec, expected, other) -> None:
    diff = _diff(spec)
    inside, outside = _region(diff, *expected), _region(diff, *other)
    assert inside > 1.0, f"{spec} barely changes the image"
    assert inside > 5 * outside, f"{spec} changes the wrong side ({inside:.2f} vs {outside:.2f})"


def test_effusion_height_grows_with_size() -> None:
    rows = []
    for size in ("small", "moderate", "large"):
        changed = _diff(PhantomSpec(effusion="right", effusion_size=size)).sum(axis=1) > 0.5
        rows.append(int(np.argmax(changed)))  # first changed row from the top
    assert rows[0] > rows[1] > rows[2]


def test_cardiomegaly_widens_the_heart() -> None:
    row = int(0.62 * 256)
    widths = []
    for grade in (None, "mild", "moderate"):
        line = render(PhantomSpec(cardiomegaly=grade), 256, seed=1)[row]
        widths.append(int((line[int(0.5 * 256) :] > 0.5).sum()))
    assert widths[0] < widths[1] < widths[2]


def test_invalid_spec_is_refused() -> None:
    with pytest.raises(ValueError, match="effusion"):
        PhantomSpec(effusion="middle")
    with pytest.raises(ValueError, match="devices"):
        PhantomSpec(devices=("stent",))
    with pytest.raises(ValueError, match="central venous"):
        PhantomSpec(devices=("cvc-left", "cvc-right"))


def test_every_phrasing_round_trips_through_extract() -> None:
    rng = np.random.default_rng(0)
    specs = {sample_spec(rng) for _ in range(150)}
    specs |= {
        PhantomSpec(),
        PhantomSpec(effusion="bilateral", effusion_size="small", pneumothorax="left"),
        PhantomSpec(consolidation="left", consolidation_density="faint", nodule="left"),
        PhantomSpec(devices=("cvc-left", "ett"), cardiomegaly="moderate"),
    }
    checked = 0
    for spec in sorted(specs, key=repr):
        truth = ground_truth(spec)
        for text in [*all_reports(spec)[::7], canonical_report(spec)]:
            assert extract(text) == truth, text
            checked += 1
    assert checked > 300


def test_ground_truth_examples() -> None:
    assert ground_truth(PhantomSpec()) == [
        Finding("No Finding", "present"),
        Finding("Cardiomegaly", "absent"),
        Finding("Consolidation", "absent"),
        Finding("Pneumothorax", "absent"),
        Finding("Pleural Effusion", "absent"),
    ]
    faint = ground_truth(PhantomSpec(consolidation="right", consolidation_density="faint"))
    assert Finding("Consolidation", "uncertain", "right") in faint
    assert Finding("Lung Opacity", "present", "right") in faint


def test_reports_vary_but_stay_short() -> None:
    spec = PhantomSpec(effusion="left", effusion_size="moderate", devices=("ett",))
    texts = {write_report(spec, seed) for seed in range(40)}
    assert len(texts) > 3
    for seed in range(300):
        study_spec = sample_spec(np.random.default_rng(seed))
        assert len(write_report(study_spec, seed).split()) <= MAX_REPORT_WORDS


def test_sample_study_is_deterministic() -> None:
    a, b = sample_study(11, size=SIZE, lateral=True), sample_study(11, size=SIZE, lateral=True)
    assert a.report == b.report and a.spec == b.spec and a.findings == b.findings
    assert np.array_equal(a.frontal, b.frontal) and a.lateral is not None
    assert extract(a.report) == list(a.findings)
    assert sample_study(HELD_OUT_SEED_BASE + 11, size=SIZE).spec is not None


def test_write_study_round_trips_through_load_study(tmp_path) -> None:
    study = sample_study(4, size=SIZE, lateral=True)
    path = write_study(study, tmp_path, "s1", bits=16)
    meta = json.loads(path.read_text())
    assert meta["findings"] == study.report
    loaded = load_study(path)
    assert loaded.reference_findings == study.report
    assert loaded.lateral is not None
    with Image.open(loaded.frontal) as image:
        assert image.mode.startswith("I;16")
    with Image.open(loaded.lateral) as image:
        assert image.mode.startswith("I;16")
    path8 = write_study(sample_study(5, size=SIZE), tmp_path, "s2", bits=8)
    with Image.open(load_study(path8).frontal) as image:
        assert image.mode == "L"
