"""End-of-run files: predictions CSV, confusion-matrix PNG and a metrics table for the terminal.

All files are written atomically (fermix.utils.io), so an interrupted run never leaves a torn
CSV or PNG next to a good checkpoint. Plotting uses matplotlib's object API with the Agg canvas,
never pyplot: no global figure state, no display needed on a cluster node.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from fermix.utils.io import atomic_path

if TYPE_CHECKING:
    import torch
    from matplotlib.figure import Figure
    from rich.console import Console

__all__ = [
    "confusion_figure",
    "format_metrics_table",
    "plot_confusion_matrix",
    "print_metrics_table",
    "save_figure",
    "write_predictions_csv",
]


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def write_predictions_csv(
    path: str | os.PathLike[str],
    sample_ids: Sequence[str],
    targets: torch.Tensor | np.ndarray,
    probs: torch.Tensor | np.ndarray,
    class_names: Sequence[str],
) -> None:
    """Write one row per sample: sample_id,label,label_name,pred,pred_name,prob_<class>...

    `targets` may hold -1 for unlabelled samples (label_name is then empty); `pred` is the argmax
    of `probs`. Probabilities are written with 6 decimals.
    """
    import pandas as pd

    y = _to_numpy(targets).astype(np.int64).reshape(-1)
    p = _to_numpy(probs).astype(np.float64)
    n, c = len(sample_ids), len(class_names)
    if p.ndim != 2 or p.shape != (n, c):
        raise ValueError(f"probs must have shape ({n}, {c}) (samples x classes), got {p.shape}")
    if y.shape[0] != n:
        raise ValueError(f"targets has {y.shape[0]} entries for {n} sample ids")
    if ((y < -1) | (y >= c)).any():
        raise ValueError(f"targets must be -1 (unlabelled) or in 0..{c - 1}")
    if len(set(class_names)) != c:
        raise ValueError(f"class names must be unique, got {list(class_names)}")

    names = np.asarray(list(class_names), dtype=object)
    pred = p.argmax(axis=1) if n else np.zeros(0, dtype=np.int64)
    columns: dict[str, Any] = {
        "sample_id": [str(s) for s in sample_ids],
        "label": y,
        "label_name": np.where(y >= 0, names[np.clip(y, 0, None)], "") if n else [],
        "pred": pred,
        "pred_name": names[pred] if n else [],
    }
    for j, name in enumerate(class_names):
        columns[f"prob_{name}"] = p[:, j]
    frame = pd.DataFrame(columns)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6f")


def plot_confusion_matrix(
    path: str | os.PathLike[str],
    confusion: np.ndarray | torch.Tensor,
    class_names: Sequence[str],
    title: str = "",
    normalize: bool = True,
) -> None:
    """Save the confusion matrix (rows = true class) as a PNG; see `confusion_figure`."""
    save_figure(confusion_figure(confusion, class_names, title=title, normalize=normalize), path)


def save_figure(fig: Figure, path: str | os.PathLike[str]) -> None:
    """A matplotlib Figure as a PNG, written atomically."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


ANNOTATED_CLASSES = 30  # up to this many classes the confusion figure writes every cell and names every class


def confusion_figure(
    confusion: np.ndarray | torch.Tensor,
    class_names: Sequence[str],
    title: str = "",
    normalize: bool = True,
    dpi: int = 120,
) -> Figure:
    """The confusion matrix (rows = true class) as a matplotlib Figure (Agg canvas, no pyplot).

    With `normalize`, cells are coloured by and show the row percentage (recall share) and, below
    it, the count; a class absent from the split has an all-zero row, shown as 0%. The same
    figure goes to confusion_<split>.png and to TensorBoard's `val/confusion`. Beyond
    ANNOTATED_CLASSES classes (e.g. the people of an identity-classification dataset) the cells carry no
    text, every k-th class is named and the figure keeps a fixed size, so time and memory stay bounded.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    counts = _to_numpy(confusion).astype(np.int64)
    c = len(class_names)
    if counts.shape != (c, c):
        raise ValueError(f"confusion must have shape ({c}, {c}) to match class names, got {counts.shape}")

    row_sums = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, row_sums, out=np.zeros(counts.shape, dtype=np.float64), where=row_sums > 0)
    values = shares if normalize else counts.astype(np.float64)
    vmax = 1.0 if normalize else max(float(values.max()), 1.0)

    annotate = c <= ANNOTATED_CLASSES  # hundreds of classes (people): no per-cell text, a bounded picture
    side = max(5.0, 0.9 * c + 2.5) if annotate else 12.0
    fig = Figure(figsize=(side + 1.0, side), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=vmax, interpolation="nearest")
    colorbar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if normalize:
        colorbar.set_label("share of true class")
    fontsize = 10 if c <= 8 else 8
    for i in range(c if annotate else 0):
        for j in range(c):
            text = f"{100 * shares[i, j]:.1f}%\n({counts[i, j]})" if normalize else f"{counts[i, j]}"
            colour = "white" if values[i, j] > 0.5 * vmax else "black"
            ax.text(j, i, text, ha="center", va="center", color=colour, fontsize=fontsize)
    ticks = range(0, c, max(1, -(-c // ANNOTATED_CLASSES)))  # at most ANNOTATED_CLASSES labels per axis
    labels = [class_names[t] for t in ticks]
    ax.set_xticks(ticks, labels=labels, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(ticks, labels=labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title)
    return fig


def _format_value(value: Any) -> str:
    number = float(value)
    return "nan" if math.isnan(number) else f"{number:.4f}"


def format_metrics_table(metrics: Mapping[str, float], title: str = "") -> str:
    """A plain two-column table (metric, value with 4 decimals) for logs and non-interactive output."""
    rows = [(str(name), _format_value(value)) for name, value in metrics.items()]
    name_width = max([len("metric"), *(len(name) for name, _ in rows)])
    value_width = max([len("value"), *(len(value) for _, value in rows)])
    lines = [title] if title else []
    lines.append(f"{'metric':<{name_width}}  {'value':>{value_width}}")
    lines.append(f"{'-' * name_width}  {'-' * value_width}")
    lines.extend(f"{name:<{name_width}}  {value:>{value_width}}" for name, value in rows)
    return "\n".join(lines)


def print_metrics_table(metrics: Mapping[str, float], title: str = "", console: Console | None = None) -> None:
    """Print the metrics as a rich table (degrades to plain text when output is not a terminal)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title or None)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in metrics.items():
        table.add_row(str(name), _format_value(value))
    (console or Console()).print(table)
