"""Multimodal emotion metrics for `mult` / `causalmer` (spec causalmer.md §4): IEMOCAP 4×binary,
CMU-MOSEI sentiment, and the missing-modality analyses (drop gaps, their spread, modality contribution).

Pure functions over whole-split arrays (numpy float64; torch tensors are accepted), as in
`fermix.metrics.abaw`: the engine collects a split's predictions and calls them once.

Conventions (each a choice the original code makes or implies):
- Weighted F1 is sklearn's `f1_score(y_true, y_pred, average="weighted")`: the per-class
  F1 = 2TP / (2TP + FP + FN) of every class, weighted by its support in `y_true`. It is computed
  here from counts (no sklearn import), and is NaN for an empty split.
- Rounding in Acc7 / Acc5 is numpy's `np.round`, i.e. round half to even (2.5 → 2, −0.5 → −0),
  as MulT's `multiclass_acc` and the MOSEI loader's `Y_cls = round(y) + 3` do.
- Pearson correlation of a constant series is NaN (numpy's `corrcoef` gives the same NaN, with a
  warning; this module gives it silently).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Any

import numpy as np
from torch import Tensor

from fermix.errors import FermixError

__all__ = [
    "IEMOCAP_EMOTIONS",
    "LOWER_IS_BETTER",
    "MOSEI_BINARY",
    "REMOVAL_SETTINGS",
    "binary_f1",
    "drop_gaps",
    "gap_std",
    "iemocap_metrics",
    "modality_contribution",
    "mosei_cls_scores",
    "mosei_metrics",
    "removal_settings",
    "top1_accuracy",
    "weighted_f1",
]

IEMOCAP_EMOTIONS = ("neutral", "happy", "sad", "angry")  # axis-1 order of the MulT pickle's labels
LOWER_IS_BETTER = frozenset({"mae"})
NAN = float("nan")


def _as_f64(a: Any) -> np.ndarray:
    """numpy float64 copy of a tensor (any device, with or without grad) or array-like."""
    if isinstance(a, Tensor):
        a = a.detach().cpu().double().numpy()
    return np.asarray(a, dtype=np.float64)


def _value(x: Any) -> float:
    return float(x.detach().cpu().item()) if isinstance(x, Tensor) else float(x)


# ------------------------------------------------------------------------------------- shared parts


def weighted_f1(y_true: Any, y_pred: Any) -> float:
    """sklearn's support-weighted F1 (`average="weighted"`) of two label vectors, from counts.

    Classes are those in either vector; a class that only appears in `y_pred` has weight 0.
    NaN when the vectors are empty.
    """
    t, p = _as_f64(y_true).ravel(), _as_f64(y_pred).ravel()
    if t.shape != p.shape:
        raise ValueError(f"weighted_f1 needs two vectors of one length, got {t.size} and {p.size}")
    if t.size == 0:
        return NAN
    total = 0.0
    for c in np.unique(t):
        is_t, is_p = t == c, p == c
        tp = float(np.sum(is_t & is_p))
        denom = float(is_t.sum() + is_p.sum())  # 2TP + FP + FN > 0: class c occurs in y_true
        total += is_t.sum() * (2.0 * tp / denom)
    return total / t.size


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if x.size < 2:
        return NAN
    dx, dy = x - x.mean(), y - y.mean()
    denom = np.sqrt(np.sum(dx * dx) * np.sum(dy * dy))
    return float(np.sum(dx * dy) / denom) if denom > 0 else NAN


# ------------------------------------------------------------------------------------------ IEMOCAP


def iemocap_metrics(logits: Any, labels: Any, emotions: Sequence[str] = IEMOCAP_EMOTIONS) -> dict[str, float]:
    """Per-emotion accuracy and weighted F1 of IEMOCAP's independent binary tasks, plus `avg_acc`.

    `logits` (N, 2K) or (N, K, 2) — the (N, 2K) layout is K consecutive [absent, present] pairs,
    as the original's `.view(-1, 4, 2)` reads it; `labels` (N, K) with 0 = absent, 1 = present.
    Per emotion the prediction is the argmax of its pair (first index on ties). `avg_acc`, the
    mean of the K accuracies, is CausalMER's model-selection metric (spec §4.1); `avg_f1` is the
    mean of the K F1s (the original prints it; it selects nothing); `top1_acc` the K-way reading of the
    same logits on single-label samples (`top1_accuracy`).
    """
    k = len(emotions)
    z, y = _as_f64(logits), _as_f64(labels)
    if z.ndim == 2 and z.shape[1] == 2 * k:
        z = z.reshape(z.shape[0], k, 2)
    if z.ndim != 3 or z.shape[1:] != (k, 2):
        raise ValueError(f"logits must have shape (N, {2 * k}) or (N, {k}, 2), got {z.shape}")
    if y.shape != (z.shape[0], k):
        raise ValueError(f"labels must have shape ({z.shape[0]}, {k}), got {y.shape}")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("IEMOCAP labels must be 0 (absent) or 1 (present)")
    pred = z.argmax(axis=2).astype(np.float64)
    out: dict[str, float] = {}
    accs, f1s = [], []
    for j, name in enumerate(emotions):
        acc = float(np.mean(pred[:, j] == y[:, j])) if y.shape[0] else NAN
        f1 = weighted_f1(y[:, j], pred[:, j])
        out[f"acc_{name}"], out[f"f1_{name}"] = acc, f1
        accs.append(acc)
        f1s.append(f1)
    out["avg_acc"] = float(np.mean(accs))
    out["avg_f1"] = float(np.mean(f1s))
    out["top1_acc"] = top1_accuracy(z, y)
    return out


def top1_accuracy(logits: Any, labels: Any) -> float:
    """The K binary tasks read as one K-way choice: over the samples with exactly one emotion present, how
    often that emotion has the largest present − absent margin (the argmax of a softmax over the K margins).

    avg_acc over K binary tasks compresses differences (all-"absent" already scores 1 − 1/K; one wrong
    single-label choice costs 2/K), so single-label data (e.g. `synthetic_mm`) also reports this.
    `logits` (N, K, 2), `labels` (N, K) in {0, 1}; NaN when no sample has exactly one emotion present.
    """
    z, y = _as_f64(logits), _as_f64(labels)
    single = y.sum(axis=1) == 1
    if not single.any():
        return NAN
    margin = z[single, :, 1] - z[single, :, 0]
    return float(np.mean(margin.argmax(axis=1) == y[single].argmax(axis=1)))


# -------------------------------------------------------------------------------------------- MOSEI


def mosei_cls_scores(logits7: Any) -> np.ndarray:
    """Sentiment scores of a 7-class MOSEI model: argmax − 3 ∈ {−3..3} (first index on ties), float64 (N,)."""
    z = _as_f64(logits7)
    if z.ndim != 2 or z.shape[1] != 7:
        raise ValueError(f"MOSEI class logits must have shape (N, 7), got {z.shape}")
    return z.argmax(axis=1).astype(np.float64) - 3.0


MOSEI_BINARY = ("standard", "causalmer", "mult")


def binary_f1(y_true: Any, y_pred: Any) -> float:
    """sklearn's default `f1_score` (average="binary"): F1 of the positive class (True / 1), from counts.

    0.0 when there is no positive in either vector (sklearn's zero_division default); NaN when empty."""
    t, p = _as_f64(y_true).ravel() > 0, _as_f64(y_pred).ravel() > 0
    if t.size == 0:
        return NAN
    tp, fp, fn = float(np.sum(t & p)), float(np.sum(~t & p)), float(np.sum(t & ~p))
    return 2.0 * tp / (2.0 * tp + fp + fn) if tp + fp + fn > 0 else 0.0


def mosei_metrics(
    pred_scores: Any, true_scores: Any, f1_support: str = "true", binary: str = "standard"
) -> dict[str, float]:
    """CMU-MOSEI sentiment metrics of predicted scores against the labels' scores in [−3, 3].

    `pred_scores` are regression outputs, or `mosei_cls_scores(logits)` for a 7-class model; both
    arrays are flattened ((N,), (N, 1), (N, 1, 1) are all one score per sample).
    - `acc7` = mean(round(clip(p, ±3)) == round(clip(y, ±3))); `acc5` the same with clip ±2.
    - `mae` = mean |p − y|; `corr` = Pearson's r; all over every sample. NaN where a quantity has no
      sample (or `corr` a constant series).
    - the two binary pairs, `acc2_has0` / `f1_has0` (zeros kept) and `acc2_non0` / `f1_non0` (samples
      with y = 0 dropped), by the definition `binary` names:

    | binary | has-0 pair | non-0 pair (y ≠ 0) | F1 |
    |---|---|---|---|
    | `standard` (default) | y ≥ 0 vs p ≥ 0 | y > 0 vs p > 0 | weighted by the true classes |
    | `causalmer` | y ≥ 0 vs p ≥ 0 | y > 0 vs p ≥ 0 | binary (F1 of the positive class) |
    | `mult` | y > 0 vs p > 0 | y > 0 vs p > 0 | weighted by the *predicted* classes |

    - `standard`: the usual has-0 / non-0 pair of the MOSEI literature, sklearn's weighting.
    - `causalmer`: CausalMER's `eval_mosei_senti` for its 7-class model (p = argmax − 3, so "class ≥ 3"
      is p ≥ 0: a neutral prediction counts as positive in the non-0 pair too), with sklearn's default
      binary F1. (With regression outputs its code uses p > 0 in the non-0 pair; the two differ only for
      a prediction of exactly 0.)
    - `mult`: MulT's `eval_mosei_senti`: exclude_zero=False (every sample, a zero label counts as
      negative) for the has-0 pair, exclude_zero=True (its final test) for the non-0 pair, and its F1
      call `f1_score(p > 0, y > 0, average="weighted")`, predictions first.

    `f1_support="pred"` weights `standard`'s F1 by the predicted classes (MulT's argument order) and is
    refused with the other definitions, which fix their own F1.
    """
    if f1_support not in ("true", "pred"):
        raise ValueError(f"f1_support must be 'true' or 'pred', got {f1_support!r}")
    if binary not in MOSEI_BINARY:
        raise ValueError(f"binary must be one of {', '.join(MOSEI_BINARY)}, got {binary!r}")
    if binary != "standard" and f1_support != "true":
        raise ValueError(f"f1_support applies to binary='standard'; binary={binary!r} fixes its own F1")
    p, y = _as_f64(pred_scores).ravel(), _as_f64(true_scores).ravel()
    if p.shape != y.shape:
        raise ValueError(
            f"mosei_metrics needs one predicted score per label, got {p.size} predictions for {y.size} labels "
            "(for (N, 7) class logits pass mosei_cls_scores(logits))"
        )

    def f1(truth: np.ndarray, pred: np.ndarray) -> float:
        if binary == "causalmer":
            return binary_f1(truth, pred)
        if binary == "mult" or f1_support == "pred":
            return weighted_f1(pred, truth)
        return weighted_f1(truth, pred)

    def mean(a: np.ndarray) -> float:
        return float(np.mean(a)) if a.size else NAN

    nz = y != 0
    if binary == "mult":
        y0, p0 = y > 0, p > 0
    else:
        y0, p0 = y >= 0, p >= 0
    y2, p2 = y[nz] > 0, (p[nz] >= 0) if binary == "causalmer" else (p[nz] > 0)
    return {
        "acc7": mean(np.round(np.clip(p, -3.0, 3.0)) == np.round(np.clip(y, -3.0, 3.0))),
        "acc5": mean(np.round(np.clip(p, -2.0, 2.0)) == np.round(np.clip(y, -2.0, 2.0))),
        "acc2_has0": mean(y0 == p0),
        "f1_has0": f1(y0, p0),
        "acc2_non0": mean(y2 == p2),
        "f1_non0": f1(y2, p2),
        "mae": mean(np.abs(p - y)),
        "corr": _pearson(p, y),
    }


# --------------------------------------------------------------------------- missing-modality tests


def removal_settings(modalities: str = "tav") -> tuple[str, ...]:
    """The non-empty proper subsets of the modalities, as `--remove` strings: t a v ta tv av (spec §4.3)."""
    return tuple("".join(c) for r in range(1, len(modalities)) for c in combinations(modalities, r))


REMOVAL_SETTINGS = removal_settings("tav")


def _metric(scores: Mapping[str, Any], metric: str, where: str) -> float:
    if metric not in scores:
        raise FermixError(f"metric {metric!r} is not among the {where} metrics ({', '.join(sorted(scores))})")
    return _value(scores[metric])


def _higher_is_better(metric: str, higher_is_better: bool | None) -> bool:
    return metric not in LOWER_IS_BETTER if higher_is_better is None else higher_is_better


def drop_gaps(
    full: Mapping[str, Any],
    removed: Mapping[str, Mapping[str, Any]],
    metric: str,
    higher_is_better: bool | None = None,
) -> dict[str, float]:
    """Drop gap of `metric` per removal setting: full − removed, so a positive gap = worse without it.

    For a lower-is-better metric (`mae`, inferred from `LOWER_IS_BETTER` when `higher_is_better`
    is None) the gap is removed − full, keeping that sign convention.
    """
    base = _metric(full, metric, "full-modality")
    sign = 1.0 if _higher_is_better(metric, higher_is_better) else -1.0
    return {name: sign * (base - _metric(scores, metric, f"remove={name}")) for name, scores in removed.items()}


def gap_std(gaps: Mapping[str, float], ddof: int = 0) -> float:
    """Spread of the drop gaps across removal settings, the paper's balance statistic (lower = more balanced).

    Population std (ddof 0) by default: the settings are the whole set, not a sample; the paper's
    choice is unknown. NaN with fewer than ddof + 1 gaps, or when a gap is NaN.
    """
    values = np.array([_value(g) for g in gaps.values()], dtype=np.float64)
    if values.size <= ddof:
        return NAN
    return float(np.std(values, ddof=ddof))


def modality_contribution(
    full: Mapping[str, Any],
    removed_single: Mapping[str, Mapping[str, Any]],
    metric: str,
    modalities: Sequence[str] = ("t", "a", "v"),
    higher_is_better: bool | None = None,
) -> dict[str, float]:
    """Share of each modality in the model's performance, spec §4.3 (a).

    contribution_m = drop of `metric` when only m is removed, normalised to sum to 1 over
    `modalities` (other entries of `removed_single`, e.g. two-modality removals, are ignored).
    A negative drop (the model does better without m) is clipped to 0 before normalising, so
    shares stay in [0, 1]; when no removal hurts (all drops ≤ 0) the shares are undefined and
    every one is NaN, as it is when any drop is NaN.
    """
    missing = [m for m in modalities if m not in removed_single]
    if missing:
        raise FermixError(f"modality contribution needs a remove={missing[0]} evaluation, which is missing")
    gaps = drop_gaps(full, {m: removed_single[m] for m in modalities}, metric, higher_is_better)
    drops = np.array([gaps[m] for m in modalities], dtype=np.float64)
    clipped = np.clip(drops, 0.0, None)
    total = clipped.sum()
    if not np.isfinite(total) or total <= 0:
        return {m: NAN for m in modalities}
    return {m: float(c / total) for m, c in zip(modalities, clipped, strict=True)}
