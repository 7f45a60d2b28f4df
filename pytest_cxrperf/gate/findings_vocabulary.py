"""The findings extractor's vocabulary: the observations, statuses and sides a finding can have,
and the phrases that express them (mentions, statements of normality, negation, uncertainty,
history and hypothesis cues, scope boundaries, laterality words), as regular expressions.

Data, not logic: :mod:`pytest_cxrperf.gate.findings` reads a report with these tables (its
docstring says how). Each pattern is matched on lower-cased text with word boundaries around the
whole pattern (:data:`MENTION_RES` and the other ``*_RE`` / ``*_RES`` names are the compiled
forms).
"""

from __future__ import annotations

import re

LABELS: tuple[str, ...] = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)
STATUSES: tuple[str, ...] = ("present", "absent", "uncertain", "historical", "hypothetical")
LATERALITIES: tuple[str, ...] = ("left", "right", "bilateral", "none")
# observations that never carry a laterality
MIDLINE = frozenset({"No Finding", "Cardiomegaly", "Enlarged Cardiomediastinum"})

# --------------------------------------------------------------------------------------------
# Patterns. Each is matched on lower-cased text with word boundaries around the whole pattern.

_ADVERB = (
    r"(?:(?:mildly|moderately|severely|markedly|slightly|massively|significantly|substantially|"
    r"again|still|now|minimally) )"
)
MENTIONS: dict[str, str] = {
    "Enlarged Cardiomediastinum": (
        r"enlarged cardiomediastin\w*|(?:widened|widening of the|wide) mediastinum|"
        r"mediastinal (?:widening|enlargement)|"
        r"cardiomediastinal (?:silhouette|contours?) (?:is |are )?" + _ADVERB + r"?"
        r"(?:enlarged|widened|prominent)|"
        r"mediastinum is " + _ADVERB + r"?(?:widened|enlarged)"
    ),
    "Cardiomegaly": (
        r"cardiomegaly|cardiac enlargement|"
        r"enlarge(?:d|ment of the) (?:heart|cardiac silhouette)|"
        r"enlarged cardiac (?:silhouette|size)|"
        r"(?:heart|cardiac silhouette|heart size|cardiac size)(?: is| remains| appears)? "
        + _ADVERB
        + r"?(?:enlarged|increased)"
    ),
    "Lung Opacity": (
        r"opacit(?:y|ies)|opacification|infiltrat(?:e|es|ion|ive)|"
        r"air-?space (?:disease|opacit(?:y|ies))|densit(?:y|ies)|haziness"
    ),
    "Lung Lesion": (
        r"nodul(?:e|es)|nodular (?:opacit(?:y|ies)|densit(?:y|ies))|mass(?:es)?|"
        r"(?:lung |pulmonary |cavitary )?lesions?|granulomas?|neoplasms?|tumou?rs?|carcinoma"
    ),
    "Edema": (
        r"o?edema|(?:pulmonary|vascular|venous) congestion|vascular (?:engorgement|prominence)|"
        r"kerley (?:b )?lines|heart failure|chf|cephalization|fluid overload"
    ),
    "Consolidation": r"consolidat(?:ion|ions|ive|ed)",
    "Pneumonia": (
        r"(?:broncho)?pneumonias?|pneumonic|infections?|infectious (?:process|etiology)|"
        r"aspiration"
    ),
    "Atelectasis": r"atelecta(?:sis|ses|tic)|collapsed?",
    "Pneumothorax": r"(?:hydro)?pneumothora(?:x|ces)|ptx",
    "Pleural Effusion": (
        r"(?<!pericardial )(?:pleural )?effusions?|pleural fluid|"
        r"(?:blunting|blunted|blunts?) (?:of )?(?:the )?(?:left |right |bilateral |both )?"
        r"costophrenic (?:angles?|sulc(?:us|i))|"
        r"costophrenic (?:angles?|sulc(?:us|i)) (?:is |are )?" + _ADVERB + r"?blunt(?:ed|ing)"
    ),
    "Pleural Other": (
        r"pleural (?:thickening|plaques?|scarring|calcifications?)|fibrothorax|"
        r"pleuroparenchymal scarring"
    ),
    "Fracture": r"fractur(?:e|es|ed)|fx",
    "Support Devices": (
        r"(?:endotracheal|et|tracheostomy|nasogastric|ng|orogastric|og|enteric|feeding|chest|"
        r"dobhoff) tubes?|tracheostomy|"
        r"(?:(?:internal jugular|subclavian|jugular|femoral) )?"
        r"(?:central venous|central|venous|picc|midline|swan-ganz|pulmonary artery|arterial|"
        r"dialysis|internal jugular|subclavian) (?:catheters?|lines?)|catheters?|picc|"
        r"pacemaker|pacer|(?:pacemaker|pacer|icd|cardiac|epicardial|transvenous|monitoring|ekg|ecg)"
        r" leads?|icd|defibrillator|(?:sternotomy )?wires|port-a-cath|(?:chest )?port|stents?|"
        r"(?:surgical )?clips|drains?|tubes and lines|lines and tubes|support devices|"
        r"(?:prosthetic|mechanical) valve|valve replacement"
    ),
}
NORMALS: dict[str, str] = {  # statements of normality: the observation is absent
    "Cardiomegaly": (
        r"(?:heart|cardiac|heart size|cardiac size|cardiac silhouette)(?: is| remains| appears)?"
        r"(?: at)?(?: the)? upper limits? of normal(?: in size)?|"
        r"(?:heart|cardiac silhouette) and (?:cardio)?mediastin\w* (?:are|appear|remain) "
        r"(?:normal|unremarkable|within normal limits)|"
        r"(?:normal|normal-sized?|upper normal|top normal) (?:heart|cardiac) (?:size|silhouette)|"
        r"(?:heart|cardiac silhouette|heart size|cardiac size)(?: is| remains| appears)? "
        r"(?:(?:upper|top|within)[ -])?(?:normal|normal limits|unremarkable|not enlarged)"
        r"(?: in size)?"
    ),
    "Enlarged Cardiomediastinum": (
        r"(?:normal|unremarkable) (?:cardio)?mediastinal (?:silhouette|contours?)|"
        r"(?:cardio)?mediastinal (?:silhouette|contours?)(?: is| are)? "
        r"(?:within )?(?:normal|normal limits|unremarkable|not widened)"
    ),
    "Pleural Effusion": (
        r"(?:sharp|clear|preserved) costophrenic angles?|"
        r"costophrenic angles? (?:is |are |remain )?(?:sharp|clear|preserved|normal)"
    ),
}
# statements that leave an observation uncertain outright ("borderline" heart size)
UNCERTAIN_STATEMENTS: dict[str, str] = {
    "Cardiomegaly": (
        r"(?:heart|cardiac|heart size|cardiac size|cardiac silhouette)(?: is| remains| appears)? "
        r"borderline(?: in size| enlarged| large)?|"
        r"borderline (?:enlarged |large )?(?:heart|cardiac)(?: size| silhouette)?|"
        r"borderline cardiomegaly"
    ),
}
# mentions that are not the chest finding they look like: dropped ("soft tissue edema about the
# ankle" is not pulmonary edema; "granulomatous infection" is old, healed disease, not pneumonia)
OTHER_SITE = (
    r"(?:soft[ -]tissue|subcutaneous|chest wall|extremity|leg|legs|pedal|peripheral|ankle|"
    r"scalp|facial|airway|laryngeal|bowel wall|cerebral|marrow|scrotal)"
    r"(?: swelling(?: and| or|,))? (?:o?edema|infections?|masse?s?|nodules?)|"
    r"(?:o?edema|swelling|infections?) (?:of|about|in|involving|around) the (?:[\w-]+ ){0,2}"
    r"(?:ankles?|legs?|arms?|feet|foot|hands?|face|neck|flanks?|chest wall|soft tissues?|"
    r"extremit(?:y|ies)|abdominal wall|scrotum|scalp)|"
    r"anasarca|granulomatous (?:infection|disease|process|changes?)|"
    r"(?:breast|thyroid|neck|abdominal|renal|adrenal|liver|hepatic|soft tissue) "
    r"(?:masse?s?|nodules?)|"
    r"urinary tract infections?|uti|wound infections?"
)
# normal statements that say something about the chest without naming an observation
NORMAL_STATEMENTS = (
    r"no acute (?:cardiopulmonary|intrathoracic|cardiothoracic)? ?(?:process|abnormality|"
    r"abnormalities|disease|findings?)|lungs are clear|clear lungs|"
    r"normal chest(?: radiograph| x-ray)?|unremarkable chest(?: radiograph| x-ray)?|"
    r"(?:pulmonary )?vascula(?:rity|ture)(?: is| are| appears?)? (?:within normal limits|normal)|"
    r"normal (?:pulmonary )?vascula(?:rity|ture)"
)

NEG_PRE = (  # the longest alternatives first: a regex takes the first that matches
    r"no (?:[\w-]+ ){0,2}(?:findings?|evidence|signs?) (?:to suggest|suggestive of|"
    r"suspicious for|concerning for|to indicate|of)|"
    r"no(?! longer)|not(?! (?:be )?(?:excluded|ruled out))|without|free of|clear of|negative for|"
    r"absence of|resolution of|(?<!has )(?<!have )(?<!had )(?<!is )(?<!are )resolved|"
    r"interval resolution of|(?:interval )?clear(?:ing|ance) of|no evidence of|never"
)
NEG_POST = (
    r"(?:is |are )?not (?:seen|identified|present|visualized|appreciated|demonstrated|evident|"
    r"noted)|"
    r"(?:has|have|had) (?:since |now |largely |nearly |almost |completely |essentially )?"
    r"(?:resolved|cleared)|(?:resolved|cleared) in the interval|(?:is|are) absent|"
    r"(?:is|are) gone|(?:has|have) disappeared|can be excluded|"
    r"(?:is |are )?no longer (?:seen|present|visualized|evident|identified|noted|appreciated)|"
    r"(?:has|have) been ruled out"
)
# a question or a plan, not a finding: "to assess for pneumonia", "follow-up to document
# resolution of pneumonia"; a sentence of the indication section is read the same way
HYP_PRE = (
    r"(?:to )?(?:evaluate|assess|screen)(?: for)?|(?:to )?rule out|r/o|(?:to )?exclude|"
    r"evaluation (?:for|of)|assessment (?:for|of)|"
    r"if (?:there is )?(?:clinical )?(?:concern|suspicion) (?:for|of)|"
    r"(?:to )?(?:document|confirm|ensure) (?:the )?(?:complete )?resolution of"
)
INDICATION_RE = re.compile(
    r"^(?:indications?|reason for (?:exam|study|examination|request)|clinical (?:history|"
    r"indication|information|question)|history)\s*:"
)
# a past condition, not today's finding; the weakest cue: any other that reaches wins
HIST_PRE = (
    r"history of|h/o|hx of|remote|healed|old|sequelae? of|status post|s/p|"
    r"(?:prior|previous)(?! (?:study|studies|exam\w*|radiographs?|films?|chest|x-?rays?|ct|"
    r"imaging|comparison|day|one))"
)
UNC_PRE = (
    r"(?:may|might|could)(?: also)?(?: well)? (?:represent|be|reflect|indicate|signify|suggest|"
    r"relate to|be due to|be related to|be secondary to)|unlikely(?: to (?:represent|be))?|"
    r"favou?ring|possible|possibly|probable|probably|likely|questionable|question of|suspected|"
    r"suspicious for|"
    r"presumed|suggestive of|suggests?|suggesting|concerning for|concern for|worrisome for|"
    r"cannot exclude|can not exclude|cannot rule out|can not rule out|not excluding|"
    r"(?:difficult|hard|impossible) to (?:exclude|rule out)|"
    r"differential (?:diagnosis )?"
    r"(?:includes|considerations? include)|equivocal|borderline|atypical for|versus|vs\.?"
)
UNC_POST = (
    r"cannot be (?:excluded|ruled out)|can not be (?:excluded|ruled out)|"
    r"(?:is |are )?not (?:be )?(?:excluded|ruled out)|(?:is|are) (?:possible|likely|suspected|"
    r"questioned|considered|a consideration|favou?red|unlikely|less likely|not likely)|"
    r"(?:is|are) (?:difficult|hard) to (?:exclude|rule out)|may be present|could be present"
)
# a cue before a mention does not reach past these
WORD_BOUNDARY = (
    r"but|however|although|though|except|which|whereas|while|with|there (?:is|are|has|have)"
)
# a comma or "and" followed by a new noun phrase ends a list
NEW_PHRASE = (
    r"(?= (?:a|an|the|there|this|these|small|moderate|large|mild|severe|trace|minimal|"
    r"tiny|new|increased|decreased|increasing|decreasing|persistent|stable|unchanged|left|right|"
    r"bilateral|mildly|moderately|severely|markedly|slightly|heart|cardiac|lungs?)\b)"
)
# words that separate one mention's modifiers from the next's
SEPARATOR = r"and|or|with|without|but|no|versus|vs\.?|as well as|plus"
# phrases by which a mention interprets the one before it (laterality is inherited)
LINK = (
    r"may represent|may be|could represent|could be|might represent|may reflect|possible|"
    r"possibly|probable|probably|likely|suggestive of|suggesting|concerning for|concern for|"
    r"worrisome for|suspicious for|consistent with|compatible with|represents?|representing|"
    r"reflects?|reflecting|"
    r"due to|secondary to|with (?:adjacent|associated|surrounding)|versus|vs\.?|"
    r"related to|from"
)
LATERALITY = (
    r"left|right|bilateral|bilaterally|bibasilar|bibasal|biapical|both|"
    r"bi-?lateral|bi-basilar|lingula|lingular|retrocardiac"
)


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w-])(?:{pattern})(?![\w])")


MENTION_RES = [(label, _compile(p)) for label, p in MENTIONS.items()]
NORMAL_RES = [(label, _compile(p)) for label, p in NORMALS.items()]
UNCERTAIN_RES = [(label, _compile(p)) for label, p in UNCERTAIN_STATEMENTS.items()]
OTHER_SITE_RE = _compile(OTHER_SITE)
HYP_PRE_RE = _compile(HYP_PRE)
HIST_PRE_RE = _compile(HIST_PRE)
NORMAL_STATEMENT_RE = _compile(NORMAL_STATEMENTS)
NEG_PRE_RE = _compile(NEG_PRE)
NEG_POST_RE = _compile(NEG_POST)
UNC_PRE_RE = _compile(UNC_PRE)
UNC_POST_RE = _compile(UNC_POST)
OR_RE = _compile(r"or|nor")
DEID_RE = re.compile(r"\bx{3,}\b ?")  # de-identification tokens ("no XXXX pleural effusion")
# where a cue before a mention stops reaching forward
HARD_BOUNDARY_RE = re.compile(
    rf"(?<![\w-])(?:{WORD_BOUNDARY})(?![\w])|[:;]|,{NEW_PHRASE}|(?<![\w-])and{NEW_PHRASE}"
)
# where a cue after a mention stops reaching back: the same, and any comma
BOUNDARY_RE = re.compile(rf"{HARD_BOUNDARY_RE.pattern}|,")
WORD_BOUNDARY_RE = re.compile(rf"(?<![\w-])(?:{WORD_BOUNDARY})(?![\w])|[:;]")
SEPARATOR_RE = re.compile(rf"(?<![\w-])(?:{SEPARATOR})(?![\w])|[,;]")
LIST_GAP_RE = re.compile(r"^\s*(?:,|or|and|, or|, and)\s*$")
LINK_RE = _compile(LINK)
LATERALITY_RE = re.compile(rf"(?<![\w])(?:{LATERALITY})(?![a-z])")
VERSUS_RE = _compile(r"versus|vs\.?")
WHICH_RE = _compile(r"which|that")
TO_SUGGEST_RE = re.compile(r"^\s*(?:to|that would) (?:suggest|indicate)\s*$")
SENTENCE_RE = re.compile(r"(?<=[.!?])\s+|\n+|;")
