from __future__ import annotations

import cv2
import numpy as np
import pytest

from fermix.data.images import IMAGE_EXTENSIONS, is_image_file, jpeg_truncated, png_truncated, read_image
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


def _photo_jpeg(progressive: bool = False) -> bytes:
    """A real, textured JPEG (smooth test images compress to too few bytes to cut meaningfully)."""
    from skimage import data

    flag = [cv2.IMWRITE_JPEG_PROGRESSIVE, int(progressive)]
    return cv2.imencode(".jpg", data.astronaut()[:128, :128, ::-1], flag)[1].tobytes()


@pytest.mark.parametrize("progressive", [False, True], ids=["baseline", "progressive"])
def test_truncated_jpeg_is_recognised_wherever_it_is_cut(progressive):
    whole = _photo_jpeg(progressive)
    assert not jpeg_truncated(whole)
    for cut in (len(whole) // 10, len(whole) // 2, len(whole) - 100, len(whole) - 2, len(whole) - 1):
        assert jpeg_truncated(whole[:cut]), cut


def test_data_after_the_end_marker_and_an_exif_thumbnail_do_not_count_as_truncation():
    whole = _photo_jpeg()
    assert not jpeg_truncated(whole + b"ftypmp42" + bytes(range(256)) * 4)  # a motion photo's video trailer
    thumb = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    app1 = b"Exif\x00\x00" + thumb  # the thumbnail brings its own end marker
    with_thumb = whole[:2] + b"\xff\xe1" + (len(app1) + 2).to_bytes(2, "big") + app1 + whole[2:]
    assert cv2.imdecode(np.frombuffer(with_thumb, np.uint8), cv2.IMREAD_COLOR) is not None
    assert not jpeg_truncated(with_thumb + b"trailer")
    assert jpeg_truncated(with_thumb[: len(with_thumb) // 2])


def test_half_a_jpeg_raises_naming_the_file(tmp_path):
    """The first half of a real JPEG: OpenCV 5 refuses it, OpenCV 4 would decode a grey lower half;
    either way read_image refuses it (jpeg_truncated runs first)."""
    whole = _photo_jpeg()
    path = tmp_path / "half.jpg"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(FermixError, match=r"cannot read image .*half\.jpg: the JPEG data ends before the image"):
        read_image(path)
    assert not jpeg_truncated(b"\x89PNG\r\n")  # not a JPEG: left to the decoder


def test_half_a_png_raises_before_libpng_prints_its_own_error(tmp_path, capfd):
    whole = cv2.imencode(".png", np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))[1].tobytes()
    assert not png_truncated(whole) and not png_truncated(whole + b"trailing bytes")
    path = tmp_path / "half.png"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(FermixError, match=r"cannot read image .*half\.png: the PNG data ends before the image"):
        read_image(path)
    assert "libpng" not in capfd.readouterr().err
