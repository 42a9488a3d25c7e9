"""Expression-classification metrics accumulated over a whole split.

Balanced accuracy averaged over batches is not balanced accuracy (DESIGN §11.5): every number
here comes from counts summed over all `update` calls (and, under DDP, over all ranks, since
torchmetrics states are reduced with a sum), and is divided only in `compute`.

Class-averaged numbers (`mean_class_acc`, `macro_f1`) average over the classes that occur in
the targets of the split (support > 0). Averaging over all `num_classes` would count a class the
split does not contain as recall 0 and understate the score; sklearn's `balanced_accuracy_score`
uses the same "classes present in y_true" rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassF1Score

__all__ = ["ExpressionMetrics", "scalar_metrics"]


class ExpressionMetrics(nn.Module):
    """Accuracy, mean class accuracy, macro F1, per-class accuracy and confusion for one split.

    Call `update(logits, target)` per batch, `compute()` once per split, `reset()` between
    splits/epochs. Targets equal to `ignore_index` (unlabelled samples) are skipped. Being an
    nn.Module, it follows `.to(device)` of the model that owns it.

    `compute()` returns tensors:
      acc             overall (micro) accuracy over labelled samples
      mean_class_acc  mean recall over classes with support > 0 (balanced accuracy)
      macro_f1        mean F1 over classes with support > 0
      per_class_acc   recall per class, shape (C,); NaN for classes absent from the targets
      confusion       counts, shape (C, C), int64, rows = true class, columns = prediction
    Scalars are NaN when the split has no labelled sample.
    """

    def __init__(self, num_classes: int, ignore_index: int = -1, sync_across_ranks: bool = True) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        if 0 <= ignore_index < num_classes:
            raise ValueError(f"ignore_index {ignore_index} is a class index (0..{num_classes - 1})")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        # sync_across_ranks=False for evaluation that one process does alone (the other ranks of
        # a DDP job may have finished): compute() must not wait for them.
        kw: dict[str, Any] = {
            "num_classes": num_classes,
            "ignore_index": ignore_index,
            "sync_on_compute": sync_across_ranks,
        }
        self.class_acc = MulticlassAccuracy(average="none", **kw)
        self.class_f1 = MulticlassF1Score(average="none", **kw)
        self.confmat = MulticlassConfusionMatrix(**kw)

    def _metrics(self) -> tuple[MulticlassAccuracy, MulticlassF1Score, MulticlassConfusionMatrix]:
        return self.class_acc, self.class_f1, self.confmat

    @torch.no_grad()
    def update(self, logits: Tensor, target: Tensor) -> None:
        """Add one batch: logits (or probabilities) B×C, integer targets B (ignore_index = unlabelled)."""
        if logits.ndim != 2 or logits.shape[1] != self.num_classes:
            raise ValueError(f"logits must have shape (B, {self.num_classes}), got {tuple(logits.shape)}")
        if target.ndim != 1 or target.shape[0] != logits.shape[0]:
            raise ValueError(
                f"target must have shape ({logits.shape[0]},) to match logits, got {tuple(target.shape)}"
            )
        if target.shape[0] == 0:  # torchmetrics cannot reshape an empty batch; it adds nothing anyway
            return
        target = target.long()
        logits = logits.detach()
        for metric in self._metrics():
            metric.update(logits, target)

    def compute(self) -> dict[str, Tensor]:
        """Metrics over everything seen since the last reset (synchronised across ranks under DDP)."""
        confusion = self.confmat.compute().long()
        per_class = self.class_acc.compute().float()
        f1 = self.class_f1.compute().float()

        support = confusion.sum(dim=1)
        present = support > 0
        total = support.sum()
        nan = torch.tensor(float("nan"), device=per_class.device)
        acc = confusion.diagonal().sum().float() / total.float() if total > 0 else nan
        per_class = torch.where(present, per_class, nan)
        mean_class_acc = per_class[present].mean() if present.any() else nan
        macro_f1 = f1[present].mean() if present.any() else nan
        return {
            "acc": acc,
            "mean_class_acc": mean_class_acc,
            "macro_f1": macro_f1,
            "per_class_acc": per_class,
            "confusion": confusion,
        }

    def reset(self) -> None:
        """Forget all accumulated counts (call between epochs and between splits)."""
        for metric in self._metrics():
            metric.reset()


def scalar_metrics(d: Mapping[str, Any]) -> dict[str, float]:
    """The single-number entries of `d` as python floats (vectors/matrices dropped), for logs and JSON.

    NaN is kept as float('nan'); utils.io.atomic_write_json turns it into null.
    """
    out: dict[str, float] = {}
    for name, value in d.items():
        if isinstance(value, Tensor):
            if value.numel() == 1:
                out[name] = float(value.detach().cpu().item())
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = float(value)
        elif hasattr(value, "item") and getattr(value, "size", None) == 1:  # numpy scalar / 1-element array
            out[name] = float(value.item())
    return out
