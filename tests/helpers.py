"""Shared test fixtures that write small datasets to disk."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np

# Per-class colour (RGB) and pattern. Both differ between classes, so a tiny CNN separates them
# even under colour jitter or grayscale, and horizontal flips keep every pattern distinct.
_COLOURS = [
    (220, 40, 40),
    (40, 200, 40),
    (40, 70, 230),
    (230, 210, 40),
    (210, 40, 210),
    (40, 210, 210),
    (240, 140, 30),
    (130, 130, 130),
]
_PATTERNS = ("hstripes", "vstripes", "checker", "disc")


def _draw(class_index: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """One RGB uint8 image of class `class_index`, with small seeded noise and jitter."""
    colour = np.array(_COLOURS[class_index % len(_COLOURS)], dtype=np.float32)
    pattern = _PATTERNS[(class_index + class_index // len(_COLOURS)) % len(_PATTERNS)]
    period = max(size // 4, 2)
    yy, xx = np.mgrid[0:size, 0:size]
    shift = int(rng.integers(0, period))
    if pattern == "hstripes":
        mask = ((yy + shift) // (period // 2 or 1)) % 2 == 0
    elif pattern == "vstripes":
        mask = ((xx + shift) // (period // 2 or 1)) % 2 == 0
    elif pattern == "checker":
        mask = (((yy + shift) // period) + ((xx + shift) // period)) % 2 == 0
    else:
        c = size / 2 + rng.uniform(-size / 10, size / 10, size=2)
        mask = (yy - c[0]) ** 2 + (xx - c[1]) ** 2 <= (size * 0.3) ** 2
    img = np.where(mask[..., None], colour, colour * 0.25)
    img = img + rng.normal(0.0, 8.0, size=img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_image_folder(
    root: str | Path,
    classes: Sequence[str] = ("happy", "sad", "surprise"),
    per_class: int = 8,
    size: int = 32,
    splits: Sequence[str] | Mapping[str, int] | None = None,
    *,
    ext: str = ".png",
    seed: int = 0,
) -> Path:
    """Write an easily learnable image-folder dataset and return its root.

    splits=None writes root/<class>/<class>_<i><ext> (one pool). A sequence of split names writes
    root/<split>/<class>/... with `per_class` images each; a mapping gives the count per split.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    if splits is None:
        plan: dict[str | None, int] = {None: per_class}
    elif isinstance(splits, Mapping):
        plan = dict(splits)
    else:
        plan = dict.fromkeys(splits, per_class)
    for split, count in plan.items():
        base = root if split is None else root / split
        for k, name in enumerate(classes):
            folder = base / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                rgb = _draw(k, size, rng)
                ok = cv2.imwrite(str(folder / f"{name}_{i:03d}{ext}"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
                if not ok:
                    raise OSError(f"could not write {folder / f'{name}_{i:03d}{ext}'}")
    return root
