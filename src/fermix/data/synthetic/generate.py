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


def _clamp(a: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """np.clip without its slow dispatch (it dominated small-array profiles)."""
    return np.minimum(np.maximum(a, lo), hi)


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
        skin=tuple(float(x) for x in _clamp(skin, 0.0, 255.0)),  # type: ignore[arg-type]
        hair=tuple(float(x) for x in _HAIR[rng.integers(len(_HAIR))]),  # type: ignore[arg-type]
        iris=tuple(float(x) for x in _IRIS[rng.integers(len(_IRIS))]),  # type: ignore[arg-type]
        lips=tuple(float(x) for x in _clamp(skin * np.array([0.85, 0.55, 0.55]) + [25, 0, 5], 0.0, 255.0)),  # type: ignore[arg-type]
        long_hair=bool(rng.random() < 0.4),
    )


# Per-sample random draws: every number a sample needs comes from its own generator, seeded by
# (seed, split, index), as one vector of uniforms and one of normals, so the geometry of a whole
# split is then computed in a handful of array operations.
_U_T, _U_SPONT, _U_SPONT_VAL, _U_SIDE = 0, slice(1, 17), slice(17, 33), 33
_U_YAW, _U_SCALE, _U_LIGHT_ANGLE, _U_LIGHT, _U_BLUR, _U_NOISE, _U_JPEG = 34, 35, 36, 37, 38, 39, 40
_N_UNIFORM = 41
_G_JITTER, _G_VA, _G_ROT, _G_SHIFT = slice(0, 16), slice(16, 18), 18, slice(19, 21)
_N_NORMAL = 21


@dataclass
class _Draws:
    uniform: np.ndarray  # N×41
    normal: np.ndarray  # N×21
    rngs: list[np.random.Generator]  # for what is drawn while rendering (background, noise)


def _draws(cfg: SyntheticConfig, split: str, start: int, stop: int) -> _Draws:
    n = stop - start
    uniform, normal, rngs = np.empty((n, _N_UNIFORM)), np.empty((n, _N_NORMAL)), []
    for j, i in enumerate(range(start, stop)):
        rng = np.random.default_rng([cfg.seed, 5, SPLIT_CODE[split], i])
        uniform[j] = rng.random(_N_UNIFORM)
        normal[j] = rng.standard_normal(_N_NORMAL)
        rngs.append(rng)
    return _Draws(uniform, normal, rngs)


def _blend(table_a: np.ndarray, cls: np.ndarray, blend_cls: np.ndarray, blend_w: np.ndarray) -> np.ndarray:
    """Rows of a per-class table, mixed with the blend class's row where a sample is ambiguous."""
    out = table_a[cls]
    blended = blend_cls >= 0
    w = blend_w[blended, None]
    out[blended] = w * out[blended] + (1.0 - w) * table_a[blend_cls[blended]]
    return out


@dataclass
class Geometry:
    """Everything about a run of samples except pixels."""

    landmarks: np.ndarray  # N×68×2 pixel coordinates
    head: np.ndarray  # N×49×2 pixel coordinates (outline points)
    au: np.ndarray  # N×16 intensities
    va: np.ndarray  # N×2


def geometry(cfg: SyntheticConfig, table: SplitTable, d: _Draws, start: int, stop: int) -> Geometry:
    names = class_names(cfg)
    rows = slice(start, stop)
    cls, blend_cls, blend_w = table.cls[rows], table.blend_cls[rows], table.blend_w[rows]
    u, g = d.uniform, d.normal

    # Expression: prototype (blended) x intensity x jitter, weak spontaneous AUs elsewhere.
    t = cfg.intensity[0] + (cfg.intensity[1] - cfg.intensity[0]) * u[:, _U_T]
    proto = _blend(np.stack([face.prototype_vector(c) for c in names]), cls, blend_cls, blend_w)
    au = proto * t[:, None] * (1.0 + cfg.au_jitter * g[:, _G_JITTER])
    spontaneous = (proto == 0) & (u[:, _U_SPONT] < cfg.au_spontaneous)
    au = _clamp(np.where(spontaneous, 0.3 * u[:, _U_SPONT_VAL], au), 0.0, 1.0)
    side = np.ones((len(cls), len(SYNTHETIC_AUS), 2))
    for name, aus in face.ONE_SIDED.items():
        if name in names:
            k = names.index(name)
            one_sided = np.flatnonzero((cls == k) | (blend_cls == k))
            off = (u[one_sided, _U_SIDE] >= 0.5).astype(int)  # which side of the face stays still
            for a in aus:
                side[one_sided, face.AU_INDEX[a], off] = 0.0

    va_dir = _blend(np.array([face.CIRCUMPLEX[c] for c in names]), cls, blend_cls, blend_w)
    va = _clamp(va_dir * t[:, None] + cfg.va_noise * g[:, _G_VA], -1.0, 1.0)

    # Shape: each subject's neutral face, deformed by the AUs, then the head outline.
    people = [person(cfg.seed, int(s)) for s in table.subject[rows]]
    neutral = np.stack([p[1] for p in people])
    width = np.array([p[0].face_w for p in people]) / face.Identity.face_w
    shape = face.apply_aus(neutral, au, side, scale=width)
    head = face.head_points(
        shape,
        eye_y=np.array([p[0].eye_y for p in people]),
        chin_y=np.array([p[0].chin_y for p in people]),
        long_hair=np.array([p[0].long_hair for p in people]),
    )
    posed = _pose(np.concatenate([shape, head], axis=1), cfg, u, g)
    px = (posed + 1.0) * (cfg.image_size / 2.0) - 0.5
    return Geometry(px[:, : face.NUM_POINTS], px[:, face.NUM_POINTS :], au, va)


def _pose(points: np.ndarray, cfg: SyntheticConfig, u: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Yaw squeeze, then rotation/scale about the face centre, then translation (normalised units)."""
    col = np.s_[:, None]
    yaw = (2.0 * u[:, _U_YAW] - 1.0) * cfg.yaw
    x = points[..., 0]
    x = x * (1.0 - 0.45 * yaw[col] * _clamp(x, -1.0, 1.0))
    x = x + 0.08 * yaw[col] * np.exp(-((x / 0.3) ** 2))  # the nose region turns with the head
    angle = np.deg2rad(_clamp(cfg.rotation * g[:, _G_ROT], -2.5 * cfg.rotation, 2.5 * cfg.rotation))
    s = cfg.scale[0] + (cfg.scale[1] - cfg.scale[0]) * u[:, _U_SCALE]
    c, si = np.cos(angle) * s, np.sin(angle) * s
    qx, qy = x, points[..., 1] - 0.1
    shift = cfg.translate * g[:, _G_SHIFT]
    out = np.empty_like(points)
    out[..., 0] = c[col] * qx - si[col] * qy + shift[:, 0, None]
    out[..., 1] = si[col] * qx + c[col] * qy + 0.1 + shift[:, 1, None] - 0.08
    return out


def render_split(cfg: SyntheticConfig, table: SplitTable, start: int = 0, stop: int | None = None) -> SplitArrays:
    """Render rows [start, stop) of a split."""
    stop = len(table) if stop is None else stop
    n, size = stop - start, cfg.image_size
    draws = _draws(cfg, table.split, start, stop)
    geo = geometry(cfg, table, draws, start, stop)
    styles = domain_styles(cfg)
    images = np.empty((n, size, size, 3), np.uint8)
    u = draws.uniform
    for j in range(n):
        i = start + j
        rng = draws.rngs[j]
        style = styles[int(table.domain[i])]
        ident = person(cfg.seed, int(table.subject[i]))[0]
        img = background(style, size, rng)
        draw_face(img, geo.landmarks[j], geo.head[j], ident, geo.au[j], unit=size / 2.0)
        cap = Capture(
            light_angle=2 * np.pi * u[j, _U_LIGHT_ANGLE],
            light_strength=cfg.lighting * u[j, _U_LIGHT],
            blur=style.blur * (0.7 + 0.6 * u[j, _U_BLUR]),
            noise=style.noise * (0.7 + 0.6 * u[j, _U_NOISE]),
            jpeg=min(100, max(10, style.jpeg + int(11 * u[j, _U_JPEG]) - 5)) if style.jpeg else 0,
        )
        images[j] = capture(img, style, cap, rng)
    return SplitArrays(
        images=images,
        landmarks=geo.landmarks.astype(np.float32),
        au_intensity=geo.au.astype(np.float32),
        va=geo.va.astype(np.float32),
    )
