"""Exact evaluation of one split, in one process, and the artefacts it leaves in the run dir.

Evaluation deliberately runs outside Lightning's loops: one device, the whole split, no
DistributedSampler padding (which repeats samples), so the numbers are exact and the same as
`fermix test` gives later from the checkpoint alone.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from fermix.engine.artifacts import plot_confusion_matrix, write_predictions_csv
from fermix.methods.base import Method
from fermix.metrics import ExpressionMetrics, scalar_metrics

log = logging.getLogger("fermix")


def resolve_device(accelerator: str | None) -> torch.device:
    accelerator = (accelerator or "auto").lower()
    if accelerator == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if accelerator == "gpu":
        accelerator = "cuda"
    return torch.device(accelerator)


def _autocast(device: torch.device, precision: str | None) -> contextlib.AbstractContextManager:
    precision = str(precision or "32")
    if precision.startswith("16"):
        return torch.autocast(device.type, dtype=torch.float16)
    if precision.startswith("bf16"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _to(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


@torch.inference_mode()
def predict_split(
    method: Method, loader: DataLoader, device: torch.device, precision: str | None = None
) -> dict[str, Any]:
    """Run `method.predict` over a loader; returns ids, targets and concatenated CPU outputs."""
    was_training = method.training
    method.eval().to(device)
    ids: list[str] = []
    targets: list[torch.Tensor] = []
    outputs: dict[str, list[torch.Tensor]] = {}
    try:
        for batch in loader:
            batch = _to(batch, device)
            with _autocast(device, precision):
                out = method.predict(batch)
            ids += list(batch["sample_id"])
            targets.append(batch["expr"].cpu())
            for k, v in out.items():
                outputs.setdefault(k, []).append(v.float().cpu())
    finally:
        method.train(was_training)
    return {
        "sample_id": ids,
        "expr": torch.cat(targets),
        **{k: torch.cat(v) for k, v in outputs.items()},
    }


def evaluate_split(
    method: Method,
    loader: DataLoader,
    split: str,
    out_dir: Path,
    *,
    device: torch.device,
    precision: str | None = None,
    target_map: torch.Tensor | None = None,
) -> dict[str, Any]:
    """Metrics of one split, plus predictions_<split>.csv and confusion_<split>.png in out_dir.

    `target_map` maps the evaluation dataset's label indices to the model's (cross-dataset
    evaluation); −1 marks classes the model does not know, which are left out.
    """
    preds = predict_split(method, loader, device, precision)
    targets = preds["expr"]
    if target_map is not None:
        valid = targets >= 0
        targets = torch.where(valid, target_map[targets.clamp(min=0)], targets)
    logits = preds["expr_logits"]
    class_names = list(method.data_info.label_space.classes)
    metrics = ExpressionMetrics(len(class_names), sync_across_ranks=False)
    metrics.update(logits, targets)
    values = metrics.compute()
    out_dir.mkdir(parents=True, exist_ok=True)
    write_predictions_csv(
        out_dir / f"predictions_{split}.csv", preds["sample_id"], targets, logits.softmax(-1), class_names
    )
    plot_confusion_matrix(
        out_dir / f"confusion_{split}.png", values["confusion"].numpy(), class_names, title=f"{split} split"
    )
    return {
        "metrics": scalar_metrics(values),
        "num_samples": len(targets),
        "per_class_acc": dict(zip(class_names, values["per_class_acc"].tolist(), strict=True)),
        "confusion": values["confusion"].tolist(),
    }
