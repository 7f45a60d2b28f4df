"""Named model sizes. ``tiny`` is for tests; ``bench`` is what benchmarks use; the full-size presets
reproduce the published architectures' dimensions with random weights (they need a large machine:
MAIRA-2's Vicuna-7B decoder alone is ~28 GB in fp32).
"""

from __future__ import annotations

from .architecture import ArchitectureConfig

_RAD_DINO = {  # DINOv2-base at 518 px, patch 14 -> 37*37 = 1369 image tokens
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "image_size": 518,
    "patch_size": 14,
}


def _llama(hidden: int, layers: int, heads: int, kv_heads: int, ffn: int, vocab: int) -> dict:
    return {
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "intermediate_size": ffn,
        "vocab_size": vocab,
        "max_position_embeddings": 4096,
        "tie_word_embeddings": False,
    }


PRESETS: dict[str, ArchitectureConfig] = {
    "tiny": ArchitectureConfig(
        vision_type="dinov2",
        vision={
            "hidden_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "intermediate_size": 128,
            "image_size": 112,
            "patch_size": 14,
        },
        decoder_type="llama",
        decoder=_llama(128, 2, 4, 2, 256, 1024),
        projector_layers=2,
    ),
    "bench": ArchitectureConfig(
        vision_type="dinov2",
        vision=_RAD_DINO,
        decoder_type="llama",
        decoder=_llama(1024, 16, 16, 16, 2816, 32000),
        projector_layers=4,
    ),
    "cxrreportgen": ArchitectureConfig(  # BiomedCLIP ViT-B/16 (224 px) + Phi-3-mini
        vision_type="clip",
        vision={
            "hidden_size": 768,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "intermediate_size": 3072,
            "image_size": 224,
            "patch_size": 16,
        },
        decoder_type="phi3",
        decoder={
            "hidden_size": 3072,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": 32,
            "intermediate_size": 8192,
            "vocab_size": 32064,
            "max_position_embeddings": 4096,
            "tie_word_embeddings": False,
        },
        projector_layers=4,
    ),
    "maira2": ArchitectureConfig(  # Rad-DINO + 4-layer GELU projector + Vicuna-7B
        vision_type="dinov2",
        vision=_RAD_DINO,
        decoder_type="llama",
        decoder=_llama(4096, 32, 32, 32, 11008, 32000),
        projector_layers=4,
    ),
}


TRAINED_PRESETS = ("toy",)  # shipped trained weights (pytest_cxrperf/data/toy), not random


def preset_names() -> list[str]:
    return sorted([*PRESETS, *TRAINED_PRESETS])
