"""Real photographs for the preprocessing tests: scikit-image's astronaut, a rotated copy, a blank."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def astronaut() -> np.ndarray:
    """The 512×512 RGB astronaut photo that scikit-image ships (no download)."""
    from skimage import data

    return data.astronaut()


def rotated(image: np.ndarray, degrees: float) -> np.ndarray:
    """`image` rotated counter-clockwise by `degrees` about its centre, same canvas size."""
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), degrees, 1.0)
    return cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))


def flat(size: int = 160) -> np.ndarray:
    """A flat grey image: no face to find."""
    return np.full((size, size, 3), 128, dtype=np.uint8)


def save(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
    return path


def write_photo_folder(root: Path) -> Path:
    """root/happy/{astronaut, astronaut_rot20}.png and root/neutral/flat.png: two faces, one failure."""
    photo = astronaut()
    save(root / "happy" / "astronaut.png", photo)
    save(root / "happy" / "astronaut_rot20.png", rotated(photo, 20))
    save(root / "neutral" / "flat.png", flat())
    return root
