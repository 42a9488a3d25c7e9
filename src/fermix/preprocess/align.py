"""Eye-based similarity alignment to a fixed template (IERN's MixBasic aligner, methods/iern.md §4).

The warp rotates the eyes level, scales them to a fixed inter-ocular distance and places the eye
on the image's left (the subject's right eye, landmarks 36-41) at `left_eye` × size and the other
one mirrored about the vertical centre line. Coordinates are pixel coordinates with pixel centres
at integers, as dlib and OpenCV use, so the template eye sits at exactly (0.35·256, 0.35·256) =
(89.6, 89.6) by default, where imutils' FaceAligner puts it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from fermix.errors import FermixError

# dlib's 68-point scheme: 36-41 is the eye on the image's left, 42-47 the one on its right.
IMAGE_LEFT_EYE = slice(36, 42)
IMAGE_RIGHT_EYE = slice(42, 48)


@dataclass(frozen=True)
class Template:
    """Square output of `size` pixels; `left_eye` = (x, y) of the image-left eye as fractions of size."""

    size: int = 256
    left_eye: tuple[float, float] = (0.35, 0.35)

    def __post_init__(self) -> None:
        if int(self.size) < 8:
            raise FermixError(f"preprocess.size={self.size} is too small; use at least 8 pixels, e.g. 256.")
        x, y = (float(v) for v in self.left_eye)
        if not (0.0 < x < 0.5 and 0.0 < y < 1.0):
            raise FermixError(
                f"preprocess.left_eye={[x, y]} is not a valid eye position; "
                f"x must be in (0, 0.5) and y in (0, 1), e.g. [0.35, 0.35]."
            )
        object.__setattr__(self, "size", int(self.size))
        object.__setattr__(self, "left_eye", (x, y))

    def eye_positions(self) -> np.ndarray:
        """Target centres of the image-left and image-right eye, 2×2 (rows: eye, cols: x, y)."""
        x, y = self.left_eye
        return np.array([[x * self.size, y * self.size], [(1.0 - x) * self.size, y * self.size]])

    def to_dict(self) -> dict[str, object]:
        return {"size": self.size, "left_eye": list(self.left_eye), "eyes": self.eye_positions().tolist()}


def eye_centres(landmarks: np.ndarray) -> np.ndarray:
    """Means of landmarks 36-41 and 42-47: the image-left and image-right eye centres, 2×2."""
    pts = np.asarray(landmarks, dtype=np.float64)
    return np.stack([pts[IMAGE_LEFT_EYE].mean(axis=0), pts[IMAGE_RIGHT_EYE].mean(axis=0)])


def similarity_from_two_points(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2×3 similarity (rotation, uniform scale, translation) taking src[0]->dst[0] and src[1]->dst[1].

    In complex numbers a similarity is z -> a·z + b; two point pairs fix a and b exactly.
    """
    s = np.asarray(src, dtype=np.float64)
    d = np.asarray(dst, dtype=np.float64)
    s0, s1 = complex(*s[0]), complex(*s[1])
    d0, d1 = complex(*d[0]), complex(*d[1])
    if abs(s1 - s0) < 1e-6:
        raise ValueError("the two source points coincide")
    a = (d1 - d0) / (s1 - s0)
    b = d0 - a * s0
    return np.array([[a.real, -a.imag, b.real], [a.imag, a.real, b.imag]])


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2×3 affine matrix to N×2 points."""
    pts = np.asarray(points, dtype=np.float64)
    return pts @ matrix[:, :2].T + matrix[:, 2]


def alignment_matrix(landmarks: np.ndarray, template: Template) -> np.ndarray:
    """The similarity that puts the eye centres of `landmarks` on the template's eye positions."""
    return similarity_from_two_points(eye_centres(landmarks), template.eye_positions())


def align_face(
    image: np.ndarray, landmarks: np.ndarray, template: Template
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Warp `image` to the template; returns (aligned size×size image, landmarks in it, the 2×3 matrix)."""
    matrix = alignment_matrix(landmarks, template)
    aligned = cv2.warpAffine(
        image,
        matrix,
        (template.size, template.size),
        flags=cv2.INTER_CUBIC,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    return aligned, transform_points(matrix, landmarks), matrix
