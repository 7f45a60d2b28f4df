"""The extractor with negspacy's NegEx doing the negation, against the rules (issue 14's measure).

Not a dependency of the project: run it in a scratch environment of its own, e.g.

    python -m venv /tmp/negspacy && /tmp/negspacy/bin/pip install negspacy   # spaCy 3.8, ~330 MB
    PYTHONPATH=. /tmp/negspacy/bin/python scripts/findings_negspacy.py test

Both variants keep the rules' mention finder, laterality and merging (negspacy marks entities as
negated; it does not find them), so the columns differ only in how a status is decided:
``negspacy`` calls a mention absent when NegEx (termset ``en_clinical``, blank English pipeline,
no model download) negates it and present otherwise; ``negspacy + rules' hedges`` keeps the rules'
uncertain / hypothetical / historical readings where NegEx does not negate.
"""

from __future__ import annotations

import sys

import spacy
from negspacy.negation import Negex  # noqa: F401  (registers the "negex" factory)
from negspacy.termsets import termset

from pytest_cxrperf.findings_eval import Extractor, evaluate, load, table
from pytest_cxrperf.gate import findings as F

nlp = spacy.blank("en")
sentencizer = nlp.add_pipe("sentencizer")
negex = nlp.add_pipe("negex", config={"neg_termset": termset("en_clinical").get_patterns()})


def with_negspacy(keep_rule_hedges: bool) -> Extractor:
    def extract(text: str) -> list[F.Finding]:
        raw = []
        for sentence in F._sentences(text):
            mentions, _ = F._find_mentions(sentence)
            if not mentions:
                continue
            pre, post = F._find_cues(sentence, mentions)
            rules = [F._status(sentence, m, pre, post) for m in mentions]
            doc = sentencizer(nlp.make_doc(sentence))
            spans, index = [], []
            for i, m in enumerate(mentions):
                span = doc.char_span(m.start, m.end, label=m.label, alignment_mode="expand")
                if span is not None and all(
                    span.start >= s.end or span.end <= s.start for s in spans
                ):
                    spans.append(span)
                    index.append(i)
            doc.ents = spans
            negated = {i: e._.negex for i, e in zip(index, negex(doc).ents, strict=True)}
            statuses = []
            for i, m in enumerate(mentions):
                if m.fixed is not None:
                    statuses.append(m.fixed)
                elif negated.get(i):
                    statuses.append("absent")
                elif keep_rule_hedges and rules[i] in ("uncertain", "hypothetical", "historical"):
                    statuses.append(rules[i])
                else:
                    statuses.append("present")
            sides = F._lateralities(sentence, mentions, statuses)
            raw += [
                (m.label, s, side) for m, s, side in zip(mentions, statuses, sides, strict=True)
            ]
        return F._merge(raw)

    return extract


if __name__ == "__main__":
    split = sys.argv[1] if len(sys.argv) > 1 else "dev"
    records = load(split)
    print(f"{split} half ({len(records)} texts)\n")
    columns = [
        ("rules", evaluate(records)),
        ("negspacy", evaluate(records, with_negspacy(False))),
        ("negspacy + rules' hedges", evaluate(records, with_negspacy(True))),
    ]
    print(table(columns))
