import numpy as np

from fermix.preprocess.align import eye_centres
from fermix.preprocess.detect import Face, choose_face, detect_faces, predict_landmarks, to_gray, whole_image
from fermix.preprocess.models import landmark_model_path
from tests.preprocess.photos import astronaut, flat

# Where the astronaut's eyes are in skimage's 512×512 photo (x, y), read off the photo by hand.
ASTRONAUT_EYES = np.array([[204.0, 102.0], [246.0, 104.0]])


def test_largest_face_wins_and_ties_go_to_the_higher_score():
    small = Face((0, 0, 10, 10), 2.0)
    big_low = Face((0, 0, 20, 20), 0.1)
    big_high = Face((5, 5, 25, 25), 0.9)
    assert choose_face([small, big_low, big_high], "largest") is big_high
    assert choose_face([small, big_low], "first") is small
    assert choose_face([], "largest") is None


def test_whole_image_box_spans_the_pixel_grid():
    assert whole_image(np.zeros((48, 64), np.uint8)).box == (0.0, 0.0, 63.0, 47.0)


def test_gray_conversion_accepts_rgb_and_gray():
    rgb = np.zeros((5, 6, 3), np.uint8)
    assert to_gray(rgb).shape == (5, 6)
    assert to_gray(np.zeros((5, 6), np.uint8)).shape == (5, 6)


def test_hog_finds_the_astronaut_and_landmarks_find_her_eyes():
    gray = to_gray(astronaut())
    faces = detect_faces(gray, upsample=1)
    face = choose_face(faces, "largest")
    assert face is not None and face.score is not None and face.score > 0.5
    x0, y0, x1, y1 = face.box
    assert x0 < 200 < x1 and y0 < 120 < y1
    landmarks = predict_landmarks(gray, face, landmark_model_path())
    assert landmarks.shape == (68, 2)
    assert np.abs(eye_centres(landmarks) - ASTRONAUT_EYES).max() < 4


def test_a_flat_image_has_no_face():
    assert detect_faces(to_gray(flat()), upsample=1) == []
