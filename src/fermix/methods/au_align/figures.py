"""The overlay grid `fermix test` writes: each image with its AU map, layer attention and CAMs."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from fermix.methods.au_align.attention import resize_clamped

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_CAM_TITLES = {"cam": "CAM", "gradcam": "Grad-CAM", "gradcampp": "Grad-CAM++", "layercam": "LayerCAM"}


def _display_image(image: Tensor) -> np.ndarray:
    """A normalised C×H×W input as H×W×3 in [0, 1] (per-image min-max: the method does not know
    the normalisation constants, and a picture only needs the contrast)."""
    x = image.detach().float().cpu()
    x = (x - x.min()) / (x.max() - x.min()).clamp(min=1e-8)
    x = x.expand(3, -1, -1) if x.shape[0] == 1 else x[:3]
    return x.permute(1, 2, 0).numpy()


def _unit(m: Tensor) -> np.ndarray:
    m = m.detach().float().cpu()
    return ((m - m.min()) / (m.max() - m.min()).clamp(min=1e-8)).numpy()


def saliency_at(image_hw: Sequence[int], attention: Tensor | None = None, cam: Tensor | None = None) -> np.ndarray:
    """An attention (1×h×w) or normalised CAM at the image's size, scaled to [0, 1] for display."""
    if attention is not None:
        return _unit(resize_clamped(attention[None].float(), image_hw)[0, 0])
    assert cam is not None
    up = F.interpolate(cam[None].float(), size=tuple(image_hw), mode="bilinear", align_corners=False)
    return up[0, 0].clamp(0, 1).cpu().numpy()


def overlay_grid(
    batch: Mapping[str, Any],
    out: Mapping[str, Tensor],
    maps: Tensor,
    valid: Tensor,
    class_names: Sequence[str],
    config: Any,
    per_row: int = 2,
) -> Figure:
    """Rows of samples; per sample: image (true → predicted), AU map, attention, each CAM, with cosines."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    images = batch["image"]
    n = len(images)
    hw = tuple(images.shape[-2:])
    expr = batch.get("expr", torch.full((n,), -1))
    pred = out["expr_logits"].argmax(dim=1)
    layer = config.eval_layers[0]
    columns = [("AU map", None), (f"attention L{layer}", f"att_cos@{layer}")]
    columns += [(_CAM_TITLES.get(k, k), f"{k}_cos") for k in config.cams]
    per_sample = 1 + len(columns)
    rows = max(1, math.ceil(n / per_row))
    fig = Figure(figsize=(1.25 * per_sample * per_row, 1.4 * rows + 0.3), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, per_sample * per_row, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for i in range(n):
        row, col = divmod(i, per_row)
        col *= per_sample
        img = _display_image(images[i])
        grey = img.mean(axis=2)
        y = int(expr[i])
        truth = class_names[y] if 0 <= y < len(class_names) else "?"
        axes[row, col].imshow(img)
        axes[row, col].set_title(f"{truth} → {class_names[int(pred[i])]}", fontsize=7)
        for j, (title, metric) in enumerate(columns, start=1):
            ax = axes[row, col + j]
            if j == 1:
                heat = maps[i, 0].detach().float().cpu().numpy() if bool(valid[i]) else None
            elif j == 2:
                heat = saliency_at(hw, attention=out["attention"][i])
            else:
                heat = saliency_at(hw, cam=out[config.cams[j - 3]][i])
            ax.imshow(grey, cmap="gray", vmin=0, vmax=1)
            if heat is not None:
                ax.imshow(heat, cmap="jet", alpha=0.5, vmin=0, vmax=1)
            label = title if heat is not None else f"{title}: none"
            if metric and metric in out and not math.isnan(float(out[metric][i])):
                label += f" {float(out[metric][i]):.2f}"
            ax.set_title(label, fontsize=7)
    fig.suptitle(
        "au_align · each sample: true → predicted class, its AU map, the layer attention and the CAMs of the true\n"
        "class over the face (blue low → red high, each map scaled to [0, 1]; number = cosine with the AU map)",
        fontsize=8,
    )
    return fig
