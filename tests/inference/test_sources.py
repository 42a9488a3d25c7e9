import cv2
import numpy as np
import pytest
from PIL import Image

from fermix.errors import FermixError
from fermix.inference.sources import check_input, count_frames, folder_photos, in_memory, iter_frames
from tests.preprocess.photos import save


def _video(path, frames=5, size=(64, 48)):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, size)
    for i in range(frames):
        writer.write(np.full((size[1], size[0], 3), 40 * i, np.uint8))
    writer.release()
    return path


def test_a_folder_yields_its_photos_recursively_in_path_order(tmp_path):
    image = np.zeros((8, 8, 3), np.uint8)
    for name in ("b.png", "a/z.jpg", "a/c.bmp", ".hidden/x.png", "notes.txt", "a/d.gif"):
        if name.endswith((".png", ".jpg", ".bmp")):
            save(tmp_path / name, image)
        else:
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_text("")
    assert [p.relative_to(tmp_path).as_posix() for p in folder_photos(tmp_path)] == ["a/c.bmp", "a/z.jpg", "b.png"]


def test_an_unreadable_photo_alone_is_an_error_naming_it(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(FermixError, match=r"broken\.png"):
        list(iter_frames(tmp_path / "broken.png"))


def test_an_unreadable_photo_in_a_folder_is_carried_as_an_error(tmp_path):
    save(tmp_path / "good.png", np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut")
    frames = list(iter_frames(tmp_path))
    assert [f.name for f in frames] == ["broken.jpg", "good.png"]
    assert frames[0].image is None and "broken.jpg" in frames[0].error
    assert frames[1].image is not None and frames[1].error == ""


def test_missing_and_unsupported_inputs_are_refused(tmp_path):
    with pytest.raises(FermixError, match="does not exist"):
        check_input(tmp_path / "nope.png")
    (tmp_path / "notes.txt").write_text("")
    with pytest.raises(FermixError, match="neither a photo"):
        check_input(tmp_path / "notes.txt")


def test_every_nth_video_frame_and_the_count_agree(tmp_path):
    clip = _video(tmp_path / "clip.mp4")
    frames = list(iter_frames(clip, every=2))
    assert [f.frame for f in frames] == [0, 2, 4] and count_frames(clip, every=2) == 3
    assert frames[0].image.shape == (48, 64, 3)


def test_numpy_and_pil_images_become_the_same_frame():
    rgb = np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    a, b = in_memory(rgb, 0), in_memory(Image.fromarray(rgb), 1)
    assert np.array_equal(a.image, b.image) and (a.source, b.source) == ("image[0]", "image[1]")
    assert in_memory(rgb[..., 0], 2).image.shape == (12, 10, 3)
    with pytest.raises(FermixError, match="uint8"):
        in_memory(rgb.astype(np.float32), 3)
