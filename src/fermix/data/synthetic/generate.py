"""Drawing the samples of a split: identity, expression, pose and capture from per-sample seeds.

Sample i of split s is drawn from its own generator seeded by (seed, split, i), so a split is
the same bytes whether it is generated in one piece, in chunks or in several processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from fermix.data.action_units import SYNTHETIC_AUS
from fermix.data.synthetic import face
from fermix.data.synthetic.config import SyntheticConfig
from fermix.data.synthetic.design import SPLIT_CODE, SplitTable, class_names, domain_styles
from fermix.data.synthetic.render import Capture, background, capture, draw_face

_HAIR = ((30, 25, 20), (70, 45, 30), (120, 80, 40), (200, 170, 110), (95, 90, 88), (140, 60, 30))
_IRIS = ((70, 50, 35), (60, 90, 125), (80, 110, 70), (45, 35, 30))


@dataclass
class SplitArrays:
    """A generated split: images and per-sample ground truth, row-aligned with its SplitTable."""

    images: np.ndarray  # N×H×W×3 uint8
    landmarks: np.ndarray  # N×68×2 float32, pixel coordinates (pixel centres at integers)
    au_intensity: np.ndarray  # N×16 float32
    va: np.ndarray  # N×2 float32 (clean)


@lru_cache(maxsize=4096)
def person(seed: int, subject: int) -> tuple[face.Identity, np.ndarray]:
    """A subject's identity and neutral shape (cached: subjects repeat across samples)."""
    ident = identity(seed, subject)
    shape = face.neutral_shape(ident)
    shape.flags.writeable = False
    return ident, shape


def identity(seed: int, subject: int) -> face.Identity:
    """A person: shape offsets and colours drawn from (seed, subject)."""
    rng = np.random.default_rng([seed, 3, subject])
    d = face.Identity()
    g = rng.normal(0.0, 1.0, 12)
    tone = rng.uniform(0.0, 1.0)
    skin = np.array([95, 60, 45]) + tone * np.array([150, 150, 140])
    skin = skin * rng.uniform(0.95, 1.05, 3)
    return face.Identity(
        face_w=d.face_w * (1 + 0.05 * g[0]),
        chin_y=d.chin_y + 0.03 * g[1],
        jaw_taper=d.jaw_taper + 0.04 * g[2],
        eye_sep=d.eye_sep * (1 + 0.05 * g[3]),
        eye_y=d.eye_y + 0.02 * g[4],
        eye_w=d.eye_w * (1 + 0.06 * g[5]),
        eye_h=d.eye_h * (1 + 0.1 * g[6]),
        brow_gap=d.brow_gap * (1 + 0.08 * g[7]),
        nose_y=d.nose_y + 0.02 * g[8],
        nose_w=d.nose_w * (1 + 0.08 * g[9]),
        mouth_y=d.mouth_y + 0.02 * g[10],
        mouth_w=d.mouth_w * (1 + 0.06 * g[11]),
        shape_noise=rng.normal(0.0, 0.005, (face.NUM_POINTS, 2)),
        skin=tuple(float(x) for x in np.clip(skin, 0, 255)),  # type: ignore[arg-type]
        hair=tuple(float(x) for x in _HAIR[rng.integers(len(_HAIR))]),  # type: ignore[arg-type]
        iris=tuple(float(x) for x in _IRIS[rng.integers(len(_IRIS))]),  # type: ignore[arg-type]
        lips=tuple(float(x) for x in np.clip(skin * np.array([0.85, 0.55, 0.55]) + [25, 0, 5], 0, 255)),  # type: ignore[arg-type]
        long_hair=bool(rng.random() < 0.4),
    )


def expression_aus(cfg: SyntheticConfig, names: list[str], cls: int, blend_cls: int, blend_w: float,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None, float]:  # fmt: skip
    """(AU intensities (16,), one-sided gains or None, expression intensity t)."""
    t = rng.uniform(*cfg.intensity)
    proto = face.prototype_vector(names[cls])
    if blend_cls >= 0:
        proto = blend_w * proto + (1.0 - blend_w) * face.prototype_vector(names[blend_cls])
    jitter = 1.0 + cfg.au_jitter * rng.standard_normal(len(SYNTHETIC_AUS))
    intensity = proto * t * jitter
    spontaneous = (proto == 0) & (rng.random(len(SYNTHETIC_AUS)) < cfg.au_spontaneous)
    intensity[spontaneous] = rng.uniform(0.0, 0.3, int(spontaneous.sum()))
    intensity = np.clip(intensity, 0.0, 1.0)
    side = None
    one_sided = [n for n in (names[cls], names[blend_cls] if blend_cls >= 0 else "") if n in face.ONE_SIDED]
    if one_sided:
        side = np.ones((len(SYNTHETIC_AUS), 2))
        keep = int(rng.integers(2))  # which side of the face carries the unilateral AUs
        for au in face.ONE_SIDED[one_sided[0]]:
            side[face.AU_INDEX[au], 1 - keep] = 0.0
    return intensity, side, t


def valence_arousal(cfg: SyntheticConfig, names: list[str], cls: int, blend_cls: int, blend_w: float, t: float,
                    rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    va = np.asarray(face.CIRCUMPLEX[names[cls]]) * t
    if blend_cls >= 0:
        va = blend_w * va + (1.0 - blend_w) * np.asarray(face.CIRCUMPLEX[names[blend_cls]]) * t
    return np.clip(va + cfg.va_noise * rng.standard_normal(2), -1.0, 1.0)


def _pose(points: np.ndarray, cfg: SyntheticConfig, rng: np.random.Generator) -> np.ndarray:
    """Yaw squeeze, then rotation/scale about the face centre, then translation (normalised units)."""
    yaw = rng.uniform(-cfg.yaw, cfg.yaw)
    p = points.copy()
    p[:, 0] = p[:, 0] * (1.0 - 0.45 * yaw * np.clip(p[:, 0], -1, 1))
    p[:, 0] += 0.08 * yaw * np.exp(-((p[:, 0] / 0.3) ** 2))  # the nose region turns with the head
    angle = np.deg2rad(np.clip(rng.normal(0.0, cfg.rotation), -2.5 * cfg.rotation, 2.5 * cfg.rotation))
    s = rng.uniform(*cfg.scale)
    c, si = np.cos(angle) * s, np.sin(angle) * s
    centre = np.array([0.0, 0.1])
    q = p - centre
    p = np.stack([c * q[:, 0] - si * q[:, 1], si * q[:, 0] + c * q[:, 1]], axis=1) + centre
    return p + rng.normal(0.0, cfg.translate, 2) - [0.0, 0.08]


def render_sample(cfg: SyntheticConfig, table: SplitTable, index: int, names: list[str], styles: list) -> tuple:
    """One sample: (image uint8 H×W×3, landmarks 68×2 px, AU intensities (16,), VA (2,))."""
    rng = np.random.default_rng([cfg.seed, 5, SPLIT_CODE[table.split], index])
    cls, blend, w = int(table.cls[index]), int(table.blend_cls[index]), float(table.blend_w[index])
    ident, neutral = person(cfg.seed, int(table.subject[index]))
    style = styles[int(table.domain[index])]
    au, side, t = expression_aus(cfg, names, cls, blend, w, rng)
    va = valence_arousal(cfg, names, cls, blend, w, t, rng)

    shape = face.apply_aus(neutral, au, side, scale=ident.face_w / face.Identity.face_w)
    head = face.head_points(ident, shape)
    posed = _pose(np.concatenate([shape, head]), cfg, rng)
    size = cfg.image_size
    px = (posed + 1.0) * (size / 2.0) - 0.5
    lm, head_px = px[: face.NUM_POINTS], px[face.NUM_POINTS :]

    img = background(style, size, rng)
    draw_face(img, lm, head_px, ident, dict(zip(SYNTHETIC_AUS, au, strict=True)), unit=size / 2.0)
    cap = Capture(
        light_angle=rng.uniform(0, 2 * np.pi),
        light_strength=rng.uniform(0, cfg.lighting),
        blur=style.blur * rng.uniform(0.7, 1.3),
        noise=style.noise * rng.uniform(0.7, 1.3),
        jpeg=int(np.clip(style.jpeg + rng.integers(-5, 6), 10, 100)) if style.jpeg else 0,
    )
    image = capture(img, style, cap, rng)
    return image, lm.astype(np.float32), au.astype(np.float32), va.astype(np.float32)


def render_split(cfg: SyntheticConfig, table: SplitTable, start: int = 0, stop: int | None = None) -> SplitArrays:
    """Render rows [start, stop) of a split."""
    stop = len(table) if stop is None else stop
    n, size = stop - start, cfg.image_size
    out = SplitArrays(
        images=np.empty((n, size, size, 3), np.uint8),
        landmarks=np.empty((n, face.NUM_POINTS, 2), np.float32),
        au_intensity=np.empty((n, len(SYNTHETIC_AUS)), np.float32),
        va=np.empty((n, 2), np.float32),
    )
    names, styles = class_names(cfg), domain_styles(cfg)
    for j, i in enumerate(range(start, stop)):
        out.images[j], out.landmarks[j], out.au_intensity[j], out.va[j] = render_sample(cfg, table, i, names, styles)
    return out
