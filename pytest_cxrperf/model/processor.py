"""Turns a study (images + INDICATION / TECHNIQUE / COMPARISON) into model inputs.

Images: grayscale, min-max normalised to [0, 1], resized on the shortest side and centre-cropped to
the encoder's size, replicated to 3 channels and normalised with the encoder's mean/std. 8-bit,
16-bit, palette, RGB(A) and float images are accepted, and DICOM radiographs (:mod:`.dicom`);
unreadable, truncated, empty or oversized files raise :class:`StudyError` naming the file.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFile, UnidentifiedImageError
from tokenizers import Tokenizer

from ..errors import StudyError
from .architecture import ArchitectureConfig
from .dicom import is_dicom, load_dicom_grayscale
from .formats import MAX_IMAGE_PIXELS
from .study_record import Study

VIEW_LABELS = {"frontal": "FRONTAL", "lateral": "LATERAL", "prior": "PRIOR FRONTAL"}


@dataclass(frozen=True)
class ModelInputs:
    """What every backend consumes. ``input_ids`` is [1, L]; ``pixel_values`` is [n, 3, H, W]."""

    study_name: str
    pixel_values: torch.Tensor
    input_ids: torch.Tensor
    prompt: str

    @property
    def prompt_length(self) -> int:
        return int(self.input_ids.shape[1])


def load_grayscale(path: Path) -> np.ndarray:
    """Read an image file as a float32 grayscale array scaled to [0, 1]."""
    if not path.is_file():
        raise StudyError(f"image {path} does not exist")
    if is_dicom(path):
        return load_dicom_grayscale(path)
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > MAX_IMAGE_PIXELS:
                    raise StudyError(
                        f"image {path} is {width}x{height} pixels, more than the "
                        f"{MAX_IMAGE_PIXELS:,} accepted; downsample it first"
                    )
                if width == 0 or height == 0:
                    raise StudyError(f"image {path} is empty ({width}x{height})")
                image.load()
                array = _to_gray_array(image)
    except StudyError:
        raise
    except (
        UnidentifiedImageError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ) as exc:
        raise StudyError(f"image {path} cannot be read as an image: {exc}") from exc
    except (OSError, SyntaxError, ValueError) as exc:  # truncated/corrupt data
        raise StudyError(f"image {path} is corrupt or truncated: {exc}") from exc
    if not np.isfinite(array).all():
        raise StudyError(f"image {path} contains NaN or infinite pixel values")
    low, high = float(array.min()), float(array.max())
    if high - low < 1e-12:
        return np.zeros_like(array, dtype=np.float32)  # a blank image is valid input
    return ((array - low) / (high - low)).astype(np.float32)


def _to_gray_array(image: Image.Image) -> np.ndarray:
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return np.asarray(image, dtype=np.float64)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        # composite on black: a transparent background is "no signal", like air on a radiograph
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, rgba)
    return np.asarray(image.convert("L"), dtype=np.float64)


def resize_and_crop(gray: np.ndarray, size: int) -> np.ndarray:
    """Resize the shortest side to ``size`` (bicubic) and centre-crop to ``size`` x ``size``."""
    height, width = gray.shape
    scale = size / min(height, width)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    resized = Image.fromarray(gray.astype(np.float32), mode="F").resize(
        (new_w, new_h), Image.Resampling.BICUBIC
    )
    left, top = (new_w - size) // 2, (new_h - size) // 2
    cropped = np.asarray(resized.crop((left, top, left + size, top + size)), dtype=np.float32)
    return np.clip(cropped, 0.0, 1.0)


class CXRProcessor:
    """Images + report context -> :class:`ModelInputs` for one architecture."""

    def __init__(self, config: ArchitectureConfig, tokenizer: Tokenizer) -> None:
        self.config = config
        self.tokenizer = tokenizer

    def pixel_values(self, images: list[Path]) -> torch.Tensor:
        mean = np.asarray(self.config.image_mean, dtype=np.float32)[:, None, None]
        std = np.asarray(self.config.image_std, dtype=np.float32)[:, None, None]
        tensors = []
        for path in images:
            gray = resize_and_crop(load_grayscale(path), self.config.image_size)
            rgb = np.repeat(gray[None, :, :], 3, axis=0)
            tensors.append(torch.from_numpy((rgb - mean) / std))
        return torch.stack(tensors)

    def _text_ids(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def prompt_ids(self, study: Study) -> tuple[list[int], str]:
        """The findings prompt; each image contributes a block of ``<image>`` placeholders."""
        cfg = self.config
        per_image = cfg.image_tokens_per_image
        ids: list[int] = [cfg.bos_token_id]
        shown: list[str] = ["<s>"]
        for view, _path in study.images():
            label = f"{VIEW_LABELS[view]}:"
            ids += self._text_ids(label) + [cfg.image_token_id] * per_image
            shown.append(f"{label}<image>x{per_image}")
        context = (
            f"\nINDICATION: {study.indication or 'N/A'}"
            f"\nTECHNIQUE: {study.technique or 'N/A'}"
            f"\nCOMPARISON: {study.comparison or 'N/A'}"
            "\nFINDINGS:"
        )
        ids += self._text_ids(context)
        shown.append(context)
        return ids, "".join(shown)

    def __call__(self, study: Study) -> ModelInputs:
        ids, shown = self.prompt_ids(study)
        return ModelInputs(
            study_name=study.name,
            pixel_values=self.pixel_values([p for _v, p in study.images()]),
            input_ids=torch.tensor([ids], dtype=torch.long),
            prompt=shown,
        )

    def decode(self, token_ids: list[int]) -> str:
        """Text of generated ids; ids past the tokenizer (random big-vocab models) show as <id>."""
        size = self.tokenizer.get_vocab_size()
        pieces: list[str] = []
        run: list[int] = []
        for token in token_ids:
            if token < size:
                run.append(token)
                continue
            if run:
                pieces.append(self.tokenizer.decode(run))
                run = []
            pieces.append(f"<{token}>")
        if run:
            pieces.append(self.tokenizer.decode(run))
        return "".join(pieces).strip()


IMAGE_TOKEN = "<image>"
MAIRA2_SYSTEM = (
    "You are an expert radiology assistant tasked with interpreting a chest X-ray study."
)
_MAIRA2_VIEWS = {  # the phrase that introduces each image
    "frontal": "Given the current frontal image:",
    "lateral": "The current lateral image:",
    "prior": "The prior frontal image:",
}


class Maira2Processor(CXRProcessor):
    """MAIRA-2's processing, re-stated (its remote code is never run).

    Images: grayscale, min-max rescaled to [0, 255] (uint8), then what ``BitImageProcessor``
    does: bicubic resize of the shortest edge, centre crop, /255, mean/std (0.5307/0.2583).
    Prompt (the Vicuna-style chat form): the system line, ``USER:`` with each image introduced
    and followed by its placeholders, the findings question with the sections the study has, then
    ``ASSISTANT:``. The wording follows the published processor as far as it could be established
    without its code; a difference changes the prompt, not the equivalence checks.
    """

    def pixel_values(self, images: list[Path]) -> torch.Tensor:
        cfg = self.config
        size = int(cfg.extra.get("resize_shortest_edge", cfg.image_size))
        crop = cfg.image_size
        mean = np.asarray(cfg.image_mean, dtype=np.float32)[:, None, None]
        std = np.asarray(cfg.image_std, dtype=np.float32)[:, None, None]
        tensors = []
        for path in images:
            gray = np.round(load_grayscale(path) * 255.0).astype(np.uint8)
            height, width = gray.shape
            short, long = (height, width) if height <= width else (width, height)
            new_long = int(size * long / short)
            new_h, new_w = (size, new_long) if height <= width else (new_long, size)
            image = Image.fromarray(gray, mode="L").resize((new_w, new_h), Image.Resampling.BICUBIC)
            top, left = (new_h - crop) // 2, (new_w - crop) // 2
            pixels = np.asarray(image.crop((left, top, left + crop, top + crop)), np.float32)
            rgb = np.repeat((pixels / 255.0)[None, :, :], 3, axis=0)
            tensors.append(torch.from_numpy(((rgb - mean) / std).astype(np.float32)))
        return torch.stack(tensors)

    def prompt_ids(self, study: Study) -> tuple[list[int], str]:
        """The prompt is tokenized in one piece, each ``<image>`` a single token that is then
        repeated ``image_tokens_per_image`` times (what the published processor's expansion of
        the placeholder gives)."""
        cfg = self.config
        per_image = cfg.image_tokens_per_image
        text = f"{MAIRA2_SYSTEM} USER:"
        for view, _path in study.images():
            text += f" {_MAIRA2_VIEWS[view]} {IMAGE_TOKEN}"
        text += " Provide a description of the findings in the radiology study."
        for label, value in (
            ("INDICATION", study.indication),
            ("TECHNIQUE", study.technique),
            ("COMPARISON", study.comparison),
        ):
            if value:  # a section the study does not have is left out, not "N/A"
                text += f" {label}: {value}"
        text += " ASSISTANT:"
        ids: list[int] = [cfg.bos_token_id]
        for token in self._text_ids(text):
            ids.extend([token] * per_image if token == cfg.image_token_id else [token])
        found = ids.count(cfg.image_token_id)
        if found != per_image * len(study.images()):
            raise ValueError(
                f"the tokenizer does not keep {IMAGE_TOKEN} as one token (id "
                f"{cfg.image_token_id}): {found} image tokens for {len(study.images())} images"
            )
        shown = "<s>" + text.replace(IMAGE_TOKEN, f"{IMAGE_TOKEN}x{per_image}")
        return ids, shown


def make_processor(config: ArchitectureConfig, tokenizer: Tokenizer) -> CXRProcessor:
    """The processor a model was trained with: MAIRA-2's for its published layout."""
    if config.extra.get("layout") == "maira2":
        return Maira2Processor(config, tokenizer)
    return CXRProcessor(config, tokenizer)
