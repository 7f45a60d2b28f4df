"""Build the reference model from a preset (random weights) or a local checkpoint directory.

A checkpoint directory holds ``cxrperf_config.json`` (the :class:`ArchitectureConfig`),
``model.safetensors`` and optionally ``tokenizer.json``; or it is a published checkpoint in the
Hugging Face layout (``config.json``, sharded safetensors: :mod:`.hf_layout`); or an MLflow model
folder whose artifacts hold one of those (:mod:`.mlflow_layout`). Pickle checkpoints are refused:
loading them executes code. Nothing is downloaded and no remote code is run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer

from ..errors import ModelLoadError
from .architecture import ArchitectureConfig, CXRReportModel, build_on
from .formats import PICKLE_SUFFIXES, RENAMED_PARAMETERS
from .hf_layout import check_hf_checkpoint, load_hf_checkpoint, materialise_buffers, mismatch
from .mlflow_layout import is_mlflow_folder, resolve
from .presets import PRESETS, preset_names
from .processor import CXRProcessor, make_processor
from .tokenizer import check_special_tokens, load_tokenizer
from .toy import TOY_NAME, toy_dir

CONFIG_FILE = "cxrperf_config.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.json"


def _adapt_parameter_names(state: dict, expected: set[str]) -> dict:
    """Rename a checkpoint's keys to this transformers release's names if that makes them match."""
    if set(state) == expected:
        return state
    for forward in (True, False):
        renamed = {}
        for key, tensor in state.items():
            for old, new in RENAMED_PARAMETERS:
                source, target = (old, new) if forward else (new, old)
                key = key.replace(source, target)
            renamed[key] = tensor
        if set(renamed) == expected:
            return renamed
    return state


@dataclass
class ReferenceModel:
    """The eager fp32 model every backend starts from, with its processor and provenance."""

    name: str  # preset name or checkpoint directory
    source: str  # "preset" | "checkpoint"
    config: ArchitectureConfig
    model: CXRReportModel
    tokenizer: Tokenizer
    # what loading found worth telling (e.g. which folder of an MLflow model was loaded)
    notices: list[str] = field(default_factory=list)
    processor: CXRProcessor = field(init=False)
    _weights_hash: str | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.model.eval()
        self.processor = make_processor(self.config, self.tokenizer)

    @property
    def weights_hash(self) -> str:
        """sha256 over parameter names, shapes, dtypes and bytes (cache and baseline key)."""
        if self._weights_hash is None:
            digest = hashlib.sha256()
            digest.update(json.dumps(self.config.to_dict(), sort_keys=True).encode())
            for key, tensor in sorted(self.model.state_dict().items()):
                digest.update(f"{key}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
                digest.update(tensor.detach().contiguous().view(torch.uint8).numpy().tobytes())
            self._weights_hash = digest.hexdigest()
        return self._weights_hash

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "source": self.source,
            "vision": self.config.vision_type,
            "decoder": self.config.decoder_type,
            "parameters": self.model.parameter_count(),
            "image_tokens_per_image": self.config.image_tokens_per_image,
            "weights_sha256": self.weights_hash[:16],
        }


def build_preset(name: str, seed: int = 0) -> ReferenceModel:
    """A preset: the shipped toy radiologist, or an architecture with seeded random weights
    (identical across runs and machines)."""
    if name == TOY_NAME:
        return build_toy()
    if name not in PRESETS:
        raise ModelLoadError(
            f"unknown model preset {name!r}; choose one of {', '.join(preset_names())} "
            "or pass a checkpoint directory"
        )
    config = PRESETS[name]
    tokenizer = load_tokenizer()
    torch.manual_seed(seed)
    model = CXRReportModel(config)
    return ReferenceModel(
        name=name, source="preset", config=config, model=model, tokenizer=tokenizer
    )


def build_toy(directory: str | Path | None = None) -> ReferenceModel:
    """The toy model as a :class:`ReferenceModel` named ``toy`` (eval mode, fp32)."""
    folder = Path(directory) if directory is not None else toy_dir()
    if not (folder / WEIGHTS_FILE).is_file():
        raise ModelLoadError(
            f"the toy model's weights are missing from {folder}; "
            "regenerate them with `python scripts/train_toy.py`"
        )
    loaded = load_checkpoint(folder)
    return ReferenceModel(
        name=TOY_NAME,
        source="preset",
        config=loaded.config,
        model=loaded.model,
        tokenizer=loaded.tokenizer,
    )


def save_checkpoint(reference: ReferenceModel, directory: str | Path) -> Path:
    """Write a checkpoint directory that :func:`load_checkpoint` reads back."""
    from safetensors.torch import save_file

    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    (target / CONFIG_FILE).write_text(json.dumps(reference.config.to_dict(), indent=2) + "\n")
    state = {k: v.detach().contiguous() for k, v in reference.model.state_dict().items()}
    save_file(state, str(target / WEIGHTS_FILE))
    reference.tokenizer.save(str(target / TOKENIZER_FILE))
    return target


def _checkpoint_files(folder: Path) -> tuple[Path, Path]:
    """The config and weights paths of a checkpoint directory; refuses pickles and gaps."""
    if not folder.is_dir():
        what = "is not a directory" if folder.exists() else "does not exist"
        raise ModelLoadError(
            f"model directory {folder} {what}; pass a preset ({', '.join(preset_names())}) "
            f"or a folder holding {CONFIG_FILE} and {WEIGHTS_FILE}"
        )
    config_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    if not weights_path.is_file():
        pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
        if pickles:
            raise ModelLoadError(
                f"model directory {folder} holds only pickle weights ({', '.join(pickles)}); "
                "they are refused because loading them runs code. Convert them to "
                f"{WEIGHTS_FILE} with safetensors.torch.save_file"
            )
        raise ModelLoadError(f"model directory {folder} has no {WEIGHTS_FILE}")
    if not config_path.is_file():
        raise ModelLoadError(f"model directory {folder} has no {CONFIG_FILE}")
    return config_path, weights_path


def _read_config(config_path: Path) -> ArchitectureConfig:
    try:
        data = json.loads(config_path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("the file must hold a JSON object")
        return ArchitectureConfig.from_dict(data)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, TypeError, ValueError) as exc:
        raise ModelLoadError(
            f"{config_path} is not a valid architecture config: {exc}; fix the file"
        ) from exc


def _build_model(config: ArchitectureConfig, config_path: Path, device: str = "cpu") -> Any:
    """The modules of ``config``; transformers' objections name the config file, once."""
    try:
        return build_on(config, device)
    except Exception as exc:  # transformers raises ValueError, TypeError, its own validation errors
        detail = " ".join(str(exc).split())
        raise ModelLoadError(
            f"{config_path}: transformers rejects this architecture ({detail}); fix the file"
        ) from exc


def _load_tokenizer(folder: Path, config: ArchitectureConfig) -> Tokenizer:
    tokenizer_path = folder / TOKENIZER_FILE
    try:
        tokenizer = load_tokenizer(tokenizer_path if tokenizer_path.is_file() else None)
        check_special_tokens(tokenizer)
    except Exception as exc:  # tokenizers raises plain Exception for a corrupt file
        raise ModelLoadError(f"{tokenizer_path}: {exc}") from exc
    if tokenizer.get_vocab_size() > config.vocab_size:
        raise ModelLoadError(
            f"tokenizer has {tokenizer.get_vocab_size()} tokens but the decoder only "
            f"{config.vocab_size}"
        )
    return tokenizer


def _is_hf_layout(folder: Path) -> bool:
    """A published checkpoint (``config.json``) rather than this project's format."""
    return (
        folder.is_dir()
        and not (folder / CONFIG_FILE).is_file()
        and (folder / "config.json").is_file()
    )


def _mlflow_inner(folder: Path) -> tuple[Path, str] | None:
    """The checkpoint inside an MLflow model folder and the notice naming it; None if ``folder``
    is not one. An MLflow folder without a supported checkpoint is an error here."""
    return resolve(folder) if is_mlflow_folder(folder) else None


def check_model(spec: str) -> None:
    """Everything :func:`load_model` would refuse, found cheaply (no weights are read): the files,
    the config and the modules transformers builds from it (on the meta device)."""
    if spec in preset_names():
        return
    if "/" not in spec and not Path(spec).exists():
        raise _not_a_model(spec)
    folder = Path(spec)
    inner = _mlflow_inner(folder)
    if inner is not None:
        folder = inner[0]
    if _is_hf_layout(folder):
        check_hf_checkpoint(folder)
        return
    config_path, _ = _checkpoint_files(folder)
    config = _read_config(config_path)
    _build_model(config, config_path, device="meta")
    _load_tokenizer(folder, config)


def architecture_of(spec: str) -> ArchitectureConfig | None:
    """The model's architecture without building it (a preset's, or a checkpoint's config file);
    None for a transformers-layout checkpoint or a spec :func:`check_model` would refuse."""
    if spec == TOY_NAME:
        spec = str(toy_dir())
    elif spec in PRESETS:
        return PRESETS[spec]
    folder = Path(spec)
    inner = _mlflow_inner(folder)
    if inner is not None:
        folder = inner[0]
    try:
        if not folder.is_dir() or _is_hf_layout(folder):
            return None
        return _read_config(_checkpoint_files(folder)[0])
    except ModelLoadError:
        return None


def load_checkpoint(directory: str | Path) -> ReferenceModel:
    """Load a local checkpoint directory (config + safetensors); every problem is a clear error."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(directory)
    inner = _mlflow_inner(folder)
    if inner is not None:  # named after the folder the user gave, so are its baselines
        reference = load_checkpoint(inner[0])
        reference.name = str(folder)
        reference.notices.append(inner[1])
        return reference
    if _is_hf_layout(folder):
        config, model, tokenizer = load_hf_checkpoint(folder)
        return ReferenceModel(
            name=str(folder), source="checkpoint", config=config, model=model, tokenizer=tokenizer
        )
    config_path, weights_path = _checkpoint_files(folder)
    config = _read_config(config_path)
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelLoadError(f"{weights_path} is not a readable safetensors file: {exc}") from exc
    tokenizer = _load_tokenizer(folder, config)
    model = _build_model(config, config_path, device="meta")  # the checkpoint's tensors go in
    expected = model.state_dict()
    state = _adapt_parameter_names(state, set(expected))
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise mismatch(f"{weights_path} does not match {config_path}", missing, unexpected)
    for key, tensor in state.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise ModelLoadError(
                f"{weights_path}: {key} has shape {tuple(tensor.shape)}, "
                f"the config needs {tuple(expected[key].shape)}"
            )
    # assign: the parameters are the memory-mapped tensors themselves (copy-on-write), not copies
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True, assign=True)
    materialise_buffers(model)
    return ReferenceModel(
        name=str(folder), source="checkpoint", config=config, model=model, tokenizer=tokenizer
    )


def load_model(spec: str, seed: int = 0) -> ReferenceModel:
    """``spec`` is a preset name or a checkpoint directory path."""
    if spec in preset_names():
        return build_preset(spec, seed=seed)
    if "/" in spec or Path(spec).exists():
        return load_checkpoint(spec)
    raise _not_a_model(spec)


def _not_a_model(spec: str) -> ModelLoadError:
    return ModelLoadError(
        f"--cxr-model={spec!r} is neither a preset ({', '.join(preset_names())}) "
        "nor an existing checkpoint directory"
    )
