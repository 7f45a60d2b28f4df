"""Chest-X-ray-like phantom images with drawn findings.

A phantom has a body outline, two lungs with vessel markings, heart shadow, mediastinum and
trachea, spine, clavicles, posterior ribs, domed hemidiaphragms with sharp costophrenic angles,
a gastric bubble and a bright side marker. Bright = dense (bone, soft tissue, fluid, metal), dark =
air, as on a radiograph. Radiological convention: the patient's right is on the image's *left*
(the heart bulges to the image's right).

Findings (:class:`PhantomSpec`) are drawn into it:

* pleural effusion (left / right / bilateral; small / moderate / large): fluid density filling the
  lung base with a meniscus, higher laterally, blunting the costophrenic angle and hiding the
  hemidiaphragm; its height grows with the size;
* pneumothorax (left / right; small / large): a dark rim without lung markings along the apex and
  lateral chest wall (the whole lung when large), bounded by a thin visceral pleural line;
* cardiomegaly (mild / moderate): a wider heart shadow;
* consolidation (left / right; dense / faint): patchy density in the lower lobe;
* nodule (left / right; upper / mid lung): a small round density;
* support devices: endotracheal tube (bright midline stripe ending above the carina), right or left
  central venous catheter (bright line from the neck to the superior vena cava).

Everything is deterministic for a given (spec, size, seed). A lateral view
(:func:`render_lateral`) shows the heart, spine, diaphragm and the posterior costophrenic sulcus,
so that effusion and cardiomegaly are visible on it too.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

SIDES = ("left", "right")
EFFUSION_SIDES = ("left", "right", "bilateral")
EFFUSION_SIZES = ("small", "moderate", "large")
PNEUMOTHORAX_SIZES = ("small", "large")
CARDIOMEGALY_GRADES = ("mild", "moderate")
DENSITIES = ("dense", "faint")
NODULE_ZONES = ("upper", "mid")
DEVICES = ("ett", "cvc-right", "cvc-left")

_EFFUSION_HEIGHT = {"small": 0.06, "moderate": 0.14, "large": 0.25}
_HEART_SCALE = {None: 1.0, "mild": 1.32, "moderate": 1.55}


@dataclass(frozen=True)
class PhantomSpec:
    """Which findings a phantom shows. ``None`` means the finding is absent."""

    effusion: str | None = None  # "left" | "right" | "bilateral"
    effusion_size: str = "small"  # "small" | "moderate" | "large"
    pneumothorax: str | None = None  # "left" | "right"
    pneumothorax_size: str = "small"  # "small" (apical) | "large"
    cardiomegaly: str | None = None  # "mild" | "moderate"
    consolidation: str | None = None  # "left" | "right" (lower lobe)
    consolidation_density: str = "dense"  # "dense" | "faint"
    nodule: str | None = None  # "left" | "right"
    nodule_zone: str = "upper"  # "upper" | "mid" lung
    devices: tuple[str, ...] = field(default_factory=tuple)  # subset of DEVICES

    def __post_init__(self) -> None:
        checks = [
            ("effusion", self.effusion, (None, *EFFUSION_SIDES)),
            ("effusion_size", self.effusion_size, EFFUSION_SIZES),
            ("pneumothorax", self.pneumothorax, (None, *SIDES)),
            ("pneumothorax_size", self.pneumothorax_size, PNEUMOTHORAX_SIZES),
            ("cardiomegaly", self.cardiomegaly, (None, *CARDIOMEGALY_GRADES)),
            ("consolidation", self.consolidation, (None, *SIDES)),
            ("consolidation_density", self.consolidation_density, DENSITIES),
            ("nodule", self.nodule, (None, *SIDES)),
            ("nodule_zone", self.nodule_zone, NODULE_ZONES),
        ]
        for name, value, allowed in checks:
            if value not in allowed:
                raise ValueError(f"PhantomSpec.{name} must be one of {allowed}, got {value!r}")
        unknown = [d for d in self.devices if d not in DEVICES]
        if unknown or len(set(self.devices)) != len(self.devices):
            raise ValueError(f"PhantomSpec.devices must be distinct items of {DEVICES}")
        if "cvc-right" in self.devices and "cvc-left" in self.devices:
            raise ValueError("PhantomSpec.devices: at most one central venous catheter")
        object.__setattr__(self, "devices", tuple(sorted(self.devices)))

    @property
    def is_normal(self) -> bool:
        return self == PhantomSpec(devices=self.devices)

    def positives(self) -> int:
        """How many findings are drawn (devices count as one)."""
        return sum(
            x is not None
            for x in (
                self.effusion,
                self.pneumothorax,
                self.cardiomegaly,
                self.consolidation,
                self.nodule,
            )
        ) + bool(self.devices)


def _image_x(side: str) -> int:
    """-1 for the patient's right (image left), +1 for the patient's left (image right)."""
    return -1 if side == "right" else 1


@lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    yy = (yy + 0.5) / size
    xx = (xx + 0.5) / size
    yy.setflags(write=False)
    xx.setflags(write=False)
    return yy, xx


def _ellipse_d(
    yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, ry: float, rx: float
) -> np.ndarray:
    """Normalised elliptic radius: < 1 inside."""
    return np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)


def _soft(inside: np.ndarray, edge: float) -> np.ndarray:
    """Soft step from a signed 'distance' (positive inside) with width ``edge``."""
    return np.clip(inside / edge + 0.5, 0.0, 1.0)


def _segment_distance(
    yy: np.ndarray, xx: np.ndarray, p0: tuple[float, float], p1: tuple[float, float]
) -> np.ndarray:
    (y0, x0), (y1, x1) = p0, p1
    dy, dx = y1 - y0, x1 - x0
    length2 = dy * dy + dx * dx + 1e-12
    t = np.clip(((yy - y0) * dy + (xx - x0) * dx) / length2, 0.0, 1.0)
    return np.sqrt((yy - (y0 + t * dy)) ** 2 + (xx - (x0 + t * dx)) ** 2)


def _polyline(
    yy: np.ndarray, xx: np.ndarray, points: list[tuple[float, float]], width: float
) -> np.ndarray:
    size = yy.shape[0]
    edge = max(width * 0.6, 1.0 / size)
    pad = width + edge + 2.0 / size
    ys, xs = [p[0] for p in points], [p[1] for p in points]
    r0, r1 = max(0, int((min(ys) - pad) * size)), min(size, int((max(ys) + pad) * size) + 2)
    c0, c1 = max(0, int((min(xs) - pad) * size)), min(size, int((max(xs) + pad) * size) + 2)
    out = np.zeros(yy.shape, dtype=np.float32)
    if r0 >= r1 or c0 >= c1:
        return out
    wy, wx = yy[r0:r1, c0:c1], xx[r0:r1, c0:c1]  # only the bounding box is computed
    dist = np.full(wy.shape, np.inf, dtype=np.float32)
    for a, b in itertools.pairwise(points):
        dist = np.minimum(dist, _segment_distance(wy, wx, a, b))
    out[r0:r1, c0:c1] = _soft(width - dist, edge)
    return out


@dataclass(frozen=True)
class _Anatomy:
    """Per-seed jitter of the normal anatomy (normalised coordinates)."""

    lung_cy: float
    lung_dx: float
    lung_ry: float
    lung_rx: float
    dia_y: tuple[float, float]  # lateral base of the (image-left, image-right) hemidiaphragm
    dome: float
    heart_cy: float
    heart_cx: float
    heart_ry: float
    heart_rx: float
    lung_level: float
    tissue_level: float
    gamma: float
    noise: float

    @classmethod
    def sample(cls, rng: np.random.Generator) -> _Anatomy:
        j = rng.uniform(-1.0, 1.0, 14)
        base = 0.80 + 0.015 * j[4]
        return cls(
            lung_cy=0.53 + 0.012 * j[0],
            lung_dx=0.195 + 0.01 * j[1],
            lung_ry=0.37 + 0.012 * j[2],
            lung_rx=0.14 + 0.008 * j[3],
            dia_y=(base - 0.02, base),  # the right hemidiaphragm (image left) sits higher
            dome=0.075 + 0.01 * j[5],
            heart_cy=0.62 + 0.01 * j[6],
            heart_cx=0.545 + 0.008 * j[7],
            heart_ry=0.125 + 0.006 * j[8],
            heart_rx=0.125 + 0.006 * j[9],
            lung_level=0.17 + 0.02 * j[10],
            tissue_level=0.55 + 0.03 * j[11],
            gamma=1.0 + 0.12 * j[12],
            noise=0.014 + 0.004 * j[13],
        )

    def lung_cx(self, image_x: int) -> float:
        return 0.5 + image_x * self.lung_dx

    def diaphragm(self, xx: np.ndarray, image_x: int) -> np.ndarray:
        """Height of the hemidiaphragm below each column (higher medially: a dome)."""
        base = self.dia_y[0 if image_x < 0 else 1]
        t = (xx - self.lung_cx(image_x)) / (self.lung_rx * 1.15)
        return base - self.dome * np.clip(1.0 - (t + 0.35 * image_x) ** 2, 0.0, 1.0)


def _lung_mask(yy: np.ndarray, xx: np.ndarray, anat: _Anatomy, image_x: int) -> np.ndarray:
    d = _ellipse_d(yy, xx, anat.lung_cy, anat.lung_cx(image_x), anat.lung_ry, anat.lung_rx)
    inside = (1.0 - d) * anat.lung_rx
    below_dome = anat.diaphragm(xx, image_x) - yy
    return _soft(np.minimum(inside, below_dome), 0.006)


def _markings(
    yy: np.ndarray, xx: np.ndarray, anat: _Anatomy, image_x: int, rng: np.random.Generator
) -> np.ndarray:
    """Vessel markings radiating from the hilum, fading to the periphery."""
    size = yy.shape[0]
    hilum = (anat.lung_cy - 0.02, 0.5 + image_x * 0.085)
    out = np.zeros(yy.shape, dtype=np.float32)
    for _ in range(11):
        angle = rng.uniform(-1.2, 1.9)  # radians from horizontal, mostly lateral and downward
        length = rng.uniform(0.12, 0.24)
        tip = (hilum[0] + np.sin(angle) * length, hilum[1] + image_x * np.cos(angle) * length)
        mid = (
            (hilum[0] + tip[0]) / 2 + rng.normal(0, 0.015),
            (hilum[1] + tip[1]) / 2 + rng.normal(0, 0.015),
        )
        width = max(0.0045, 1.2 / size)
        out = np.maximum(out, _polyline(yy, xx, [hilum, mid, tip], width))
    radial = np.sqrt((yy - hilum[0]) ** 2 + (xx - hilum[1]) ** 2)
    return out * np.clip(1.0 - radial / 0.3, 0.15, 1.0) * 0.09


def _effusion(
    yy: np.ndarray, xx: np.ndarray, anat: _Anatomy, image_x: int, size: str, lung: np.ndarray
) -> np.ndarray:
    """Fluid fraction in one hemithorax: a meniscus, higher laterally."""
    height = _EFFUSION_HEIGHT[size]
    t_raw = (xx - anat.lung_cx(image_x)) * image_x / anat.lung_rx  # +1 lateral, -1 medial
    t = np.clip(t_raw, -1.0, 1.0)
    base = anat.dia_y[0 if image_x < 0 else 1]
    top = base - height * (0.45 + 0.55 * (t + 1.0) / 2.0) - 0.035 * np.clip(t, 0.0, 1.0) ** 3
    fluid = _soft(yy - top, 0.012)
    # fluid hides the dome: it fills the lung base down to the lateral base line
    region = np.maximum(lung, _soft(base + 0.01 - yy, 0.01) * _soft(0.95 - np.abs(t_raw), 0.05))
    return fluid * region


def _pneumothorax(
    yy: np.ndarray, xx: np.ndarray, anat: _Anatomy, image_x: int, size: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(air rim, visceral pleural line, collapsed-lung mask) for one side."""
    cx = anat.lung_cx(image_x)
    if size == "large":
        f, shift_y, shift_x = 0.6, 0.06, -image_x * 0.035
    else:
        f, shift_y, shift_x = 0.74, 0.06, -image_x * 0.015
    d_in = _ellipse_d(
        yy, xx, anat.lung_cy + shift_y, cx + shift_x, anat.lung_ry * f, anat.lung_rx * f
    )
    collapsed = _soft((1.0 - d_in) * anat.lung_rx * f, 0.004)
    rim = 1.0 - collapsed
    line = _soft(0.006 - np.abs(1.0 - d_in) * anat.lung_rx * f, 0.003)
    if size == "small":  # apical and upper lateral only
        keep = _soft((anat.lung_cy + 0.02) - yy, 0.03)
        rim, line = rim * keep, line * keep
        collapsed = 1.0 - rim
    return rim, line, collapsed


def _consolidation(
    yy: np.ndarray, xx: np.ndarray, anat: _Anatomy, image_x: int, rng: np.random.Generator
) -> np.ndarray:
    cx = anat.lung_cx(image_x)
    out = np.zeros(yy.shape, dtype=np.float32)
    for _ in range(6):
        by = anat.lung_cy + rng.uniform(0.1, 0.22)
        bx = cx + image_x * rng.uniform(-0.06, 0.07)
        s = rng.uniform(0.025, 0.045)
        out += np.exp(-(((yy - by) ** 2 + (xx - bx) ** 2) / (2 * s * s))).astype(np.float32)
    patchy = np.clip(out * 1.1, 0.0, 1.0)
    texture = 0.75 + 0.25 * rng.random(yy.shape, dtype=np.float32)
    return patchy * texture


def _nodule(
    yy: np.ndarray,
    xx: np.ndarray,
    anat: _Anatomy,
    image_x: int,
    zone: str,
    rng: np.random.Generator,
) -> np.ndarray:
    cy = anat.lung_cy + (rng.uniform(-0.23, -0.13) if zone == "upper" else rng.uniform(-0.07, 0.03))
    cx = anat.lung_cx(image_x) + image_x * rng.uniform(-0.04, 0.05)
    radius = rng.uniform(0.034, 0.042)
    d = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
    return _soft(radius - d, 0.006)


def _devices(
    yy: np.ndarray, xx: np.ndarray, devices: tuple[str, ...], rng: np.random.Generator
) -> np.ndarray:
    out = np.zeros(yy.shape, dtype=np.float32)
    size = yy.shape[0]
    width = max(0.0065, 1.2 / size)
    for device in devices:
        if device == "ett":
            tip = rng.uniform(0.25, 0.31)
            x = 0.5 + rng.normal(0, 0.004)
            out = np.maximum(out, _polyline(yy, xx, [(0.0, x), (0.12, x + 0.004), (tip, x)], width))
        else:
            ix = -1 if device == "cvc-right" else 1
            j = rng.normal(0, 0.01, 6)
            if ix < 0:  # right internal jugular: nearly straight down into the SVC
                pts = [
                    (0.04, 0.5 - 0.13 + j[0]),
                    (0.17 + j[1], 0.5 - 0.09 + j[2]),
                    (0.28 + j[3], 0.5 - 0.05),
                    (0.41 + j[4], 0.5 - 0.035 + j[5]),
                ]
            else:  # left: crosses the mediastinum to the SVC
                pts = [
                    (0.04, 0.5 + 0.14 + j[0]),
                    (0.17 + j[1], 0.5 + 0.11 + j[2]),
                    (0.25 + j[3], 0.5 + 0.02),
                    (0.40 + j[4], 0.5 - 0.03 + j[5]),
                ]
            out = np.maximum(out, _polyline(yy, xx, pts, width))
    return out


MASK_NAMES = ("heart", "effusion", "pneumothorax", "consolidation", "nodule", "devices")


def render(spec: PhantomSpec | None = None, size: int = 256, seed: int = 0) -> np.ndarray:
    """A frontal (PA) chest phantom showing ``spec``'s findings, float32 in [0, 1]."""
    return render_with_masks(spec, size, seed)[0]


def render_with_masks(
    spec: PhantomSpec | None = None, size: int = 256, seed: int = 0
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """:func:`render` plus where each finding was drawn: one [0, 1] map per :data:`MASK_NAMES`."""
    spec = spec or PhantomSpec()
    if size < 32:
        raise ValueError("phantom size must be at least 32 pixels")
    rng = np.random.default_rng(seed)
    anat = _Anatomy.sample(rng)
    finding_rng = np.random.default_rng([seed, 1])  # findings do not perturb the anatomy
    yy, xx = _grid(size)
    image = np.full((size, size), 0.03, dtype=np.float32)
    masks = {name: np.zeros((size, size), dtype=np.float32) for name in MASK_NAMES}

    # body: soft tissue of the thorax and shoulders
    body = _soft((1.0 - _ellipse_d(yy, xx, 0.58, 0.5, 0.52, 0.44)) * 0.3, 0.01)
    neck = _soft(0.07 - np.abs(xx - 0.5), 0.01) * _soft(0.2 - yy, 0.02)
    image += (anat.tissue_level - 0.03) * np.maximum(body, neck)
    # abdomen below the diaphragm is drawn first; lungs are cut out above it
    lungs = {ix: _lung_mask(yy, xx, anat, ix) for ix in (-1, 1)}
    air_level = anat.lung_level
    for ix in (-1, 1):
        lung = lungs[ix]
        marks = _markings(yy, xx, anat, ix, rng)
        if spec.pneumothorax == ("right" if ix < 0 else "left"):
            rim, line, collapsed = _pneumothorax(yy, xx, anat, ix, spec.pneumothorax_size)
            masks["pneumothorax"] = np.maximum(masks["pneumothorax"], np.maximum(rim, line) * lung)
            tissue = (
                air_level
                + marks * collapsed
                + 0.04 * collapsed * (spec.pneumothorax_size == "large")
            ) * (1 - rim)
            tissue += (air_level - 0.12) * rim + 0.3 * line * lung
            value = tissue
        else:
            value = air_level + marks
        image = image * (1 - lung) + value * lung
    # gastric bubble under the left hemidiaphragm (image right)
    bubble = _soft(
        (1.0 - _ellipse_d(yy, xx, anat.dia_y[1] + 0.045, 0.64, 0.025, 0.045)) * 0.03, 0.006
    )
    image = image * (1 - bubble) + 0.12 * bubble
    # mediastinum, spine, trachea
    mediastinum = (
        _soft(0.055 - np.abs(xx - 0.5), 0.01) * _soft(yy - 0.1, 0.02) * _soft(0.62 - yy, 0.03)
    )
    image = np.maximum(image, anat.tissue_level * mediastinum)
    heart_scale = _HEART_SCALE[spec.cardiomegaly]
    heart_rx = anat.heart_rx * heart_scale
    heart_cx = anat.heart_cx + (heart_scale - 1.0) * 0.045
    heart_ry = anat.heart_ry * (1.0 + (heart_scale - 1.0) * 0.35)
    heart = _soft(
        (1.0 - _ellipse_d(yy, xx, anat.heart_cy, heart_cx, heart_ry, heart_rx)) * heart_rx, 0.008
    )
    heart *= _soft(anat.diaphragm(xx, 1) + 0.03 - yy, 0.01)  # sits on the diaphragm
    image = image * (1 - heart) + (anat.tissue_level + 0.05) * heart
    masks["heart"] = heart
    image += 0.16 * _soft(0.022 - np.abs(xx - 0.5), 0.006) * _soft(yy - 0.02, 0.01)  # spine
    trachea = (
        _soft(0.013 - np.abs(xx - 0.5), 0.005) * _soft(yy - 0.03, 0.01) * _soft(0.34 - yy, 0.01)
    )
    for ix in (-1, 1):  # main bronchi
        trachea = np.maximum(
            trachea, _polyline(yy, xx, [(0.335, 0.5), (0.41, 0.5 + ix * 0.06)], 0.009)
        )
    image -= 0.2 * trachea
    # clavicles and posterior ribs
    for ix in (-1, 1):
        image += 0.12 * _polyline(
            yy,
            xx,
            [(0.15, 0.5 + ix * 0.04), (0.13, 0.5 + ix * 0.18), (0.1, 0.5 + ix * 0.32)],
            0.012,
        )
        for k in range(9):
            y0 = 0.2 + 0.062 * k
            t = np.clip((xx - 0.5) * ix, 0.0, None)
            arc = np.abs(yy - (y0 + 1.6 * (t - 0.04) ** 2 - 0.02)) < 0.0065
            arc &= (t > 0.03) & (t < 0.36)
            image += 0.08 * arc * np.maximum(lungs[ix], 0.4)

    # findings
    if spec.consolidation is not None:
        ix = _image_x(spec.consolidation)
        level = 0.35 if spec.consolidation_density == "dense" else 0.15
        patches = _consolidation(yy, xx, anat, ix, finding_rng) * lungs[ix]
        image += level * patches
        masks["consolidation"] = patches
    if spec.nodule is not None:
        ix = _image_x(spec.nodule)
        nodule = _nodule(yy, xx, anat, ix, spec.nodule_zone, finding_rng)
        image += 0.4 * nodule * lungs[ix]
        masks["nodule"] = nodule * lungs[ix]
    if spec.effusion is not None:
        sides = (-1, 1) if spec.effusion == "bilateral" else (_image_x(spec.effusion),)
        for ix in sides:
            fluid = _effusion(yy, xx, anat, ix, spec.effusion_size, lungs[ix])
            depth = np.clip((yy - 0.5) / 0.35, 0.0, 1.0)  # denser towards the base
            image = image * (1 - fluid) + (anat.tissue_level - 0.04 + 0.05 * depth) * fluid
            masks["effusion"] = np.maximum(masks["effusion"], fluid)
    if spec.devices:
        lines = _devices(yy, xx, spec.devices, finding_rng)
        image = np.maximum(image, 0.93 * lines)
        masks["devices"] = lines

    # side marker (patient's right = image left) pins the brightest value for min-max scaling
    marker = (np.abs(yy - 0.06) < 0.018) & (np.abs(xx - 0.07) < 0.012)
    image = np.clip(image, 0.0, 0.97) ** anat.gamma
    image += rng.normal(0.0, anat.noise, image.shape).astype(np.float32)
    image[marker] = 1.0
    image[:1, :1] = 0.0
    return np.clip(image, 0.0, 1.0).astype(np.float32), masks


def render_lateral(spec: PhantomSpec | None = None, size: int = 256, seed: int = 0) -> np.ndarray:
    """A left-lateral phantom (anterior to the image left) of the same patient, float32 in [0, 1].

    Shows the heart (larger with cardiomegaly), spine, sternum, diaphragm, and fluid in the
    posterior costophrenic sulcus when there is an effusion. Laterality cannot be read from it.
    """
    spec = spec or PhantomSpec()
    rng = np.random.default_rng([seed, 2])
    anat = _Anatomy.sample(np.random.default_rng(seed))
    yy, xx = _grid(size)
    image = np.full((size, size), 0.03, dtype=np.float32)
    body = _soft((1.0 - _ellipse_d(yy, xx, 0.56, 0.5, 0.5, 0.36)) * 0.3, 0.01)
    image += (anat.tissue_level - 0.03) * body
    lung_d = _ellipse_d(yy, xx, anat.lung_cy + 0.01, 0.52, anat.lung_ry, 0.27)
    base = anat.dia_y[1] + 0.01
    dome = base - 0.07 * np.clip(1.0 - ((xx - 0.52) / 0.3) ** 2, 0.0, 1.0)
    lung = _soft(np.minimum((1.0 - lung_d) * 0.27, dome - yy), 0.006)
    image = image * (1 - lung) + (anat.lung_level + 0.05) * lung
    heart_scale = _HEART_SCALE[spec.cardiomegaly]
    heart = _soft(
        (
            1.0
            - _ellipse_d(
                yy,
                xx,
                anat.heart_cy + 0.02,
                0.4 - 0.03 * (heart_scale - 1),
                0.13 * (1 + 0.35 * (heart_scale - 1)),
                0.12 * heart_scale,
            )
        )
        * 0.1,
        0.01,
    )
    heart *= _soft(dome + 0.02 - yy, 0.01)
    image = image * (1 - heart * 0.8) + (anat.tissue_level + 0.02) * heart * 0.8
    image += (
        0.2 * _soft(0.035 - np.abs(xx - (0.79 - 0.05 * (yy - 0.5))), 0.006) * _soft(yy - 0.05, 0.02)
    )  # spine
    image += (
        0.12
        * _soft(0.012 - np.abs(xx - (0.17 + 0.06 * (yy - 0.2))), 0.004)
        * _soft(yy - 0.2, 0.01)
        * _soft(0.62 - yy, 0.01)
    )  # sternum
    if spec.effusion is not None:
        height = _EFFUSION_HEIGHT[spec.effusion_size] * (
            1.3 if spec.effusion == "bilateral" else 1.0
        )
        t = np.clip((xx - 0.52) / 0.27, -1.0, 1.0)  # +1 posterior
        top = base - height * (0.3 + 0.7 * (t + 1.0) / 2.0) - 0.04 * np.clip(t, 0, 1) ** 3
        fluid = _soft(yy - top, 0.012) * np.maximum(
            lung, _soft(base + 0.01 - yy, 0.01) * _soft(1 - np.abs(t), 0.05)
        )
        image = image * (1 - fluid) + (anat.tissue_level - 0.04) * fluid
    image = np.clip(image, 0.0, 0.97) ** anat.gamma
    image += rng.normal(0.0, anat.noise, image.shape).astype(np.float32)
    image[(np.abs(yy - 0.06) < 0.018) & (np.abs(xx - 0.93) < 0.012)] = 1.0
    image[:1, :1] = 0.0
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def base_phantom(size: int = 256, seed: int = 0) -> np.ndarray:
    """A normal frontal chest phantom as float32 in [0, 1]."""
    return render(PhantomSpec(), size=size, seed=seed)


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def to_uint16(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image, 0.0, 1.0) * 65535.0).astype(np.uint16)
