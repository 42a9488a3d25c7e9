import math

import cv2
import numpy as np
import pytest

from fermix.errors import FermixError
from fermix.preprocess.align import (
    Template,
    align_face,
    alignment_matrix,
    eye_centres,
    similarity_from_two_points,
    transform_points,
)


def _face_landmarks(left_eye, right_eye, rng) -> np.ndarray:
    """68 random points whose 36-41 / 42-47 groups average to the given eye centres."""
    pts = rng.uniform(100, 300, size=(68, 2))
    for eye, group in ((left_eye, slice(36, 42)), (right_eye, slice(42, 48))):
        offsets = rng.normal(0, 4, size=(6, 2))
        pts[group] = np.asarray(eye) + offsets - offsets.mean(axis=0)
    return pts


def test_default_template_is_iern_eyes_at_35_percent_of_256():
    template = Template()
    assert template.size == 256
    assert np.allclose(template.eye_positions(), [[89.6, 89.6], [166.4, 89.6]])


def test_eye_centres_are_the_means_of_landmarks_36_to_41_and_42_to_47():
    pts = np.zeros((68, 2))
    pts[36:42] = [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10], [11, 12]]
    pts[42:48] = 100
    assert np.allclose(eye_centres(pts), [[6, 7], [100, 100]])


def test_two_point_similarity_maps_both_points_exactly_and_is_a_rotation_with_scale():
    src = np.array([[10.0, 20.0], [50.0, 5.0]])
    dst = np.array([[89.6, 89.6], [166.4, 89.6]])
    m = similarity_from_two_points(src, dst)
    assert np.allclose(transform_points(m, src), dst)
    a, b = m[0, 0], m[1, 0]
    assert np.allclose(m[:, :2], [[a, -b], [b, a]])  # no shear, no reflection


def test_coinciding_eyes_cannot_define_an_alignment():
    with pytest.raises(ValueError, match="coincide"):
        similarity_from_two_points(np.array([[1.0, 1.0], [1.0, 1.0]]), np.eye(2))


@pytest.mark.parametrize("angle", [-30.0, 0.0, 20.0, 45.0])
def test_alignment_puts_the_eyes_on_the_template_level_and_at_fixed_distance(angle):
    rng = np.random.default_rng(int(angle) + 100)
    centre, half = np.array([200.0, 180.0]), 40.0
    direction = np.array([math.cos(math.radians(angle)), math.sin(math.radians(angle))])
    pts = _face_landmarks(centre - half * direction, centre + half * direction, rng)
    template = Template(size=128, left_eye=(0.3, 0.4))
    aligned_eyes = eye_centres(transform_points(alignment_matrix(pts, template), pts))
    assert np.allclose(aligned_eyes, [[38.4, 51.2], [89.6, 51.2]])


def test_warped_image_and_transformed_landmarks_agree_pixel_for_pixel():
    # A bright dot at a landmark position must appear where transform_points says it lands,
    # which pins down the pixel-centre convention shared by the image warp and the landmarks.
    rng = np.random.default_rng(0)
    pts = _face_landmarks([150.0, 160.0], [230.0, 140.0], rng)
    image = np.zeros((400, 400, 3), dtype=np.uint8)
    dot = np.array([190.0, 230.0])
    cv2.circle(image, (int(dot[0]), int(dot[1])), 3, (255, 255, 255), -1)
    aligned, aligned_pts, matrix = align_face(image, pts, Template())
    assert aligned.shape == (256, 256, 3) and aligned.dtype == np.uint8
    assert np.allclose(aligned_pts, transform_points(matrix, pts))
    ys, xs = np.nonzero(aligned[:, :, 0] > 128)
    assert np.allclose([xs.mean(), ys.mean()], transform_points(matrix, dot[None])[0], atol=0.6)


@pytest.mark.parametrize(
    ("size", "left_eye", "match"),
    [(4, (0.35, 0.35), "size=4 is too small"), (256, (0.5, 0.35), "left_eye"), (256, (0.3, 1.2), "left_eye")],
)
def test_bad_templates_are_refused_in_one_sentence(size, left_eye, match):
    with pytest.raises(FermixError, match=match):
        Template(size=size, left_eye=left_eye)
