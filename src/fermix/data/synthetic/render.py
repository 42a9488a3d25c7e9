"""OpenCV rendering of a posed face, then the capture chain of its domain (lighting, tint, blur,
noise, JPEG). Everything is drawn at the output size with sub-pixel precision and anti-aliasing,
so a 64 px face costs well under a millisecond.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from fermix.data.synthetic.face import AU_INDEX, FOREHEAD, HAIR, NECK, Identity

_SHIFT = 4  # sub-pixel bits for cv2 drawing
_ONE = 1 << _SHIFT


@dataclass(frozen=True)
class DomainStyle:
    """A capture style: what makes one source's images recognisable (IERN's confounder)."""

    name: str
    background: str = "flat"  # flat | gradient | texture | stripes
    bg_color: tuple[float, float, float] = (128.0, 128.0, 128.0)
    gain: tuple[float, float, float] = (1.0, 1.0, 1.0)  # per-channel colour cast
    blur: float = 0.0  # Gaussian sigma in pixels at 64 px (scaled with size)
    noise: float = 2.0  # sensor noise std (0-255 scale)
    jpeg: int = 95  # JPEG quality; 0 = no compression
    grayscale: bool = False
    brightness: float = 0.0  # added after the colour cast


@dataclass(frozen=True)
class Capture:
    """Per-sample capture draw (jittered around the domain's style)."""

    light_angle: float = 0.0
    light_strength: float = 0.0
    blur: float = 0.0
    noise: float = 0.0
    jpeg: int = 0


def _pts(points: np.ndarray) -> np.ndarray:
    """Fixed-point int32 points for cv2 (already converted arrays pass through)."""
    if points.dtype == np.int32:
        return points
    return np.rint(points * _ONE).astype(np.int32).reshape(-1, 1, 2)


def _fill(img: np.ndarray, points: np.ndarray | list[np.ndarray], color: tuple[float, ...]) -> None:
    """One filled polygon, or several (a list) in one call."""
    polygons = [_pts(p) for p in points] if isinstance(points, list) else [_pts(points)]
    cv2.fillPoly(img, polygons, color, cv2.LINE_AA, _SHIFT)


def _line(
    img: np.ndarray, points: np.ndarray | list[np.ndarray], color: tuple[float, ...], thickness: float,
    closed: bool = False,
) -> None:
    """One polyline, or several (a list) in one call."""
    lines = [_pts(p) for p in points] if isinstance(points, list) else [_pts(points)]
    cv2.polylines(img, lines, closed, color, max(1, round(thickness)), cv2.LINE_AA, _SHIFT)


def _blend(img: np.ndarray, overlay: np.ndarray, alpha: float) -> None:
    if alpha > 0.0:
        cv2.addWeighted(overlay, alpha, img, 1.0 - alpha, 0.0, dst=img)


def _scaled(color: tuple[float, float, float], k: float) -> tuple[float, float, float]:
    return tuple(min(255.0, max(0.0, c * k)) for c in color)  # type: ignore[return-value]


def background(style: DomainStyle, size: int, rng: np.random.Generator) -> np.ndarray:
    """H×W×3 float32 background for one sample of a domain."""
    base = np.asarray(style.bg_color, dtype=np.float32)
    if style.background == "flat":
        return np.broadcast_to(base, (size, size, 3)).copy()
    yy, xx = _grid(size)
    if style.background == "gradient":
        angle = rng.uniform(0, 2 * np.pi)
        ramp = (np.cos(angle) * xx + np.sin(angle) * yy)[..., None]
        return base + 40.0 * ramp
    if style.background == "texture":
        blobs = rng.uniform(-60, 60, size=(6, 6, 3)).astype(np.float32)
        return base + cv2.resize(blobs, (size, size), interpolation=cv2.INTER_CUBIC)
    if style.background == "stripes":
        angle = rng.uniform(0, np.pi)
        freq = rng.uniform(4.0, 8.0)
        wave = np.sin(freq * np.pi * (np.cos(angle) * xx + np.sin(angle) * yy) + rng.uniform(0, 2 * np.pi))
        return base + 45.0 * wave[..., None]
    raise ValueError(f"unknown background kind {style.background!r}")


_GRIDS: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    if size not in _GRIDS:
        c = (np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 - 1.0
        _GRIDS[size] = np.meshgrid(c, c, indexing="ij")
    return _GRIDS[size]


def draw_face(
    img: np.ndarray, lm: np.ndarray, head: np.ndarray, ident: Identity, au: np.ndarray, unit: float
) -> None:
    """Draw the face in place. `lm` (68×2) and `head` are pixel coordinates; `unit` = pixels per
    normalised unit, used for line widths and texture-cue sizes."""
    skin, hair = ident.skin, ident.hair
    _fill(img, head[HAIR], hair)
    _fill(img, head[NECK], _scaled(skin, 0.85))
    _fill(img, np.concatenate([lm[0:17], head[FOREHEAD][1:-1]]), skin)

    # Texture cues under the features: AU6 cheek bulge + crow's feet, AU4 glabella lines, AU9 nose wrinkles.
    a6, a4, a9 = (float(au[AU_INDEX[name]]) for name in ("AU6", "AU4", "AU9"))
    if a6 > 0.05:
        over = img.copy()
        for eye_low, corner, sign in ((lm[40:42].mean(0), lm[36], -1.0), (lm[46:48].mean(0), lm[45], 1.0)):
            centre = eye_low + np.array([0.0, 0.09 * unit])
            axes = (round(0.09 * unit * _ONE), round(0.045 * unit * _ONE))
            cv2.ellipse(over, _pts(centre)[0, 0], axes, 0, 0, 360, _scaled(skin, 1.12), -1, cv2.LINE_AA, _SHIFT)
            starts = corner + _CROW_START * [sign, 1.0] * unit
            _line(over, list(np.stack([starts, starts + _CROW_STEP * [sign, 1.0] * unit], axis=1)),
                  _scaled(skin, 0.6), 0.012 * unit)  # fmt: skip
        _blend(img, over, min(1.0, a6))
    if a4 > 0.05:
        over = img.copy()
        mid = 0.5 * (lm[21] + lm[22])
        tops = mid + np.array([[-0.025, 0.005], [0.025, 0.005]]) * unit
        _line(over, list(np.stack([tops, tops + np.array([0.0, 0.07 * unit])], axis=1)), _scaled(skin, 0.55),
              0.014 * unit)  # fmt: skip
        _blend(img, over, min(1.0, a4))
    if a9 > 0.05:
        over = img.copy()
        centres = lm[27] + np.array([[0.35], [0.55], [0.75]]) * (lm[29] - lm[27])
        half = np.array([0.045 * unit, 0.0])
        _line(over, list(np.stack([centres - half, centres + half], axis=1)), _scaled(skin, 0.55), 0.012 * unit)
        _blend(img, over, min(1.0, a9))

    # Nose: a soft bridge shadow and the nostril line.
    _line(img, lm[27:31], _scaled(skin, 0.82), 0.02 * unit)
    _line(img, lm[31:36], _scaled(skin, 0.55), 0.02 * unit)

    # Eyes: sclera polygon, iris clipped to the lids, dark lid outline; then brows over them.
    _draw_eyes(img, [lm[36:42], lm[42:48]], ident.iris, unit)
    _line(img, [lm[17:22], lm[22:27]], _scaled(hair, 0.9), 0.045 * unit)

    # Mouth: outer lips, then the dark interior (with teeth) when the lips part.
    _fill(img, lm[48:60], ident.lips)
    upper, lower = lm[61:64], lm[[67, 66, 65]]
    opening = float(np.mean(lower[:, 1] - upper[:, 1]))
    if opening > 0.012 * unit:
        inner = lm[60:68]
        _fill(img, inner, (60.0, 20.0, 25.0))
        # Teeth: a band under the upper lip, never below the lower lip.
        top = lm[60:65]
        low = lm[[60, 67, 66, 65, 64]]
        bottom = np.minimum(top[:, 1] + min(0.45 * opening, 0.035 * unit), np.interp(top[:, 0], low[:, 0], low[:, 1]))
        teeth = np.concatenate([top, np.stack([top[:, 0], bottom], axis=1)[::-1]])
        _fill(img, teeth, (235.0, 232.0, 220.0))
    _line(img, lm[60:68], _scaled(ident.lips, 0.6), 0.012 * unit, closed=True)


_CROW_START = np.array([[0.015, -0.015], [0.015, 0.0], [0.015, 0.015]])
_CROW_STEP = np.array([[0.05, -0.035], [0.05, 0.0], [0.05, 0.035]])
_CIRCLE = np.stack([np.cos(np.linspace(0, 2 * np.pi, 16, endpoint=False)),
                    np.sin(np.linspace(0, 2 * np.pi, 16, endpoint=False))], axis=1)


def _draw_eyes(img: np.ndarray, eyes: list[np.ndarray], iris: tuple[float, float, float], unit: float) -> None:
    """Sclera polygons, then iris and pupil as circles clipped between the lid polylines, so each
    eye's opening follows its lid landmarks; then the lids."""
    _fill(img, eyes, (238.0, 238.0, 232.0))
    uppers = [e[[0, 1, 2, 3]] for e in eyes]
    lowers = [e[[0, 5, 4, 3]] for e in eyes]
    for radius, colour in ((0.038 * unit, iris), (0.019 * unit, (15.0, 15.0, 15.0))):
        discs = []
        for eye, upper, lower in zip(eyes, uppers, lowers, strict=True):
            disc = eye.sum(axis=0) / len(eye) + radius * _CIRCLE
            disc[:, 0] = np.minimum(np.maximum(disc[:, 0], eye[0, 0]), eye[3, 0])
            top = np.interp(disc[:, 0], upper[:, 0], upper[:, 1])
            bottom = np.interp(disc[:, 0], lower[:, 0], lower[:, 1])
            disc[:, 1] = np.minimum(np.maximum(disc[:, 1], top), bottom)
            discs.append(disc)
        _fill(img, discs, colour)
    _line(img, uppers, (35.0, 25.0, 25.0), 0.02 * unit)
    _line(img, lowers, (90.0, 70.0, 65.0), 0.01 * unit)


def capture(img: np.ndarray, style: DomainStyle, cap: Capture, rng: np.random.Generator) -> np.ndarray:
    """Lighting, colour cast, blur, noise and JPEG of one float32 image -> uint8 RGB."""
    size = img.shape[0]
    gain = np.asarray(style.gain, dtype=np.float32)
    if cap.light_strength:
        yy, xx = _grid(size)
        shade = 1.0 + cap.light_strength * (np.cos(cap.light_angle) * xx + np.sin(cap.light_angle) * yy)
        img *= shade[..., None] * gain
    else:
        img *= gain
    if style.brightness:
        img += style.brightness
    if style.grayscale:
        img[:] = (img @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]
    if cap.blur > 0.05:
        img = cv2.GaussianBlur(img, (0, 0), cap.blur * size / 64.0)
    if cap.noise > 0:
        img += cap.noise * _noise(img.shape, rng)
    np.minimum(img, 255.0, out=img)  # np.clip is several times slower on small float32 images
    np.maximum(img, 0.0, out=img)
    out = (img + 0.5).astype(np.uint8)
    if cap.jpeg:
        ok, buf = cv2.imencode(".jpg", out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(cap.jpeg)])  # RGB -> BGR
        if ok:
            out = np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])
    return out


_NOISE_BANK = np.random.default_rng(20261122).standard_normal(1 << 20, dtype=np.float32)


def _noise(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Unit Gaussian noise: a random window of a fixed bank (drawing fresh normals costs more
    than the rest of the capture chain); deterministic from `rng` like everything else."""
    n = int(np.prod(shape))
    if n > _NOISE_BANK.size // 2:
        return rng.standard_normal(shape, dtype=np.float32)
    start = int(rng.integers(0, _NOISE_BANK.size - n))
    return _NOISE_BANK[start : start + n].reshape(shape)
