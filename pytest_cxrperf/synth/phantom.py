"""Chest-X-ray-like phantom images: body, lungs, heart shadow, diaphragm, ribs.

Deterministic for a given seed. Bright = dense (bone, soft tissue), dark = air (lungs), as on a
radiograph.
"""

from __future__ import annotations

import numpy as np


def _ellipse(yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def base_phantom(size: int = 256, seed: int = 0) -> np.ndarray:
    """A normal frontal chest phantom as float32 in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    image = np.full((size, size), 0.05, dtype=np.float32)
    image[_ellipse(yy, xx, 0.55, 0.5, 0.48, 0.42)] = 0.55  # soft tissue of the thorax
    jitter = rng.normal(0, 0.01, 4)
    for side in (-1, 1):  # lungs: dark
        lung = _ellipse(yy, xx, 0.47 + jitter[0], 0.5 + side * (0.18 + jitter[1]), 0.30, 0.13)
        image[lung] = 0.18
    image[_ellipse(yy, xx, 0.62 + jitter[2], 0.54, 0.13, 0.14 + jitter[3])] = 0.62  # heart
    image[yy > 0.78 + 0.04 * np.cos((xx - 0.5) * 6)] = 0.6  # diaphragm / abdomen
    for k in range(8):  # ribs: faint bright arcs
        y0 = 0.22 + 0.07 * k
        for side in (-1, 1):
            arc = np.abs(yy - (y0 + 0.08 * ((xx - 0.5) * side * 2) ** 2)) < 0.008
            arc &= np.abs(xx - 0.5 - side * 0.18) < 0.16
            image[arc] += 0.12
    image[np.abs(xx - 0.5) < 0.025] += 0.2  # spine
    image += rng.normal(0, 0.015, image.shape).astype(np.float32)
    return np.clip(image, 0.0, 1.0)
