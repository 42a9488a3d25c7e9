"""Finding the face and its 68 landmarks in one raw photograph (dlib HOG + shape predictor).

Detection runs on the grayscale image, as IERN's aligner does (methods/iern.md §4); the shape
predictor gets the same grayscale image.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fermix.preprocess.models import face_detector, shape_predictor

KEEP_POLICIES = ("largest", "first")


@dataclass(frozen=True)
class Face:
    """A face box (x0, y0, x1, y1) in raw pixels and dlib's detection score (None for given boxes)."""

    box: tuple[float, float, float, float]
    score: float | None = None

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box
        return max(0.0, x1 - x0) * max(0.0, y1 - y0)


def to_gray(image: np.ndarray) -> np.ndarray:
    """uint8 grayscale of an RGB (or already grayscale) image, contiguous for dlib."""
    if image.ndim == 2:
        return np.ascontiguousarray(image)
    return np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))


def detect_faces(gray: np.ndarray, upsample: int) -> list[Face]:
    """Every face dlib's HOG detector finds, in dlib's order (highest score first)."""
    rects, scores, _ = face_detector().run(gray, int(upsample), 0.0)
    return [
        Face((float(r.left()), float(r.top()), float(r.right()), float(r.bottom())), float(s))
        for r, s in zip(rects, scores, strict=True)
    ]


def choose_face(faces: list[Face], keep: str) -> Face | None:
    """The face to keep: `largest` box (ties: higher score, then dlib's order) or dlib's `first`."""
    if not faces:
        return None
    if keep == "first":
        return faces[0]
    order = sorted(range(len(faces)), key=lambda i: (-faces[i].area, -(faces[i].score or 0.0), i))
    return faces[order[0]]


def whole_image(gray: np.ndarray) -> Face:
    """The whole image as the face box, for photos that are already face crops."""
    h, w = gray.shape[:2]
    return Face((0.0, 0.0, float(w - 1), float(h - 1)))


def predict_landmarks(gray: np.ndarray, face: Face, model: Path) -> np.ndarray:
    """68×2 float64 (x, y) landmarks inside `face`, in raw pixel coordinates."""
    import dlib

    x0, y0, x1, y1 = (round(v) for v in face.box)
    shape = shape_predictor(model)(gray, dlib.rectangle(x0, y0, x1, y1))
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
