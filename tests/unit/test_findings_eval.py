"""The findings evaluation: its data set and its measures, on small hand-checked examples."""

from __future__ import annotations

import pytest

from pytest_cxrperf.cli.findings import findings_main
from pytest_cxrperf.findings_eval import (
    EVAL_LABELS,
    Record,
    evaluate,
    keyword_baseline,
    load,
    main,
    table,
)
from pytest_cxrperf.gate.findings import LABELS, STATUSES, Finding


def _record(rid: str, text: str, *findings: Finding, pair: str | None = None) -> Record:
    return Record(rid, "sentence", text, tuple(findings), pair)


def test_the_set_has_two_disjoint_halves_of_at_least_400_texts() -> None:
    dev, test = load("dev"), load("test")
    assert len(dev) + len(test) >= 400
    assert min(len(dev), len(test)) >= 200
    assert not {r.text for r in dev} & {r.text for r in test}
    assert not {r.id for r in dev} & {r.id for r in test}
    for half in (dev, test):
        pairs: dict[str, int] = {}
        for record in half:
            assert record.text
            assert all(f.label in EVAL_LABELS and f.status in STATUSES for f in record.findings)
            if record.pair:
                pairs[record.pair] = pairs.get(record.pair, 0) + 1
        assert pairs and set(pairs.values()) == {2}  # a minimal pair never straddles the halves
    with pytest.raises(ValueError, match="split"):
        load("train")


def test_precision_recall_f1_on_a_hand_example() -> None:
    left = Finding("Pleural Effusion", "present", "left")
    records = [
        _record("a", "one", left, Finding("Pneumothorax", "absent")),
        _record("b", "two", Finding("Pneumothorax", "present", "right")),
        _record("c", "three"),
    ]
    answers = {
        # effusion: a hit, but the wrong side; pneumothorax: a false positive
        "one": [
            Finding("Pleural Effusion", "present", "right"),
            Finding("Pneumothorax", "present"),
        ],
        "two": [],  # pneumothorax missed
        "three": [Finding("Edema", "uncertain"), Finding("Fracture", "present")],
    }
    scores = evaluate(records, lambda text: answers[text])
    assert (scores.tp["Pleural Effusion"], scores.fp["Pleural Effusion"]) == (1, 0)
    assert (scores.tp["Pneumothorax"], scores.fp["Pneumothorax"], scores.fn["Pneumothorax"]) == (
        0,
        1,
        1,
    )
    assert scores.prf("Pleural Effusion") == (1.0, 1.0, 1.0)
    assert scores.prf("Pneumothorax") == (0.0, 0.0, 0.0)
    precision, recall, f1 = scores.prf()  # micro: tp 1, fp 1, fn 1
    assert (precision, recall) == (0.5, 0.5) and f1 == pytest.approx(0.5)
    assert (scores.side_correct, scores.side_total) == (0, 1)
    # record c has no finding and is given one (Edema uncertain; Fracture is not scored)
    assert (scores.normal_given_finding, scores.normal) == (1, 1)
    # statuses: effusion right, pneumothorax wrong (a), pneumothorax wrong (b), edema wrong (c)
    assert (scores.status_correct, scores.status_total) == (1, 4)


def test_minimal_pairs_count_when_read_differently() -> None:
    records = [
        _record("a", "left", Finding("Pneumothorax", "present", "left"), pair="p"),
        _record("b", "right", Finding("Pneumothorax", "present", "right"), pair="p"),
    ]
    same = evaluate(records, lambda text: [Finding("Pneumothorax", "present")])
    assert (same.pairs_differ, same.pairs, same.pair_rate) == (0, 1, 0.0)
    read = evaluate(records, lambda text: [Finding("Pneumothorax", "present", text)])
    assert read.pair_rate == 1.0


def test_keyword_baseline_reads_the_obvious() -> None:
    assert keyword_baseline("Small left pleural effusion. No pneumothorax.") == [
        Finding("Pleural Effusion", "present", "left"),
        Finding("Pneumothorax", "absent"),
    ]


def test_the_extractor_beats_the_baseline_on_dev() -> None:
    records = load("dev")
    ours, base = evaluate(records), evaluate(records, keyword_baseline)
    assert ours.prf()[2] >= 0.92 > base.prf()[2]
    assert ours.normal_rate <= 0.01
    assert ours.laterality >= 0.95 and ours.pair_rate >= 0.98


def test_table_and_commands_print_every_label(capsys: pytest.CaptureFixture[str]) -> None:
    text = table([("x", evaluate([_record("a", "", Finding("Edema", "present"))], lambda t: []))])
    assert all(label in text for label in EVAL_LABELS) and "micro-F1" in text
    assert main(["--split", "dev", "--no-baseline"]) == 0
    assert "micro-F1" in capsys.readouterr().out
    assert findings_main(["--eval", "dev"]) == 0
    out = capsys.readouterr().out
    assert "keyword baseline" in out and "minimal pairs" in out
    assert set(EVAL_LABELS) <= set(LABELS)
