"""Multimodal metrics (causalmer spec §4, §6.1.9): IEMOCAP per-emotion acc / weighted F1 / average,
MOSEI Acc7 / Acc5 / has-0 and non-0 Acc2 and F1 / MAE / Corr, drop gaps and modality contribution."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import accuracy_score, f1_score

from fermix.errors import FermixError
from fermix.metrics.multimodal import (
    REMOVAL_SETTINGS,
    binary_f1,
    drop_gaps,
    gap_std,
    iemocap_metrics,
    modality_contribution,
    mosei_cls_scores,
    mosei_metrics,
    top1_accuracy,
    weighted_f1,
)

EMOS = ("neutral", "happy", "sad", "angry")


def sk_weighted_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        return float(f1_score(y_true, y_pred, average="weighted"))


def pair_logits(pred: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(N, K, 2) logits whose per-pair argmax is `pred` (N, K), with random magnitudes."""
    z = rng.normal(size=(*pred.shape, 2))
    lo, hi = np.minimum(z[..., 0], z[..., 1]), np.maximum(z[..., 0], z[..., 1]) + 0.1
    out = np.empty_like(z)
    out[..., 1] = np.where(pred == 1, hi, lo)
    out[..., 0] = np.where(pred == 1, lo, hi)
    return out


# ------------------------------------------------------------------------------------------ IEMOCAP

# columns: neutral, happy, sad, angry
HAND_LABELS = np.array([[0, 0, 1, 0], [0, 0, 1, 1], [1, 0, 1, 0], [1, 1, 1, 1]])
HAND_PREDS = np.array([[0, 0, 1, 1], [0, 0, 1, 0], [1, 0, 0, 1], [1, 0, 0, 0]])


def test_iemocap_hand_computed_accuracy_weighted_f1_and_average():
    logits = pair_logits(HAND_PREDS, np.random.default_rng(0))
    m = iemocap_metrics(logits, HAND_LABELS)
    # neutral all right; happy misses its one positive; sad (all positive) half right; angry all wrong
    assert [m[f"acc_{e}"] for e in EMOS] == [1.0, 0.75, 0.5, 0.0]
    assert m["f1_neutral"] == 1.0
    assert m["f1_happy"] == pytest.approx(3 / 4 * 6 / 7, abs=1e-15)  # class 0: 2·3/(3+4), weight 3/4; class 1: 0
    assert m["f1_sad"] == pytest.approx(2 / 3, abs=1e-15)  # only class 1 has support: 2·2/(4+2)
    assert m["f1_angry"] == 0.0
    assert m["avg_acc"] == pytest.approx((1.0 + 0.75 + 0.5 + 0.0) / 4, abs=1e-15)


def test_iemocap_matches_sklearn_weighted_f1_and_accuracy_per_emotion():
    rng = np.random.default_rng(1)
    labels = (rng.random((200, 4)) < [0.3, 0.1, 0.15, 0.2]).astype(np.int64)
    logits = rng.normal(size=(200, 8))
    m = iemocap_metrics(logits, labels)
    pred = logits.reshape(200, 4, 2).argmax(-1)
    accs = []
    for j, e in enumerate(EMOS):
        accs.append(accuracy_score(labels[:, j], pred[:, j]))
        assert m[f"acc_{e}"] == pytest.approx(accs[-1], abs=1e-15)
        assert m[f"f1_{e}"] == pytest.approx(sk_weighted_f1(labels[:, j], pred[:, j]), abs=1e-12)
    assert m["avg_acc"] == pytest.approx(np.mean(accs), abs=1e-15)
    assert m["avg_f1"] == pytest.approx(np.mean([m[f"f1_{e}"] for e in EMOS]), abs=1e-15)


def test_iemocap_flat_logits_are_consecutive_pairs_and_agree_with_the_paired_layout():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, size=(50, 4))
    paired = rng.normal(size=(50, 4, 2))
    flat = paired.reshape(50, 8)
    assert iemocap_metrics(flat, labels) == iemocap_metrics(paired, labels)
    # hand layout: columns (2j, 2j+1) are emotion j's [absent, present]; only column 3 (happy present) wins
    one = np.zeros((1, 8))
    one[0, [0, 3, 4, 6]] = 1.0
    m = iemocap_metrics(one, np.array([[0, 1, 0, 0]]))
    assert [m[f"acc_{e}"] for e in EMOS] == [1.0, 1.0, 1.0, 1.0]
    m = iemocap_metrics(one, np.array([[0, 0, 0, 0]]))
    assert [m[f"acc_{e}"] for e in EMOS] == [1.0, 0.0, 1.0, 1.0]


def test_iemocap_accepts_torch_tensors_and_refuses_bad_shapes_and_labels():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, size=(20, 4))
    logits = rng.normal(size=(20, 8)).astype(np.float32)
    assert iemocap_metrics(torch.from_numpy(logits).requires_grad_(), torch.from_numpy(labels)) == iemocap_metrics(
        logits, labels
    )
    with pytest.raises(ValueError, match="logits"):
        iemocap_metrics(logits[:, :7], labels)
    with pytest.raises(ValueError, match="labels"):
        iemocap_metrics(logits, labels[:, :3])
    with pytest.raises(ValueError, match="0 \\(absent\\) or 1"):
        iemocap_metrics(logits, labels * 2)


def test_top1_accuracy_is_the_k_way_choice_of_the_margins_on_single_label_samples():
    labels = np.array([[0, 1, 0, 0], [0, 0, 0, 1], [1, 0, 0, 0], [0, 1, 1, 0]])  # the last has two emotions
    z = np.zeros((4, 4, 2))
    z[:, :, 0] = 1.0  # "absent" everywhere: avg_acc counts 3 of 4 tasks right on a single-label sample
    z[0, 1, 1] = 0.5  # the right emotion has the largest margin (-0.5) though every pair says absent
    z[1, 2, 1] = 3.0  # a wrong emotion wins
    z[2, 0, 1] = 2.0  # right, and present
    assert top1_accuracy(z, labels) == pytest.approx(2 / 3)
    assert iemocap_metrics(z.reshape(4, 8), labels)["top1_acc"] == pytest.approx(2 / 3)
    assert math.isnan(top1_accuracy(z[3:], labels[3:]))


def test_weighted_f1_matches_sklearn_on_multiclass_and_one_sided_vectors():
    rng = np.random.default_rng(4)
    t, p = rng.integers(0, 5, 300), rng.integers(0, 4, 300)
    assert weighted_f1(t, p) == pytest.approx(sk_weighted_f1(t, p), abs=1e-12)
    ones, mixed = np.ones(6), np.array([1, 1, 0, 0, 1, 0])
    assert weighted_f1(ones, mixed) == pytest.approx(sk_weighted_f1(ones, mixed), abs=1e-15)
    assert weighted_f1(mixed, ones) == pytest.approx(sk_weighted_f1(mixed, ones), abs=1e-15)
    assert math.isnan(weighted_f1([], []))


# -------------------------------------------------------------------------------------------- MOSEI


def test_mosei_acc7_and_acc5_clip_before_rounding():
    # clipping makes the first four agree (5 → 3 vs 3.4 → 3); unclipped they would not
    y = np.array([3.4, -3.6, 2.6, 0.4, 2.0, -2.2])
    p = np.array([5.0, -10.0, 3.2, -0.4, 3.0, -2.9])
    m = mosei_metrics(p, y)
    # acc7: the last two differ (2 vs 3, −2 vs −3); acc5 clips them to ±2, so every one agrees
    assert m["acc7"] == pytest.approx(4 / 6, abs=1e-15)
    assert m["acc5"] == 1.0
    assert np.mean(np.round(p) == np.round(y)) < m["acc7"]  # the clip is what makes them agree


def test_mosei_rounding_is_half_to_even_as_numpy_round():
    y = np.array([0.5, 2.5, -1.5])  # round half to even: 0, 2, −2 (half-up would give 1, 3, −1)
    p = np.array([0.0, 2.0, -2.0])
    assert mosei_metrics(p, y)["acc7"] == 1.0


def test_mosei_has0_and_non0_acc2_follow_their_definitions_where_they_differ():
    y = np.array([0.0, 0.0, 1.0, -1.0, 2.0])
    p = np.array([0.0, -0.5, 0.5, 0.0, -1.0])
    m = mosei_metrics(p, y)
    # has-0: all samples, y ≥ 0 = [T T T F T] vs p ≥ 0 = [T F T T F] → 2 of 5
    assert m["acc2_has0"] == pytest.approx(2 / 5, abs=1e-15)
    # non-0: drop y == 0, then y > 0 = [T F T] vs p > 0 = [T F F] → 2 of 3 (p ≥ 0 would give 1 of 3)
    assert m["acc2_non0"] == pytest.approx(2 / 3, abs=1e-15)
    assert m["f1_has0"] == pytest.approx(sk_weighted_f1(y >= 0, p >= 0), abs=1e-15)
    nz = y != 0
    assert m["f1_non0"] == pytest.approx(sk_weighted_f1(y[nz] > 0, p[nz] > 0), abs=1e-15)
    assert m["mae"] == pytest.approx(np.mean([0.0, 0.5, 0.5, 1.0, 3.0]), abs=1e-15)


def test_mosei_f1_support_pred_reproduces_mult_argument_order():
    rng = np.random.default_rng(5)
    y = np.round(rng.uniform(-3, 3, 400) * 3) / 3
    p = rng.normal(0.6, 1.0, 400)  # biased towards positive, so predicted and true class counts differ
    nz = y != 0
    default = mosei_metrics(p, y)["f1_non0"]
    mult = mosei_metrics(p, y, f1_support="pred")["f1_non0"]
    assert default == pytest.approx(sk_weighted_f1(y[nz] > 0, p[nz] > 0), abs=1e-12)
    assert mult == pytest.approx(sk_weighted_f1(p[nz] > 0, y[nz] > 0), abs=1e-12)  # MulT: f1_score(preds, truths)
    assert abs(default - mult) > 1e-3


def test_mosei_corr_is_pearson_and_nan_for_a_constant_prediction():
    rng = np.random.default_rng(6)
    y = rng.uniform(-3, 3, 500)
    p = 0.7 * y + rng.normal(0, 1, 500)
    m = mosei_metrics(torch.from_numpy(p).float().view(-1, 1), y.reshape(-1, 1, 1))
    assert m["corr"] == pytest.approx(np.corrcoef(p.astype(np.float32), y)[0, 1], abs=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(mosei_metrics(np.zeros(10), rng.normal(size=10))["corr"])


def test_mosei_cls_scores_are_argmax_minus_three_and_neutral_class_splits_the_acc2_variants():
    logits = np.full((7, 7), -1.0)
    logits[np.arange(7), np.arange(7)] = 2.0
    scores = mosei_cls_scores(torch.from_numpy(logits))
    assert scores.tolist() == [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0]
    # a neutral prediction (class 3 → 0) for a positive label: right in has-0 (p ≥ 0), wrong in non-0 (p > 0)
    m = mosei_metrics(mosei_cls_scores(logits[[3]]), np.array([1.0]))
    assert (m["acc2_has0"], m["acc2_non0"]) == (1.0, 0.0)
    with pytest.raises(ValueError, match="mosei_cls_scores"):
        mosei_metrics(logits, np.zeros(7))
    with pytest.raises(ValueError, match=r"\(N, 7\)"):
        mosei_cls_scores(np.zeros((3, 8)))


def test_mosei_binary_definitions_differ_where_their_originals_do():
    y = np.array([0.0, 0.0, 1.0, -1.0, 2.0, 1.0])
    p = np.array([0.0, -0.5, 0.0, 0.0, -1.0, 2.0])  # p = 0: a neutral 7-class prediction (class 3)
    std = mosei_metrics(p, y)
    cm = mosei_metrics(p, y, binary="causalmer")
    mult = mosei_metrics(p, y, binary="mult")
    # has-0: standard and causalmer y ≥ 0 vs p ≥ 0 = [T T T F T T] vs [T F T T F T] → 3 of 6;
    # mult y > 0 vs p > 0 (zero counts negative) = [F F T F T T] vs [F F F F F T] → 4 of 6
    assert std["acc2_has0"] == cm["acc2_has0"] == pytest.approx(3 / 6, abs=1e-15)
    assert mult["acc2_has0"] == pytest.approx(4 / 6, abs=1e-15)
    # non-0 (y ≠ 0): y > 0 = [T F T T]; p > 0 = [F F F T] → 2 of 4; causalmer p ≥ 0 = [T T F T] → 2 of 4
    assert std["acc2_non0"] == mult["acc2_non0"] == pytest.approx(2 / 4, abs=1e-15)
    assert cm["acc2_non0"] == pytest.approx(2 / 4, abs=1e-15)
    nz = y != 0
    assert cm["f1_non0"] == pytest.approx(f1_score(y[nz] > 0, p[nz] >= 0), abs=1e-15)  # sklearn's binary default
    assert cm["f1_has0"] == pytest.approx(f1_score(y >= 0, p >= 0), abs=1e-15)
    assert mult["f1_has0"] == pytest.approx(sk_weighted_f1(p > 0, y > 0), abs=1e-15)  # MulT: predictions first
    assert mult["f1_non0"] == pytest.approx(sk_weighted_f1(p[nz] > 0, y[nz] > 0), abs=1e-15)
    assert std["f1_non0"] == pytest.approx(sk_weighted_f1(y[nz] > 0, p[nz] > 0), abs=1e-15)
    # a neutral prediction for a positive label: right under causalmer's non-0 pair, wrong under the standard one
    one = mosei_metrics(np.array([0.0]), np.array([1.0]), binary="causalmer")
    assert one["acc2_non0"] == 1.0 and mosei_metrics(np.array([0.0]), np.array([1.0]))["acc2_non0"] == 0.0


def test_binary_f1_is_sklearns_default_f1_and_the_options_are_checked():
    rng = np.random.default_rng(9)
    t, p = rng.random(300) > 0.4, rng.random(300) > 0.6
    assert binary_f1(t, p) == pytest.approx(f1_score(t, p), abs=1e-15)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        assert binary_f1(np.zeros(4), np.zeros(4)) == f1_score(np.zeros(4), np.zeros(4)) == 0.0
    assert math.isnan(binary_f1(np.zeros(0), np.zeros(0)))
    with pytest.raises(ValueError, match="binary must be one of"):
        mosei_metrics(np.zeros(3), np.zeros(3), binary="paper")
    with pytest.raises(ValueError, match="f1_support applies to binary='standard'"):
        mosei_metrics(np.zeros(3), np.zeros(3), f1_support="pred", binary="causalmer")


def test_mosei_metrics_of_an_all_zero_label_split_leave_the_non0_pair_undefined():
    m = mosei_metrics(np.array([0.3, -0.2]), np.zeros(2))
    assert math.isnan(m["acc2_non0"]) and math.isnan(m["f1_non0"])
    assert m["acc2_has0"] == 0.5


# --------------------------------------------------------------------------- missing-modality tests

FULL = {"acc": 0.8, "mae": 0.6}
REMOVED = {
    "t": {"acc": 0.5, "mae": 0.9},
    "a": {"acc": 0.7, "mae": 0.7},
    "v": {"acc": 0.85, "mae": 0.55},
    "ta": {"acc": 0.4, "mae": 1.0},
}


def test_removal_settings_are_the_six_non_empty_proper_subsets():
    assert REMOVAL_SETTINGS == ("t", "a", "v", "ta", "tv", "av")


def test_drop_gaps_are_full_minus_removed_and_sign_flipped_for_mae():
    gaps = drop_gaps(FULL, REMOVED, "acc")
    assert gaps == pytest.approx({"t": 0.3, "a": 0.1, "v": -0.05, "ta": 0.4}, abs=1e-15)
    assert drop_gaps(FULL, REMOVED, "mae") == pytest.approx({"t": 0.3, "a": 0.1, "v": -0.05, "ta": 0.4}, abs=1e-15)
    assert drop_gaps(FULL, REMOVED, "mae", higher_is_better=True)["t"] == pytest.approx(-0.3, abs=1e-15)
    assert gap_std(gaps) == pytest.approx(np.std([0.3, 0.1, -0.05, 0.4]), abs=1e-15)
    assert gap_std(gaps, ddof=1) == pytest.approx(np.std([0.3, 0.1, -0.05, 0.4], ddof=1), abs=1e-15)
    with pytest.raises(FermixError, match="'f1' is not among the full-modality metrics"):
        drop_gaps(FULL, REMOVED, "f1")


def test_modality_contribution_normalises_clipped_single_drops_to_one():
    share = modality_contribution(FULL, REMOVED, "acc")  # the "ta" entry is ignored
    # drops 0.3, 0.1, −0.05 → clipped 0.3, 0.1, 0 → 0.75, 0.25, 0
    assert share == pytest.approx({"t": 0.75, "a": 0.25, "v": 0.0}, abs=1e-15)
    assert sum(share.values()) == pytest.approx(1.0, abs=1e-15)
    assert modality_contribution(FULL, REMOVED, "mae") == pytest.approx(share, abs=1e-15)


def test_modality_contribution_is_nan_when_no_removal_hurts_and_refuses_a_missing_modality():
    better = {m: {"acc": 0.9} for m in "tav"}
    assert all(math.isnan(v) for v in modality_contribution({"acc": 0.8}, better, "acc").values())
    with pytest.raises(FermixError, match="remove=v"):
        modality_contribution(FULL, {"t": REMOVED["t"], "a": REMOVED["a"]}, "acc")
