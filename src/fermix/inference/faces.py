"""Every face in one photograph, found and aligned exactly as `fermix preprocess` aligns one.

The preprocess stage keeps one face per photo (the largest); prediction keeps them all, in dlib's
order (highest detection score first). Detection, landmarks and the warp are preprocess's own
functions, so a face reaches the model in the same geometry as the training faces did.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fermix.preprocess.align import align_face
from fermix.preprocess.detect import Face, detect_faces, predict_landmarks, to_gray, whole_image
from fermix.preprocess.settings import Settings


@dataclass(frozen=True)
class AlignedFace:
    """One face: its box and detector score in the photo, its 68 landmarks in the photo (None for a
    crop taken as given), and the aligned crop with its landmarks in the crop's pixels."""

    box: tuple[float, float, float, float]
    score: float | None
    landmarks: np.ndarray | None
    crop: np.ndarray
    crop_landmarks: np.ndarray | None


def face_boxes(gray: np.ndarray, settings: Settings) -> list[Face]:
    """The faces to align. With no boxes at prediction time, `detector=box` falls back to HOG; a
    photo without a detected face is the face itself when the training faces were `already_cropped`."""
    if settings.detector == "none":
        return [whole_image(gray)]
    faces = detect_faces(gray, settings.upsample)
    if not faces and settings.already_cropped:
        return [whole_image(gray)]
    return faces


def align_faces(image: np.ndarray, settings: Settings) -> list[AlignedFace]:
    """Detect, landmark and align every face of an H×W×3 uint8 RGB photo; [] when there is none."""
    gray = to_gray(image)
    aligned = []
    for face in face_boxes(gray, settings):
        landmarks = predict_landmarks(gray, face, settings.landmark_model)
        crop, crop_landmarks, _ = align_face(image, landmarks, settings.template)
        aligned.append(AlignedFace(face.box, face.score, landmarks, crop, crop_landmarks))
    return aligned


def as_given(image: np.ndarray) -> AlignedFace:
    """An image that already is an aligned face crop (`align=False`): the whole image, no landmarks."""
    h, w = image.shape[:2]
    return AlignedFace((0.0, 0.0, float(w - 1), float(h - 1)), None, None, np.ascontiguousarray(image), None)
