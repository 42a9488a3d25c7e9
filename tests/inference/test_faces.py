import numpy as np

from fermix.inference.faces import align_faces, as_given
from fermix.preprocess.align import eye_centres
from fermix.preprocess.settings import settings_from_config
from tests.inference.conftest import CROP_EYES, astronaut_face
from tests.preprocess.photos import flat


def _inside(box, points) -> bool:
    x0, y0, x1, y1 = box
    return bool(np.all((points[:, 0] > x0) & (points[:, 0] < x1) & (points[:, 1] > y0) & (points[:, 1] < y1)))


def test_the_astronaut_is_found_and_aligned_to_the_template():
    settings = settings_from_config({"size": 96, "left_eye": [0.3, 0.4]})
    (face,) = align_faces(astronaut_face(), settings)
    assert _inside(face.box, CROP_EYES) and face.score > 0.5
    assert np.abs(eye_centres(face.landmarks) - CROP_EYES).max() < 4
    assert face.crop.shape == (96, 96, 3) and face.crop.dtype == np.uint8
    assert np.allclose(eye_centres(face.crop_landmarks), settings.template.eye_positions(), atol=1e-6)


def test_every_face_in_a_photo_is_kept_not_only_the_largest():
    face = astronaut_face()
    pair = np.concatenate([face, face[:, ::-1]], axis=1)  # the astronaut and her mirror image, side by side
    faces = align_faces(pair, settings_from_config({}))
    assert len(faces) == 2
    assert sorted(round(f.box[0] > face.shape[1]) for f in faces) == [0, 1]


def test_a_photo_without_a_face_gives_no_faces():
    assert align_faces(flat(), settings_from_config({})) == []


def test_detector_none_takes_the_whole_photo_as_the_face():
    (face,) = align_faces(astronaut_face(), settings_from_config({"detector": "none"}))
    assert face.box == (0.0, 0.0, 299.0, 299.0) and face.score is None


def test_an_image_taken_as_given_is_its_own_crop():
    image = np.zeros((40, 30, 3), np.uint8)
    face = as_given(image)
    assert face.box == (0.0, 0.0, 29.0, 39.0) and face.crop is not None and face.landmarks is None
