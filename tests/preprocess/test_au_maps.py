"""AU heatmaps from landmarks: the au_align spec's §1 tables and §8.1 map properties."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fermix.errors import FermixError
from fermix.preprocess import au_maps
from fermix.preprocess.au_maps import (
    ACTION_UNITS,
    CODEBOOKS,
    au_map,
    au_map_from_units,
    au_units,
)

CLASSES = ("anger", "disgust", "fear", "happy", "sad", "surprise")
BASIC7 = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger")

# iBUG-68 left/right permutation: index i of a mirrored face is index MIRROR[i] of the original.
MIRROR = [
    *range(16, -1, -1), *range(26, 16, -1), 27, 28, 29, 30, 35, 34, 33, 32, 31,
    45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40,
    54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55, 64, 63, 62, 61, 60, 67, 66, 65,
]  # fmt: skip


def template(size: float = 224.0) -> np.ndarray:
    """A plausible frontal iBUG-68 face in a 224 px crop (spec §8.1: U-shaped jaw, brows at
    y 66-72, eyes at y 92, nose tip y 145, mouth corners (85,170)/(139,170)), scaled to `size`."""
    pts = np.zeros((68, 2))
    t = np.linspace(np.pi, 0, 17)
    pts[0:17] = np.c_[112 - 72 * np.cos(t), 100 + 105 * np.sin(t)]
    pts[17:22] = [(52, 72), (63, 67), (76, 66), (88, 67), (100, 70)]
    pts[27:31] = [(112, 95), (112, 112), (112, 128), (112, 145)]
    pts[31:36] = [(96, 152), (104, 155), (112, 157), (120, 155), (128, 152)]
    pts[36:42] = [(66, 92), (74, 88), (88, 88), (96, 92), (88, 96), (74, 96)]
    pts[48:54] = [(85, 170), (94, 164), (104, 160), (112, 162), (120, 160), (130, 164)]
    pts[54:60] = [(139, 170), (130, 177), (120, 180), (112, 181), (104, 180), (94, 177)]
    pts[60:68] = [(90, 170), (104, 166), (112, 166), (120, 166), (134, 170), (120, 174), (112, 174), (104, 174)]
    for right, left in zip(range(22, 27), range(21, 16, -1), strict=True):  # mirror the brow and eye
        pts[right] = (224 - pts[left, 0], pts[left, 1])
    for right, left in {42: 39, 43: 38, 44: 37, 45: 36, 46: 41, 47: 40}.items():
        pts[right] = (224 - pts[left, 0], pts[left, 1])
    return pts * size / 224.0


FACE = template()


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).sum() / (np.linalg.norm(a) * np.linalg.norm(b)))


def centres(unit: int, lm: np.ndarray = FACE) -> list[tuple[int, int]]:
    return [(cx, cy) for cx, cy, _, _ in au_maps._ellipses(unit, lm[:, 0], lm[:, 1], 224, 224)]


# --- tables (spec §1.1, §1.2) --------------------------------------------------------------------


def test_au_dictionary_numbers_facs_units_as_the_original_code() -> None:
    facs = [au.facs for au in ACTION_UNITS]
    assert facs == ["AU1", "AU2", "AU4", "AU5", "AU6", "AU7", "AU9", "AU10", "AU12", "AU14", "AU15", "AU17",
                    "AU20", "AU23", "AU24", "AU25", "AU26", "AU43", "AU27", "AU16"]  # fmt: skip
    assert [au.index for au in ACTION_UNITS] == list(range(20))
    assert ACTION_UNITS[3].name == "upper lid raiser" and ACTION_UNITS[7].name == "upper lip raiser"


def test_code_codebook_equals_the_spec_table_in_facs_ids() -> None:
    def facs(name: str, codebook: str = "code") -> set[str]:
        return {ACTION_UNITS[i].facs for i in au_units(name, codebook)}

    assert facs("happy") == {"AU6", "AU12", "AU25"}
    assert facs("surprise") == {"AU1", "AU2", "AU5", "AU26", "AU27"}
    assert facs("fear") == {"AU1", "AU2", "AU4", "AU5", "AU20", "AU25", "AU26", "AU27"}
    assert facs("anger") == {"AU4", "AU5", "AU7", "AU10", "AU17", "AU23", "AU24", "AU25", "AU26"}
    assert facs("disgust") == {"AU9", "AU5", "AU16", "AU17", "AU25", "AU26"}
    assert facs("sad") == {"AU1", "AU4", "AU6", "AU15", "AU17"}
    assert set(CODEBOOKS["code"]) == set(CLASSES)


def test_paper_codebook_differs_only_in_disgusts_upper_lip_raiser() -> None:
    code, paper = CODEBOOKS["code"], CODEBOOKS["paper"]
    assert [c for c in CLASSES if code[c] != paper[c]] == ["disgust"]
    assert {ACTION_UNITS[i].facs for i in paper["disgust"]} == {"AU9", "AU10", "AU16", "AU17", "AU25", "AU26"}


def test_native_spellings_of_a_class_give_the_same_map() -> None:
    ref, _ = au_map(FACE, "happy", (224, 224))
    for name in ("happiness", "Happy", " HAPPY ", "joy"):
        np.testing.assert_array_equal(au_map(FACE, name, (224, 224))[0], ref)
    np.testing.assert_array_equal(au_map(FACE, "angry", (224, 224))[0], au_map(FACE, "anger", (224, 224))[0])


def test_unknown_codebook_or_expression_is_a_one_sentence_error() -> None:
    with pytest.raises(FermixError, match="unknown AU codebook `fig2`"):
        au_map(FACE, "happy", (224, 224), codebook="fig2")
    with pytest.raises(FermixError, match="expression `boredom` has no entry"):
        au_map(FACE, "boredom", (224, 224))


def test_malformed_landmarks_or_sizes_are_one_sentence_errors() -> None:
    with pytest.raises(FermixError, match=r"shape \(68, 2\)"):
        au_map(FACE[:5], "happy", (224, 224))
    with pytest.raises(FermixError, match="image_size"):
        au_map(FACE, "happy", (0, 224))
    with pytest.raises(FermixError, match="out_size"):
        au_map(FACE, "happy", (224, 224), out_size=(56,))
    with pytest.raises(FermixError, match="AU indices run from 0 to 19"):
        au_map_from_units(FACE, [3, 20], (224, 224))


# --- flagged empty maps --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("landmarks", "expression"),
    [
        (FACE, "neutral"),
        (FACE, "contempt"),
        (None, "happy"),
        (np.where(np.arange(68)[:, None] == 30, np.nan, FACE), "happy"),
        (np.where(np.arange(68)[:, None] == 30, np.inf, FACE), "happy"),
        (FACE + 400.0, "happy"),  # wholly outside the image
        (FACE - 300.0, "surprise"),
        (np.full((68, 2), 1e12), "happy"),  # garbage far outside: no int overflow in cv2
    ],
    ids=["neutral", "contempt", "missing", "nan", "inf", "below-right", "above-left", "huge"],
)
def test_unusable_input_gives_the_flagged_all_zero_map(landmarks: np.ndarray | None, expression: str) -> None:
    heat, valid = au_map(landmarks, expression, (224, 224), out_size=(56, 48))
    assert valid is False
    assert heat.shape == (56, 48) and heat.dtype == np.float32 and not heat.any()


def test_a_face_partly_outside_the_image_still_gets_a_map() -> None:
    heat, valid = au_map(FACE + np.array([0.0, 80.0]), "happy", (224, 224))  # chin and lips cut off at the bottom
    assert valid and heat.max() == 1.0
    assert heat[int(FACE[41, 1]) + 80 + 37, int(FACE[41, 0])] > 0.9  # the cheek is still drawn


# --- valid maps: range, shape, localisation (spec §8.1) ------------------------------------------


@pytest.mark.parametrize("expression", CLASSES)
def test_valid_maps_are_float32_in_unit_range_with_min_0_and_max_1(expression: str) -> None:
    heat, valid = au_map(FACE, expression, (224, 224))
    assert valid is True
    assert heat.shape == (224, 224) and heat.dtype == np.float32
    assert np.isfinite(heat).all() and heat.min() == 0.0 and heat.max() == 1.0
    small, _ = au_map(FACE, expression, (224, 224), out_size=(56, 40))
    assert small.shape == (56, 40) and small.dtype == np.float32 and small.min() >= 0.0 and small.max() <= 1.0


@pytest.mark.parametrize("unit", range(20))
def test_each_single_au_blob_peaks_at_the_landmarks_of_the_table(unit: int) -> None:
    heat, valid = au_map_from_units(FACE, [unit], (224, 224))
    assert valid
    for cx, cy in centres(unit):
        assert heat[cy, cx] >= 0.9, (unit, cx, cy)  # spec: >= 0.93 on its template; >= 0.92 on this one


@pytest.mark.parametrize("unit", [1, 4, 8], ids=["AU2-outer-brows", "AU6-cheeks", "AU12-lip-corners"])
def test_blob_plateaus_sit_on_their_centres(unit: int) -> None:
    heat, _ = au_map_from_units(FACE, [unit], (224, 224))
    for cx, cy in centres(unit):
        window = heat[cy - 15 : cy + 16, cx - 15 : cx + 16]
        rows, cols = np.nonzero(window >= window.max() - 0.01)
        assert abs(cols.mean() - 15) <= 2 and abs(rows.mean() - 15) <= 2, (cx, cy, cols.mean(), rows.mean())


def test_geometry_follows_the_table_landmarks() -> None:
    x, y = FACE[:, 0], FACE[:, 1]
    assert centres(8) == [(85, 170), (139, 170)]  # AU12 on L48 / L54
    assert centres(1) == [(int(x[18]), int(y[18])), (int(x[25]), int(y[25]))]  # AU2 on L18 / L25
    assert centres(4) == [(int(x[41]), int(y[41] + 37)), (int(x[46]), int(y[46] + 37))]  # AU6: eye bottom + H/6
    assert centres(7) == [(int(x[48]), int(y[50])), (int(x[52]), int(y[54]))]  # AU10 [Δ] kept
    assert centres(12)[1] == (int((x[50] + x[10]) / 2), int((y[50] + y[10]) / 2))  # AU20 [Δ] kept
    assert centres(13) == centres(14) == centres(16) == centres(18)  # one mouth ellipse
    assert centres(9)[0] == (int(x[48]) - 20, 170)


def test_int_truncation_and_zero_axis_fallbacks() -> None:
    lm = FACE.copy()
    lm[[19, 24], 1] = 66.0  # level brows: AU4's vertical half-axis is 0 -> 10
    lm[20] = (88.9, 67.9)
    ((_, _, _, ay_au4),) = au_maps._ellipses(2, lm[:, 0], lm[:, 1], 224, 224)
    assert ay_au4 == 10
    assert au_maps._ellipses(0, lm[:, 0], lm[:, 1], 224, 224)[0] == (88, 67, 28, 22)  # truncation, round(W/8)
    lm[[38, 41], 1] = 92.0  # a closed eye: AU5's vertical 0 -> 5; AU7 and AU43 add 20 px
    assert au_maps._ellipses(3, lm[:, 0], lm[:, 1], 224, 224)[0][3] == 5
    assert au_maps._ellipses(5, lm[:, 0], lm[:, 1], 224, 224)[0][3] == 10
    lm[41, 1] = 72.0  # Δy + 20 == 0: AU7 falls back to 5, AU43 has no fallback
    assert au_maps._ellipses(5, lm[:, 0], lm[:, 1], 224, 224)[0][3] == 5
    assert au_maps._ellipses(17, lm[:, 0], lm[:, 1], 224, 224)[0][3] == 0


def test_landmarks_are_truncated_before_midpoints_and_negative_axes_clamp_to_the_fallback() -> None:
    # The original casts every landmark to int before drawing; a midpoint is then int((a + b) / 2)
    # of integers (10.7, 11.7 -> int(10.5) = 10; from the floats it would be int(11.2) = 11).
    lm = FACE.copy()
    lm[36, 0], lm[39, 0] = 10.7, 11.7
    lm[38, 1], lm[41, 1] = 95.0, 90.0  # lids in the wrong order: Δy = -5
    ((cx, _, _, ay), _) = au_maps._ellipses(3, lm[:, 0], lm[:, 1], 224, 224)
    assert cx == 10
    assert ay == 5  # max(int(-2.5), 0) = 0 -> the original's fallback 5 (abs would give 2)
    lm[41, 1] = 50.0  # Δy + 20 = -25: AU43 (no fallback) clamps at 0 instead of taking |−12|
    assert au_maps._ellipses(17, lm[:, 0], lm[:, 1], 224, 224)[0][3] == 0
    lm[48, 0], lm[54, 0] = 5.0, 215.0  # AU14: x clamped to 0 on the left and to W (not W − 1) on the right
    lm[48, 1] = -3.0  # y is not clamped
    assert centres(9, lm) == [(0, -3), (224, int(lm[54, 1]))]


@pytest.mark.parametrize("expression", CLASSES)
def test_class_map_is_the_normalised_max_of_raw_single_au_maps(expression: str) -> None:
    x, y = FACE[:, 0], FACE[:, 1]
    raw = np.max([au_maps._render_unit(u, x, y, 224, 28) for u in au_units(expression)], axis=0)
    expected = (raw - raw.min()) / (raw.max() - raw.min())
    heat, _ = au_map(FACE, expression, (224, 224))
    np.testing.assert_array_equal(heat, expected.astype(np.float32))
    for unit in au_units(expression):  # every AU of the class shows, thin ones (eyes, ~0.33) included
        assert all(heat[cy, cx] > 0.3 for cx, cy in centres(unit)), unit
    assert max(heat[0, 0], heat[0, -1], heat[-1, 0], heat[-1, -1]) < 0.01


def test_thin_regions_keep_their_lower_peak_no_per_au_normalisation() -> None:
    heat, _ = au_map(FACE, "surprise", (224, 224))
    eye = max(heat[cy, cx] for cx, cy in centres(3))
    assert 0.25 <= eye <= 0.45  # spec §1.3: eye ellipses peak at ~0.33 in a class map


def test_happy_lights_lip_corners_and_cheeks_and_nothing_far_away() -> None:
    heat, _ = au_map(FACE, "happy", (224, 224))
    assert heat[170, 85] > 0.9 and heat[170, 139] > 0.9
    assert heat[133, 74] > 0.9 and heat[133, 150] > 0.9
    assert heat[:50].max() == 0.0 and heat[:, :30].max() == 0.0  # forehead and image-left margin
    assert heat[int(FACE[8, 1]) + 5 :].max() == 0.0  # below the chin


def test_forehead_is_lit_by_brow_classes_only() -> None:
    fx, fy = int((FACE[19, 0] + FACE[24, 0]) / 2), int((FACE[19, 1] + FACE[24, 1]) / 2) - 10
    values = {c: au_map(FACE, c, (224, 224))[0][fy, fx] for c in CLASSES}
    assert values["happy"] == 0.0 and values["disgust"] == 0.0
    assert all(0.65 <= values[c] <= 0.9 for c in ("fear", "surprise", "sad")), values  # spec: ~0.77


def test_map_sizes_match_the_spec_reference() -> None:
    spec = {"anger": 0.08, "disgust": 0.09, "fear": 0.16, "happy": 0.12, "sad": 0.17, "surprise": 0.12}
    for expression, fraction in spec.items():
        heat, _ = au_map(FACE, expression, (224, 224))
        assert abs((heat > 0.5).mean() - fraction) <= 0.03, expression


def test_uniform_attention_scores_the_spec_cosine_floor() -> None:
    cosines = [cosine(au_map(FACE, c, (224, 224))[0], np.ones((224, 224))) for c in CLASSES]
    assert all(0.38 <= c <= 0.56 for c in cosines) and abs(np.mean(cosines) - 0.45) <= 0.03


def test_codebook_switch_moves_disgusts_au_from_the_eyes_to_the_upper_lip() -> None:
    code, _ = au_map(FACE, "disgust", (224, 224), codebook="code")
    paper, _ = au_map(FACE, "disgust", (224, 224), codebook="paper")
    eyes = centres(3)
    assert all(code[cy, cx] > 0.25 for cx, cy in eyes) and all(paper[cy, cx] < 0.01 for cx, cy in eyes)
    lip = centres(7)[0]  # (x48, y50): AU10's first circle
    assert paper[lip[1], lip[0]] > 0.9
    for c in ("happy", "anger"):
        np.testing.assert_array_equal(au_map(FACE, c, (224, 224))[0], au_map(FACE, c, (224, 224), codebook="paper")[0])


def test_mirrored_landmarks_give_the_flipped_map_except_where_a_kept_typo_breaks_symmetry() -> None:
    mirrored = FACE[MIRROR].copy()
    mirrored[:, 0] = 223 - mirrored[:, 0]
    cos = {c: cosine(au_map(FACE, c, (224, 224))[0], au_map(mirrored, c, (224, 224))[0][:, ::-1]) for c in CLASSES}
    assert all(cos[c] > 0.97 for c in ("disgust", "happy", "sad", "surprise")), cos
    assert cos["anger"] < 0.95  # AU10's (x48, y50)/(x52, y54) [Δ] is one-sided


def test_landmark_noise_and_shift_lower_the_cosine_as_the_spec_measures() -> None:
    rng = np.random.default_rng(0)
    for c in CLASSES:
        clean, _ = au_map(FACE, c, (224, 224))
        jitter = cosine(clean, au_map(FACE + rng.normal(0, 4, FACE.shape), c, (224, 224))[0])
        shift = cosine(clean, au_map(FACE + np.array([16.0, 0.0]), c, (224, 224))[0])
        assert 0.9 <= jitter < 1.0 and 0.7 <= shift < jitter, (c, jitter, shift)


# --- image sizes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("expression", CLASSES)
def test_a_face_at_112_px_gets_the_geometry_it_has_at_224_px(expression: str) -> None:
    ref, _ = au_map(FACE, expression, (224, 224))
    # The same face stored at 112 px (pixel centres at integers): identical once drawn at 224.
    half = (FACE + 0.5) / 2 - 0.5
    np.testing.assert_array_equal(au_map(half, expression, (112, 112), out_size=(224, 224))[0], ref)
    small, _ = au_map(half, expression, (112, 112))
    assert small.shape == (112, 112)
    np.testing.assert_allclose(small, cv2.resize(ref, (112, 112), interpolation=cv2.INTER_AREA), atol=1e-6)
    # A plain x0.5 rescale (off by a quarter pixel) only moves truncated centres by about a pixel.
    coarse, _ = au_map(template(112.0), expression, (112, 112), out_size=(224, 224))
    assert cosine(coarse, ref) > 0.98
    # Drawing the 224-px radii directly at 112 px would not be the same map.
    naive, _ = au_map(FACE / 2, expression, (224, 224))
    assert cosine(cv2.resize(naive[:112, :112], (224, 224)), ref) < 0.95


def test_non_square_images_are_mapped_to_the_square_frame_the_original_drew_in() -> None:
    wide = FACE.copy()
    wide[:, 0] = (FACE[:, 0] + 0.5) * 2 - 0.5  # the 224 crop stretched to 224x448
    heat, valid = au_map(wide, "fear", (224, 448), out_size=(224, 224))
    assert valid
    np.testing.assert_array_equal(heat, au_map(FACE, "fear", (224, 224))[0])
    assert au_map(wide, "fear", (224, 448))[0].shape == (224, 448)
