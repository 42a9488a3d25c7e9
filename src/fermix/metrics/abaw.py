"""ABAW 2020 challenge metrics (Aff-Wild2: AU, EXPR, VA) for the `multitask` method (spec §5, §6).

Two forms of the same numbers:
- pure functions over whole-split arrays (numpy float64; torch tensors are accepted), used for
  threshold search, ensembles and `fermix test`-style exact evaluation;
- torchmetrics accumulators (`AUMetrics`, `VAMetrics`) for validation under DDP: they add up
  counts and moments per batch, torchmetrics reduces the states with a sum across ranks, and
  the score is formed only in `compute`, from the same count formulas as the pure functions.

Conventions (each a choice the original code makes or implies):
- Unlabelled rows are left out as a whole: an AU row with any NaN (or negative, the −1 of
  DESIGN §1) target, an EXPR row with a negative target, a VA row with any NaN target. The
  original drops a frame when any of its values is the discard value (spec §4).
- AU decoding is `prob > threshold` (strict), as the original `test.py` applies its thresholds.
- F1 of one AU is 2TP / (2TP + FP + FN), and 0 when that denominator is 0 (no positive and no
  predicted positive): sklearn's `f1_score(zero_division=0)`, which is also what the original's
  sklearn call returned (with a warning) for such an AU.
- EXPR macro F1 averages over the classes that occur in the targets *or* the predictions of the
  labelled rows: sklearn's `f1_score(average="macro")` without `labels`, as the original calls it.
  (fermix's `ExpressionMetrics.macro_f1` averages over classes present in the targets only.)
- CCC uses the population σ (the metric; the training loss uses torch.std and lives in the method).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric

__all__ = [
    "AUMetrics",
    "VAMetrics",
    "au_scores",
    "au_scores_from_counts",
    "average_thresholds",
    "ccc",
    "expr_scores",
    "expr_scores_from_confusion",
    "search_thresholds",
    "selection_score",
    "va_scores",
]

EXPR_F1_WEIGHT = 0.67
EXPR_ACC_WEIGHT = 0.33
NAN = float("nan")


def _as_f64(a: Any) -> np.ndarray:
    """numpy float64 copy of a tensor (any device, with or without grad) or array-like."""
    if isinstance(a, Tensor):
        a = a.detach().cpu().double().numpy()
    return np.asarray(a, dtype=np.float64)


def _check_2d(name: str, a: np.ndarray, cols: int | None = None) -> None:
    if a.ndim != 2 or (cols is not None and a.shape[1] != cols):
        want = f"(N, {cols})" if cols is not None else "(N, A)"
        raise ValueError(f"{name} must have shape {want}, got {a.shape}")


# --------------------------------------------------------------------------------------------- CCC


def ccc(x: Any, y: Any) -> float:
    """Concordance correlation 2ρσxσy / (σx² + σy² + (μx − μy)²) with population σ.

    Written as 2·cov/(...) (ρσxσy is the covariance), so a constant `x` against a varying `y`
    gives 0 instead of the 0/0 of ρ; NaN when empty or when both are the same constant.
    """
    x, y = _as_f64(x).ravel(), _as_f64(y).ravel()
    if x.shape != y.shape:
        raise ValueError(f"ccc needs two arrays of one length, got {x.size} and {y.size}")
    if x.size == 0:
        return NAN
    mx, my = x.mean(), y.mean()
    dx, dy = x - mx, y - my
    cov = np.mean(dx * dy)
    denom = np.mean(dx * dx) + np.mean(dy * dy) + (mx - my) ** 2
    return float(2.0 * cov / denom) if denom > 0 else NAN


def va_scores(pred: Any, target: Any) -> dict[str, float]:
    """CCC of valence and arousal over all labelled rows of the split (videos concatenated).

    `va_score` is the MEAN of the two (the ABAW challenge score); the original repo's
    `VA_metric` reports their SUM, so its numbers (e.g. issue #11's 0.85) are twice this.
    """
    p, t = _as_f64(pred), _as_f64(target)
    _check_2d("pred", p, 2)
    _check_2d("target", t, 2)
    if p.shape != t.shape:
        raise ValueError(f"pred and target must have one shape, got {p.shape} and {t.shape}")
    keep = ~np.isnan(t).any(axis=1)
    v, a = ccc(p[keep, 0], t[keep, 0]), ccc(p[keep, 1], t[keep, 1])
    return {"ccc_v": v, "ccc_a": a, "va_score": 0.5 * (v + a)}


# ---------------------------------------------------------------------------------------------- AU


def _au_labelled(targets: np.ndarray) -> np.ndarray:
    """Rows whose every AU is labelled (no NaN, no negative discard value)."""
    with np.errstate(invalid="ignore"):
        return ~(np.isnan(targets) | (targets < 0)).any(axis=1)


def _thresholds(thresholds: float | Sequence[float] | np.ndarray | Tensor, num_aus: int) -> np.ndarray:
    thr = _as_f64(thresholds)
    if thr.ndim == 0:
        return np.full(num_aus, float(thr))
    if thr.shape != (num_aus,):
        raise ValueError(f"thresholds must be one number or {num_aus} numbers, got shape {thr.shape}")
    return thr


def au_scores_from_counts(tp: Any, fp: Any, fn: Any, tn: Any) -> dict[str, float]:
    """S_AU = 0.5·mean-over-AUs binary F1 + 0.5·accuracy over the flattened N×A matrix, from per-AU counts.

    The one formula behind `au_scores` and `AUMetrics`; NaN when no labelled row was counted.
    """
    tp, fp, fn, tn = (_as_f64(c) for c in (tp, fp, fn, tn))
    total = float((tp + fp + fn + tn).sum())
    if total == 0:
        return {"au_f1": NAN, "au_acc": NAN, "au_score": NAN}
    denom = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(denom), where=denom > 0)  # zero_division=0
    f1_mean = float(f1.mean())
    acc = float((tp + tn).sum() / total)
    return {"au_f1": f1_mean, "au_acc": acc, "au_score": 0.5 * f1_mean + 0.5 * acc}


def _au_counts(pred: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, ...]:
    tp = (pred & positive).sum(axis=0)
    fp = (pred & ~positive).sum(axis=0)
    fn = (~pred & positive).sum(axis=0)
    tn = (~pred & ~positive).sum(axis=0)
    return tp, fp, fn, tn


def au_scores(
    probs: Any, targets: Any, thresholds: float | Sequence[float] | np.ndarray | Tensor = 0.5
) -> dict[str, float]:
    """ABAW AU score of probabilities (N, A) against 0/1 targets (N, A; NaN = unlabelled).

    `thresholds` is one number or one per AU (the tuned ones of `search_thresholds`); an AU is
    predicted present when its probability is strictly above its threshold.
    """
    p, t = _as_f64(probs), _as_f64(targets)
    _check_2d("probs", p)
    if t.shape != p.shape:
        raise ValueError(f"probs and targets must have one shape, got {p.shape} and {t.shape}")
    keep = _au_labelled(t)
    pred = p[keep] > _thresholds(thresholds, p.shape[1])
    return au_scores_from_counts(*_au_counts(pred, t[keep] >= 0.5))


def search_thresholds(probs: Any, targets: Any, method: str = "pr_breakeven") -> np.ndarray:
    """Per-AU decision thresholds tuned on a labelled split (spec §5).

    `pr_breakeven` (the original's choice) takes, on sklearn's precision-recall curve, the
    threshold where |precision − recall| is smallest; `max_f1` the one with the highest F1.
    The curve's last point (precision 1, recall 0) has no threshold and is dropped. An AU
    whose labelled rows have no positive or no negative keeps 0.5. Ties go to the lowest
    threshold (numpy's first arg-min/-max).
    """
    from sklearn.metrics import precision_recall_curve  # imported here: sklearn is slow to import

    if method not in ("pr_breakeven", "max_f1"):
        raise ValueError(f"threshold search method must be 'pr_breakeven' or 'max_f1', got {method!r}")
    p, t = _as_f64(probs), _as_f64(targets)
    _check_2d("probs", p)
    if t.shape != p.shape:
        raise ValueError(f"probs and targets must have one shape, got {p.shape} and {t.shape}")
    keep = _au_labelled(t)
    p, positive = p[keep], t[keep] >= 0.5
    out = np.full(p.shape[1], 0.5)
    for j in range(p.shape[1]):
        y = positive[:, j]
        if y.all() or not y.any():
            continue
        precision, recall, thr = precision_recall_curve(y, p[:, j])
        precision, recall = precision[: len(thr)], recall[: len(thr)]
        if method == "pr_breakeven":
            k = int(np.argmin(np.abs(precision - recall)))
        else:
            s = precision + recall
            f1 = np.divide(2 * precision * recall, s, out=np.zeros_like(s), where=s > 0)
            k = int(np.argmax(f1))
        out[j] = float(thr[k])
    return out


def average_thresholds(thresholds: Sequence[Any]) -> np.ndarray:
    """Mean of the ensemble members' per-AU thresholds: the intent of the original, whose
    indentation bug kept only the last member's (the spec's [fix] of §5)."""
    if len(thresholds) == 0:
        raise ValueError("average_thresholds needs at least one member's thresholds")
    stacked = np.stack([_as_f64(t) for t in thresholds])
    if stacked.ndim != 2:
        raise ValueError(f"each member's thresholds must be a vector (A,), got shape {stacked.shape[1:]}")
    return stacked.mean(axis=0)


# -------------------------------------------------------------------------------------------- EXPR


def expr_scores_from_confusion(confusion: Any) -> dict[str, float]:
    """S_EXPR = 0.67·macro F1 + 0.33·accuracy from a confusion matrix (rows true, columns predicted).

    Macro F1 averages over the classes with a true or a predicted sample, as sklearn's
    `f1_score(average="macro")`; NaN when the matrix is empty.
    """
    cm = _as_f64(confusion)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion must be a square matrix, got shape {cm.shape}")
    total = cm.sum()
    if total == 0:
        return {"expr_f1": NAN, "expr_acc": NAN, "expr_score": NAN}
    tp = np.diag(cm)
    true_n, pred_n = cm.sum(axis=1), cm.sum(axis=0)
    seen = (true_n + pred_n) > 0
    f1 = 2 * tp[seen] / (true_n[seen] + pred_n[seen])
    macro = float(f1.mean())
    acc = float(tp.sum() / total)
    return {"expr_f1": macro, "expr_acc": acc, "expr_score": EXPR_F1_WEIGHT * macro + EXPR_ACC_WEIGHT * acc}


def expr_scores(logits_or_probs: Any, targets: Any) -> dict[str, float]:
    """ABAW EXPR score of logits or probabilities (N, C) — or class indices (N,) — against
    integer targets (N,; negative = unlabelled)."""
    scores = _as_f64(logits_or_probs)
    y = _as_f64(targets)
    if y.ndim != 1 or scores.ndim not in (1, 2) or scores.shape[0] != y.shape[0]:
        raise ValueError(
            f"expr_scores needs predictions (N, C) or (N,) and targets (N,), got {scores.shape} and {y.shape}"
        )
    pred = scores.argmax(axis=1) if scores.ndim == 2 else scores.astype(np.int64)
    keep = y >= 0
    y_true, y_pred = y[keep].astype(np.int64), pred[keep]
    if y_true.size == 0:
        return {"expr_f1": NAN, "expr_acc": NAN, "expr_score": NAN}
    if y_pred.min() < 0:
        raise ValueError("predicted class indices must be non-negative")
    num_classes = int(max(scores.shape[1] if scores.ndim == 2 else 0, y_true.max() + 1, y_pred.max() + 1))
    cm = np.zeros((num_classes, num_classes))
    np.add.at(cm, (y_true, y_pred), 1.0)
    return expr_scores_from_confusion(cm)


# --------------------------------------------------------------------------------------- selection


def selection_score(scores: Mapping[str, Any]) -> float:
    """Checkpoint-selection number of the original (spec §5): AU score (at 0.5) + EXPR score + CCC_V + CCC_A.

    A task that is missing — or NaN because the split has no label for it — counts 0, so a
    run on a subset of the tasks still ranks its epochs.
    """
    total = 0.0
    for key in ("au_score", "expr_score", "ccc_v", "ccc_a"):
        value = scores.get(key)
        if value is None:
            continue
        value = float(value.detach().cpu().item()) if isinstance(value, Tensor) else float(value)
        if not np.isnan(value):
            total += value
    return total


# ----------------------------------------------------------------------------- DDP-safe accumulators


class AUMetrics(Metric):
    """ABAW AU F1 / accuracy / score over a split, from per-AU TP/FP/FN/TN summed over batches and ranks.

    `update(au_logits (B, A), au_targets (B, A))` skips rows with any NaN (or negative) target;
    `compute()` returns float64 tensors `au_f1`, `au_acc`, `au_score` (NaN if nothing was seen).
    """

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(
        self,
        num_aus: int,
        threshold: float | Sequence[float] = 0.5,
        sync_across_ranks: bool = True,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("sync_on_compute", sync_across_ranks)
        super().__init__(**kwargs)
        if num_aus < 1:
            raise ValueError(f"num_aus must be at least 1, got {num_aus}")
        self.num_aus = num_aus
        # a buffer (not a state): follows .to(device), not reset, not synchronised, not saved
        self.register_buffer("threshold", torch.from_numpy(_thresholds(threshold, num_aus)), persistent=False)
        for name in ("tp", "fp", "fn", "tn"):
            self.add_state(name, default=torch.zeros(num_aus, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, au_logits: Tensor, au_targets: Tensor) -> None:
        """Add one batch of AU logits and 0/1 targets (NaN rows are unlabelled)."""
        if au_logits.ndim != 2 or au_logits.shape[1] != self.num_aus:
            raise ValueError(f"au_logits must have shape (B, {self.num_aus}), got {tuple(au_logits.shape)}")
        if au_targets.shape != au_logits.shape:
            raise ValueError(
                f"au_targets must have the shape of au_logits {tuple(au_logits.shape)}, got {tuple(au_targets.shape)}"
            )
        targets = au_targets.detach()
        keep = ~(torch.isnan(targets) | (targets < 0)).any(dim=1)
        # compared in float64, as `au_scores` compares the float64 copy of the same probabilities
        probs = torch.sigmoid(au_logits.detach()[keep]).double()
        pred = probs > self.threshold
        positive = targets[keep] >= 0.5
        self.tp += (pred & positive).sum(dim=0)
        self.fp += (pred & ~positive).sum(dim=0)
        self.fn += (~pred & positive).sum(dim=0)
        self.tn += (~pred & ~positive).sum(dim=0)

    def compute(self) -> dict[str, Tensor]:
        """Scores over everything seen since the last reset (synchronised across ranks under DDP)."""
        out = au_scores_from_counts(self.tp, self.fp, self.fn, self.tn)
        return {k: torch.tensor(v, dtype=torch.float64, device=self.tp.device) for k, v in out.items()}


class VAMetrics(Metric):
    """CCC of valence and arousal over a split, from per-dimension moments summed in float64.

    States are n, Σx, Σy, Σx², Σy², Σxy per dimension (x = prediction, y = target), so the
    population CCC of the concatenated split comes out of sums alone. `update(va_pred (B, 2),
    va_target (B, 2))` skips rows with a NaN target; `compute()` returns float64 tensors
    `ccc_v`, `ccc_a` and `va_score` (their mean).
    """

    full_state_update = False
    higher_is_better = True
    is_differentiable = False
    _names = ("n", "sx", "sy", "sxx", "syy", "sxy")

    def __init__(self, sync_across_ranks: bool = True, **kwargs: Any) -> None:
        kwargs.setdefault("sync_on_compute", sync_across_ranks)
        super().__init__(**kwargs)
        for name in self._names:
            self.add_state(name, default=torch.zeros(2, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, va_pred: Tensor, va_target: Tensor) -> None:
        """Add one batch of (valence, arousal) predictions and targets (NaN rows are unlabelled)."""
        if va_pred.ndim != 2 or va_pred.shape[1] != 2:
            raise ValueError(f"va_pred must have shape (B, 2), got {tuple(va_pred.shape)}")
        if va_target.shape != va_pred.shape:
            raise ValueError(f"va_target must have shape {tuple(va_pred.shape)}, got {tuple(va_target.shape)}")
        keep = ~torch.isnan(va_target.detach()).any(dim=1)
        x = va_pred.detach()[keep].double()
        y = va_target.detach()[keep].double()
        self.n += x.shape[0]
        self.sx += x.sum(dim=0)
        self.sy += y.sum(dim=0)
        self.sxx += (x * x).sum(dim=0)
        self.syy += (y * y).sum(dim=0)
        self.sxy += (x * y).sum(dim=0)

    def compute(self) -> dict[str, Tensor]:
        """CCC per dimension: 2·cov / (var_x + var_y + (μx − μy)²), population moments."""
        n = self.n
        mx, my = self.sx / n, self.sy / n
        cov = self.sxy / n - mx * my
        denom = self.sxx / n + self.syy / n - 2 * mx * my  # = var_x + var_y + (μx − μy)²
        value = 2 * cov / denom
        nan = torch.full_like(value, NAN)
        value = torch.where((n > 0) & (denom > 0), value, nan)
        return {"ccc_v": value[0], "ccc_a": value[1], "va_score": value.mean()}
