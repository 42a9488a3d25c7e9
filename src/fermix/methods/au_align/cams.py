"""Class activation maps of a GAP + linear head, in closed form (spec §3.4).

For logits y = W·GAP(F) + b, the gradient of y_c with respect to F_k(i, j) is W_ck / (h·w),
the same at every position. The gradient-based CAMs the paper evaluates (torch-cam, as vendored
in the original's dlib/cams) therefore reduce to weighted channel sums that need no backward
pass, so they can be computed for every test image under torch.inference_mode:

- CAM:       Σ_k W_ck F_k                      (no ReLU)
- Grad-CAM:  ReLU(Σ_k mean_ij(g_k) F_k)        ∝ ReLU(Σ_k W_ck F_k)
- Grad-CAM++ as the original runs it: its α division is an in-place op on an indexed copy
  (`alpha[mask].div_(...)`), a no-op, so the weights are Σ_ij g²·ReLU(g) ∝ ReLU(W_ck)³;
  then ReLU(Σ_k ·F_k).
- LayerCAM:  ReLU(Σ_k ReLU(g_k) F_k)           ∝ ReLU(Σ_k ReLU(W_ck) F_k)

Each map is min-max normalised per image as torch-cam does (subtract the min, divide by the new
max); a constant map gives NaN there, which becomes 0. tests/methods/au_align/test_cams.py checks
every formula against autograd on the real model.
"""

from __future__ import annotations

import torch
from torch import Tensor

from fermix.errors import FermixError

CAM_KINDS = ("cam", "gradcam", "gradcampp", "layercam")


def minmax_normalise(maps: Tensor) -> Tensor:
    """torch-cam's per-map normalisation: (m − min) / max(m − min); NaN (constant map) -> 0."""
    flat = maps.flatten(1)
    shifted = flat - flat.amin(1, keepdim=True)
    out = shifted / shifted.amax(1, keepdim=True)
    return torch.nan_to_num(out, nan=0.0, posinf=1.0, neginf=0.0).view_as(maps)


def channel_weights(weight: Tensor, classes: Tensor, kind: str) -> tuple[Tensor, bool]:
    """(B×C channel coefficients, whether a ReLU follows) of each CAM kind for the given classes."""
    w = weight[classes].float()
    if kind in ("cam", "gradcam"):
        return w, kind == "gradcam"
    if kind == "gradcampp":
        return torch.relu(w) ** 3, True
    if kind == "layercam":
        return torch.relu(w), True
    raise FermixError(f"unknown CAM method `{kind}`; choose from: {', '.join(CAM_KINDS)}.")


def class_activation_maps(features: Tensor, weight: Tensor, classes: Tensor, kind: str = "cam") -> Tensor:
    """B×1×h×w normalised CAMs of `classes` (B) from the last feature map (B×C×h×w) and head weights (K×C)."""
    coef, relu = channel_weights(weight, classes, kind)
    cam = torch.einsum("bc,bchw->bhw", coef, features.float())[:, None]
    if relu:
        cam = torch.relu(cam)
    return minmax_normalise(cam)
