"""Validation pictures in TensorBoard: the confusion matrix, a fixed grid of sample predictions and
the method's own figures (au_align's attention / CAM overlays).

Everything happens once per validation, on rank 0, after the metrics are computed: no per-step
work and no collective. The samples are chosen once (spread over the classes, in split order) so
that epochs show the same faces. scripts/readme_figure.py draws the README pictures with the same
functions, so the README shows what TensorBoard shows.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor
from torch.utils.data import default_collate

from fermix.engine.artifacts import confusion_figure
from fermix.engine.evaluate import evaluation_mode, figure_batch, method_figures, to_device

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from fermix.methods.base import Method

__all__ = [
    "ValidationFigures",
    "display_images",
    "figure_rgb",
    "prediction_grid",
    "sample_grid_figure",
    "sample_indices",
    "sample_probabilities",
]

log = logging.getLogger("fermix")

CONFUSION_TAG = "val/confusion"
SAMPLES_TAG = "val/samples"


def sample_indices(labels: Sequence[int] | np.ndarray | None, n: int, length: int) -> list[int]:
    """`n` dataset positions taken round-robin over the classes in split order (the first sample of
    each class, then the second, ...), so a class-sorted split still shows every class; without
    labels, the first `n`. Unlabelled samples (−1) come last."""
    n = max(0, min(n, length))
    if labels is None:
        return list(range(n))
    labels = np.asarray(labels).reshape(-1)[:length]
    queues = [np.flatnonzero(labels == c).tolist() for c in np.unique(labels[labels >= 0])]
    picked: list[int] = []
    for depth in range(max((len(q) for q in queues), default=0)):
        picked += [q[depth] for q in queues if depth < len(q)]
        if len(picked) >= n:
            break
    picked += np.flatnonzero(labels < 0).tolist()
    return picked[:n]


def display_images(
    images: Tensor, mean: Sequence[float] | None = None, std: Sequence[float] | None = None
) -> np.ndarray:
    """Normalised N×C×H×W inputs as N×H×W×3 floats in [0, 1]: undo `(x − mean) / std` when the
    constants are known, else stretch each image to its own range."""
    x = images.detach().float().cpu()
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    x = x[:, :3]
    if mean is not None and std is not None and len(mean) >= 3 and len(std) >= 3:
        m = torch.tensor(list(mean)[:3]).view(1, 3, 1, 1)
        s = torch.tensor(list(std)[:3]).view(1, 3, 1, 1)
        x = x * s + m
    else:
        low = x.amin(dim=(1, 2, 3), keepdim=True)
        high = x.amax(dim=(1, 2, 3), keepdim=True)
        x = (x - low) / (high - low).clamp(min=1e-8)
    return x.clamp(0, 1).permute(0, 2, 3, 1).numpy()


def sample_grid_figure(
    images: np.ndarray,
    targets: Sequence[int],
    probs: np.ndarray | Tensor,
    class_names: Sequence[str],
    columns: int = 8,
    title: str = "",
    dpi: int = 100,
) -> Figure:
    """Faces in a grid, each captioned with its true class, the predicted class and its probability
    (green when right, red when wrong). One axes for the whole mosaic: fast enough for every epoch.

    `images`: N×H×W×3 in [0, 1] (`display_images`); `targets`: N labels (−1 = none); `probs`: N×C.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    probs = np.asarray(probs.detach().cpu() if isinstance(probs, Tensor) else probs, dtype=np.float64)
    n = len(images)
    if n == 0 or probs.shape != (n, len(class_names)) or len(targets) != n:
        raise ValueError(f"need N images, N targets and N×{len(class_names)} probabilities, got {n}, "
                         f"{len(targets)}, {probs.shape}")  # fmt: skip
    columns = max(1, min(columns, n))
    rows = math.ceil(n / columns)
    h, w = images.shape[1:3]
    tile_inches = 1.3  # a face's width on the page, whatever its pixel size
    pad = max(2, w // 16)
    caption = math.ceil(0.36 * (w + pad) / tile_inches)  # a band of 0.36 in below each face for two text lines
    cell_h, cell_w = h + caption + pad, w + pad
    mosaic = np.ones((rows * cell_h + pad, columns * cell_w + pad, 3))
    for i in range(n):
        r, c = divmod(i, columns)
        y, x = pad + r * cell_h, pad + c * cell_w
        mosaic[y : y + h, x : x + w] = images[i]

    fig = Figure(figsize=(columns * tile_inches, rows * tile_inches * cell_h / cell_w + (0.3 if title else 0)), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1 - (0.3 / fig.get_figheight() if title else 0)))
    ax.imshow(mosaic, interpolation="bilinear")
    ax.set_axis_off()
    pred = probs.argmax(axis=1)
    for i in range(n):
        r, c = divmod(i, columns)
        x, y = pad + c * cell_w + w / 2, pad + r * cell_h + h + 1
        t = int(targets[i])
        truth = class_names[t] if 0 <= t < len(class_names) else "?"
        guess = class_names[int(pred[i])]
        colour = "black" if t < 0 else ("#1a7f37" if t == pred[i] else "#cf222e")
        ax.text(x, y, f"true: {truth}\npred: {guess} {probs[i, pred[i]]:.2f}", ha="center", va="top", fontsize=7,
                color=colour, linespacing=1.1)  # fmt: skip
    if title:
        fig.suptitle(title, fontsize=9, y=1 - 0.05 / fig.get_figheight())
    return fig


def figure_rgb(figure: Any) -> np.ndarray:
    """A matplotlib Figure (rendered on its Agg canvas) or an H×W×3 uint8 array, as H×W×3 uint8."""
    if hasattr(figure, "canvas"):
        figure.canvas.draw()
        return np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
    rgb = np.asarray(figure)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError("a figure must be a matplotlib Figure or an H×W×3 uint8 array")
    return rgb


def sample_probabilities(
    method: Method, batch: Mapping[str, Any], device: torch.device, precision: str | None = None
) -> Tensor | None:
    """Softmax of the method's `expr_logits` on `batch` (N×C, CPU), or None if it predicts no expression."""
    with evaluation_mode(method, device, precision):
        out = method.predict(to_device(dict(batch), device))
    logits = out.get("expr_logits")
    return None if logits is None else logits.float().softmax(-1).cpu()


def prediction_grid(
    method: Method,
    batch: Mapping[str, Any],
    preprocessing: Mapping[str, Any],
    device: torch.device,
    precision: str | None = None,
    title: str = "",
    columns: int = 8,
) -> Figure | None:
    """The sample grid of `batch` (CPU, collated): the method's prediction for each face, its label
    and the face as the network saw it (`preprocessing` holds the checkpoint's mean / std). None
    when the method predicts no expression. TensorBoard's `val/samples` and the README's picture."""
    probs = sample_probabilities(method, batch, device, precision)
    if probs is None:
        return None
    images = display_images(batch["image"], preprocessing.get("mean"), preprocessing.get("std"))
    targets = batch["expr"].tolist() if "expr" in batch else [-1] * len(images)
    classes = list(method.data_info.label_space.classes)
    return sample_grid_figure(images, targets, probs, classes, columns=columns, title=title)


class ValidationFigures(Callback):
    """After each validation (not the sanity check), on rank 0, when a TensorBoard logger is active:
    `val/confusion` (from the module's validation confusion, not recomputed), `val/samples` (the
    fixed sample grid) and `val/<name>` for each of the method's `evaluation_figures`."""

    def __init__(self, sample_images: int = 16) -> None:
        self.sample_images = max(0, int(sample_images))
        self._samples: dict[str, Any] | None = None
        self._method_batch: dict[str, Any] | None = None
        self._chosen = False
        self._broken = False

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._broken or trainer.sanity_checking or not trainer.is_global_zero:
            return
        writer = _tensorboard(trainer)
        if writer is None:
            return
        try:
            self._log(trainer, pl_module, writer)
        except Exception as exc:  # a picture must never cost a training run
            self._broken = True
            log.warning("TensorBoard validation figures are off for the rest of this run: %s: %s",
                        type(exc).__name__, exc)  # fmt: skip

    def _log(self, trainer: pl.Trainer, pl_module: pl.LightningModule, writer: Any) -> None:
        step = _logging_step(trainer)
        method = pl_module.method
        device, precision = pl_module.device, str(trainer.precision)
        title = f"validation, epoch {trainer.current_epoch}"
        confusion = getattr(pl_module, "last_val_confusion", None)
        if confusion is not None:
            fig = confusion_figure(confusion, list(method.data_info.label_space.classes), title=title, dpi=80)
            writer.add_image(CONFUSION_TAG, figure_rgb(fig), step, dataformats="HWC")
        if not self._chosen:
            self._choose(trainer)
        if self._samples is not None:
            pre = getattr(pl_module, "meta", {}).get("preprocessing") or {}
            fig = prediction_grid(method, self._samples, pre, device, precision, title=title)
            if fig is not None:
                writer.add_image(SAMPLES_TAG, figure_rgb(fig), step, dataformats="HWC")
        if self._method_batch is not None:
            for name, figure in method_figures(method, self._method_batch, device, precision).items():
                writer.add_image(f"val/{name}", figure_rgb(figure), step, dataformats="HWC")
        writer.flush()

    def _choose(self, trainer: pl.Trainer) -> None:
        """Pick the sample batch and the method-figure batch once, out of inference mode (plain tensors)."""
        self._chosen = True
        dataset = getattr(trainer.val_dataloaders, "dataset", None)
        if dataset is None or len(dataset) == 0:
            return
        labels = None
        task_labels = getattr(trainer.datamodule, "task_labels", None)
        if task_labels is not None:
            labels = task_labels("val").get("expr")
        if labels is not None and np.asarray(labels).ndim != 1:
            labels = None
        method = trainer.lightning_module.method
        with torch.inference_mode(False):
            if self.sample_images:
                items = [dataset[i] for i in sample_indices(labels, self.sample_images, len(dataset))]
                if "image" in items[0]:  # not for feature-sequence (multimodal) datasets
                    self._samples = default_collate(items)
            if labels is not None and method.figure_samples_per_class > 0:
                self._method_batch = figure_batch(
                    dataset, torch.tensor(np.asarray(labels)), method.figure_samples_per_class, None
                )


def _logging_step(trainer: pl.Trainer) -> int:
    """The step Lightning logs this validation's `val/` scalars at, so the images line up with them
    (it counts training batches, not optimizer steps: a method with three optimizers steps thrice)."""
    return int(getattr(trainer.fit_loop.epoch_loop, "_batches_that_stepped", trainer.global_step))


def _tensorboard(trainer: pl.Trainer) -> Any:
    """The SummaryWriter of the trainer's TensorBoard logger, or None when none is active."""
    from lightning.pytorch.loggers import TensorBoardLogger

    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            return logger.experiment
    return None
