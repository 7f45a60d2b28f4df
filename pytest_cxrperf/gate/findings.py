"""Rule-based findings extraction from report text, in the style of the CheXpert / NegBio labelers.

``extract(text)`` returns what a report *says* about the 14 CheXpert observations, one
:class:`Finding` per observation mentioned, with a status and a laterality (left / right /
bilateral / none). The status is what the image shows now (present / absent / uncertain), or
``historical`` (``history of pneumonia``, ``old rib fracture``) or ``hypothetical`` (a question
or a plan: ``to assess for pneumonia``, a sentence of the indication). Two reports are
*clinically equivalent* when :func:`compare` finds no difference; hypothetical mentions do not
count there, since they say nothing about the image. Everything is deterministic and needs
nothing but the standard library. ``pytest_cxrperf.findings_eval`` scores it on the project's
evaluation set (``python scripts/findings_eval.py``).

How a report is read:

1. The text is lower-cased, de-identification tokens (``XXXX``) are dropped, and it is split into
   sentences (``.``, ``!``, ``?`` followed by white space, ``;``, newlines). A decimal point
   (``1.5 cm``) does not end a sentence.
2. In each sentence, *mentions* are matched with synonym patterns per observation (``effusion``,
   ``pleural fluid``, ``blunting of the costophrenic angle`` -> Pleural Effusion; ``nodule``,
   ``mass``, ``nodular opacity`` -> Lung Lesion; ...). Overlapping matches keep the longest
   (``nodular opacity`` is a lesion, not an opacity). A few *normal* statements mean absence
   outright (``heart size is normal``, ``upper limits of normal`` -> Cardiomegaly absent,
   ``costophrenic angles are sharp`` -> Pleural Effusion absent), ``borderline`` heart size is
   uncertain, and mentions of other body parts (``soft tissue edema about the ankle``,
   ``granulomatous disease``, ``breast mass``) are dropped. ``hydropneumothorax`` is both a
   pneumothorax and an effusion.
3. A mention is *negated* by a cue before it (``no``, ``without``, ``free of``, ``negative for``,
   ``no evidence of``, ``resolved``, ...) or after it (``is not seen``, ``has resolved``, ...), and
   *uncertain* by a cue before it (``may represent``, ``may indicate``, ``possible``, ``likely``,
   ``suggestive of``, ``cannot exclude``, ``concerning for``, ``differential includes``, ...) or
   after it (``cannot be excluded``, ``is not excluded``, ``is favored``, ...); ``A versus B``
   makes both uncertain; *hypothetical* by ``to assess for``, ``rule out``, ``to document
   resolution of``, or by sitting in an ``Indication:`` sentence. When several cues reach a
   mention, the nearest wins. ``no A to suggest B`` negates B too, and a hedged reading of the
   same finding hedges it (``blunting of the left costophrenic angle, likely small effusion``).
   A *historical* cue (``history of``, ``prior``, ``old``, ``healed``) is the weakest: it counts
   only when no other reaches.
4. A cue before a mention reaches forward through a list (``no effusion or pneumothorax`` negates
   both; ``no effusion, consolidation, or pneumothorax`` all three) and stops at a scope boundary:
   ``but``, ``however``, ``although``, ``though``, ``except``, ``which``, ``whereas``, ``while``,
   ``with``, ``there is/are``, ``:``, or a comma / ``and`` followed by a new noun phrase (``a``,
   ``the``, a size or laterality word...): ``no effusion but a small pneumothorax`` and ``no
   effusion and a small pneumothorax`` leave the pneumothorax present -- unless the list goes
   on to an ``or``: ``no consolidation, suspicious opacity, large effusion, or pneumothorax``
   negates all four. A cue after a mention reaches back to the previous boundary or comma.
5. Laterality words (``left``, ``right``, ``left-sided``, ``bilateral``, ``bilaterally``,
   ``bibasilar``, ``bibasal``, ``biapical``, ``both``; ``lingula`` and ``retrocardiac`` are
   left) belong to the mention they modify: inside
   it, before it, or after it (``opacity in the right lower lobe``); a word between two mentions
   goes to the later one if a conjunction or comma separates it from the earlier one. A mention
   that interprets another (``opacity in the right lower lobe may represent pneumonia``, ``...,
   likely atelectasis``, ``effusion with adjacent atelectasis``) inherits its laterality when it
   has none of its own, and so do adjacent mentions (``right lower lobe pneumonic
   consolidation``) and ``A or B``. ``left`` and ``right`` together make ``bilateral``.
   Cardiomegaly and Enlarged Cardiomediastinum never carry a laterality.
6. Mentions of one observation are merged into one finding: present beats uncertain beats absent
   beats historical beats hypothetical, and the laterality is the union over the mentions with
   the winning status.
7. ``No Finding`` is derived as in CheXpert: present when the text says anything about the chest
   (at least one present, absent or uncertain mention, or a normal statement such as ``the lungs
   are clear`` or ``no acute cardiopulmonary process``) and no observation other than Support
   Devices is present or uncertain. Text with no such mention gives no ``No Finding``.

The output is sorted in the order of :data:`LABELS`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from . import findings_vocabulary as vocab
from .findings_vocabulary import LABELS, LATERALITIES, MIDLINE, STATUSES


@dataclass(frozen=True, order=False)
class Finding:
    """What a report says about one CheXpert observation."""

    label: str
    status: str
    laterality: str = "none"

    def __post_init__(self) -> None:
        if self.label not in LABELS:
            raise ValueError(f"unknown finding label {self.label!r}; expected one of {LABELS}")
        if self.status not in STATUSES:
            raise ValueError(f"unknown status {self.status!r}; expected one of {STATUSES}")
        if self.laterality not in LATERALITIES:
            raise ValueError(
                f"unknown laterality {self.laterality!r}; expected one of {LATERALITIES}"
            )

    def sort_key(self) -> tuple[int, int, int]:
        return (
            LABELS.index(self.label),
            STATUSES.index(self.status),
            LATERALITIES.index(self.laterality),
        )

    def describe(self) -> str:
        """``Pleural Effusion: present (left)``; laterality is omitted when it is ``none``."""
        side = "" if self.laterality == "none" else f" ({self.laterality})"
        return f"{self.label}: {self.status}{side}"

    def to_dict(self) -> dict[str, str]:
        return {"label": self.label, "status": self.status, "laterality": self.laterality}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        if not isinstance(data, dict) or "label" not in data or "status" not in data:
            raise ValueError(f"a finding needs 'label' and 'status', got {data!r}")
        unknown = sorted(set(data) - {"label", "status", "laterality"})
        if unknown:
            raise ValueError(f"unknown finding keys {unknown}")
        return cls(str(data["label"]), str(data["status"]), str(data.get("laterality", "none")))


@dataclass(frozen=True)
class _Mention:
    label: str
    start: int
    end: int
    fixed: str | None = None  # a statement with its own status ("heart size is normal": absent)


@dataclass(frozen=True)
class _Cue:
    kind: str  # "absent" | "uncertain" | "hypothetical" | "historical"
    start: int
    end: int


def _sentences(text: str) -> list[str]:
    lowered = re.sub(r"[ \t\r\f\v]+", " ", vocab.DEID_RE.sub("", text.lower()))
    return [s.strip() for s in vocab.SENTENCE_RE.split(lowered) if s and s.strip()]


def _find_mentions(sentence: str) -> tuple[list[_Mention], bool]:
    candidates: list[_Mention] = []
    for label, regex in vocab.NORMAL_RES:
        candidates += [
            _Mention(label, m.start(), m.end(), "absent") for m in regex.finditer(sentence)
        ]
    for label, regex in vocab.UNCERTAIN_RES:
        candidates += [
            _Mention(label, m.start(), m.end(), "uncertain") for m in regex.finditer(sentence)
        ]
    for label, regex in vocab.MENTION_RES:
        candidates += [_Mention(label, m.start(), m.end()) for m in regex.finditer(sentence)]
    candidates += [_Mention("", m.start(), m.end()) for m in vocab.OTHER_SITE_RE.finditer(sentence)]
    # longest first (statements with their own status first on ties), then leftmost; drop overlaps
    candidates.sort(key=lambda m: (-(m.end - m.start), m.fixed is None, m.start))
    kept: list[_Mention] = []
    for cand in candidates:
        if all(cand.end <= k.start or cand.start >= k.end for k in kept):
            kept.append(cand)
    kept = sorted((m for m in kept if m.label), key=lambda m: m.start)  # other sites dropped
    # a hydropneumothorax is a pneumothorax and an effusion
    kept = [
        twin
        for m in kept
        for twin in (
            [m, _Mention("Pleural Effusion", m.start, m.end, m.fixed)]
            if sentence.startswith("hydro", m.start)
            else [m]
        )
    ]
    normal_statement = vocab.NORMAL_STATEMENT_RE.search(sentence) is not None
    return kept, normal_statement


def _find_cues(sentence: str, mentions: list[_Mention]) -> tuple[list[_Cue], list[_Cue]]:
    """Pre-cues (reach forward) and post-cues (reach back); cues inside a mention are ignored."""

    def outside(start: int, end: int) -> bool:
        return all(end <= m.start or start >= m.end for m in mentions)

    def collect(regexes: list[tuple[str, re.Pattern[str]]]) -> list[_Cue]:
        found: list[_Cue] = []
        for kind, regex in regexes:
            found += [
                _Cue(kind, m.start(), m.end())
                for m in regex.finditer(sentence)
                if outside(m.start(), m.end())
            ]
        # the longest cue wins where two overlap ("not excluded" over "not")
        found.sort(key=lambda c: (-(c.end - c.start), c.start))
        kept: list[_Cue] = []
        for cue in found:
            if all(cue.end <= k.start or cue.start >= k.end for k in kept):
                kept.append(cue)
        return sorted(kept, key=lambda c: c.start)

    post = collect([("uncertain", vocab.UNC_POST_RE), ("absent", vocab.NEG_POST_RE)])
    taken = [(c.start, c.end) for c in post]
    pre = [
        c
        for c in collect(
            [
                ("uncertain", vocab.UNC_PRE_RE),
                ("absent", vocab.NEG_PRE_RE),
                ("hypothetical", vocab.HYP_PRE_RE),
                ("historical", vocab.HIST_PRE_RE),
            ]
        )
        if all(c.end <= s or c.start >= e for s, e in taken)
    ]
    return pre, post


def _reaches(sentence: str, cue_end: int, mention_start: int) -> bool:
    """Does a cue ending at ``cue_end`` reach forward to a mention at ``mention_start``?

    Not past a word such as ``but`` or ``with``; not past a comma or ``and`` before a new noun
    phrase either, unless the list goes on to an ``or``: in "no consolidation, suspicious
    opacity, large effusion, or pneumothorax" every item is negated, in "no pneumothorax, small
    left effusion" the effusion is not."""
    between = sentence[cue_end:mention_start]
    if not vocab.HARD_BOUNDARY_RE.search(between):
        return True
    if vocab.WORD_BOUNDARY_RE.search(between):
        return False
    clause_end = vocab.WORD_BOUNDARY_RE.search(sentence, mention_start)
    rest = sentence[cue_end : clause_end.start() if clause_end else len(sentence)]
    last_soft = max(m.end() for m in vocab.HARD_BOUNDARY_RE.finditer(between))
    return vocab.OR_RE.search(rest, last_soft) is not None


def _status(sentence: str, mention: _Mention, pre: list[_Cue], post: list[_Cue]) -> str:
    if mention.fixed is not None:
        return mention.fixed
    best: tuple[int, str] | None = None  # (distance, status)
    history: tuple[int, str] | None = None  # the weakest cue: used only when no other reaches
    for cue in pre:
        if cue.end > mention.start or not _reaches(sentence, cue.end, mention.start):
            continue
        distance = mention.start - cue.end
        if cue.kind == "historical":
            if history is None or distance < history[0]:
                history = (distance, cue.kind)
        elif best is None or distance < best[0]:
            best = (distance, cue.kind)
    for cue in post:
        if cue.start < mention.end:
            continue
        between = sentence[mention.end : cue.start]
        if vocab.BOUNDARY_RE.search(between):
            continue
        distance = cue.start - mention.end
        if best is None or distance < best[0]:
            best = (distance, cue.kind)
    best = best or history
    return "present" if best is None else best[1]


def _side_of(word: str) -> set[str]:
    if word in ("left", "lingula", "lingular", "retrocardiac"):
        return {"left"}
    if word in ("right",):
        return {"right"}
    return {"left", "right"}


def _lateralities(sentence: str, mentions: list[_Mention], statuses: list[str]) -> list[set[str]]:
    sides: list[set[str]] = [set() for _ in mentions]
    if not mentions:
        return sides
    for match in vocab.LATERALITY_RE.finditer(sentence):
        word = match.group(0).replace("-", "")
        side = _side_of(word)
        pos = match.start()
        inside = [i for i, m in enumerate(mentions) if m.start <= pos < m.end]
        if inside:
            sides[inside[0]] |= side
            continue
        after = next((i for i, m in enumerate(mentions) if m.start >= match.end()), None)
        before = max((i for i, m in enumerate(mentions) if m.end <= pos), default=None)
        if before is None and after is not None:
            if vocab.WORD_BOUNDARY_RE.search(sentence[match.end() : mentions[after].start]):
                continue
            target = after
        elif after is None and before is not None:
            if vocab.HARD_BOUNDARY_RE.search(sentence[mentions[before].end : pos]):
                continue
            target = before
        elif before is not None and after is not None:
            gap = sentence[mentions[before].end : pos]
            target = after if vocab.SEPARATOR_RE.search(gap) else before
        else:  # pragma: no cover - mentions is not empty
            continue
        sides[target] |= side
    # adjacent mentions describe one thing ("right lower lobe pneumonic consolidation"), and a
    # hydropneumothorax's two findings lie on one side
    for i in range(1, len(mentions)):
        if not sentence[mentions[i - 1].end : mentions[i].start].strip():
            sides[i - 1] = sides[i] = sides[i - 1] | sides[i]
    # an interpreting mention inherits its antecedent's laterality
    for i in range(1, len(mentions)):
        if sides[i]:
            continue
        gap = sentence[mentions[i - 1].end : mentions[i].start]
        if vocab.LIST_GAP_RE.match(gap) and statuses[i] == statuses[i - 1] == "uncertain":
            sides[i] = set(sides[i - 1])  # "may represent atelectasis or pneumonia"
            continue
        if gap.strip() == "or" and statuses[i] == statuses[i - 1] == "present":
            sides[i] = set(sides[i - 1])  # "left lower lobe atelectasis or consolidation"
            continue
        if not vocab.LINK_RE.search(gap):
            continue
        rest = vocab.WHICH_RE.sub(" ", vocab.LINK_RE.sub(" ", gap)).replace(",", " ")
        if not vocab.SEPARATOR_RE.search(rest) and not vocab.HARD_BOUNDARY_RE.search(rest):
            sides[i] = set(sides[i - 1])
    return sides


def _laterality_name(sides: set[str]) -> str:
    if {"left", "right"} <= sides:
        return "bilateral"
    if sides:
        return next(iter(sides))
    return "none"


_STATUS_RANK = {"present": 0, "uncertain": 1, "absent": 2, "historical": 3, "hypothetical": 4}
_CURRENT = ("present", "uncertain", "absent")  # what the image shows, as opposed to a history


def _merge(raw: Iterable[tuple[str, str, set[str]]]) -> list[Finding]:
    by_label: dict[str, list[tuple[str, set[str]]]] = {}
    for label, status, mention_sides in raw:
        by_label.setdefault(label, []).append((status, mention_sides))
    findings = []
    for label, entries in by_label.items():
        status = min((s for s, _ in entries), key=_STATUS_RANK.__getitem__)
        sides: set[str] = set()
        for s, side in entries:
            if s == status:
                sides |= side
        laterality = "none" if label in MIDLINE else _laterality_name(sides)
        findings.append(Finding(label, status, laterality))
    return sorted(findings, key=Finding.sort_key)


def extract(text: str) -> list[Finding]:
    """The findings a report states, one per observation, sorted in :data:`LABELS` order."""
    if not isinstance(text, str):
        raise TypeError(f"extract() needs report text (str), got {type(text).__name__}")
    raw: list[tuple[str, str, set[str]]] = []
    says_something = False
    for sentence in _sentences(text):
        mentions, normal_statement = _find_mentions(sentence)
        says_something = says_something or normal_statement
        if not mentions:
            continue
        pre, post = _find_cues(sentence, mentions)
        statuses = [_status(sentence, m, pre, post) for m in mentions]
        if vocab.INDICATION_RE.match(sentence):  # the question asked, not the answer
            statuses = ["hypothetical" if s != "absent" else s for s in statuses]
        says_something = says_something or any(s in _CURRENT for s in statuses)
        for i in range(1, len(mentions)):  # "no consolidation to suggest pneumonia"
            gap = sentence[mentions[i - 1].end : mentions[i].start]
            if statuses[i - 1] == "absent" and vocab.TO_SUGGEST_RE.match(gap):
                statuses[i] = "absent"
            # a hedged reading of the same finding hedges the finding: "blunting of the right
            # costophrenic angle, likely a small effusion", "enlarged cardiac silhouette may
            # reflect cardiomegaly"
            if (
                mentions[i - 1].label == mentions[i].label
                and statuses[i - 1] == "present"
                and statuses[i] == "uncertain"
                and vocab.LINK_RE.search(gap)
                and not vocab.SEPARATOR_RE.search(vocab.LINK_RE.sub(" ", gap).replace(",", " "))
            ):
                statuses[i - 1] = "uncertain"
        sides = _lateralities(sentence, mentions, statuses)
        for versus in vocab.VERSUS_RE.finditer(sentence):  # "A versus B": both uncertain
            before = max(
                (i for i, m in enumerate(mentions) if m.end <= versus.start()), default=None
            )
            after = next((i for i, m in enumerate(mentions) if m.start >= versus.end()), None)
            pair = [i for i in (before, after) if i is not None]
            shared = set().union(*(sides[i] for i in pair)) if pair else set()
            for i in pair:
                sides[i] = set(shared)
                if statuses[i] == "present":
                    statuses[i] = "uncertain"
        for mention, status, side in zip(mentions, statuses, sides, strict=True):
            raw.append((mention.label, status, side))
    findings = _merge(raw)
    if says_something and not any(
        f.status in ("present", "uncertain") and f.label != "Support Devices" for f in findings
    ):
        findings = sorted([Finding("No Finding", "present"), *findings], key=Finding.sort_key)
    return findings


# --------------------------------------------------------------------------------------------
# Comparison and JSON


def _by_label(findings: Iterable[Finding]) -> dict[str, Finding]:
    """One finding per label; hypothetical ones left out (an indication's question is no
    finding: "To assess for pneumonia. Lungs are clear." equals "Lungs are clear.")."""
    table: dict[str, Finding] = {}
    for finding in findings:
        if finding.status == "hypothetical":
            continue
        if finding.label in table and table[finding.label] != finding:
            merged = _merge(
                [(f.label, f.status, _sides(f.laterality)) for f in (table[finding.label], finding)]
            )
            table[finding.label] = merged[0]
        else:
            table[finding.label] = finding
    return table


def _sides(laterality: str) -> set[str]:
    return (
        {"left", "right"}
        if laterality == "bilateral"
        else (set() if laterality == "none" else {laterality})
    )


def _state(finding: Finding) -> str:
    return (
        finding.status
        if finding.laterality == "none"
        else f"{finding.status} ({finding.laterality})"
    )


def compare(reference: Sequence[Finding], candidate: Sequence[Finding]) -> list[str]:
    """Human-readable differences, one line per observation that differs (empty: equivalent)."""
    ref, cand = _by_label(reference), _by_label(candidate)
    lines: list[str] = []
    for label in LABELS:
        r, c = ref.get(label), cand.get(label)
        if r == c:
            continue
        if c is None:
            assert r is not None
            lines.append(f"{label}: reference says {_state(r)}, candidate does not mention it")
        elif r is None:
            lines.append(f"{label}: candidate says {_state(c)}, reference does not mention it")
        elif r.status != c.status:
            lines.append(f"{label}: reference says {_state(r)}, candidate says {_state(c)}")
        else:
            lines.append(
                f"{label}: both say {r.status}, but reference laterality is {r.laterality} "
                f"and candidate laterality is {c.laterality}"
            )
    return lines


def to_json(findings: Iterable[Finding]) -> list[dict[str, str]]:
    """JSON-ready list of ``{"label", "status", "laterality"}`` objects."""
    return [f.to_dict() for f in sorted(findings, key=Finding.sort_key)]


def from_json(data: Any) -> list[Finding]:
    """Inverse of :func:`to_json`; accepts the list or its JSON text."""
    if isinstance(data, str):
        data = json.loads(data)
    if not isinstance(data, list):
        raise ValueError(f"findings JSON must be a list, got {type(data).__name__}")
    return sorted((Finding.from_dict(item) for item in data), key=Finding.sort_key)


def dumps(findings: Iterable[Finding], indent: int | None = None) -> str:
    return json.dumps(to_json(findings), indent=indent)


def equivalent(reference_text: str, candidate_text: str) -> bool:
    """True when two reports state the same findings (:func:`compare` finds no difference)."""
    return not compare(extract(reference_text), extract(candidate_text))


__all__ = [
    "LABELS",
    "LATERALITIES",
    "STATUSES",
    "Finding",
    "compare",
    "dumps",
    "equivalent",
    "extract",
    "from_json",
    "to_json",
]
