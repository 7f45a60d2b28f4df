"""The embedded toy radiologist: the project's own architecture, small, trained on phantoms.

The ``toy`` preset (:func:`.loader.build_toy`) is the shipped checkpoint in
``pytest_cxrperf/data/toy/`` (``model.safetensors`` + ``cxrperf_config.json`` + ``tokenizer.json``,
the :mod:`.loader` checkpoint format). The weights come from ``python scripts/train_toy.py``: a
DINOv2 encoder at 128 px (64 image tokens per image), a 2-layer GELU projector and a 2-layer Llama
decoder (about 1 M parameters), trained with teacher forcing on synthetic phantom studies
(:mod:`pytest_cxrperf.synth`) until greedy decoding writes the right findings for held-out
phantoms; ``metrics.json`` beside the weights records how well. It writes each statement in its
preferred phrasing with a clear logit margin, so lower-precision backends rarely meet near ties;
``pytest_cxrperf.gate.findings.extract`` reads its reports.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .architecture import ArchitectureConfig
from .processor import resize_and_crop

TOY_NAME = "toy"
METRICS_FILE = "metrics.json"

TOY_CONFIG = ArchitectureConfig(
    vision_type="dinov2",
    vision={
        "hidden_size": 96,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "mlp_ratio": 2,
        "image_size": 128,
        "patch_size": 16,
    },
    decoder_type="llama",
    decoder={
        "hidden_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 320,
        "vocab_size": 1024,
        "max_position_embeddings": 512,
        "tie_word_embeddings": False,
    },
    projector_layers=2,
)


def toy_dir() -> Path:
    """The shipped toy checkpoint folder (inside the installed package)."""
    return Path(str(resources.files("pytest_cxrperf").joinpath("data", "toy")))


def toy_metrics(directory: str | Path | None = None) -> dict[str, Any]:
    """The held-out accuracy recorded by the training script (empty when not recorded)."""
    path = (Path(directory) if directory is not None else toy_dir()) / METRICS_FILE
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def pixel_values_from_arrays(
    config: ArchitectureConfig, images: list[np.ndarray], bits: int = 8
) -> torch.Tensor:
    """What :class:`CXRProcessor` makes of ``images`` saved as ``bits``-bit PNGs, without files.

    Quantise, min-max scale, resize and centre-crop, replicate to 3 channels, normalise: the same
    steps as ``CXRProcessor.pixel_values`` (used to train on in-memory phantoms).
    """
    levels = 255.0 if bits == 8 else 65535.0
    mean = np.asarray(config.image_mean, dtype=np.float32)[:, None, None]
    std = np.asarray(config.image_std, dtype=np.float32)[:, None, None]
    out = []
    for image in images:
        gray = np.round(np.clip(image, 0.0, 1.0) * levels).astype(np.float64)
        low, high = float(gray.min()), float(gray.max())
        gray = (gray - low) / (high - low) if high > low else np.zeros_like(gray)
        small = resize_and_crop(gray.astype(np.float32), config.image_size)
        rgb = np.repeat(small[None, :, :], 3, axis=0)
        out.append(torch.from_numpy((rgb - mean) / std))
    return torch.stack(out)
