"""The rule-based findings extractor on hand-written report sentences.

Each case lists *every* finding expected (including the derived "No Finding"), as
``label: status`` or ``label: status (laterality)``. Pairs of cases differ by one word where that
word changes the meaning (negation, laterality, hedging, list scope).
"""

from __future__ import annotations

import json

import pytest

from pytest_cxrperf.cli.findings import findings_main
from pytest_cxrperf.gate.findings import (
    LABELS,
    Finding,
    compare,
    dumps,
    equivalent,
    extract,
    from_json,
    to_json,
)

NF = "No Finding: present"

CASES: list[tuple[str, list[str]]] = [
    # --- plain positives with laterality and severity
    ("Small left pleural effusion.", ["Pleural Effusion: present (left)"]),
    ("Small right pleural effusion.", ["Pleural Effusion: present (right)"]),
    ("Moderate bilateral pleural effusions.", ["Pleural Effusion: present (bilateral)"]),
    ("Small left and moderate right pleural effusions.", ["Pleural Effusion: present (bilateral)"]),
    ("Left-sided pneumothorax.", ["Pneumothorax: present (left)"]),
    ("Large right pneumothorax.", ["Pneumothorax: present (right)"]),
    ("Bibasilar atelectasis.", ["Atelectasis: present (bilateral)"]),
    ("Effusions are present bilaterally.", ["Pleural Effusion: present (bilateral)"]),
    ("Left lower lobe consolidation.", ["Consolidation: present (left)"]),
    ("There is consolidation in the right lower lobe.", ["Consolidation: present (right)"]),
    ("A small nodule is seen in the right upper lung.", ["Lung Lesion: present (right)"]),
    ("There is a nodular opacity in the left mid lung.", ["Lung Lesion: present (left)"]),
    ("A 2 cm mass in the left hilum.", ["Lung Lesion: present (left)"]),
    ("Blunting of the left costophrenic angle.", ["Pleural Effusion: present (left)"]),
    ("Moderate cardiomegaly.", ["Cardiomegaly: present"]),
    ("The heart is moderately enlarged.", ["Cardiomegaly: present"]),
    ("Enlargement of the cardiac silhouette.", ["Cardiomegaly: present"]),
    ("Mild pulmonary vascular congestion.", ["Edema: present"]),
    ("Widened mediastinum.", ["Enlarged Cardiomediastinum: present"]),
    ("Left apical pleural thickening.", ["Pleural Other: present (left)"]),
    ("Acute fracture of the right fifth rib.", ["Fracture: present (right)"]),
    ("Endotracheal tube in place.", [NF, "Support Devices: present"]),
    (
        "Right internal jugular central venous catheter tip in the superior vena cava.",
        [NF, "Support Devices: present (right)"],
    ),
    (
        "Endotracheal tube and left central venous catheter in place.",
        [NF, "Support Devices: present (left)"],
    ),
    # --- negation
    ("No left pleural effusion.", [NF, "Pleural Effusion: absent (left)"]),
    (
        "No pleural effusion or pneumothorax.",
        [NF, "Pneumothorax: absent", "Pleural Effusion: absent"],
    ),
    (
        "No pleural effusion, pneumothorax, or focal consolidation.",
        [NF, "Consolidation: absent", "Pneumothorax: absent", "Pleural Effusion: absent"],
    ),
    (
        "No evidence of pleural effusion, pneumothorax, or focal consolidation.",
        [NF, "Consolidation: absent", "Pneumothorax: absent", "Pleural Effusion: absent"],
    ),
    ("No evidence of pneumothorax.", [NF, "Pneumothorax: absent"]),
    ("The lungs are free of consolidation.", [NF, "Consolidation: absent"]),
    ("Negative for pneumothorax.", [NF, "Pneumothorax: absent"]),
    ("Pneumothorax is not seen.", [NF, "Pneumothorax: absent"]),
    ("The left pleural effusion has resolved.", [NF, "Pleural Effusion: absent (left)"]),
    ("Resolved right pneumothorax.", [NF, "Pneumothorax: absent (right)"]),
    ("Interval resolution of the right pneumothorax.", [NF, "Pneumothorax: absent (right)"]),
    ("The pneumothorax is no longer seen.", [NF, "Pneumothorax: absent"]),
    ("Heart size is normal.", [NF, "Cardiomegaly: absent"]),
    ("The heart is not enlarged.", [NF, "Cardiomegaly: absent"]),
    ("The costophrenic angles are sharp.", [NF, "Pleural Effusion: absent"]),
    ("No pericardial effusion.", []),
    ("No acute cardiopulmonary process.", [NF]),
    ("The lungs are clear.", [NF]),
    # --- list scope: the negation stops at a new noun phrase
    ("No effusion or pneumothorax.", [NF, "Pneumothorax: absent", "Pleural Effusion: absent"]),
    (
        "No effusion but a small pneumothorax.",
        ["Pneumothorax: present", "Pleural Effusion: absent"],
    ),
    (
        "No effusion and a small right pneumothorax.",
        ["Pneumothorax: present (right)", "Pleural Effusion: absent"],
    ),
    ("No effusion, a small pneumothorax.", ["Pneumothorax: present", "Pleural Effusion: absent"]),
    (
        "No pneumothorax, small left effusion.",
        ["Pneumothorax: absent", "Pleural Effusion: present (left)"],
    ),
    (
        "Small left pleural effusion without pneumothorax.",
        ["Pneumothorax: absent", "Pleural Effusion: present (left)"],
    ),
    (
        "Small left pleural effusion. No pneumothorax.",
        ["Pneumothorax: absent", "Pleural Effusion: present (left)"],
    ),
    (
        "Stable mild cardiomegaly with no pulmonary edema.",
        ["Cardiomegaly: present", "Edema: absent"],
    ),
    (
        "Right-sided chest tube with no residual pneumothorax.",
        [NF, "Pneumothorax: absent", "Support Devices: present (right)"],
    ),
    # --- laterality belongs to its own mention
    (
        "Small left pleural effusion and large right pneumothorax.",
        ["Pneumothorax: present (right)", "Pleural Effusion: present (left)"],
    ),
    (
        "Moderate right pleural effusion and small left pneumothorax.",
        ["Pneumothorax: present (left)", "Pleural Effusion: present (right)"],
    ),
    ("Small left effusion, the right lung is clear.", ["Pleural Effusion: present (left)"]),
    ("No left effusion. Small right effusion.", ["Pleural Effusion: present (right)"]),
    # --- uncertainty and hedging
    ("Possible small left effusion.", ["Pleural Effusion: uncertain (left)"]),
    (
        "Consolidation in the left lower lobe cannot be excluded.",
        ["Consolidation: uncertain (left)"],
    ),
    ("Cannot exclude a small right pneumothorax.", ["Pneumothorax: uncertain (right)"]),
    ("Pulmonary edema is not excluded.", ["Edema: uncertain"]),
    ("Findings suggestive of pulmonary edema.", ["Edema: uncertain"]),
    (
        "Patchy opacity in the right lower lobe may represent pneumonia.",
        ["Lung Opacity: present (right)", "Pneumonia: uncertain (right)"],
    ),
    (
        "Patchy opacity in the right lower lobe may represent consolidation.",
        ["Lung Opacity: present (right)", "Consolidation: uncertain (right)"],
    ),
    (
        "Patchy opacity in the left lower lobe represents consolidation.",
        ["Lung Opacity: present (left)", "Consolidation: present (left)"],
    ),
    (
        "Hazy right basilar opacity, possibly consolidation.",
        ["Lung Opacity: present (right)", "Consolidation: uncertain (right)"],
    ),
    (
        "Left retrocardiac opacity, likely atelectasis.",
        ["Lung Opacity: present (left)", "Atelectasis: uncertain (left)"],
    ),
    (
        "Atelectasis versus pneumonia at the left base.",
        ["Pneumonia: uncertain (left)", "Atelectasis: uncertain (left)"],
    ),
    (
        "Left basilar opacity may reflect atelectasis or pneumonia.",
        [
            "Lung Opacity: present (left)",
            "Pneumonia: uncertain (left)",
            "Atelectasis: uncertain (left)",
        ],
    ),
    ("Evaluate for pneumonia.", ["Pneumonia: hypothetical"]),
    (
        "There is no consolidation to suggest pneumonia.",
        [NF, "Consolidation: absent", "Pneumonia: absent"],
    ),
    (
        "Small left pleural effusion with adjacent atelectasis.",
        ["Atelectasis: present (left)", "Pleural Effusion: present (left)"],
    ),
    # --- several sentences, merging
    (
        "FINDINGS: Endotracheal tube in place. No focal consolidation. "
        "Small left pleural effusion. No pneumothorax. Heart size is normal.",
        [
            "Cardiomegaly: absent",
            "Consolidation: absent",
            "Pneumothorax: absent",
            "Pleural Effusion: present (left)",
            "Support Devices: present",
        ],
    ),
    (
        "Small right pleural effusion. Small left pleural effusion.",
        ["Pleural Effusion: present (bilateral)"],
    ),
    (
        "No pneumothorax. Small apical pneumothorax on the right cannot be excluded.",
        ["Pneumothorax: uncertain (right)"],
    ),
    ("A 1.5 cm nodule is seen in the right upper lobe.", ["Lung Lesion: present (right)"]),
    ("", []),
]

# one-word changes that must change the findings
MINIMAL_PAIRS = [
    ("Small left pleural effusion.", "No left pleural effusion."),
    ("Small left pleural effusion.", "Small right pleural effusion."),
    ("Left pneumothorax.", "Possible left pneumothorax."),
    ("No effusion or pneumothorax.", "No effusion but pneumothorax."),
    ("Heart size is normal.", "Heart size is enlarged."),
    ("Opacity may represent consolidation.", "Opacity represents consolidation."),
    ("Left lower lobe consolidation.", "Bilateral lower lobe consolidation."),
]


def _described(findings: list[Finding]) -> list[str]:
    return [f.describe() for f in findings]


def _expected_order(expected: list[str]) -> list[str]:
    return sorted(expected, key=lambda d: LABELS.index(d.split(":")[0]))


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0][:50] or "empty" for c in CASES])
def test_extract_hand_written(text: str, expected: list[str]) -> None:
    assert _described(extract(text)) == _expected_order(expected)


def test_accuracy_on_hand_written_set() -> None:
    """Summary: how many of the hand-written sentences are read fully correctly."""
    correct = sum(_described(extract(t)) == _expected_order(e) for t, e in CASES)
    print(f"\nfindings extractor: {correct}/{len(CASES)} hand-written cases fully correct")
    assert correct == len(CASES)


@pytest.mark.parametrize(("a", "b"), MINIMAL_PAIRS)
def test_minimal_pairs_differ(a: str, b: str) -> None:
    assert extract(a) != extract(b)
    assert compare(extract(a), extract(b))
    assert not equivalent(a, b)


def test_rephrasings_are_equivalent() -> None:
    assert equivalent(
        "No pleural effusion or pneumothorax. Heart size is normal.",
        "There is no pneumothorax or pleural effusion. Normal heart size.",
    )
    assert equivalent(
        "Small left pleural effusion without pneumothorax.",
        "There is a small left pleural effusion. No pneumothorax is seen.",
    )


def test_output_is_sorted_deterministic_and_merged() -> None:
    text = "Left effusion. Right effusion. Possible left effusion. Cardiomegaly. Left effusion."
    first = extract(text)
    assert first == extract(text)
    assert [f.label for f in first] == ["Cardiomegaly", "Pleural Effusion"]
    assert first[1] == Finding("Pleural Effusion", "present", "bilateral")
    assert first == sorted(first, key=Finding.sort_key)


def test_case_and_whitespace_do_not_matter() -> None:
    assert extract("SMALL  LEFT\tPLEURAL EFFUSION.") == extract("small left pleural effusion.")


def test_compare_names_finding_status_and_laterality() -> None:
    ref = extract("Small left pleural effusion. No pneumothorax. Mild cardiomegaly.")
    cand = extract("Small right pleural effusion. Small pneumothorax.")
    lines = compare(ref, cand)
    assert any("Pleural Effusion" in ln and "left" in ln and "right" in ln for ln in lines)
    assert any("Pneumothorax" in ln and "absent" in ln and "present" in ln for ln in lines)
    assert any("Cardiomegaly" in ln and "does not mention" in ln for ln in lines)
    assert compare(ref, ref) == []


def test_finding_validates_and_round_trips_json() -> None:
    with pytest.raises(ValueError, match="unknown finding label"):
        Finding("Effusion", "present")
    with pytest.raises(ValueError, match="status"):
        Finding("Pneumothorax", "maybe")
    with pytest.raises(ValueError, match="laterality"):
        Finding("Pneumothorax", "present", "up")
    findings = extract("Small left pleural effusion. Possible right pneumothorax.")
    assert from_json(to_json(findings)) == findings
    assert from_json(dumps(findings)) == findings
    assert json.loads(dumps(findings))[0] == {
        "label": "Pneumothorax",
        "status": "uncertain",
        "laterality": "right",
    }
    with pytest.raises(ValueError):
        from_json({"label": "Pneumothorax"})


def test_extract_rejects_non_text() -> None:
    with pytest.raises(TypeError):
        extract(None)  # type: ignore[arg-type]


def test_findings_cli_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert findings_main(["Small left pleural effusion."]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == [{"label": "Pleural Effusion", "status": "present", "laterality": "left"}]


def test_findings_cli_compare(capsys: pytest.CaptureFixture[str]) -> None:
    assert findings_main(["--compare", "Left effusion.", "There is a left effusion."]) == 0
    assert json.loads(capsys.readouterr().out)["equivalent"] is True
    assert findings_main(["--compare", "Left effusion.", "Right effusion."]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["equivalent"] is False and result["differences"]


def test_findings_cli_reads_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("No pneumothorax."))
    assert findings_main(["-"]) == 0
    labels = [f["label"] for f in json.loads(capsys.readouterr().out)]
    assert labels == ["No Finding", "Pneumothorax"]


# --- real report language (issue 14): each line is one error class of a real extractor
REAL_LANGUAGE_CASES: list[tuple[str, list[str]]] = [
    (
        "No focal consolidation, suspicious opacity, large effusion, or pneumothorax is seen.",
        [
            NF,
            "Lung Opacity: absent",
            "Consolidation: absent",
            "Pneumothorax: absent",
            "Pleural Effusion: absent",
        ],
    ),
    (
        "Lungs are clear without focal airspace disease, large effusion or pneumothorax.",
        [NF, "Lung Opacity: absent", "Pneumothorax: absent", "Pleural Effusion: absent"],
    ),
    ("Small bilateral pneumothoraces.", ["Pneumothorax: present (bilateral)"]),
    (
        "Pneumonic consolidation in the left lower lobe.",
        ["Consolidation: present (left)", "Pneumonia: present (left)"],
    ),
    ("Pulmonary vascularity within normal limits.", [NF]),
    ("No typical findings of pulmonary edema.", [NF, "Edema: absent"]),
    ("No radiographic findings to suggest pneumonia.", [NF, "Pneumonia: absent"]),
    ("Soft tissue edema about the ankle.", []),
    ("Prior granulomatous disease.", []),
    ("History of right lower lobe pneumonia.", ["Pneumonia: historical (right)"]),
    ("Old healed left rib fractures.", ["Fracture: historical (left)"]),
    ("The pneumothorax has resolved.", [NF, "Pneumothorax: absent"]),
    ("Left basilar opacity cleared in the interval.", [NF, "Lung Opacity: absent (left)"]),
    ("May indicate edema or atypical infection.", ["Edema: uncertain", "Pneumonia: uncertain"]),
    ("Differential includes pulmonary edema.", ["Edema: uncertain"]),
    ("A small left pneumothorax is difficult to exclude.", ["Pneumothorax: uncertain (left)"]),
    ("Borderline enlarged heart.", ["Cardiomegaly: uncertain"]),
    (
        "Blunting of the right costophrenic angle, likely small effusion.",
        ["Pleural Effusion: uncertain (right)"],
    ),
    ("Upper limits of normal heart size.", [NF, "Cardiomegaly: absent"]),
    ("Heart size at the upper limits of normal.", [NF, "Cardiomegaly: absent"]),
    ("No XXXX pleural effusion.", [NF, "Pleural Effusion: absent"]),
    ("The heart is XXXX enlarged.", ["Cardiomegaly: present"]),
    (
        "Consolidation in the left upper lobe and both lower lobes.",
        ["Consolidation: present (bilateral)"],
    ),
    ("Linear atelectasis in the lingula.", ["Atelectasis: present (left)"]),
    ("To assess for pneumonia.", ["Pneumonia: hypothetical"]),
    (
        "Indication: cough. Findings: No pneumonia.",
        [NF, "Pneumonia: absent"],
    ),
    (
        "Right hydropneumothorax.",
        ["Pneumothorax: present (right)", "Pleural Effusion: present (right)"],
    ),
]

REAL_LANGUAGE_PAIRS = [
    ("Pneumonia has resolved.", "Pneumonia has progressed."),
    ("History of pneumonia.", "Findings of pneumonia."),
    ("No pneumothoraces.", "Bilateral pneumothoraces."),
    ("Borderline enlarged heart.", "Enlarged heart."),
    ("Consolidation in the lingula.", "Consolidation in the right middle lobe."),
    ("Heart size is XXXX normal.", "Heart size is XXXX enlarged."),
]


@pytest.mark.parametrize(
    ("text", "expected"), REAL_LANGUAGE_CASES, ids=[c[0][:50] for c in REAL_LANGUAGE_CASES]
)
def test_extract_real_report_language(text: str, expected: list[str]) -> None:
    assert _described(extract(text)) == _expected_order(expected)


@pytest.mark.parametrize(("a", "b"), REAL_LANGUAGE_PAIRS)
def test_real_language_minimal_pairs_differ(a: str, b: str) -> None:
    assert compare(extract(a), extract(b))


def test_hypothetical_mentions_do_not_count_for_equivalence() -> None:
    indication = "Indication: fever, evaluate for pneumonia. The lungs are clear."
    assert [f.describe() for f in extract(indication)] == [NF, "Pneumonia: hypothetical"]
    assert equivalent(indication, "The lungs are clear.")
    assert not equivalent(indication, "The lungs are clear. No pneumonia.")
    assert not equivalent("History of pneumonia.", "")


def test_new_statuses_round_trip_json() -> None:
    findings = extract("Old right rib fracture. Rule out pneumonia.")
    assert {f.status for f in findings} == {"historical", "hypothetical"}
    assert from_json(to_json(findings)) == findings
