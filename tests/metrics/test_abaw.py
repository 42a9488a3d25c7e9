"""ABAW 2020 metrics (spec §5, §6, §8.3, §8.5): CCC, AU / EXPR / VA scores, threshold search,
checkpoint selection, and the DDP-safe accumulators against the pure functions."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import accuracy_score, f1_score

from fermix.metrics import (
    AUMetrics,
    VAMetrics,
    au_scores,
    average_thresholds,
    ccc,
    expr_scores,
    search_thresholds,
    selection_score,
    va_scores,
)


def reference_ccc(x: np.ndarray, y: np.ndarray) -> float:
    """The textbook form, with numpy's population std (ddof=0) and Pearson's ρ."""
    rho = np.corrcoef(x, y)[0, 1]
    sx, sy = np.std(x), np.std(y)
    return 2 * rho * sx * sy / (sx**2 + sy**2 + (np.mean(x) - np.mean(y)) ** 2)


# --------------------------------------------------------------------------------------------- CCC


def test_ccc_of_a_series_with_itself_is_one_and_with_its_negation_minus_one():
    rng = np.random.default_rng(0)
    x = rng.normal(size=500)
    assert ccc(x, x) == pytest.approx(1.0, abs=1e-15)
    centred = x - x.mean()
    assert ccc(centred, -centred) == pytest.approx(-1.0, abs=1e-15)


def test_ccc_penalises_a_shift_and_a_scale_that_pearson_ignores():
    rng = np.random.default_rng(1)
    x = rng.normal(size=500)
    assert np.corrcoef(x, x + 0.3)[0, 1] == pytest.approx(1.0)
    assert ccc(x, x + 0.3) < 1 - 1e-3
    assert ccc(x, 2 * x) < 1 - 1e-3


def test_ccc_matches_numpy_reference_to_1e12():
    rng = np.random.default_rng(2)
    for n in (2, 7, 1000):
        x = rng.uniform(-1, 1, n)
        y = 0.6 * x + rng.normal(0.1, 0.3, n)
        assert abs(ccc(x, y) - reference_ccc(x, y)) < 1e-12


def test_ccc_uses_population_not_sample_std_by_hand():
    x, y = np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 4.0])
    # population: var x = 2/3, var y = 14/9, cov = 1, means 2 and 7/3
    expected = 2 * 1.0 / (2 / 3 + 14 / 9 + 1 / 9)
    assert ccc(x, y) == pytest.approx(expected, abs=1e-15)
    unbiased = 2 * 1.5 / (1.0 + 7 / 3 + 1 / 9)  # what torch.std (ddof=1) would give
    assert abs(ccc(x, y) - unbiased) > 1e-3


def test_ccc_accepts_tensors_and_computes_in_float64():
    rng = np.random.default_rng(3)
    x32 = rng.normal(size=200).astype(np.float32)
    y32 = (x32 + rng.normal(size=200)).astype(np.float32)
    got = ccc(torch.from_numpy(x32).requires_grad_(), torch.from_numpy(y32))
    assert abs(got - reference_ccc(x32.astype(np.float64), y32.astype(np.float64))) < 1e-12


def test_ccc_of_a_constant_prediction_is_zero_and_of_nothing_nan():
    y = np.array([0.1, -0.4, 0.7])
    assert ccc(np.full(3, 0.2), y) == 0.0
    assert math.isnan(ccc([], []))


# ---------------------------------------------------------------------------------------------- VA


def test_va_scores_skip_nan_rows_and_report_the_mean_of_the_two_cccs():
    rng = np.random.default_rng(4)
    target = rng.uniform(-1, 1, (300, 2))
    pred = np.clip(target + rng.normal(0, 0.3, (300, 2)), -1, 1)
    out = va_scores(pred, target)
    assert out["ccc_v"] == pytest.approx(reference_ccc(pred[:, 0], target[:, 0]), abs=1e-12)
    assert out["ccc_a"] == pytest.approx(reference_ccc(pred[:, 1], target[:, 1]), abs=1e-12)
    assert out["va_score"] == pytest.approx((out["ccc_v"] + out["ccc_a"]) / 2)  # mean, not the repo's sum

    # unlabelled rows (NaN in either target) with garbage predictions change nothing
    target_u = np.vstack([target, [[np.nan, 0.5], [0.2, np.nan], [np.nan, np.nan]]])
    pred_u = np.vstack([pred, [[9.0, -9.0]] * 3])
    assert va_scores(pred_u, target_u) == pytest.approx(out, abs=1e-15)
    assert all(math.isnan(v) for v in va_scores(pred[:0], target[:0]).values())


# ---------------------------------------------------------------------------------------------- AU


def _au_data(seed: int, n: int = 400, a: int = 8) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    targets = (rng.random((n, a)) < rng.uniform(0.05, 0.4, a)).astype(np.float64)
    probs = np.clip(0.35 * targets + rng.random((n, a)) * 0.7, 0, 1)
    return probs, targets


def test_perfect_au_predictions_score_one():
    _, targets = _au_data(5)
    out = au_scores(targets, targets)
    assert out == {"au_f1": 1.0, "au_acc": 1.0, "au_score": 1.0}


def test_all_zero_au_predictions_score_half_of_one_minus_mean_prevalence():
    _, targets = _au_data(6)
    out = au_scores(np.zeros_like(targets), targets)
    prevalence = targets.mean(axis=0)
    assert out["au_f1"] == 0.0
    assert out["au_acc"] == pytest.approx(1 - prevalence.mean(), abs=1e-15)
    assert out["au_score"] == pytest.approx(0.5 * (1 - prevalence.mean()), abs=1e-15)


def test_au_scores_match_sklearn_per_au_f1_and_flattened_accuracy_and_skip_unlabelled_rows():
    probs, targets = _au_data(7)
    targets[[0, 5]] = 0.0
    targets[0, 3] = np.nan  # partially labelled rows are dropped whole
    targets[5, :] = -1.0  # the Aff-Wild2 discard value
    thresholds = np.linspace(0.2, 0.6, 8)
    out = au_scores(probs, targets, thresholds)

    keep = np.ones(len(targets), bool)
    keep[[0, 5]] = False
    y, p = targets[keep].astype(int), (probs[keep] > thresholds).astype(int)
    f1 = np.mean([f1_score(y[:, j], p[:, j], zero_division=0) for j in range(8)])
    acc = accuracy_score(y.ravel(), p.ravel())
    assert out["au_f1"] == pytest.approx(f1, abs=1e-12)
    assert out["au_acc"] == pytest.approx(acc, abs=1e-12)
    assert out["au_score"] == pytest.approx(0.5 * f1 + 0.5 * acc, abs=1e-12)


def test_au_threshold_is_strict_and_an_au_never_present_nor_predicted_gets_f1_zero():
    targets = np.array([[1.0, 0.0], [0.0, 0.0], [1.0, 0.0]])
    probs = np.array([[0.5, 0.1], [0.2, 0.2], [0.9, 0.3]])
    out = au_scores(probs, targets)  # row 0 AU0 sits exactly on 0.5: predicted absent
    # AU0: tp 1, fn 1 -> F1 2/3; AU1: nothing positive, nothing predicted -> F1 0 (sklearn zero_division=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        assert f1_score(targets[:, 1], probs[:, 1] > 0.5) == 0.0  # what the original's sklearn call returned
    assert out["au_f1"] == pytest.approx((2 / 3 + 0.0) / 2)
    assert out["au_acc"] == pytest.approx(5 / 6)


def test_au_scores_of_no_labelled_row_are_nan_and_bad_thresholds_are_refused():
    probs = np.full((2, 3), 0.7)
    assert all(math.isnan(v) for v in au_scores(probs, np.full((2, 3), np.nan)).values())
    with pytest.raises(ValueError, match="thresholds"):
        au_scores(probs, np.zeros((2, 3)), [0.5, 0.5])


# -------------------------------------------------------------------------------------------- EXPR


def test_perfect_expression_predictions_score_one():
    y = np.arange(7).repeat(3)
    assert expr_scores(np.eye(7)[y], y) == {"expr_f1": 1.0, "expr_acc": 1.0, "expr_score": 1.0}


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.UndefinedMetricWarning")
def test_expr_score_is_067_sklearn_macro_f1_plus_033_accuracy_on_labelled_rows():
    gen = torch.Generator().manual_seed(8)
    logits = torch.randn(500, 7, generator=gen)
    logits[:, 6] -= 10  # class 6 never predicted ...
    target = torch.randint(-1, 6, (500,), generator=gen)  # ... nor true; and some rows unlabelled (-1)
    out = expr_scores(logits, target)
    keep = target.numpy() >= 0
    y, p = target.numpy()[keep], logits.argmax(1).numpy()[keep]
    f1 = f1_score(y, p, average="macro")
    acc = accuracy_score(y, p)
    assert out["expr_f1"] == pytest.approx(f1, abs=1e-12)
    assert out["expr_acc"] == pytest.approx(acc, abs=1e-12)
    assert out["expr_score"] == pytest.approx(0.67 * f1 + 0.33 * acc, abs=1e-12)
    # probabilities and class indices give the same numbers as logits
    assert expr_scores(torch.softmax(logits, 1), target) == pytest.approx(out)
    assert expr_scores(logits.argmax(1), target) == pytest.approx(out)


def test_expr_scores_count_a_class_only_predicted_and_are_nan_without_labels():
    y, p = np.array([0, 0, 1, 1]), np.array([0, 2, 1, 1])
    out = expr_scores(p, y)
    # F1: class 0 = 2/3, class 1 = 1, class 2 (predicted, never true) = 0
    assert out["expr_f1"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert out["expr_f1"] == pytest.approx(f1_score(y, p, average="macro"))
    assert all(math.isnan(v) for v in expr_scores(np.zeros((3, 7)), -np.ones(3)).values())


# ------------------------------------------------------------------------------- threshold search


def _constructed_scores() -> tuple[np.ndarray, np.ndarray]:
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.15, 0.1])
    # AU0: predicting the top 4 gives TP 3 of 4 positives: P = R = 0.75 at 0.6, nowhere else equal
    # AU1: 6 positives; only the top 6 (TP 2) has P = R = 1/3 (at 0.4); F1 peaks at 0.75 over all 10 (at 0.1)
    y0 = [1, 0, 1, 1, 0, 0, 1, 0, 0, 0]
    y1 = [1, 1, 0, 0, 0, 0, 1, 1, 1, 1]
    return np.stack([scores, scores], 1), np.array([y0, y1], dtype=float).T


def test_break_even_search_returns_the_point_where_precision_equals_recall():
    probs, targets = _constructed_scores()
    thr = search_thresholds(probs, targets, "pr_breakeven")
    np.testing.assert_allclose(thr, [0.6, 0.4])
    for j in range(2):  # at the returned threshold (sklearn's >= rule) precision and recall coincide
        pred, y = probs[:, j] >= thr[j], targets[:, j] == 1
        assert (pred & y).sum() / pred.sum() == pytest.approx((pred & y).sum() / y.sum())


def test_max_f1_search_returns_the_f1_maximising_threshold():
    probs, targets = _constructed_scores()
    np.testing.assert_allclose(search_thresholds(probs, targets, "max_f1"), [0.6, 0.1])


def test_threshold_search_keeps_half_for_degenerate_aus_and_ignores_unlabelled_rows():
    probs, targets = _constructed_scores()
    probs = np.hstack([probs, probs[:, :2]])
    targets = np.hstack([targets, np.ones((10, 1)), np.zeros((10, 1))])  # all positive / all negative
    base = search_thresholds(probs, targets)
    np.testing.assert_allclose(base, [0.6, 0.4, 0.5, 0.5])
    probs_u = np.vstack([probs, np.full((2, 4), 0.95)])
    targets_u = np.vstack([targets, [[np.nan, 1, 1, 0], [0, 0, 0, np.nan]]])
    np.testing.assert_allclose(search_thresholds(probs_u, targets_u), base)
    with pytest.raises(ValueError, match="pr_breakeven"):
        search_thresholds(probs, targets, "youden")


def test_average_thresholds_is_the_mean_over_members_not_the_last_member():
    members = [np.array([0.1, 0.3]), np.array([0.2, 0.5]), np.array([0.6, 0.1])]
    got = average_thresholds(members)
    np.testing.assert_allclose(got, [0.3, 0.3])
    assert not np.allclose(got, members[-1])


# ------------------------------------------------------------------------------------- selection


def test_selection_score_sums_au_expr_and_both_cccs_counting_missing_tasks_as_zero():
    full = {"au_score": 0.6, "au_f1": 0.3, "expr_score": 0.4, "ccc_v": 0.5, "ccc_a": 0.45, "va_score": 0.475}
    assert selection_score(full) == pytest.approx(0.6 + 0.4 + 0.5 + 0.45)
    assert selection_score({"expr_score": torch.tensor(0.4), "ccc_v": float("nan")}) == pytest.approx(0.4)
    assert selection_score({}) == 0.0


# ---------------------------------------------------------------------------------- accumulators


def _batches(seed: int, sizes=(17, 1, 0, 40, 23)):
    gen = torch.Generator().manual_seed(seed)
    for b in sizes:
        logits = torch.randn(b, 8, generator=gen) * 2
        au = (torch.rand(b, 8, generator=gen) < 0.3).float()
        va_t = torch.rand(b, 2, generator=gen) * 2 - 1
        va_p = (va_t * 0.7 + 0.3 * torch.randn(b, 2, generator=gen)).clamp(-1, 1)
        if b > 3:  # a few unlabelled rows per batch
            au[:3:2] = float("nan")
            va_t[1:3, 0] = float("nan")
            va_t[3, 1] = float("nan")
        yield logits, au, va_p, va_t


def test_au_accumulator_equals_au_scores_on_the_concatenated_split():
    thresholds = [0.5, 0.3, 0.7, 0.5, 0.2, 0.4, 0.6, 0.5]
    for thr in (0.5, thresholds):
        metric = AUMetrics(8, threshold=thr)
        logits, targets = [], []
        for lg, au, _, _ in _batches(9):
            metric.update(lg, au)
            logits.append(lg)
            targets.append(au)
        got = metric.compute()
        expected = au_scores(torch.sigmoid(torch.cat(logits)), torch.cat(targets), thr)
        for key, value in expected.items():
            assert got[key].dtype == torch.float64
            assert got[key].item() == pytest.approx(value, abs=1e-15)
    seen = int((metric.tp + metric.fp + metric.fn + metric.tn).sum())
    assert seen == 8 * sum(int((~torch.isnan(au).any(1)).sum()) for _, au, _, _ in _batches(9))


def test_va_accumulator_equals_va_scores_on_the_concatenated_split():
    metric = VAMetrics()
    preds, targets = [], []
    for _, _, p, t in _batches(10):
        metric.update(p, t)
        preds.append(p)
        targets.append(t)
    got = metric.compute()
    expected = va_scores(torch.cat(preds), torch.cat(targets))
    for key, value in expected.items():
        assert got[key].dtype == torch.float64
        assert got[key].item() == pytest.approx(value, abs=1e-12)


def test_accumulators_summed_over_ranks_equal_one_process_over_the_whole_split():
    # merge_state applies each state's dist_reduce_fx, as the all-gather under DDP does
    ranks_au, ranks_va = [AUMetrics(8), AUMetrics(8)], [VAMetrics(), VAMetrics()]
    whole_au, whole_va = AUMetrics(8), VAMetrics()
    for i, (lg, au, p, t) in enumerate(_batches(11)):
        ranks_au[i % 2].update(lg, au)
        ranks_va[i % 2].update(p, t)
        whole_au.update(lg, au)
        whole_va.update(p, t)
    ranks_au[0].merge_state(ranks_au[1])
    ranks_va[0].merge_state(ranks_va[1])
    for merged, whole in ((ranks_au[0], whole_au), (ranks_va[0], whole_va)):
        got, expected = merged.compute(), whole.compute()
        for key in expected:
            torch.testing.assert_close(got[key], expected[key], rtol=0, atol=1e-12)


@pytest.mark.filterwarnings("ignore:The ``compute`` method of metric")
def test_accumulators_give_nan_when_nothing_labelled_and_forget_on_reset():
    au, va = AUMetrics(4), VAMetrics()
    au.update(torch.randn(3, 4), torch.full((3, 4), float("nan")))
    va.update(torch.randn(3, 2), torch.full((3, 2), float("nan")))
    assert all(torch.isnan(v) for v in au.compute().values())
    assert all(torch.isnan(v) for v in va.compute().values())
    au.update(torch.full((2, 4), 5.0), torch.ones(2, 4))
    assert au.compute()["au_score"].item() == 1.0
    au.reset()
    assert torch.isnan(au.compute()["au_score"])
    with pytest.raises(ValueError, match="shape"):
        va.update(torch.zeros(3, 3), torch.zeros(3, 3))
