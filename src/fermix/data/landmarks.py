"""The iBUG-68 landmark scheme's left/right structure, shared by the generator and transforms."""

from __future__ import annotations

import numpy as np
import torch

# Left/right mirror partner of each iBUG-68 point (a midline point is its own partner).
IBUG68_MIRROR: np.ndarray = np.array(
    [16 - i for i in range(17)]  # jaw
    + [26, 25, 24, 23, 22, 21, 20, 19, 18, 17]  # brows
    + [27, 28, 29, 30, 35, 34, 33, 32, 31]  # nose
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]  # eyes
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]  # outer lip
    + [64, 63, 62, 61, 60, 67, 66, 65],  # inner lip
    dtype=np.int64,
)


def reorder_if_mirrored(landmarks: torch.Tensor) -> torch.Tensor:
    """After a horizontal flip, point 36 (the image-left eye's outer corner) lies right of point 45;
    swap every point with its mirror partner so each index names the same image-side part again."""
    if landmarks.shape[-2] != 68 or not bool(landmarks[..., 36, 0] > landmarks[..., 45, 0]):
        return landmarks
    return landmarks[..., torch.as_tensor(IBUG68_MIRROR), :]
