"""A byte-level BPE tokenizer built locally with the ``tokenizers`` library (no hub download).

The shipped ``data/tokenizer.json`` is produced by :func:`build_tokenizer` from the radiology corpus
below; ``python -m pytest_cxrperf.model.tokenizer`` rebuilds it. Byte-level BPE never yields an
unknown token, so any indication text a user writes can be encoded.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

PAD, BOS, EOS, IMAGE = "<pad>", "<s>", "</s>", "<image>"
SPECIAL_TOKENS = [PAD, BOS, EOS, IMAGE]  # ids 0..3, matching ArchitectureConfig defaults
DEFAULT_VOCAB_SIZE = 1024

_CORPUS = """
FINDINGS: The lungs are clear. There is no focal consolidation, pleural effusion or pneumothorax.
The cardiomediastinal silhouette is within normal limits. No acute osseous abnormality.
Heart size is normal. The mediastinal and hilar contours are unremarkable.
There is a small left pleural effusion with adjacent atelectasis.
There is a moderate right pleural effusion. Large bilateral pleural effusions are present.
Mild cardiomegaly is noted. The heart is moderately enlarged. Severe cardiomegaly.
There is a small right apical pneumothorax. No pneumothorax is seen. Left-sided pneumothorax.
Patchy opacity in the right lower lobe may represent pneumonia or aspiration.
Consolidation in the left lower lobe cannot be excluded. Focal consolidation is present.
A 1.5 cm nodule is seen in the right upper lobe. There is a nodular opacity in the left mid lung.
Endotracheal tube terminates 4 cm above the carina. Right internal jugular central venous catheter
tip in the mid superior vena cava. Nasogastric tube courses below the diaphragm. Pacemaker leads
in the right atrium and right ventricle. Sternotomy wires are intact.
Pulmonary edema is mild. There is mild pulmonary vascular congestion. Interstitial markings.
Lung volumes are low. There is bibasilar atelectasis. Linear atelectasis at the left base.
Possible fracture of the right seventh rib. Degenerative changes of the thoracic spine.
Compared to the prior study, the effusion has decreased. Unchanged from prior. Interval improvement.
Enlarged cardiac silhouette. The costophrenic angles are sharp.
Blunting of the left costophrenic angle.
Without evidence of pneumothorax. The lungs are free of consolidation. No evidence of edema.
INDICATION: Shortness of breath. Cough and fever. Chest pain. Evaluate for pneumonia. Trauma.
TECHNIQUE: PA and lateral views of the chest. Portable AP view of the chest. Frontal view.
COMPARISON: None. Chest radiograph from yesterday. Prior study. N/A.
IMPRESSION: No acute cardiopulmonary process. Findings suggestive of heart failure.
lung lungs pleural effusion pneumothorax cardiomegaly consolidation atelectasis edema nodule mass
opacity opacities support devices lesion fracture pneumonia enlarged cardiomediastinum lobe base
apex apical basilar perihilar retrocardiac hemithorax diaphragm hemidiaphragm trachea carina
left right bilateral small moderate large mild severe trace minimal likely possible probable
0 1 2 3 4 5 6 7 8 9 10 cm mm . , ; : ( ) - / year old male female patient
FINDINGS: Endotracheal tube and left central venous catheter in place. An endotracheal tube is in
FINDINGS: place. Endotracheal tube tip above the carina. Right internal jugular catheter tip in the
FINDINGS: superior vena cava. Right-sided central line in place. Left-sided central line in place.
FINDINGS: No focal consolidation. There is no focal consolidation. The lungs are free of consolidation.
FINDINGS: The lungs are clear without focal consolidation. Left lower lobe consolidation. Right lower
FINDINGS: lobe consolidation. There is consolidation in the left lower lobe. Focal consolidation in the
FINDINGS: right lung base. Patchy opacity in the left lower lobe may represent consolidation. Hazy
FINDINGS: right basilar opacity, possibly consolidation. Left lower lobe opacity, which may represent
FINDINGS: early consolidation. A small nodule is seen in the right upper lung. Left mid lung nodule.
FINDINGS: Right upper lung nodule. There is a nodular opacity in the left mid lung.
FINDINGS: No pleural effusion or pneumothorax. There is no pleural effusion or pneumothorax. No
FINDINGS: effusion or pneumothorax is seen. The costophrenic angles are sharp. No pneumothorax.
FINDINGS: Small right pleural effusion. No pneumothorax. There is a moderate left pleural effusion
FINDINGS: without pneumothorax. Large bilateral pleural effusions are present. There is no
FINDINGS: pneumothorax. Blunting of the right costophrenic angle, consistent with small pleural
FINDINGS: effusion. Blunting of both costophrenic angles, consistent with small pleural effusions.
FINDINGS: Large left pneumothorax. No pleural effusion. There is a small right apical pneumothorax.
FINDINGS: No pleural effusion is seen. Small left apical pneumothorax without pleural effusion.
FINDINGS: Moderate right pleural effusion and large left pneumothorax. There are small bilateral
FINDINGS: pleural effusions. There is also a large right pneumothorax. Heart size is normal. The
FINDINGS: cardiac silhouette is normal in size. Normal heart size. Mild cardiomegaly. The heart is
FINDINGS: mildly enlarged. The cardiac silhouette is mildly enlarged. Moderate cardiomegaly. The heart
FINDINGS: is moderately enlarged. Moderate enlargement of the cardiac silhouette.
INDICATION: Hypoxia. INDICATION: Line placement. INDICATION: Preoperative evaluation.
INDICATION: Shortness of breath. INDICATION: Cough and fever. INDICATION: Chest pain. INDICATION: Trauma.
TECHNIQUE: Portable AP view of the chest. TECHNIQUE: PA view of the chest. TECHNIQUE: Frontal view.
COMPARISON: Chest radiograph from yesterday. COMPARISON: Prior study. COMPARISON: None.
"""


def build_tokenizer(vocab_size: int = DEFAULT_VOCAB_SIZE) -> Tokenizer:
    """Train a byte-level BPE tokenizer on the radiology corpus (deterministic)."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    lines = [line for line in _CORPUS.splitlines() if line.strip()]
    tokenizer.train_from_iterator(lines * 4, trainer=trainer)
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    return tokenizer


def load_tokenizer(path: str | Path | None = None) -> Tokenizer:
    """Load a tokenizer.json (the shipped one when ``path`` is None)."""
    if path is None:
        data = resources.files("pytest_cxrperf").joinpath("data", "tokenizer.json").read_text()
        return Tokenizer.from_str(data)
    path = Path(path)
    try:
        return Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception on bad JSON
        raise ValueError(f"cannot read tokenizer {path}: {exc}") from exc


def check_special_tokens(tokenizer: Tokenizer) -> None:
    """The model relies on fixed ids for the special tokens: refuse a tokenizer that moved them."""
    for expected_id, token in enumerate(SPECIAL_TOKENS):
        actual = tokenizer.token_to_id(token)
        if actual != expected_id:
            raise ValueError(
                f"tokenizer maps {token!r} to {actual}, expected {expected_id}; "
                "rebuild it with pytest_cxrperf.model.tokenizer.build_tokenizer()"
            )


if __name__ == "__main__":  # pragma: no cover - maintenance entry point
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parents[1] / "data"
    target.mkdir(parents=True, exist_ok=True)
    build_tokenizer().save(str(target / "tokenizer.json"))
    print(f"wrote {target / 'tokenizer.json'}")
