import numpy as np
import pytest

from fermix.data.action_units import SYNTHETIC_AUS
from fermix.data.synthetic import face

NEUTRAL = face.neutral_shape(face.Identity())

# What FACS says each AU moves (iBUG-68 indices, both sides).
EXPECTED_POINTS = {
    "AU1": {19, 20, 21, 22, 23, 24},
    "AU2": {17, 18, 19, 24, 25, 26},
    "AU4": set(range(17, 27)),
    "AU5": {37, 38, 43, 44},
    "AU6": {40, 41, 46, 47},
    "AU7": {37, 38, 40, 41, 43, 44, 46, 47},
    "AU9": {29, 30, 31, 32, 33, 34, 35},
    "AU10": {49, 50, 51, 52, 53, 61, 62, 63},
    "AU12": {48, 49, 53, 54, 55, 59, 60, 61, 63, 64, 65, 67},
    "AU14": {48, 54, 60, 64},
    "AU15": {48, 49, 53, 54, 55, 59, 60, 64},
    "AU17": {7, 8, 9, 55, 56, 57, 58, 59, 65, 66, 67},
    "AU20": {48, 49, 53, 54, 55, 59, 60, 61, 63, 64, 65, 67},
    "AU23": {48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 64},
    "AU25": {55, 56, 57, 58, 59, 61, 62, 63, 65, 66, 67},
    "AU26": {5, 6, 7, 8, 9, 10, 11, 55, 56, 57, 58, 59, 65, 66, 67},
}


def _one(au: str, value: float = 1.0) -> np.ndarray:
    v = np.zeros(len(SYNTHETIC_AUS))
    v[face.AU_INDEX[au]] = value
    return v


def test_neutral_shape_has_68_points_in_ibug_layout_and_is_mirror_symmetric():
    assert NEUTRAL.shape == (68, 2)
    np.testing.assert_allclose(NEUTRAL[face.MIRROR, 0], -NEUTRAL[:, 0], atol=1e-12)
    np.testing.assert_allclose(NEUTRAL[face.MIRROR, 1], NEUTRAL[:, 1], atol=1e-12)
    assert NEUTRAL[36, 0] < NEUTRAL[39, 0] < 0 < NEUTRAL[42, 0] < NEUTRAL[45, 0]  # eyes left to right
    assert NEUTRAL[19, 1] < NEUTRAL[37, 1] < NEUTRAL[30, 1] < NEUTRAL[51, 1] < NEUTRAL[8, 1]  # brow>eye>nose>lip>chin


@pytest.mark.parametrize("au", SYNTHETIC_AUS)
def test_each_action_unit_moves_exactly_the_landmarks_facs_assigns_it(au):
    moved = np.flatnonzero(np.abs(face.apply_aus(NEUTRAL, _one(au)) - NEUTRAL).sum(axis=1) > 1e-9)
    assert set(moved.tolist()) == EXPECTED_POINTS[au]


def test_au12_raises_both_lip_corners_and_au15_lowers_them():
    smile = face.apply_aus(NEUTRAL, _one("AU12"))
    frown = face.apply_aus(NEUTRAL, _one("AU15"))
    for corner in (48, 54):
        assert smile[corner, 1] < NEUTRAL[corner, 1] - 0.05  # y grows downwards
        assert frown[corner, 1] > NEUTRAL[corner, 1] + 0.05
    assert smile[48, 0] < NEUTRAL[48, 0] and smile[54, 0] > NEUTRAL[54, 0]  # pulled outwards


def test_brow_raisers_move_brows_up_and_au26_drops_the_chin():
    assert (face.apply_aus(NEUTRAL, _one("AU1"))[21, 1]) < NEUTRAL[21, 1]
    assert (face.apply_aus(NEUTRAL, _one("AU2"))[17, 1]) < NEUTRAL[17, 1]
    assert (face.apply_aus(NEUTRAL, _one("AU4"))[21, 1]) > NEUTRAL[21, 1]
    assert (face.apply_aus(NEUTRAL, _one("AU26"))[8, 1]) > NEUTRAL[8, 1] + 0.08


def test_displacement_scales_linearly_with_intensity():
    half = face.apply_aus(NEUTRAL, _one("AU12", 0.5)) - NEUTRAL
    full = face.apply_aus(NEUTRAL, _one("AU12", 1.0)) - NEUTRAL
    np.testing.assert_allclose(2 * half, full, atol=1e-12)


def test_one_sided_gain_moves_only_one_lip_corner():
    gains = np.ones((len(SYNTHETIC_AUS), 2))
    gains[face.AU_INDEX["AU12"], 0] = 0.0  # image-left side off
    moved = face.apply_aus(NEUTRAL, _one("AU12"), side_gain=gains)
    assert moved[48, 1] == NEUTRAL[48, 1]
    assert moved[54, 1] < NEUTRAL[54, 1]


def test_every_pair_of_class_prototypes_differs():
    names = list(face.PROTOTYPES)
    vectors = {n: face.prototype_vector(n) for n in names}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not np.array_equal(vectors[a], vectors[b]), (a, b)
    assert vectors["neutral"].sum() == 0
    assert {SYNTHETIC_AUS[i] for i in np.flatnonzero(vectors["happy"])} == {"AU6", "AU12", "AU25"}


def test_circumplex_directions_have_the_documented_signs():
    c = face.CIRCUMPLEX
    assert c["happy"][0] > 0 and c["happy"][1] > 0
    assert c["sad"][0] < 0 and c["sad"][1] < 0
    assert c["fear"][0] < 0 < c["fear"][1] and c["anger"][0] < 0 < c["anger"][1]
    assert c["neutral"] == (0.0, 0.0)
