"""Annotated copies of the inputs: each face's box, its 68 landmarks as dots and "class 0.93"."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np

from fermix.inference.faces import AlignedFace

BOX_COLOUR = (0, 220, 0)  # RGB
LANDMARK_COLOUR = (255, 60, 60)
TEXT_COLOUR = (0, 0, 0)


def label(row: Mapping[str, Any]) -> str:
    """The label "happy 0.93", or the status of a frame without a usable face."""
    if row.get("status") != "ok":
        return str(row.get("status", ""))
    if row.get("expression") is None:
        return f"face {row.get('face')}"
    return f"{row['expression']} {float(row['probability']):.2f}"


def annotate(image: np.ndarray, faces: Sequence[AlignedFace], rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """A copy of the RGB `image` with every face drawn; a frame without faces gets its status as a caption."""
    out = np.ascontiguousarray(image.copy())
    h, w = out.shape[:2]
    thick = max(1, round(min(h, w) / 300))
    scale = max(0.4, min(h, w) / 800)
    if not faces:
        _caption(out, label(rows[0]) if rows else "no face", (4, 4), scale, thick)
        return out
    for face, row in zip(faces, rows, strict=True):
        x0, y0, x1, y1 = (round(v) for v in face.box)
        cv2.rectangle(out, (x0, y0), (x1, y1), BOX_COLOUR, thick, cv2.LINE_AA)
        if face.landmarks is not None:
            radius = max(1, round((x1 - x0) / 90))
            for x, y in np.asarray(face.landmarks):
                cv2.circle(out, (round(x), round(y)), radius, LANDMARK_COLOUR, -1, cv2.LINE_AA)
        _caption(out, label(row), (x0, y0), scale, thick, above=True)
    return out


def _caption(image: np.ndarray, text: str, at: tuple[int, int], scale: float, thick: int, above: bool = False) -> None:
    """`text` on a filled box, above `at` when there is room (else below it)."""
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    x, y = at
    top = y - th - base - 2 * thick if above and y - th - base - 2 * thick >= 0 else y
    x = min(max(0, x), max(0, image.shape[1] - tw - 2 * thick))
    cv2.rectangle(image, (x, top), (x + tw + 2 * thick, top + th + base + 2 * thick), BOX_COLOUR, -1)
    cv2.putText(image, text, (x + thick, top + th + thick), cv2.FONT_HERSHEY_SIMPLEX, scale, TEXT_COLOUR, thick,
                cv2.LINE_AA)  # fmt: skip


def encode_image(rgb: np.ndarray, suffix: str) -> bytes:
    """The RGB image encoded in the format of `suffix` (.png, .jpg, ...)."""
    ok, data = cv2.imencode(suffix.lower() or ".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise ValueError(f"OpenCV cannot encode an image as {suffix}")
    return data.tobytes()
