"""Reading images from disk as H×W×3 uint8 RGB, whatever their format or path."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from fermix.errors import FermixError

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def is_image_file(path: str | os.PathLike[str], extensions: tuple[str, ...] = IMAGE_EXTENSIONS) -> bool:
    """True when the file name ends in one of `extensions` (case-insensitive)."""
    return Path(path).suffix.lower() in {e.lower() for e in extensions}


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode an image file into an H×W×3 uint8 RGB array.

    Uses `np.fromfile` + `cv2.imdecode` rather than `cv2.imread` because imread cannot open
    non-ASCII paths on Windows and returns None without saying why.
    """
    try:
        buf = np.fromfile(os.fspath(path), dtype=np.uint8)
    except OSError as e:
        raise FermixError(f"cannot read image {path}: {e.strerror or e}.") from e
    if buf.size == 0:
        raise FermixError(f"cannot read image {path}: the file is empty.")
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise FermixError(f"cannot read image {path}: not a decodable image.")
    img = _to_uint8(img)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    elif img.shape[2] == 1:
        img = cv2.cvtColor(img[:, :, 0], cv2.COLOR_GRAY2RGB)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    else:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(img)


def _to_uint8(img: np.ndarray) -> np.ndarray:
    """16-bit PNG/TIFF are scaled to 8 bits (not wrapped); float TIFFs are taken as [0, 1]."""
    if img.dtype == np.uint8:
        return img
    if np.issubdtype(img.dtype, np.integer):
        return (img.astype(np.float64) * (255.0 / np.iinfo(img.dtype).max)).round().astype(np.uint8)
    return (np.clip(img.astype(np.float64), 0.0, 1.0) * 255.0).round().astype(np.uint8)
