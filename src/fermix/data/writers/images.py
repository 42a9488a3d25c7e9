"""Image file output shared by the writers (atomic: a killed writer never leaves half a file)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from fermix.errors import FermixError
from fermix.utils.io import atomic_write_bytes


def write_image(path: Path, image: np.ndarray, quality: int = 95) -> None:
    """Encode an RGB uint8 image by the suffix of `path` (.png, .jpg) and write it atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    bgr = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if path.suffix.lower() in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(path.suffix, bgr, params)
    if not ok:
        raise FermixError(f"cannot encode image {path}")
    atomic_write_bytes(path, buf.tobytes())


def write_png(path: Path, image: np.ndarray) -> None:
    write_image(path.with_suffix(".png"), image)
