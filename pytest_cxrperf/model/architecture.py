"""The MAIRA-2 framework from transformers parts: image encoder -> MLP projector -> decoder LLM.

Image features replace the embeddings of the ``<image>`` placeholder tokens of the prompt, so the
decoder sees one sequence of (text, image, text) embeddings. CXRReportGen uses the same framework
with a CLIP-style encoder and a Phi-3 decoder; MAIRA-2 uses Rad-DINO (DINOv2) and a Llama decoder.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from transformers import PreTrainedModel

VISION_TYPES = ("dinov2", "clip")
DECODER_TYPES = ("llama", "phi3")


@dataclass(frozen=True)
class ArchitectureConfig:
    """Everything needed to rebuild the model's modules (weights come separately)."""

    vision_type: str
    vision: dict[str, Any]
    decoder_type: str
    decoder: dict[str, Any]
    projector_layers: int = 4
    image_token_id: int = 3
    bos_token_id: int = 1
    eos_token_id: int = 2
    pad_token_id: int = 0
    image_mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    image_std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.vision_type not in VISION_TYPES:
            raise ValueError(f"vision_type must be one of {VISION_TYPES}, got {self.vision_type!r}")
        if self.decoder_type not in DECODER_TYPES:
            raise ValueError(
                f"decoder_type must be one of {DECODER_TYPES}, got {self.decoder_type!r}"
            )
        if self.projector_layers < 1:
            raise ValueError("projector_layers must be >= 1")

    @property
    def image_size(self) -> int:
        return int(self.vision["image_size"])

    @property
    def patch_size(self) -> int:
        return int(self.vision["patch_size"])

    @property
    def image_tokens_per_image(self) -> int:
        """Patch tokens per image (the CLS token is dropped, as in MAIRA-2)."""
        return (self.image_size // self.patch_size) ** 2

    @property
    def vocab_size(self) -> int:
        return int(self.decoder["vocab_size"])

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["image_mean"] = list(self.image_mean)
        data["image_std"] = list(self.image_std)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArchitectureConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown architecture config keys: {unknown}")
        data = dict(data)
        for key in ("image_mean", "image_std"):
            if key in data:
                data[key] = tuple(float(v) for v in data[key])
        return cls(**data)


_VISION_CLASSES = {"dinov2": ("Dinov2Config", "Dinov2Model")}
_CLIP_VISION = ("CLIPVisionConfig", "CLIPVisionModel")
_DECODER_CLASSES = {"llama": ("LlamaConfig", "LlamaForCausalLM")}
_PHI3 = ("Phi3Config", "Phi3ForCausalLM")


def _classes(config: ArchitectureConfig) -> tuple[Any, Any, Any, Any]:
    """transformers' (vision config, vision model, decoder config, decoder model) for ``config``."""
    import transformers

    vision = _VISION_CLASSES.get(config.vision_type, _CLIP_VISION)
    decoder = _DECODER_CLASSES.get(config.decoder_type, _PHI3)
    found = [getattr(transformers, name) for name in (*vision, *decoder)]
    return found[0], found[1], found[2], found[3]


def _vision_encoder(config: ArchitectureConfig) -> nn.Module:
    vision_config, vision_model, _, _ = _classes(config)
    return vision_model(vision_config(**config.vision))  # type: ignore[no-any-return]


def _decoder(config: ArchitectureConfig) -> PreTrainedModel:
    common = {
        "bos_token_id": config.bos_token_id,
        "eos_token_id": config.eos_token_id,
        "pad_token_id": config.pad_token_id,
    }
    _, _, decoder_config, decoder_model = _classes(config)
    cfg = decoder_config(**{**common, **config.decoder})
    cfg.architectures = [decoder_model.__name__]
    return decoder_model(cfg)  # type: ignore[no-any-return]


class MLPProjector(nn.Module):
    """``layers`` linear layers with GELU between them (MAIRA-2 uses four)."""

    def __init__(self, in_dim: int, out_dim: int, layers: int, bias: bool = True) -> None:
        super().__init__()
        modules: list[nn.Module] = [nn.Linear(in_dim, out_dim, bias=bias)]
        for _ in range(layers - 1):
            modules += [nn.GELU(), nn.Linear(out_dim, out_dim, bias=bias)]
        self.net = nn.Sequential(*modules)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


class VisionTower(nn.Module):
    """Image encoder + projector: pixels [n, 3, H, W] -> image-token embeddings [n, T, D]."""

    def __init__(self, encoder: nn.Module, projector: MLPProjector) -> None:
        super().__init__()
        self.encoder = encoder
        self.projector = projector

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(pixel_values=pixel_values).last_hidden_state
        return self.projector(hidden[:, 1:, :])  # drop CLS, keep patch tokens


class CXRReportModel(nn.Module):
    """A report-generation VLM in the MAIRA-2 framework."""

    def __init__(self, config: ArchitectureConfig) -> None:
        super().__init__()
        self.config = config
        encoder = _vision_encoder(config)
        self.language_model: PreTrainedModel = _decoder(config)
        vision_dim = int(config.vision["hidden_size"])
        text_dim = int(config.decoder["hidden_size"])
        bias = bool(config.extra.get("projector_bias", True))  # MAIRA-2's multimodal_projector_bias
        self.vision = VisionTower(
            encoder, MLPProjector(vision_dim, text_dim, config.projector_layers, bias=bias)
        )

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Pixels [n, 3, H, W] -> flat image-token embeddings [n*T, D]."""
        features = self.vision(pixel_values.to(self.dtype))
        return features.reshape(-1, features.shape[-1])

    def embed_prompt(self, input_ids: torch.Tensor, image_embeds: torch.Tensor) -> torch.Tensor:
        """Token embeddings with the ``<image>`` positions replaced by image features."""
        embeds = self.language_model.get_input_embeddings()(input_ids)
        mask = input_ids == self.config.image_token_id
        count = int(mask.sum())
        if count != image_embeds.shape[0]:
            raise ValueError(
                f"prompt has {count} <image> tokens but the images gave {image_embeds.shape[0]}"
            )
        embeds = embeds.clone()
        embeds[mask] = image_embeds.to(embeds.dtype)
        return embeds

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())


def build_on(config: ArchitectureConfig, device: str) -> CXRReportModel:
    """``CXRReportModel(config)`` with its tensors created on ``device`` (``"meta"``: no memory).

    The transformers modules are imported first, outside ``with torch.device(...)``:

    torch 2.8 imports ``torch._dynamo`` on the first call of a dynamo-wrapped function. When
    that first call runs at import time of a transformers model module inside ``with
    torch.device("meta")``, the device mode's ``__torch_function__`` re-enters the half-imported
    ``torch._dynamo`` and the import fails as circular ("partially initialized module
    'torch._dynamo' has no attribute 'disable'"). Imported outside the context, nothing re-enters.
    """
    _classes(config)
    with torch.device(device):
        return CXRReportModel(config)
