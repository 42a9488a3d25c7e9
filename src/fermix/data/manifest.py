"""The manifest CSV written by `fermix preprocess` and the writers, read by the imagefolder adapter.

Columns: sample_id, split, path (relative to the manifest's folder), label (canonical class
name), native_label, source, subject, then the 68 landmarks as 136 columns lm0_x, lm0_y, ...,
lm67_x, lm67_y in pixel coordinates of the image at `path` (pixel centres at integers, as dlib
and OpenCV use). Landmark columns are empty when a sample has none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

NUM_LANDMARKS = 68
BASE_COLUMNS: tuple[str, ...] = ("sample_id", "split", "path", "label", "native_label", "source", "subject")
LANDMARK_COLUMNS: tuple[str, ...] = tuple(f"lm{i}_{axis}" for i in range(NUM_LANDMARKS) for axis in "xy")
COLUMNS: tuple[str, ...] = (*BASE_COLUMNS, *LANDMARK_COLUMNS)


def landmark_fields(landmarks: np.ndarray | None) -> dict[str, Any]:
    """{lm0_x: ..., lm67_y: ...} for one 68×2 array (rounded to 1/1000 px), or empty strings for None."""
    if landmarks is None:
        return dict.fromkeys(LANDMARK_COLUMNS, "")
    flat = np.asarray(landmarks, dtype=np.float64).reshape(NUM_LANDMARKS * 2)
    return {c: round(float(v), 3) for c, v in zip(LANDMARK_COLUMNS, flat, strict=True)}


def landmarks_from_row(row: Mapping[str, Any]) -> np.ndarray | None:
    """The 68×2 float32 landmarks of a manifest row, or None when its landmark columns are empty."""
    values = [row.get(c) for c in LANDMARK_COLUMNS]
    if any(v is None or (isinstance(v, str) and v.strip() == "") for v in values):
        return None
    arr = np.asarray([float(v) for v in values], dtype=np.float32)
    if np.isnan(arr).any():
        return None
    return arr.reshape(NUM_LANDMARKS, 2)


def has_landmark_columns(columns: Any) -> bool:
    return all(c in set(columns) for c in LANDMARK_COLUMNS)
