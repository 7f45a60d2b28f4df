"""How well does the findings extractor read chest X-ray reports? Scored on the project's own set.

The evaluation set (``pytest_cxrperf/data/findings_eval/{dev,test}.jsonl``) holds 457 sentences
and short reports written in the style of real chest X-ray reports (phrasings after the CheXpert
labeler's mention, negation and uncertainty lists, NegBio's patterns and structured reporting
templates; de-identification tokens ``XXXX`` as in public report sets), each annotated with the
status and side of the eight chest findings in :data:`EVAL_LABELS`. The halves were split once,
by a seeded shuffle, keeping the two texts of a minimal pair together; tune on ``dev``, report on
``test``. Annotation conventions (not the extractor's rules):

* present: the image shows it now (``consistent with`` included); uncertain: hedged (``may``,
  ``possible``, ``likely``, ``cannot be excluded``, ``differential includes``, ``versus``,
  ``borderline``); absent: negated, or resolved / cleared; historical: ``history of``, ``prior``;
  hypothetical: an indication or a plan (``to assess for``, ``rule out``, ``follow-up to document
  resolution``). Findings of other body parts (``soft tissue edema about the ankle``) and
  ``granulomatous`` disease (for Pneumonia) are not annotated. ``upper limits of normal`` heart
  size is absent, ``borderline enlarged`` uncertain.
* side: from side words and one-sided anatomy (lingula, retrocardiac: left; middle lobe: right);
  a finding on both sides, or over a list that covers both (``left upper lobe and both lower
  lobes``), is bilateral; findings of one label merge as the extractor's do (present, then
  uncertain, absent, historical, hypothetical; the sides of the winning status).

Measures (``evaluate``): per-label precision / recall / F1 of *present*, micro-F1 over the eight;
the share of texts with no present or uncertain finding that are given one (``normal given a
finding``); laterality accuracy where both sides call a finding present or uncertain and either
names a side; status accuracy over every (text, label) that either side mentions; and the share of
one-word minimal pairs that are read differently.

    python scripts/findings_eval.py --split test
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from .gate.findings import Finding, extract

EVAL_LABELS: tuple[str, ...] = (
    "Cardiomegaly",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Lung Lesion",
)
SPLITS: tuple[str, ...] = ("dev", "test")
_POSITIVE = ("present", "uncertain")

Extractor = Callable[[str], Sequence[Finding]]
_Reading = dict[str, tuple[str, str]]  # label -> (status, laterality), EVAL_LABELS only


@dataclass(frozen=True)
class Record:
    """One annotated text of the evaluation set."""

    id: str
    kind: str  # sentence | pair | report
    text: str
    findings: tuple[Finding, ...]
    pair: str | None = None


def load(split: str) -> list[Record]:
    """The records of one half of the evaluation set (``dev`` or ``test``)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    path = resources.files("pytest_cxrperf") / "data" / "findings_eval" / f"{split}.jsonl"
    return [_record(json.loads(line)) for line in path.read_text().splitlines() if line.strip()]


def _record(data: dict[str, Any]) -> Record:
    return Record(
        id=str(data["id"]),
        kind=str(data.get("kind", "sentence")),
        text=str(data["text"]),
        findings=tuple(Finding.from_dict(f) for f in data["findings"]),
        pair=data.get("pair"),
    )


def _reading(findings: Iterable[Finding]) -> _Reading:
    return {f.label: (f.status, f.laterality) for f in findings if f.label in EVAL_LABELS}


@dataclass
class Scores:
    """Counts and rates of one extractor on one set of records."""

    tp: dict[str, int] = field(default_factory=lambda: dict.fromkeys(EVAL_LABELS, 0))
    fp: dict[str, int] = field(default_factory=lambda: dict.fromkeys(EVAL_LABELS, 0))
    fn: dict[str, int] = field(default_factory=lambda: dict.fromkeys(EVAL_LABELS, 0))
    normal: int = 0
    normal_given_finding: int = 0
    side_total: int = 0
    side_correct: int = 0
    status_total: int = 0
    status_correct: int = 0
    pairs: int = 0
    pairs_differ: int = 0
    errors: list[str] = field(default_factory=list)

    def prf(self, label: str | None = None) -> tuple[float, float, float]:
        """Precision, recall and F1 of *present* for one label, or micro-averaged over all."""
        labels = EVAL_LABELS if label is None else (label,)
        tp = sum(self.tp[x] for x in labels)
        fp = sum(self.fp[x] for x in labels)
        fn = sum(self.fn[x] for x in labels)
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / (tp + fn) if tp + fn else 1.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return precision, recall, f1

    @property
    def normal_rate(self) -> float:
        """Share of texts with no finding that the extractor gives one (lower is better)."""
        return self.normal_given_finding / self.normal if self.normal else 0.0

    @property
    def laterality(self) -> float:
        return self.side_correct / self.side_total if self.side_total else 1.0

    @property
    def status_accuracy(self) -> float:
        return self.status_correct / self.status_total if self.status_total else 1.0

    @property
    def pair_rate(self) -> float:
        return self.pairs_differ / self.pairs if self.pairs else 1.0


def evaluate(records: Sequence[Record], extractor: Extractor = extract) -> Scores:
    """Score ``extractor`` on ``records`` (see the module docstring for the measures)."""
    scores = Scores()
    readings: dict[str, _Reading] = {}
    for record in records:
        gold, found = _reading(record.findings), _reading(extractor(record.text))
        readings[record.id] = found
        wrong = []
        for label in EVAL_LABELS:
            g, f = gold.get(label), found.get(label)
            g_present, f_present = (
                g is not None and g[0] == "present",
                f is not None and f[0] == "present",
            )
            scores.tp[label] += g_present and f_present
            scores.fp[label] += f_present and not g_present
            scores.fn[label] += g_present and not f_present
            if g is not None or f is not None:
                scores.status_total += 1
                same = (g and g[0]) == (f and f[0])
                scores.status_correct += same
                if not same:
                    wrong.append(f"{label}: expected {g and g[0]}, found {f and f[0]}")
            if (
                g
                and f
                and g[0] in _POSITIVE
                and f[0] in _POSITIVE
                and (g[1], f[1]) != ("none",) * 2
            ):
                scores.side_total += 1
                scores.side_correct += g[1] == f[1]
                if g[1] != f[1]:
                    wrong.append(f"{label}: expected side {g[1]}, found {f[1]}")
        if not any(s in _POSITIVE for s, _ in gold.values()):
            scores.normal += 1
            scores.normal_given_finding += any(s in _POSITIVE for s, _ in found.values())
        if wrong:
            scores.errors.append(f"{record.id} {record.text!r}: " + "; ".join(wrong))
    by_pair: dict[str, list[str]] = {}
    for record in records:
        if record.pair is not None:
            by_pair.setdefault(record.pair, []).append(record.id)
    for ids in by_pair.values():
        if len(ids) == 2:
            scores.pairs += 1
            scores.pairs_differ += readings[ids[0]] != readings[ids[1]]
    return scores


# --------------------------------------------------------------------------------------------
# The keyword baseline: what twenty lines of keywords get, for scale.

_KEYWORDS = {
    "Cardiomegaly": r"cardiomegaly|enlarged heart|heart is enlarged|heart size is enlarged",
    "Edema": r"edema|congestion|heart failure",
    "Consolidation": r"consolidation",
    "Pneumonia": r"pneumonia|infection",
    "Atelectasis": r"atelectasis|collapse",
    "Pneumothorax": r"pneumothorax|pneumothoraces",
    "Pleural Effusion": r"effusion",
    "Lung Lesion": r"nodule|mass|granuloma",
}
_BASE_NEG = re.compile(r"\b(?:no|not|without|negative for|free of|resolved)\b")
_BASE_UNC = re.compile(r"\b(?:may|possible|possibly|likely|cannot|suspicious|concerning|versus)\b")


def keyword_baseline(text: str) -> list[Finding]:
    """A keyword per finding; negated or hedged by a cue anywhere before it in the sentence."""
    found: dict[str, Finding] = {}
    for sentence in re.split(r"[.;\n]", text.lower()):
        for label, pattern in _KEYWORDS.items():
            match = re.search(pattern, sentence)
            if not match or (label in found and found[label].status == "present"):
                continue
            before = sentence[: match.start()]
            status = "absent" if _BASE_NEG.search(before) else "present"
            status = "uncertain" if _BASE_UNC.search(sentence) and status == "present" else status
            left, right = "left" in sentence, "right" in sentence
            both = "bilateral" in sentence or "both" in sentence or "bibasilar" in sentence
            side = (
                "bilateral"
                if both or (left and right)
                else "left"
                if left
                else "right"
                if right
                else "none"
            )
            found[label] = Finding(label, status, "none" if label == "Cardiomegaly" else side)
    return list(found.values())


# --------------------------------------------------------------------------------------------
# Tables


def table(columns: Sequence[tuple[str, Scores]]) -> str:
    """A Markdown table: per-label P / R / F1 per column, then the summary measures."""
    head = "| measure | " + " | ".join(name for name, _ in columns) + " |"
    rule = "|---|" + "---|" * len(columns)
    rows = [head, rule]
    for label in EVAL_LABELS:
        cells = []
        for _, s in columns:
            p, r, f = s.prf(label)
            cells.append(f"{f:.3f} ({p:.2f}/{r:.2f}, n={s.tp[label] + s.fn[label]})")
        rows.append(f"| {label} F1 (P/R) | " + " | ".join(cells) + " |")
    summary = [
        ("**micro-F1, 8 findings**", lambda s: f"**{s.prf()[2]:.3f}**"),
        (
            "normal texts given a finding",
            lambda s: f"{s.normal_rate:.1%} ({s.normal_given_finding}/{s.normal})",
        ),
        ("laterality correct", lambda s: f"{s.laterality:.3f} ({s.side_correct}/{s.side_total})"),
        ("status correct (all statuses)", lambda s: f"{s.status_accuracy:.3f}"),
        (
            "minimal pairs read differently",
            lambda s: f"{s.pair_rate:.3f} ({s.pairs_differ}/{s.pairs})",
        ),
    ]
    for name, cell in summary:
        rows.append(f"| {name} | " + " | ".join(cell(s) for _, s in columns) + " |")
    return "\n".join(rows)


def _load_extract(path: str) -> Extractor:
    import importlib.util

    # loaded as a module of pytest_cxrperf.gate: a file from after the split imports its
    # vocabulary relatively (``from . import findings_vocabulary``: this installation's); a
    # single-file findings.py from before it imports nothing of ours
    spec = importlib.util.spec_from_file_location("pytest_cxrperf.gate._findings_before", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}: give the path of a findings.py")
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "pytest_cxrperf.gate"
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    extractor: Extractor = module.extract
    return extractor


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="findings_eval", description="Score the findings extractor on the evaluation set."
    )
    parser.add_argument("--split", choices=SPLITS, default="dev", help="dev (default) or test")
    parser.add_argument("--errors", action="store_true", help="list the texts read wrongly")
    parser.add_argument("--no-baseline", action="store_true", help="leave the keyword baseline out")
    parser.add_argument(
        "--before",
        metavar="FILE.py",
        help="also score the extract() of another version of the extractor (e.g. from "
        "'git show REV:pytest_cxrperf/gate/findings.py', or pytest_cxrperf/findings.py before "
        "the split), for a before/after table",
    )
    args = parser.parse_args(list(argv) if argv is not None else None)
    records = load(args.split)
    ours = evaluate(records)
    columns = [("extractor", ours)]
    if args.before:
        columns.insert(0, ("before", evaluate(records, _load_extract(args.before))))
    if not args.no_baseline:
        columns.append(("keyword baseline", evaluate(records, keyword_baseline)))
    print(f"findings extractor on the {args.split} half ({len(records)} texts)\n")
    print(table(columns))
    if args.errors:
        print("\n" + "\n".join(ours.errors))
    return 0


__all__ = [
    "EVAL_LABELS",
    "SPLITS",
    "Record",
    "Scores",
    "evaluate",
    "keyword_baseline",
    "load",
    "main",
    "table",
]
