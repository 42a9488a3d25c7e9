from __future__ import annotations

import cv2
import numpy as np
import pytest

from fermix.data.images import IMAGE_EXTENSIONS, is_image_file, read_image
from fermix.errors import FermixError


def _bgr(h: int = 6, w: int = 5) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 2] = 200  # red in BGR
    return img


def test_colour_png_is_returned_as_rgb(tmp_path):
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), _bgr())
    img = read_image(path)
    assert img.shape == (6, 5, 3) and img.dtype == np.uint8
    assert (img[..., 0] == 200).all() and (img[..., 2] == 0).all()


def test_grayscale_becomes_three_channels(tmp_path):
    path = tmp_path / "g.png"
    cv2.imwrite(str(path), np.full((4, 7), 90, np.uint8))
    img = read_image(path)
    assert img.shape == (4, 7, 3)
    assert (img == 90).all()


def test_rgba_becomes_rgb(tmp_path):
    path = tmp_path / "rgba.png"
    bgra = np.dstack([_bgr(), np.full((6, 5), 128, np.uint8)])
    cv2.imwrite(str(path), bgra)
    img = read_image(path)
    assert img.shape == (6, 5, 3)
    assert (img[..., 0] == 200).all()


def test_sixteen_bit_png_is_scaled_not_wrapped(tmp_path):
    path = tmp_path / "deep.png"
    cv2.imwrite(str(path), np.full((3, 3), 65535, np.uint16))
    assert (read_image(path) == 255).all()


def test_non_ascii_path_is_read(tmp_path):
    folder = tmp_path / "表情_ü"
    folder.mkdir()
    path = folder / "glücklich.jpg"
    ok, buf = cv2.imencode(".jpg", _bgr())
    assert ok
    buf.tofile(str(path))
    assert read_image(path).shape == (6, 5, 3)


def test_missing_file_raises_naming_the_path(tmp_path):
    path = tmp_path / "nope.jpg"
    with pytest.raises(FermixError, match=r"cannot read image .*nope\.jpg"):
        read_image(path)


def test_junk_bytes_raise_naming_the_path(tmp_path):
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"this is not a jpeg at all")
    with pytest.raises(FermixError, match=r"cannot read image .*broken\.jpg: not a decodable image"):
        read_image(path)


def test_empty_file_and_directory_raise(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(FermixError, match=r"empty\.png"):
        read_image(empty)
    with pytest.raises(FermixError, match="cannot read image"):
        read_image(tmp_path)


def test_extensions_match_case_insensitively():
    assert {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"} == set(IMAGE_EXTENSIONS)
    assert is_image_file("a/B.JPG") and is_image_file("x.Tiff")
    assert not is_image_file("notes.txt") and not is_image_file("jpg")
