"""Target maps for a batch, drawn on the fly from the landmarks of the image the network sees.

The original draws each map once per sample on the stored 224 px face and pushes it through the
same geometric augmentation as the image (nearest interpolation). fermix's datamodule already
transforms the landmarks with the image (incl. the mirror re-ordering after a flip), so drawing
the map from the transformed landmarks *is* the joint transform, at no storage cost (the
original's 70 GB of AffectNet maps) and without nearest-neighbour blockiness.

The AU geometry has radii in absolute pixels of a 224 px face crop. fermix's pipelines resize a
stored crop to `resize` and crop `image_size`, which magnifies the face by resize/image_size
relative to the stored crop; `zoom` says by how much, so the regions keep their size relative to
the face (the map is drawn on the virtual resized canvas, centred on the crop, then cut out).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from fermix.errors import FermixError
from fermix.preprocess.au_maps import ACTION_UNITS, BASE_SIZE, MID_RES, au_map_from_units, au_units

HEATMAP_KINDS = ("aus_class", "aus_generic", "landmarks")
ALL_UNITS = tuple(range(len(ACTION_UNITS)))


@dataclass(frozen=True)
class MapSpec:
    """How target maps are drawn (spec §1.3 and the variants it lists)."""

    kind: str = "aus_class"  # class AU map (the paper) | class-agnostic union of all AUs | landmark Gaussians
    codebook: str = "code"
    zoom: float = 1.0
    base_size: int = BASE_SIZE
    mid_res: int = MID_RES
    lndmk_variance: float = 64.0  # "landmarks" only: Gaussian variance in px² of the 224 px frame
    jaw: bool = False  # "landmarks" only: keep the 17 jaw points

    def __post_init__(self) -> None:
        if self.kind not in HEATMAP_KINDS:
            raise FermixError(f"unknown heatmap type `{self.kind}`; choose one of: {', '.join(HEATMAP_KINDS)}.")
        if not self.zoom > 0:
            raise FermixError(f"map_zoom must be positive, got {self.zoom}.")
        if not self.lndmk_variance > 0:
            raise FermixError(f"lndmk_variance must be positive, got {self.lndmk_variance}.")
        au_units("happy", self.codebook)  # a one-sentence error for an unknown codebook


def class_units(class_names: Sequence[str], codebook: str) -> list[tuple[int, ...]]:
    """AU indices per class of the label space; () for classes without AUs or outside the codebook."""
    units = []
    for name in class_names:
        try:
            units.append(au_units(name, codebook))
        except FermixError:  # a class the codebook does not know gets no map (CE only), like neutral
            units.append(())
    return units


def _window(size: int, zoom: float) -> tuple[int, int]:
    """Virtual canvas side and the crop's offset in it (integer, centred)."""
    pad = round(size * (zoom - 1.0) / 2.0)
    return size + 2 * pad, pad


def _cut(canvas: np.ndarray, oy: int, ox: int, h: int, w: int) -> np.ndarray:
    """canvas[oy:oy+h, ox:ox+w], zero where the window leaves the canvas (zoom < 1)."""
    out = np.zeros((h, w), dtype=np.float32)
    y0, x0 = max(oy, 0), max(ox, 0)
    y1, x1 = min(oy + h, canvas.shape[0]), min(ox + w, canvas.shape[1])
    if y1 > y0 and x1 > x0:
        out[y0 - oy : y1 - oy, x0 - ox : x1 - ox] = canvas[y0:y1, x0:x1]
    return out


def draw_au_map(
    landmarks: np.ndarray, units: Sequence[int], size: tuple[int, int], spec: MapSpec
) -> tuple[np.ndarray, bool]:
    """One AU map (h×w float32 in [0, 1]) for landmarks in pixels of an h×w network input."""
    h, w = size
    if not units:
        return np.zeros(size, dtype=np.float32), False
    if spec.zoom == 1.0:
        return au_map_from_units(landmarks, units, size, base_size=spec.base_size, mid_res=spec.mid_res)
    hv, oy = _window(h, spec.zoom)
    wv, ox = _window(w, spec.zoom)
    shifted = np.asarray(landmarks, dtype=np.float64) + np.array([ox, oy])
    canvas, valid = au_map_from_units(shifted, units, (hv, wv), base_size=spec.base_size, mid_res=spec.mid_res)
    if not valid:
        return np.zeros(size, dtype=np.float32), False
    return _cut(canvas, oy, ox, h, w), True


def landmark_gaussians(landmarks: Tensor, size: tuple[int, int], spec: MapSpec) -> tuple[Tensor, Tensor]:
    """The landmark prior: one isotropic Gaussian per point (variance in the 224 px frame, scaled
    to the input like the AU radii), combined by max, min-max normalised per map."""
    h, w = size
    pts = landmarks.float() if spec.jaw else landmarks[:, 17:].float()
    finite = torch.isfinite(pts).all(dim=(1, 2))
    inside = ((pts[..., 0] > -0.5) & (pts[..., 0] < w - 0.5) & (pts[..., 1] > -0.5) & (pts[..., 1] < h - 0.5)).any(1)
    valid = finite & inside
    pts = torch.where(valid[:, None, None], pts, torch.zeros_like(pts))
    var_y = spec.lndmk_variance * (h * spec.zoom / spec.base_size) ** 2
    var_x = spec.lndmk_variance * (w * spec.zoom / spec.base_size) ** 2
    ys = torch.arange(h, dtype=torch.float32, device=landmarks.device)
    xs = torch.arange(w, dtype=torch.float32, device=landmarks.device)
    gy = torch.exp(-((ys[None, None, :] - pts[..., 1:2]) ** 2) / (2 * var_y))  # B×P×h
    gx = torch.exp(-((xs[None, None, :] - pts[..., 0:1]) ** 2) / (2 * var_x))  # B×P×w
    heat = (gy[..., :, None] * gx[..., None, :]).amax(dim=1)  # B×h×w
    lo = heat.flatten(1).amin(1)[:, None, None]
    hi = heat.flatten(1).amax(1)[:, None, None]
    heat = (heat - lo) / torch.where(hi > lo, hi - lo, torch.ones_like(hi))
    heat = torch.where(valid[:, None, None], heat, torch.zeros_like(heat))
    return heat[:, None].contiguous(), valid


def batch_maps(
    landmarks: Tensor,
    labels: Tensor | None,
    class_names: Sequence[str],
    size: Sequence[int],
    spec: MapSpec,
    kind: str | None = None,
) -> tuple[Tensor, Tensor]:
    """Target maps for a batch: (B×1×h×w float32 in [0, 1], B bool valid), on the landmarks' device.

    `labels` index `class_names` (−1 = unlabelled: no class map). Invalid maps (neutral, a class
    outside the codebook, failed landmarks) are zeros with valid=False: the loss and the metrics
    skip them. `kind` overrides `spec.kind` (the metrics always use the class map).
    """
    kind = kind or spec.kind
    hw = (int(size[0]), int(size[1]))
    if landmarks.ndim != 3 or tuple(landmarks.shape[1:]) != (68, 2):
        raise FermixError(f"au_align needs 68 landmarks per image (B×68×2), got shape {tuple(landmarks.shape)}.")
    if kind == "landmarks":
        return landmark_gaussians(landmarks, hw, spec)
    if kind == "aus_class" and labels is None:
        raise FermixError("class AU maps need the expression label (`expr`) of every image.")
    lms = landmarks.detach().to("cpu", torch.float64).numpy()
    ys = labels.detach().cpu().long().numpy() if labels is not None else np.full(len(lms), -1)
    per_class = class_units(class_names, spec.codebook) if kind == "aus_class" else []
    maps = np.zeros((len(lms), 1, *hw), dtype=np.float32)
    valid = np.zeros(len(lms), dtype=bool)
    for i, (lm, y) in enumerate(zip(lms, ys, strict=True)):
        if kind == "aus_generic":
            units: Sequence[int] = ALL_UNITS
        elif 0 <= y < len(per_class):
            units = per_class[y]
        else:
            continue
        maps[i, 0], valid[i] = draw_au_map(lm, units, hw, spec)
    return torch.from_numpy(maps).to(landmarks.device), torch.from_numpy(valid).to(landmarks.device)
