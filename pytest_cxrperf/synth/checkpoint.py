"""Synthetic checkpoints in MAIRA-2's published (Hugging Face) layout, for tests, CI and memory
measurements. No hub: the weights are a preset's seeded random weights.

The folder holds what a MAIRA-2 download holds: ``config.json`` (``model_type`` "maira2", Llama
``text_config`` with linear rope scaling, DINOv2 ``vision_config`` as a backbone), sharded
``model-0000k-of-0000n.safetensors`` with ``model.safetensors.index.json`` (tensor names in the
transformers 4.x LLaVA layout, DINOv2 attention under its 4.x names), ``tokenizer.json``,
``preprocessor_config.json`` and a remote-code ``modeling_maira2.py`` that raises if anyone
imports it.

``cxrperf synth checkpoint DIR [--preset tiny] [--shards 2]`` writes one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..model.architecture import ArchitectureConfig
from ..model.hf_layout import INDEX_FILE, MAIRA2_IMAGE_MEAN, MAIRA2_IMAGE_STD

REMOTE_CODE = (
    """raise RuntimeError("remote code from a checkpoint folder must never be imported")\n"""
)
ROPE_SCALING = {"type": "linear", "factor": 1.5}  # as in MAIRA-2's text_config
_FOUR_X_ATTENTION = (  # transformers 5.x name -> 4.x name (what MAIRA-2's files hold)
    (".attention.q_proj.", ".attention.attention.query."),
    (".attention.k_proj.", ".attention.attention.key."),
    (".attention.v_proj.", ".attention.attention.value."),
    (".attention.o_proj.", ".attention.output.dense."),
)
_PREFIXES = (  # this project's name -> MAIRA-2's
    ("vision.encoder.", "vision_tower."),
    ("vision.projector.net.", "multi_modal_projector.layers."),
    ("language_model.", "language_model."),
)


def maira2_name(name: str) -> str:
    for ours, theirs in _PREFIXES:
        if name.startswith(ours):
            name = theirs + name[len(ours) :]
            break
    if name.startswith("vision_tower."):
        for new, old in _FOUR_X_ATTENTION:
            name = name.replace(new, old)
    return name


def maira2_config(config: ArchitectureConfig) -> dict[str, Any]:
    layers = int(config.vision["num_hidden_layers"])
    return {
        "architectures": ["Maira2ForConditionalGeneration"],
        "auto_map": {"AutoModelForCausalLM": "modeling_maira2.Maira2ForConditionalGeneration"},
        "model_type": "maira2",
        "image_token_index": config.image_token_id,
        "image_seq_length": config.image_tokens_per_image,
        "projector_n_layers": config.projector_layers,
        "projector_hidden_act": "gelu",
        "multimodal_projector_bias": True,
        "vision_feature_layer": -1,
        "vision_feature_select_strategy": "default",
        "torch_dtype": "float32",
        "text_config": {
            **config.decoder,
            "model_type": "llama",
            "architectures": ["LlamaForCausalLM"],
            "rope_scaling": ROPE_SCALING,
            "bos_token_id": config.bos_token_id,
            "eos_token_id": config.eos_token_id,
            "pad_token_id": config.pad_token_id,
        },
        "vision_config": {
            **config.vision,
            "model_type": "dinov2",
            "architectures": ["Dinov2Backbone"],
            "out_features": [f"stage{layers}"],
            "out_indices": [layers],
            "apply_layernorm": True,
            "reshape_hidden_states": False,
        },
    }


def preprocessor_config(size: int) -> dict[str, Any]:
    return {
        "image_processor_type": "BitImageProcessor",
        "do_convert_rgb": True,
        "do_resize": True,
        "size": {"shortest_edge": size},
        "resample": 3,
        "do_center_crop": True,
        "crop_size": {"height": size, "width": size},
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": [MAIRA2_IMAGE_MEAN] * 3,
        "image_std": [MAIRA2_IMAGE_STD] * 3,
    }


def write_maira2_checkpoint(
    directory: str | Path, preset: str = "tiny", shards: int = 2, seed: int = 0
) -> Path:
    """A preset's seeded random weights as a MAIRA-2-layout folder; returns the folder."""
    from safetensors.torch import save_file

    from ..model.loader import build_preset

    reference = build_preset(preset, seed=seed)
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    config = reference.config
    (folder / "config.json").write_text(json.dumps(maira2_config(config), indent=2) + "\n")
    (folder / "preprocessor_config.json").write_text(
        json.dumps(preprocessor_config(config.image_size), indent=2) + "\n"
    )
    reference.tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "modeling_maira2.py").write_text(REMOTE_CODE)
    state = {
        maira2_name(k): v.detach().contiguous() for k, v in reference.model.state_dict().items()
    }
    names = sorted(state)
    per_shard = -(-len(names) // max(1, shards))
    groups = [names[i : i + per_shard] for i in range(0, len(names), per_shard)]
    weight_map: dict[str, str] = {}
    total = 0
    for index, group in enumerate(groups, start=1):
        shard = f"model-{index:05d}-of-{len(groups):05d}.safetensors"
        save_file({k: state[k] for k in group}, str(folder / shard), metadata={"format": "pt"})
        for key in group:
            weight_map[key] = shard
            total += state[key].numel() * state[key].element_size()
    index_data = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / INDEX_FILE).write_text(json.dumps(index_data, indent=2) + "\n")
    return folder
