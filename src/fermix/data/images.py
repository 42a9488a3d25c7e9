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
    cut = truncated_format(buf.tobytes())
    if cut:
        raise FermixError(f"cannot read image {path}: the {cut} data ends before the image does (truncated file).")
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


def truncated_format(data: bytes) -> str | None:
    """"JPEG" or "PNG" when `data` is such a file cut short, else None (not truncated, or another format)."""
    if jpeg_truncated(data):
        return "JPEG"
    if png_truncated(data):
        return "PNG"
    return None


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_truncated(data: bytes) -> bool:
    """True for PNG data without its closing IEND chunk. libpng refuses such files too, but prints
    `libpng error: ...` on stderr first, a second line beside fermix's one sentence."""
    return data.startswith(_PNG_SIGNATURE) and b"IEND" not in data[-64:] and data.rfind(b"IEND") < 0


_SOI, _EOI, _SOS = 0xD8, 0xD9, 0xDA
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # TEM and the restart markers carry no length


def jpeg_truncated(data: bytes) -> bool:
    """True for JPEG data that stops before its end-of-image marker.

    OpenCV 5 refuses such files, but OpenCV 4 (allowed by the requirements) decodes them with a
    grey lower part and only a libjpeg warning on stderr: a silently corrupted training image. The
    markers are walked from the start (segments by length, scan data up to the next marker), so an
    EXIF thumbnail's own end marker does not count and data appended after the image (motion
    photos) is ignored. Most files end in the marker and take the fast path.
    """
    if len(data) < 4 or data[0] != 0xFF or data[1] != _SOI:
        return False
    if data.rstrip(b"\x00\r\n ").endswith(b"\xff\xd9"):
        return False
    pos, n = 2, len(data)
    while True:
        while pos < n and data[pos] != 0xFF:  # bytes between segments (not expected, tolerated)
            pos += 1
        while pos < n and data[pos] == 0xFF:  # fill bytes before a marker code
            pos += 1
        if pos >= n:
            return True
        marker = data[pos]
        pos += 1
        if marker == _EOI:
            return False
        if marker in _STANDALONE:
            continue
        if pos + 2 > n:
            return True
        pos += (data[pos] << 8) | data[pos + 1]
        if pos > n:
            return True
        if marker == _SOS:  # entropy-coded data: runs to the next 0xFF not followed by 0x00 or a restart marker
            while True:
                pos = data.find(b"\xff", pos)
                if pos < 0 or pos + 1 >= n:
                    return True
                following = data[pos + 1]
                if following == 0x00 or 0xD0 <= following <= 0xD7 or following == 0xFF:
                    pos += 1 if following == 0xFF else 2
                    continue
                break
