"""Exact evaluation of one split, in one process, and the artefacts it leaves in the run dir.

Evaluation deliberately runs outside Lightning's loops: one device, the whole split, no
DistributedSampler padding (which repeats samples), so the numbers are exact and the same as
`fermix test` gives later from the checkpoint alone.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, default_collate

from fermix.engine.artifacts import plot_confusion_matrix, save_figure, write_predictions_csv
from fermix.methods.base import Method
from fermix.metrics import ExpressionMetrics, scalar_metrics
from fermix.metrics.tasks import exact_task_metrics
from fermix.utils.io import atomic_write_bytes

log = logging.getLogger("fermix")


def resolve_device(accelerator: str | None) -> torch.device:
    accelerator = (accelerator or "auto").lower()
    if accelerator == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if accelerator == "gpu":
        accelerator = "cuda"
    return torch.device(accelerator)


def autocast(device: torch.device, precision: str | None) -> contextlib.AbstractContextManager:
    precision = str(precision or "32")
    if precision.startswith("16"):
        return torch.autocast(device.type, dtype=torch.float16)
    if precision.startswith("bf16"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def _map_targets(expr: torch.Tensor, target_map: torch.Tensor | None) -> torch.Tensor:
    """Labels of the evaluation dataset -> the model's label indices (−1 stays −1)."""
    if target_map is None:
        return expr
    target_map = target_map.to(expr.device)
    return torch.where(expr >= 0, target_map[expr.clamp(min=0)], expr)


TARGET_KEYS = ("expr", "au", "va", "score")  # the labels evaluation collects, when the batches carry them


@torch.inference_mode()
def predict_split(
    method: Method,
    loader: DataLoader,
    device: torch.device,
    precision: str | None = None,
    target_map: torch.Tensor | None = None,
    transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Run `method.predict` over a loader; returns ids, targets and concatenated CPU outputs.

    The result holds `sample_id`, the predict outputs by name, `targets` ({expr, au, va}: those
    the batches carry) and, for convenience, `expr` = targets["expr"]. With `target_map`, the
    batch's `expr` is moved into the model's label space before `predict` sees it (a method may
    read the true label at evaluation, e.g. for a true-class CAM). `transform` changes each batch
    before `predict` sees it (an evaluation protocol's, e.g. zeroing an input modality).
    """
    was_training = method.training
    method.eval().to(device)
    ids: list[str] = []
    targets: dict[str, list[torch.Tensor]] = {}
    outputs: dict[str, list[torch.Tensor]] = {}
    try:
        for batch in loader:
            batch = to_device(batch, device)
            if "expr" in batch:
                batch["expr"] = _map_targets(batch["expr"], target_map)
            if transform is not None:
                batch = transform(batch)
            with autocast(device, precision):
                out = method.predict(batch)
            ids += list(batch["sample_id"])
            for key in TARGET_KEYS:
                if key in batch:
                    targets.setdefault(key, []).append(batch[key].cpu())
            for k, v in out.items():
                outputs.setdefault(k, []).append(v.float().cpu())
    finally:
        method.train(was_training)
    collected = {k: torch.cat(v) for k, v in targets.items()}
    result: dict[str, Any] = {"sample_id": ids, **{k: torch.cat(v) for k, v in outputs.items()}}
    result["targets"] = collected
    if "expr" in collected:
        result["expr"] = collected["expr"]
    return result


def evaluate_split(
    method: Method,
    loader: DataLoader,
    split: str,
    out_dir: Path,
    *,
    device: torch.device,
    precision: str | None = None,
    target_map: torch.Tensor | None = None,
    predictions: dict[str, Any] | None = None,
    transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Metrics of one split, plus predictions_<split>.csv and confusion_<split>.png in out_dir.

    Expression metrics need `expr_logits` and expression labels; the other label tasks are scored
    as fermix.metrics.tasks lists them, when the outputs and labels are there. The method's optional hooks add to this:
    `evaluation_metrics` (its split-level metrics join the engine's, so they are printed and
    stored in summary.json), `derived_metrics`, and `evaluation_figures` (written as
    <name>_<split>.png next to the confusion matrix).

    `target_map` maps the evaluation dataset's label indices to the model's (cross-dataset
    evaluation); −1 marks classes the model does not know, which are left out. `predictions`
    (a `predict_split` result of this loader) skips the forward pass; `transform` changes each batch
    before `predict` sees it (see `predict_split`).
    """
    if predictions is None:
        predictions = predict_split(method, loader, device, precision, target_map, transform=transform)
    preds = predictions
    targets = preds["targets"]
    outputs = {k: v for k, v in preds.items() if k not in ("sample_id", "expr", "targets")}
    class_names = list(method.data_info.label_space.classes)
    out_dir.mkdir(parents=True, exist_ok=True)
    scalars: dict[str, float] = {}
    values: dict[str, torch.Tensor] = {}
    has_expr = "expr_logits" in outputs and "expr" in targets and targets["expr"].ndim == 1
    if has_expr:
        logits = outputs["expr_logits"]
        metrics = ExpressionMetrics(len(class_names), sync_across_ranks=False)
        metrics.update(logits, targets["expr"])
        values = metrics.compute()
        scalars = scalar_metrics(values)
        write_predictions_csv(
            out_dir / f"predictions_{split}.csv", preds["sample_id"], targets["expr"], logits.softmax(-1), class_names
        )
        plot_confusion_matrix(
            out_dir / f"confusion_{split}.png", values["confusion"].numpy(), class_names, title=f"{split} split"
        )
    scalars.update(exact_task_metrics(outputs, targets))
    for extra in (method.evaluation_metrics(outputs, targets), method.derived_metrics(dict(scalars))):
        clash = sorted(set(extra) & set(scalars))
        if clash:
            raise ValueError(f"method {method.name} reports metric {clash[0]!r}, which the engine already computes")
        scalars.update({name: float(value) for name, value in extra.items()})
    if has_expr and method.figure_samples_per_class > 0:
        batch = figure_batch(loader.dataset, targets["expr"], method.figure_samples_per_class, target_map)
        if batch is not None:
            write_method_figures(method, to_device(batch, device), split, out_dir)
    return {
        "metrics": scalars,
        "num_samples": len(preds["sample_id"]),
        "per_class_acc": dict(zip(class_names, values["per_class_acc"].tolist(), strict=True)) if has_expr else {},
        "confusion": values["confusion"].tolist() if has_expr else [],
        "predictions": preds,
    }


def figure_batch(
    dataset: Any, targets: torch.Tensor, per_class: int, target_map: torch.Tensor | None
) -> dict[str, Any] | None:
    """The first `per_class` samples of each class, in class order, as one collated batch.

    `targets` are in dataset order (the evaluation loader is sequential, so position i of the
    predictions is dataset index i).
    """
    picked = []
    for c in targets[targets >= 0].unique().tolist():
        picked += (targets == c).nonzero()[:per_class, 0].tolist()
    if not picked:
        return None
    batch = default_collate([dataset[i] for i in picked])
    if "expr" in batch:
        batch["expr"] = _map_targets(batch["expr"], target_map)
    return batch


@contextlib.contextmanager
def evaluation_mode(method: Method, device: torch.device, precision: str | None = None) -> Iterator[None]:
    """Eval mode, gradients off, the run's autocast, and out of Lightning's inference mode (whose
    tensors a method's Grad-CAM could not differentiate); restores the training flag on exit."""
    was_training = method.training
    method.eval()
    try:
        with torch.inference_mode(False), torch.no_grad(), autocast(device, precision):
            yield
    finally:
        method.train(was_training)


def method_figures(
    method: Method, batch: Mapping[str, Any], device: torch.device, precision: str | None = None
) -> dict[str, Any]:
    """The method's `evaluation_figures` on `batch`, called as the base contract promises."""
    with evaluation_mode(method, device, precision):
        return method.evaluation_figures(to_device(dict(batch), device))


def batch_device(batch: Mapping[str, Any]) -> torch.device:
    image = batch.get("image")
    return image.device if torch.is_tensor(image) else torch.device("cpu")


def write_method_figures(method: Method, batch: dict[str, Any], split: str, out_dir: Path) -> list[Path]:
    """Call the method's figure hook on `batch` and write each figure as <name>_<split>.png, atomically."""
    figures = method_figures(method, batch, batch_device(batch))
    written = []
    for name, figure in figures.items():
        path = out_dir / f"{name}_{split}.png"
        if hasattr(figure, "savefig"):  # a matplotlib Figure
            save_figure(figure, path)
        else:
            import cv2
            import numpy as np

            rgb = np.asarray(figure)
            if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
                raise ValueError(f"figure {name!r} of method {method.name} must be an H×W×3 uint8 array")
            ok, png = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
            if not ok:
                raise ValueError(f"figure {name!r} of method {method.name} could not be encoded as PNG")
            atomic_write_bytes(path, png.tobytes())
        written.append(path)
    return written
