"""Action-unit heatmaps drawn from 68 landmarks and an expression label (au_align spec §1).

au_align pushes a layer's attention towards a soft map of the facial regions whose action units
(AUs) go with the sample's expression. The map is a port of the original code's
`heatmap_action_units_from_landmarks`, rules and quirks included, because the published
ATT-COS / CAM-COS numbers were measured against exactly those maps:

- every region is a filled `cv2.ellipse` (value 255 on a 1e-4 background) with centres and
  half-axes in absolute pixels of a 224×224 crop. As in the original, the landmarks are first
  truncated to integers in that frame and every centre and half-axis is then computed from those
  integers and truncated again; a half-axis below 0 is clamped to 0, and 0 takes the original's
  fallback where it has one (spec §1.1);
- each AU is drawn on its own canvas, point-sampled down to 28×28 (INTER_LINEAR), box-blurred
  3×3 and resized back (spec §1.3 step 2), which softens edges and lowers the peak of thin
  regions (the implicit AU weighting of §1.3 step 4 - do not normalise per AU);
- AUs combine by a pixel-wise max, then the map is min-max normalised to [0, 1].

Landmarks of an image of any size (H, W) are first mapped to the 224×224 frame the original
drew in (pixel centres at integers on both sides, i.e. x' = (x + 0.5)·224/W − 0.5), the map is
drawn there, and the result is resized to the requested output size. A face stored at 112 px
therefore gets the same geometry as the same face at 224 px; drawing the 224-px radii directly on
a 112-px image would double every region.

Where the original marks a map invalid with +inf, fermix returns an all-zero map with
`valid=False`: zeros survive any augmentation, and the flag says which samples the loss and
the metric must skip.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

import cv2
import numpy as np

from fermix.data.label_spaces import canonical_name
from fermix.errors import FermixError

if TYPE_CHECKING:
    pass

__all__ = [
    "ACTION_UNITS",
    "AU_MAP_VERSION",
    "BASE_SIZE",
    "CODEBOOKS",
    "MID_RES",
    "ActionUnit",
    "au_map",
    "au_map_from_units",
    "au_units",
]

# Bump when anything that changes a rendered map changes: it is part of every cache key.
AU_MAP_VERSION = 2  # 2: integer landmarks, max(·, 0) half-axes, round() radii, AU14 clamps, as the original
BASE_SIZE = 224  # the crop size the original's absolute-pixel radii were designed for
MID_RES = 28  # the original's hard-coded intermediate resolution of the blur round trip
_BACKGROUND = 1e-4
_INK = 255.0


@dataclass(frozen=True)
class ActionUnit:
    """One entry of the original's AU dictionary: its code index, FACS id and FACS name."""

    index: int
    facs: str
    name: str


# Code index -> FACS AU, in the original's numbering 0..19 (spec §1.1). Note index 19 is AU16.
ACTION_UNITS: tuple[ActionUnit, ...] = (
    ActionUnit(0, "AU1", "inner brow raiser"),
    ActionUnit(1, "AU2", "outer brow raiser"),
    ActionUnit(2, "AU4", "brow lowerer"),
    ActionUnit(3, "AU5", "upper lid raiser"),
    ActionUnit(4, "AU6", "cheek raiser"),
    ActionUnit(5, "AU7", "lid tightener"),
    ActionUnit(6, "AU9", "nose wrinkler"),
    ActionUnit(7, "AU10", "upper lip raiser"),
    ActionUnit(8, "AU12", "lip corner puller"),
    ActionUnit(9, "AU14", "dimpler"),
    ActionUnit(10, "AU15", "lip corner depressor"),
    ActionUnit(11, "AU17", "chin raiser"),
    ActionUnit(12, "AU20", "lip stretcher"),
    ActionUnit(13, "AU23", "lip tightener"),
    ActionUnit(14, "AU24", "lip pressor"),
    ActionUnit(15, "AU25", "lips part"),
    ActionUnit(16, "AU26", "jaw drop"),
    ActionUnit(17, "AU43", "eyes closed"),
    ActionUnit(18, "AU27", "mouth stretcher"),
    ActionUnit(19, "AU16", "lower lip depressor"),
)

# Expression -> AU code indices (spec §1.2), keyed by fermix's canonical class names.
_EXP2AU_CODE: dict[str, tuple[int, ...]] = {
    "happy": (4, 8, 15),  # AU6, AU12, AU25
    "surprise": (0, 1, 3, 16, 18),  # AU1, AU2, AU5, AU26, AU27
    "fear": (0, 1, 2, 3, 12, 15, 16, 18),  # AU1, AU2, AU4, AU5, AU20, AU25, AU26, AU27
    "anger": (2, 3, 5, 7, 11, 13, 14, 15, 16),  # AU4, AU5, AU7, AU10, AU17, AU23, AU24, AU25, AU26
    # [Δ] The code lists index 3 (AU5, upper *lid* raiser) where the paper's Fig. 2 has AU10
    # (upper *lip* raiser, index 7). Kept: the published numbers were made with this list.
    "disgust": (6, 3, 19, 11, 15, 16),  # AU9, AU5, AU16, AU17, AU25, AU26
    "sad": (0, 2, 4, 10, 11),  # AU1, AU4, AU6, AU15, AU17
}
# The paper's Fig. 2 table: identical except for disgust's AU10.
_EXP2AU_PAPER: dict[str, tuple[int, ...]] = {**_EXP2AU_CODE, "disgust": (6, 7, 19, 11, 15, 16)}

CODEBOOKS: Mapping[str, Mapping[str, tuple[int, ...]]] = MappingProxyType(
    {"code": MappingProxyType(_EXP2AU_CODE), "paper": MappingProxyType(_EXP2AU_PAPER)}
)
# Known classes that have no AUs: neutral (as in the original) and basic8's contempt (not in the
# codebook). Their maps are the flagged empty map.
_NO_AU_CLASSES = frozenset({"neutral", "contempt"})


def au_units(expression: str, codebook: str = "code") -> tuple[int, ...]:
    """AU code indices drawn for `expression`; () for neutral and contempt (no map)."""
    if codebook not in CODEBOOKS:
        raise FermixError(f"unknown AU codebook `{codebook}`; choose one of: {', '.join(CODEBOOKS)}.")
    name = canonical_name(expression)
    table = CODEBOOKS[codebook]
    if name in table:
        return table[name]
    if name in _NO_AU_CLASSES:
        return ()
    known = ", ".join([*table, *sorted(_NO_AU_CLASSES)])
    raise FermixError(f"expression `{expression}` has no entry in the AU codebook; known expressions: {known}.")


# --- drawing (spec §1.1) -------------------------------------------------------------------------

_Ellipse = tuple[int, int, int, int]  # centre x, centre y, half-axis x, half-axis y


def _ax(v: float, fallback: int | None) -> int:
    """A half-axis as the original computes it: truncated, clamped at 0 (a lid or lip pair in the
    wrong order gives a negative difference), and a 0 becomes `fallback` where the spec has one."""
    a = max(int(v), 0)
    return fallback if a == 0 and fallback is not None else a


def _eyes(x: np.ndarray, y: np.ndarray, extra: float, fallback: int | None) -> list[_Ellipse]:
    """AU5 / AU7 / AU43: one ellipse per eye from its corners and lid midpoints."""
    out = []
    for left, right, top, bottom in ((36, 39, 38, 41), (42, 45, 44, 47)):
        cx, cy = int((x[left] + x[right]) / 2), int((y[top] + y[bottom]) / 2)
        ax = _ax((x[right] - x[left]) / 2, fallback)
        ay = _ax((y[bottom] - y[top] + extra) / 2, fallback)
        out.append((cx, cy, ax, ay))
    return out


def _circles(points: Iterable[tuple[float, float]], r: int = 20) -> list[_Ellipse]:
    return [(int(px), int(py), r, r) for px, py in points]


def _mouth(x: np.ndarray, y: np.ndarray) -> list[_Ellipse]:
    """AU23 / AU24 / AU26 / AU27 share one mouth ellipse in the original."""
    cx, cy = int((x[48] + x[54]) / 2), int((y[51] + y[57]) / 2)
    return [(cx, cy, _ax((x[54] - x[48]) / 2, 5), _ax((y[57] - y[51]) / 2, 5))]


def _ellipses(unit: int, x: np.ndarray, y: np.ndarray, w: int, h: int) -> list[_Ellipse]:
    """The regions of AU `unit` for landmarks (x, y) in a w×h drawing frame (spec §1.1 table).

    The landmarks are truncated to integers first, as the original does before drawing
    (`int(x), int(y)` per point), so midpoints and half-axes come from integer coordinates.
    """
    x, y = np.trunc(x), np.trunc(y)
    if unit == 0:  # AU1: inner brows
        return [(int(x[i]), int(y[i]), round(w / 8), round(h / 10)) for i in (20, 23)]
    if unit == 1:  # AU2: outer brows
        return [(int(x[i]), int(y[i]), round(w / 8), round(h / 10)) for i in (18, 25)]
    if unit == 2:  # AU4: between the brows; axes clipped at 0, a 0 axis becomes 10
        ax, ay = (int(max((x[24] - x[19]) / 2, 0)), int(max((y[24] - y[19]) / 2, 0)))
        return [(int((x[19] + x[24]) / 2), int((y[19] + y[24]) / 2), ax or 10, ay or 10)]
    if unit == 3:  # AU5
        return _eyes(x, y, 0.0, 5)
    if unit == 4:  # AU6: below each eye's bottom landmark (the code, not the paper's "47 and 11")
        dy, ax, ay = round(h / 6), round(w / 10), round(h / 10)
        return [(int(x[i]), int(y[i] + dy), ax, ay) for i in (41, 46)]
    if unit == 5:  # AU7: AU5 with the vertical half-axis widened by 10 px
        return _eyes(x, y, 20.0, 5)
    if unit == 6:  # AU9: beside the nose, at the height of L29
        return _circles([(x[31], y[29]), (x[35], y[29])])
    if unit == 7:  # AU10. [Δ] (x48, y50) and (x52, y54): a likely copy-paste slip in the code, kept.
        return _circles([(x[48], y[50]), (x[52], y[54])])
    if unit in (8, 10):  # AU12 and AU15 are identical in the code: the lip corners
        return _circles([(x[48], y[48]), (x[54], y[54])])
    if unit == 9:  # AU14: 20 px outside the lip corners; x clamped to [0, ...] and [..., w] as the code does
        return _circles([(max(x[48] - 20, 0), y[48]), (min(x[54] + 20, w), y[54])])
    if unit == 11:  # AU17: between the lower lip (L59) and the chin (L8)
        cx, cy = int((x[59] + x[8]) / 2), int((y[59] + y[8]) / 2)
        return [(cx, cy, _ax((x[8] - x[59]) / 2, 5), _ax((y[8] - y[59]) / 2, 5))]
    if unit == 12:  # AU20. [Δ] mid(L50, L10): 50 was probably meant to be 54; kept as in the code.
        return _circles([((x[48] + x[6]) / 2, (y[48] + y[6]) / 2), ((x[50] + x[10]) / 2, (y[50] + y[10]) / 2)])
    if unit in (13, 14, 16, 18):  # AU23, AU24, AU26, AU27
        return _mouth(x, y)
    if unit == 15:  # AU25: upper and lower lip centres
        return [(int(x[i]), int(y[i]), 25, 10) for i in (51, 57)]
    if unit == 17:  # AU43: AU7's geometry without the 0 -> 5 fallback
        return _eyes(x, y, 20.0, None)
    if unit == 19:  # AU16
        return _circles([(x[59], y[59]), (x[55], y[55])])
    raise AssertionError(f"AU index {unit} has no geometry")  # unreachable: au_map_from_units checks indices


def _render_unit(unit: int, x: np.ndarray, y: np.ndarray, size: int, mid_res: int) -> np.ndarray | None:
    """One AU's soft map on a size×size canvas (spec §1.3 step 2), or None if nothing landed inside."""
    canvas = np.full((size, size), _BACKGROUND, dtype=np.float64)  # float64 like the original, cast after
    for cx, cy, ax, ay in _ellipses(unit, x, y, size, size):
        cv2.ellipse(canvas, (cx, cy), (ax, ay), 0, 0, 360, _INK, -1)
    if canvas.max() < _INK:
        return None
    small = cv2.resize(canvas, (mid_res, mid_res), interpolation=cv2.INTER_LINEAR)
    small = cv2.blur(small, (3, 3))
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR).astype(np.float32)


# --- public maps ---------------------------------------------------------------------------------


def _hw(size: Sequence[int] | None, what: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in size)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise FermixError(f"{what} must be a pair (height, width) of positive integers, got {size!r}.") from None
    if h <= 0 or w <= 0:
        raise FermixError(f"{what} must be a pair (height, width) of positive integers, got {size!r}.")
    return h, w


def _landmarks(landmarks: object) -> np.ndarray | None:
    """A (68, 2) float64 array, or None when the landmarks are missing."""
    if landmarks is None:
        return None
    if hasattr(landmarks, "detach"):  # a torch tensor
        landmarks = landmarks.detach().cpu().numpy()  # type: ignore[union-attr]
    try:
        arr = np.asarray(landmarks, dtype=np.float64)
    except (TypeError, ValueError):
        raise FermixError("landmarks must be a numeric array of shape (68, 2) in pixel coordinates.") from None
    if arr.shape != (68, 2):
        raise FermixError(f"landmarks must have shape (68, 2) (x, y in pixels), got shape {arr.shape}.")
    return arr


def _to_base_frame(lm: np.ndarray, image_hw: tuple[int, int], base: int) -> np.ndarray | None:
    """Landmarks mapped into the base×base drawing frame, or None when they cannot make a map.

    Non-finite values (a failed detection), no landmark inside the image, or a landmark more than
    one image size outside it (garbage; it would also overflow cv2's int coordinates) all give
    None, i.e. the flagged empty map.
    """
    if not np.isfinite(lm).all():
        return None
    h, w = image_hw
    # At the base size the frame is the image itself: no arithmetic, so truncation sees the exact values.
    scaled = lm.copy() if (h, w) == (base, base) else (lm + 0.5) * np.array([base / w, base / h]) - 0.5
    inside = (scaled >= -0.5) & (scaled < base - 0.5)
    if not inside.all(axis=1).any():
        return None
    if (np.abs(scaled - (base - 1) / 2) > 1.5 * base).any():
        return None
    return scaled


def _empty(out_hw: tuple[int, int]) -> tuple[np.ndarray, bool]:
    return np.zeros(out_hw, dtype=np.float32), False


def au_map_from_units(
    landmarks: np.ndarray | None,
    units: Iterable[int],
    image_size: Sequence[int],
    out_size: Sequence[int] | None = None,
    *,
    base_size: int = BASE_SIZE,
    mid_res: int = MID_RES,
) -> tuple[np.ndarray, bool]:
    """The normalised max-combination of the given AUs' maps, plus whether it is valid.

    `au_map` for an explicit AU list: one index gives a single-AU map normalised on its own, and
    all 20 give the spec's class-agnostic "generic" map.
    """
    image_hw = _hw(image_size, "image_size")
    out_hw = image_hw if out_size is None else _hw(out_size, "out_size")
    lm = _landmarks(landmarks)
    units = tuple(int(u) for u in units)
    if any(not 0 <= u < len(ACTION_UNITS) for u in units):
        raise FermixError(f"AU indices run from 0 to {len(ACTION_UNITS) - 1}, got {list(units)}.")
    scaled = None if lm is None or not units else _to_base_frame(lm, image_hw, base_size)
    if scaled is None:
        return _empty(out_hw)
    x, y = scaled[:, 0], scaled[:, 1]
    combined: np.ndarray | None = None
    for unit in units:
        rendered = _render_unit(unit, x, y, base_size, mid_res)
        if rendered is not None:
            combined = rendered if combined is None else np.maximum(combined, rendered)
    if combined is None:  # every AU failed to land inside the image
        return _empty(out_hw)
    lo, hi = float(combined.min()), float(combined.max())
    heat = (combined - lo) / (hi - lo if hi > lo else 1.0)
    if out_hw != (base_size, base_size):
        shrink = out_hw[0] <= base_size and out_hw[1] <= base_size
        interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        heat = cv2.resize(heat, (out_hw[1], out_hw[0]), interpolation=interp)
    return np.clip(heat, 0.0, 1.0).astype(np.float32, copy=False), True


def au_map(
    landmarks: np.ndarray | None,
    expression: str,
    image_size: Sequence[int],
    out_size: Sequence[int] | None = None,
    codebook: str = "code",
    *,
    base_size: int = BASE_SIZE,
    mid_res: int = MID_RES,
) -> tuple[np.ndarray, bool]:
    """The AU heatmap of one face: float32 (h, w) in [0, 1] and a validity flag.

    `landmarks` are the 68 iBUG points (x, y) in pixels of an image of `image_size` (H, W);
    the map has `out_size` (default: `image_size`). Neutral, contempt, missing or non-finite
    landmarks, and landmarks outside the image give an all-zero map with valid=False.
    """
    return au_map_from_units(
        landmarks, au_units(expression, codebook), image_size, out_size, base_size=base_size, mid_res=mid_res
    )
