"""The face model: an iBUG-68 shape built from identity parameters, deformed by action units.

Coordinates are normalised: x to the image's right, y down, the face centred near the origin,
and the rendered image spans [-1, 1] on both axes. Point 0-16 jaw, 17-21 image-left brow, 22-26
image-right brow, 27-30 nose bridge, 31-35 nose base, 36-41 image-left eye, 42-47 image-right
eye, 48-59 outer lip, 60-67 inner lip (the iBUG order dlib also uses).

Action units move named landmarks by fixed vectors scaled by intensity. The vectors are written
for the image-left half and the midline only; the image-right half is their mirror image, so the
face stays symmetric unless an AU is made one-sided (contempt).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fermix.data.action_units import SYNTHETIC_AUS
from fermix.data.landmarks import IBUG68_MIRROR

NUM_POINTS = 68

MIRROR = IBUG68_MIRROR


@dataclass(frozen=True)
class Identity:
    """Per-subject shape and appearance; `shape_noise` is a small per-point offset (68×2)."""

    face_w: float = 0.62  # half-width of the face at the cheekbones
    chin_y: float = 0.80
    jaw_taper: float = 0.12
    eye_sep: float = 0.27  # half the distance between the eye centres
    eye_y: float = -0.12
    eye_w: float = 0.105  # half-width of an eye
    eye_h: float = 0.045  # half-opening of an eye
    brow_gap: float = 0.14  # brow height above the eye centre
    brow_arch: float = 0.035
    nose_y: float = 0.20  # nose base
    nose_w: float = 0.095
    mouth_y: float = 0.45
    mouth_w: float = 0.21  # half-width
    upper_lip: float = 0.055
    lower_lip: float = 0.065
    shape_noise: np.ndarray | None = None
    skin: tuple[float, float, float] = (205.0, 165.0, 140.0)  # RGB
    hair: tuple[float, float, float] = (60.0, 40.0, 30.0)
    iris: tuple[float, float, float] = (70.0, 50.0, 35.0)
    lips: tuple[float, float, float] = (170.0, 90.0, 90.0)
    long_hair: bool = False


def neutral_shape(ident: Identity) -> np.ndarray:
    """The 68 points of a neutral face for one identity (68×2 float64)."""
    p = np.zeros((NUM_POINTS, 2))
    # Jaw: the lower half of an ellipse from the left temple, round the chin, to the right temple.
    s = np.linspace(0.0, 1.0, 17)
    top = ident.eye_y + 0.03
    bulge = np.sin(np.pi * s)
    p[0:17, 0] = -ident.face_w * np.cos(np.pi * s) * (1.0 - ident.jaw_taper * bulge**4)
    p[0:17, 1] = top + (ident.chin_y - top) * bulge
    # Brows, outer (17) to inner (21), arched; the right brow is filled by mirroring below.
    t = np.linspace(0.0, 1.0, 5)
    outer = -(ident.eye_sep + ident.eye_w + 0.04)
    inner = -(ident.eye_sep - ident.eye_w + 0.01)
    p[17:22, 0] = outer + (inner - outer) * t
    p[17:22, 1] = ident.eye_y - ident.brow_gap - ident.brow_arch * np.sin(np.pi * (0.25 + 0.75 * t))
    # Nose bridge (27-30) and base (31-35).
    p[27:31, 0] = 0.0
    p[27:31, 1] = np.linspace(ident.eye_y - 0.06, ident.nose_y - 0.03, 4)
    p[31:36, 0] = ident.nose_w * np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
    p[31:36, 1] = ident.nose_y + np.array([0.0, 0.015, 0.025, 0.015, 0.0])
    # Image-left eye: outer corner 36, upper lid 37-38, inner corner 39, lower lid 40-41.
    cx, cy, w, h = -ident.eye_sep, ident.eye_y, ident.eye_w, ident.eye_h
    p[36:42] = [[cx - w, cy], [cx - w / 3, cy - h], [cx + w / 3, cy - h],
                [cx + w, cy], [cx + w / 3, cy + 0.8 * h], [cx - w / 3, cy + 0.8 * h]]  # fmt: skip
    # Lips: outer 48-59 from the left corner clockwise, inner 60-67, closed mouth.
    m, y0, ul, ll = ident.mouth_w, ident.mouth_y, ident.upper_lip, ident.lower_lip
    p[48:60] = [[-m, 0], [-0.6 * m, -0.8 * ul], [-0.25 * m, -ul], [0, -0.85 * ul], [0.25 * m, -ul],
                [0.6 * m, -0.8 * ul], [m, 0], [0.6 * m, 0.85 * ll], [0.25 * m, ll], [0, 1.02 * ll],
                [-0.25 * m, ll], [-0.6 * m, 0.85 * ll]]  # fmt: skip
    gap = 0.004
    p[60:68] = [[-0.85 * m, 0], [-0.35 * m, -gap], [0, -gap], [0.35 * m, -gap],
                [0.85 * m, 0], [0.35 * m, gap], [0, gap], [-0.35 * m, gap]]  # fmt: skip
    p[48:68, 1] += y0
    # The image-right brow and eye are mirror images of the left ones.
    p[_RIGHT_FILLED, 0] = -p[MIRROR[_RIGHT_FILLED], 0]
    p[_RIGHT_FILLED, 1] = p[MIRROR[_RIGHT_FILLED], 1]
    if ident.shape_noise is not None:
        p += ident.shape_noise
    return p


_RIGHT_FILLED = np.r_[22:27, 42:48]

# --- action units ---------------------------------------------------------------------------
# AU name -> {point: (dx, dy)} at intensity 1, for image-left and midline points only.
_AU_LEFT: dict[str, dict[int, tuple[float, float]]] = {
    "AU1": {21: (0.0, -0.09), 20: (0.0, -0.07), 19: (0.0, -0.035)},  # inner brow raiser
    "AU2": {17: (0.0, -0.085), 18: (0.0, -0.075), 19: (0.0, -0.04)},  # outer brow raiser
    "AU4": {17: (0.0, 0.02), 18: (0.01, 0.04), 19: (0.02, 0.055), 20: (0.03, 0.065), 21: (0.045, 0.065)},
    "AU5": {37: (0.0, -0.035), 38: (0.0, -0.035)},  # upper lid raiser
    "AU6": {40: (0.0, -0.012), 41: (0.0, -0.012)},  # cheek raiser (+ cheek bulge, crow's feet)
    "AU7": {40: (0.0, -0.022), 41: (0.0, -0.022), 37: (0.0, 0.008), 38: (0.0, 0.008)},  # lid tightener
    "AU9": {29: (0.0, -0.01), 30: (0.0, -0.02), 31: (0.01, -0.03), 32: (0.005, -0.035), 33: (0.0, -0.035)},
    "AU10": {49: (0.0, -0.035), 50: (0.0, -0.045), 51: (0.0, -0.045), 61: (0.0, -0.03), 62: (0.0, -0.03)},
    "AU12": {48: (-0.06, -0.085), 60: (-0.05, -0.065), 49: (-0.025, -0.035), 59: (-0.025, -0.03),
             61: (-0.01, -0.02), 67: (-0.01, -0.015)},  # lip corner puller
    "AU14": {48: (-0.03, -0.01), 60: (-0.025, -0.008)},  # dimpler
    "AU15": {48: (0.0, 0.075), 60: (0.0, 0.06), 59: (0.0, 0.03), 49: (0.0, 0.025)},  # lip corner depressor
    "AU17": {57: (0.0, -0.03), 58: (0.0, -0.025), 59: (0.0, -0.015), 66: (0.0, -0.02), 67: (0.0, -0.015),
             7: (0.0, -0.02), 8: (0.0, -0.03)},  # chin raiser
    "AU20": {48: (-0.06, 0.01), 60: (-0.05, 0.008), 49: (-0.03, 0.005), 59: (-0.03, 0.005),
             61: (-0.015, 0.0), 67: (-0.015, 0.0)},  # lip stretcher
    "AU23": {48: (0.03, 0.0), 60: (0.025, 0.0), 49: (0.01, 0.01), 50: (0.0, 0.015), 51: (0.0, 0.015),
             57: (0.0, -0.015), 58: (0.0, -0.015), 59: (0.01, -0.01)},  # lip tightener
    "AU25": {61: (0.0, -0.008), 62: (0.0, -0.008), 66: (0.0, 0.045), 67: (0.0, 0.04),
             57: (0.0, 0.035), 58: (0.0, 0.03), 59: (0.0, 0.02)},  # lips part
    "AU26": {5: (0.0, 0.04), 6: (0.0, 0.07), 7: (0.0, 0.1), 8: (0.0, 0.11), 57: (0.0, 0.1), 58: (0.0, 0.09),
             59: (0.0, 0.055), 66: (0.0, 0.1), 67: (0.0, 0.085)},  # jaw drop
}
assert tuple(_AU_LEFT) == SYNTHETIC_AUS


def _au_tables() -> tuple[np.ndarray, np.ndarray]:
    """(A×68×2 displacement at intensity 1, A×68 side: -1 image-left, +1 image-right, 0 midline)."""
    disp = np.zeros((len(SYNTHETIC_AUS), NUM_POINTS, 2))
    side = np.zeros((len(SYNTHETIC_AUS), NUM_POINTS))
    for a, name in enumerate(SYNTHETIC_AUS):
        for i, (dx, dy) in _AU_LEFT[name].items():
            j = int(MIRROR[i])
            if j == i:
                disp[a, i] = (0.0, dy)
                continue
            disp[a, i] = (dx, dy)
            disp[a, j] = (-dx, dy)
            side[a, i], side[a, j] = -1.0, 1.0
    return disp, side


AU_DISPLACEMENT, AU_SIDE = _au_tables()
AU_INDEX = {name: i for i, name in enumerate(SYNTHETIC_AUS)}


def au_points(name: str) -> set[int]:
    """The landmarks an AU moves (both sides)."""
    return {int(i) for i in np.flatnonzero(np.abs(AU_DISPLACEMENT[AU_INDEX[name]]).sum(axis=1))}


def apply_aus(
    shape: np.ndarray, intensity: np.ndarray, side_gain: np.ndarray | None = None, scale: float | np.ndarray = 1.0
) -> np.ndarray:
    """Deform shapes (…×68×2) by AU intensities (…×16). `side_gain` (…×16×2: image-left,
    image-right) makes an AU one-sided; `scale` follows the face size so a wider face moves
    proportionally. Leading dimensions broadcast, so a whole split deforms in one call."""
    intensity = np.asarray(intensity, dtype=np.float64)
    if side_gain is None:
        left = right = both = intensity
    else:
        left, right = intensity * side_gain[..., 0], intensity * side_gain[..., 1]
        both = intensity * side_gain.mean(axis=-1)
    weights = np.where(AU_SIDE < 0, left[..., None], np.where(AU_SIDE > 0, right[..., None], both[..., None]))
    return shape + np.asarray(scale)[..., None, None] * np.einsum("...ap,apk->...pk", weights, AU_DISPLACEMENT)


# --- expressions ---------------------------------------------------------------------------
# EMFACS prototypes (../shared/synthetic.md); contempt is a one-sided AU12 + AU14.
PROTOTYPES: dict[str, tuple[str, ...]] = {
    "neutral": (),
    "happy": ("AU6", "AU12", "AU25"),
    "sad": ("AU1", "AU4", "AU15", "AU17"),
    "surprise": ("AU1", "AU2", "AU5", "AU25", "AU26"),
    "fear": ("AU1", "AU2", "AU4", "AU5", "AU7", "AU20", "AU25", "AU26"),
    "disgust": ("AU9", "AU10", "AU17"),
    "anger": ("AU4", "AU5", "AU7", "AU23"),
    "contempt": ("AU12", "AU14"),
}
ONE_SIDED: dict[str, tuple[str, ...]] = {"contempt": ("AU12", "AU14")}

# Circumplex direction (valence, arousal) of each class at full intensity.
CIRCUMPLEX: dict[str, tuple[float, float]] = {
    "neutral": (0.0, 0.0),
    "happy": (0.8, 0.5),
    "sad": (-0.7, -0.45),
    "surprise": (0.1, 0.8),
    "fear": (-0.6, 0.7),
    "disgust": (-0.65, 0.1),
    "anger": (-0.7, 0.65),
    "contempt": (-0.45, 0.15),
}


def prototype_vector(name: str) -> np.ndarray:
    """A (16,) 0/1 vector of the AUs in a class prototype."""
    v = np.zeros(len(SYNTHETIC_AUS))
    for au in PROTOTYPES[name]:
        v[AU_INDEX[au]] = 1.0
    return v


# --- head outline (drawn, not returned as landmarks) -------------------------------------------
FOREHEAD = slice(0, 13)  # arc from jaw point 16 over the top of the head back to jaw point 0
HAIR = slice(13, 45)  # closed outline of the hair mass behind the head
NECK = slice(45, 49)


_ARC = np.linspace(0.0, np.pi, 13)
_RING = np.linspace(0.0, 2 * np.pi, 32, endpoint=False)


def head_points(shape: np.ndarray, eye_y: np.ndarray, chin_y: np.ndarray, long_hair: np.ndarray) -> np.ndarray:
    """Outline points posed together with the landmarks: N×49×2 for N shapes (N×68×2)."""
    left, right = shape[:, 0], shape[:, 16]
    cx, top = 0.5 * (left[:, 0] + right[:, 0]), 0.5 * (left[:, 1] + right[:, 1])
    a = 0.5 * (right[:, 0] - left[:, 0])
    b = top - (eye_y - 0.55)
    col = np.s_[:, None]
    forehead = np.stack([cx[col] + a[col] * np.cos(_ARC), top[col] - b[col] * np.sin(_ARC)], axis=-1)
    long_x = cx[col] + 1.22 * a[col] * np.cos(_RING)
    long_y = np.minimum(0.05 - 0.95 * np.sin(_RING), chin_y[col] - 0.05)
    short_x = cx[col] + 1.1 * a[col] * np.cos(_RING)
    short_y = np.minimum(top[col] - 0.2 - b[col] * np.sin(_RING), top[col] + 0.05)
    hair = np.where(long_hair[:, None, None], np.stack([long_x, long_y], -1), np.stack([short_x, short_y], -1))
    neck = np.zeros((len(shape), 4, 2))
    neck[:, :, 0] = [-0.27, 0.27, 0.33, -0.33]
    neck[:, :2, 1] = (chin_y - 0.15)[:, None]
    neck[:, 2:, 1] = 1.2
    return np.concatenate([forehead, hair, neck], axis=1)
