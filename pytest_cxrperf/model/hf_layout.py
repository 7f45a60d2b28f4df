"""Published checkpoints in the Hugging Face layout, loaded from a local folder.

MAIRA-2 ships ``config.json`` (``model_type`` "maira2"), sharded ``*.safetensors`` with
``model.safetensors.index.json``, ``tokenizer.json``, ``preprocessor_config.json`` and remote-code
``*.py`` files built on transformers' LLaVA classes. The ``.py`` files are never imported: the
facts of that code are re-stated here, and the tensors are mapped onto
:class:`~.architecture.CXRReportModel`:

=========================================  =======================================
checkpoint (transformers 4.x LLaVA layout)  this project
=========================================  =======================================
``vision_tower.*`` (``Dinov2Backbone``)     ``vision.encoder.*`` (``Dinov2Model``)
``multi_modal_projector.layers.{0,2,..}``   ``vision.projector.net.{0,2,..}``
``language_model.model.*`` / ``lm_head``    ``language_model.model.*`` / ``lm_head``
=========================================  =======================================

(the transformers 5.x layout, ``model.vision_tower.*`` / ``model.language_model.*`` /
``lm_head.*``, is accepted too). Image features are the backbone's last feature map: the last
block with the final LayerNorm applied, which is what ``Dinov2Model.last_hidden_state`` is; the
CLS token is dropped ("default" strategy).

Tensors are read from memory-mapped safetensors one at a time and the modules are built on the
meta device and given those tensors (``assign=True``), so loading holds one copy of the weights.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer

from ..errors import ModelLoadError
from .architecture import ArchitectureConfig, CXRReportModel, build_on
from .formats import PICKLE_SUFFIXES, RENAMED_PARAMETERS, SUPPORTED_MODEL_TYPES

CONFIG_FILE = "config.json"
INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
PREPROCESSOR_FILE = "preprocessor_config.json"
MAIRA2_IMAGE_MEAN = 0.5307
MAIRA2_IMAGE_STD = 0.2583

# checkpoint prefix -> this project's prefix (transformers 4.x LLaVA, then 5.x LLaVA layout)
_PREFIXES = (
    ("vision_tower.", "vision.encoder."),
    ("multi_modal_projector.layers.", "vision.projector.net."),
    ("language_model.", "language_model."),
    ("model.vision_tower.", "vision.encoder."),
    ("model.multi_modal_projector.layers.", "vision.projector.net."),
    ("model.language_model.", "language_model.model."),
    ("lm_head.", "language_model.lm_head."),
)
# config keys that describe files or the backbone wrapper, not the modules' shapes
_META_KEYS = {
    "_name_or_path",
    "architectures",
    "auto_map",
    "torch_dtype",
    "dtype",
    "transformers_version",
    "model_type",
    "out_features",
    "out_indices",
    "stage_names",
    "apply_layernorm",
    "reshape_hidden_states",
    "_attn_implementation_autoset",
}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{path} is not a readable JSON file: {exc}; fix the file") from exc
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path} must hold a JSON object")
    return data


def _unsupported(path: Path, what: str) -> ModelLoadError:
    return ModelLoadError(
        f"{path}: {what} is not supported (the MAIRA-2 framework as published: DINOv2 features "
        "of the last layer with its LayerNorm, CLS dropped, a GELU projector, a Llama decoder)"
    )


def _vision(config_path: Path, data: dict[str, Any]) -> dict[str, Any]:
    vision = data.get("vision_config")
    if not isinstance(vision, dict) or vision.get("model_type") != "dinov2":
        raise _unsupported(
            config_path, f"vision_config model_type {vision and vision.get('model_type')!r}"
        )
    layers = int(vision.get("num_hidden_layers", 12))
    out = vision.get("out_features") or [f"stage{layers}"]
    if list(out)[-1] != f"stage{layers}" or data.get("vision_feature_layer", -1) != -1:
        raise _unsupported(
            config_path, f"vision features from {out} (layer {data.get('vision_feature_layer')})"
        )
    if not vision.get("apply_layernorm", True) or vision.get("reshape_hidden_states", False):
        raise _unsupported(
            config_path, "a backbone without its final LayerNorm or with reshaped maps"
        )
    return {k: v for k, v in vision.items() if k not in _META_KEYS}


def read_config(folder: Path) -> ArchitectureConfig:
    """``config.json`` (+ ``preprocessor_config.json``) -> :class:`ArchitectureConfig`."""
    config_path = folder / CONFIG_FILE
    data = _read_json(config_path)
    model_type = data.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ModelLoadError(
            f"{config_path}: model_type {model_type!r} is not supported; supported: "
            f"{', '.join(SUPPORTED_MODEL_TYPES)} (Hugging Face layout), or a folder with "
            "cxrperf_config.json (this project's format)"
        )
    if data.get("vision_feature_select_strategy", "default") != "default":
        raise _unsupported(
            config_path,
            f"vision_feature_select_strategy {data['vision_feature_select_strategy']!r}",
        )
    if data.get("projector_hidden_act", "gelu") != "gelu":
        raise _unsupported(config_path, f"projector_hidden_act {data['projector_hidden_act']!r}")
    text = data.get("text_config")
    if not isinstance(text, dict) or text.get("model_type", "llama") != "llama":
        raise _unsupported(
            config_path, f"text_config model_type {text and text.get('model_type')!r}"
        )
    vision = _vision(config_path, data)
    decoder = {k: v for k, v in text.items() if k not in _META_KEYS}
    ids = {
        "bos_token_id": decoder.pop("bos_token_id", 1),
        "eos_token_id": decoder.pop("eos_token_id", 2),
        "pad_token_id": decoder.pop("pad_token_id", None),
    }
    if isinstance(ids["eos_token_id"], list):
        ids["eos_token_id"] = ids["eos_token_id"][0]
    if ids["pad_token_id"] is None:
        ids["pad_token_id"] = 0
    image_size = int(vision.get("image_size", 518))
    mean, std, crop = [MAIRA2_IMAGE_MEAN] * 3, [MAIRA2_IMAGE_STD] * 3, image_size
    shortest_edge = image_size
    if (folder / PREPROCESSOR_FILE).is_file():
        pre = _read_json(folder / PREPROCESSOR_FILE)
        mean = list(pre.get("image_mean", mean))
        std = list(pre.get("image_std", std))
        size = pre.get("size") or {}
        shortest_edge = int(
            size.get("shortest_edge", image_size) if isinstance(size, dict) else size
        )
        crop_size = pre.get("crop_size") or {}
        crop = int(crop_size.get("height", crop) if isinstance(crop_size, dict) else crop_size)
    if crop != image_size:
        raise ModelLoadError(
            f"{folder / PREPROCESSOR_FILE}: crop size {crop} differs from the vision encoder's "
            f"image_size {image_size} in {config_path}; make them equal"
        )
    extra: dict[str, Any] = {"layout": "maira2", "resize_shortest_edge": shortest_edge}
    if not data.get("multimodal_projector_bias", True):
        extra["projector_bias"] = False
    try:
        config = ArchitectureConfig(
            vision_type="dinov2",
            vision=vision,
            decoder_type="llama",
            decoder=decoder,
            projector_layers=int(data.get("projector_n_layers", 4)),
            image_token_id=int(data.get("image_token_index", 32204)),
            bos_token_id=int(ids["bos_token_id"]),
            eos_token_id=int(ids["eos_token_id"]),
            pad_token_id=int(ids["pad_token_id"]),
            image_mean=(float(mean[0]), float(mean[1]), float(mean[2])),
            image_std=(float(std[0]), float(std[1]), float(std[2])),
            extra=extra,
        )
    except (TypeError, ValueError, IndexError) as exc:
        raise ModelLoadError(f"{config_path} is not a valid MAIRA-2 config: {exc}") from exc
    seq = data.get("image_seq_length")
    if seq is not None and int(seq) != config.image_tokens_per_image:
        raise ModelLoadError(
            f"{config_path}: image_seq_length {seq} does not match the vision encoder "
            f"({image_size} px / patch {config.patch_size} gives {config.image_tokens_per_image})"
        )
    return config


def weight_files(folder: Path) -> dict[str, Path]:
    """checkpoint tensor name -> the shard holding it (index file, else one model.safetensors)."""
    index = folder / INDEX_FILE
    if index.is_file():
        weight_map = _read_json(index).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise ModelLoadError(f"{index} has no weight_map; fix or regenerate the index")
        shards = {name: folder / str(shard) for name, shard in weight_map.items()}
        for shard in sorted(set(shards.values())):
            if not shard.is_file():
                raise ModelLoadError(f"{index} names the shard {shard.name}, which is missing")
        return shards
    single = folder / SINGLE_FILE
    if single.is_file():
        return {name: single for name in _tensor_names(single)}
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise ModelLoadError(
            f"model directory {folder} holds only pickle weights ({', '.join(pickles)}); they are "
            "refused because loading them runs code. Convert them to safetensors"
        )
    raise ModelLoadError(f"model directory {folder} has neither {INDEX_FILE} nor {SINGLE_FILE}")


def _open(shard: Path) -> Any:
    from safetensors import SafetensorError, safe_open

    try:
        return safe_open(str(shard), framework="pt", device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelLoadError(f"{shard} is not a readable safetensors file: {exc}") from exc


def _tensor_names(shard: Path) -> list[str]:
    with _open(shard) as handle:
        return list(handle.keys())


def _rename(name: str, expected: set[str]) -> str:
    for source, target in _PREFIXES:
        if name.startswith(source):
            name = target + name[len(source) :]
            break
    if name in expected:
        return name
    for old, new in RENAMED_PARAMETERS:  # DINOv2 attention: transformers 4.x <-> 5.x names
        for a, b in ((old, new), (new, old)):
            if a in name and name.replace(a, b) in expected:
                return name.replace(a, b)
    return name


def _plan(folder: Path, model: CXRReportModel) -> dict[str, tuple[str, Path]]:
    """project name -> (checkpoint name, shard); every missing, unexpected or mis-shaped tensor
    is an error naming it. Reads the shards' headers only."""
    files = weight_files(folder)
    expected = model.state_dict()
    plan: dict[str, tuple[str, Path]] = {}
    unexpected = []
    for name, shard in files.items():
        target = _rename(name, set(expected))
        if target in expected:
            plan[target] = (name, shard)
        else:
            unexpected.append(name)
    head, embed = "language_model.lm_head.weight", "language_model.model.embed_tokens.weight"
    if head not in plan and embed in plan and model.config.decoder.get("tie_word_embeddings"):
        plan[head] = plan[embed]  # tied: the checkpoint stores the embedding once
    missing = sorted(set(expected) - set(plan))
    if missing or unexpected:
        what = f"the weights in {folder} do not match its {CONFIG_FILE}"
        raise mismatch(what, missing, unexpected)
    by_shard: dict[Path, list[str]] = {}
    for target, (_name, shard) in plan.items():
        by_shard.setdefault(shard, []).append(target)
    for shard, targets in sorted(by_shard.items()):
        with _open(shard) as handle:
            available = set(handle.keys())
            for target in targets:
                name = plan[target][0]
                if name not in available:
                    raise ModelLoadError(f"{shard.name} does not hold {name}, as the index says")
                shape = tuple(handle.get_slice(name).get_shape())
                if shape != tuple(expected[target].shape):
                    raise ModelLoadError(
                        f"{shard}: {name} has shape {shape}, {CONFIG_FILE} needs "
                        f"{tuple(expected[target].shape)}"
                    )
    return plan


def _tensors(plan: dict[str, tuple[str, Path]]) -> Iterator[tuple[str, torch.Tensor]]:
    """(project name, fp32 tensor), one shard open at a time."""
    by_shard: dict[Path, list[str]] = {}
    for target, (_name, shard) in plan.items():
        by_shard.setdefault(shard, []).append(target)
    for shard, targets in sorted(by_shard.items()):
        with _open(shard) as handle:
            for target in targets:
                tensor = handle.get_tensor(plan[target][0])
                yield target, tensor if tensor.dtype == torch.float32 else tensor.float()


def build_meta(config: ArchitectureConfig, folder: Path) -> CXRReportModel:
    try:
        return build_on(config, "meta")
    except Exception as exc:  # transformers raises ValueError, TypeError, its own errors
        detail = " ".join(str(exc).split())
        raise ModelLoadError(
            f"{folder / CONFIG_FILE}: transformers rejects this architecture ({detail})"
        ) from exc


def materialise_buffers(model: torch.nn.Module) -> None:
    """Non-persistent buffers (rotary frequencies) are not in a checkpoint: rebuild the modules
    that own them on the CPU from their config."""
    for name, module in list(model.named_modules()):
        if not any(b.is_meta for b in module.buffers(recurse=False)):
            continue
        config = getattr(module, "config", None)
        if config is None:
            raise ModelLoadError(f"{name} has buffers that no checkpoint tensor fills")
        try:
            fresh = type(module)(config=config)
        except Exception as exc:  # a module this loader does not know how to rebuild
            raise ModelLoadError(
                f"{name} ({type(module).__name__}) has buffers that no checkpoint tensor fills "
                f"and cannot be rebuilt from its config: {exc}"
            ) from exc
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, fresh)


def load_weights(folder: Path, config: ArchitectureConfig) -> CXRReportModel:
    model = build_meta(config, folder)
    plan = _plan(folder, model)
    state = dict(_tensors(plan))
    model.load_state_dict(state, strict=True, assign=True)
    del state
    materialise_buffers(model)
    if config.decoder.get("tie_word_embeddings"):
        model.language_model.tie_weights()  # one parameter again, not two views of one tensor
    return model


def load_hf_tokenizer(folder: Path, config: ArchitectureConfig) -> Tokenizer:
    """``tokenizer.json``, else a SentencePiece ``tokenizer.model`` (converted by transformers,
    which needs the ``sentencepiece`` and ``protobuf`` packages)."""
    json_path, spm_path = folder / "tokenizer.json", folder / "tokenizer.model"
    if json_path.is_file():
        try:
            tokenizer = Tokenizer.from_file(str(json_path))
        except Exception as exc:  # tokenizers raises a bare Exception on bad JSON
            raise ModelLoadError(f"{json_path} is not a readable tokenizer: {exc}") from exc
    elif spm_path.is_file():
        tokenizer = _from_sentencepiece(spm_path)
    else:
        raise ModelLoadError(
            f"model directory {folder} has neither tokenizer.json nor tokenizer.model"
        )
    if tokenizer.get_vocab_size() > config.vocab_size:
        raise ModelLoadError(
            f"the tokenizer in {folder} has {tokenizer.get_vocab_size()} tokens but the decoder "
            f"only {config.vocab_size}"
        )
    image = tokenizer.token_to_id("<image>")
    if image is not None and image != config.image_token_id:
        raise ModelLoadError(
            f"the tokenizer in {folder} maps <image> to {image} but {CONFIG_FILE} says "
            f"image_token_index {config.image_token_id}"
        )
    return tokenizer


def _from_sentencepiece(path: Path) -> Tokenizer:
    """A Llama SentencePiece model converted by transformers' LlamaTokenizerFast (the class itself,
    never AutoTokenizer: no code from the folder). Only the model file is shown to it."""
    import shutil
    import tempfile

    try:
        import google.protobuf  # noqa: F401
        import sentencepiece  # noqa: F401
        from transformers import LlamaTokenizerFast  # the tokenizers-backed class in 4.x and 5.x
    except ImportError as exc:
        raise ModelLoadError(
            f"{path} is a SentencePiece model; reading it needs two packages: "
            "pip install sentencepiece protobuf (or save a tokenizer.json beside it)"
        ) from exc
    try:
        with tempfile.TemporaryDirectory() as folder:
            shutil.copyfile(path, Path(folder) / "tokenizer.model")
            converted = LlamaTokenizerFast.from_pretrained(folder, local_files_only=True)
            tokenizer: Tokenizer = converted.backend_tokenizer
    except Exception as exc:  # sentencepiece/protobuf raise various errors on a corrupt model
        raise ModelLoadError(f"{path} is not a readable SentencePiece model: {exc}") from exc
    return tokenizer


def check_hf_checkpoint(folder: Path) -> None:
    """What :func:`load_hf_checkpoint` would refuse, without reading tensor data."""
    config = read_config(folder)
    load_hf_tokenizer(folder, config)
    _plan(folder, build_meta(config, folder))


def load_hf_checkpoint(folder: Path) -> tuple[ArchitectureConfig, CXRReportModel, Tokenizer]:
    config = read_config(folder)
    tokenizer = load_hf_tokenizer(folder, config)
    return config, load_weights(folder, config), tokenizer


def mismatch(what: str, missing: list[str], unexpected: list[str]) -> ModelLoadError:
    """The error for tensors a checkpoint lacks or has in excess (the first five of each)."""

    def first(names: list[str]) -> str:
        names = sorted(names)
        return f"{names[:5]}{'...' if len(names) > 5 else ''}"

    return ModelLoadError(f"{what}: missing {first(missing)}, unexpected {first(unexpected)}")
