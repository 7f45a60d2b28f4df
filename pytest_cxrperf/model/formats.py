"""Facts about the files the model package reads, shared by its loaders (standard library only).

:mod:`.loader` (this project's checkpoint format), :mod:`.hf_layout` (published Hugging Face
checkpoints), :mod:`.mlflow_layout` (MLflow model folders, read without torch), :mod:`.processor`,
:mod:`.dicom` and :mod:`.study` (images) import them from here.
"""

from __future__ import annotations

# weights in these files are refused, never opened: loading a pickle executes code
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")

# transformers 5 renamed the ViT-family (DINOv2) attention parameters; IPEX's environment runs 4.51.
# (4.x name, 5.x name) pairs, so a checkpoint saved under either loads under both.
RENAMED_PARAMETERS = (
    (".attention.attention.query.", ".attention.q_proj."),
    (".attention.attention.key.", ".attention.k_proj."),
    (".attention.attention.value.", ".attention.v_proj."),
    (".attention.output.dense.", ".attention.o_proj."),
)

# the ``model_type`` values of a Hugging Face ``config.json`` that :mod:`.hf_layout` reads
SUPPORTED_MODEL_TYPES = ("maira2",)

MAX_IMAGE_PIXELS = 64_000_000  # ~8000x8000; digitised CXRs are ~3000x3000
