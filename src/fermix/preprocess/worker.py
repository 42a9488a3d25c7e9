"""One raw photo -> one aligned face (or one failure with its reason), run in a worker process.

Detector and predictor are created lazily, once per process (models.py). The aligned image is
written first and the record after it, both atomically, so a record on disk always means the
image it names is complete.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from fermix.data.images import read_image
from fermix.data.raw import RawItem
from fermix.data.writers.images import write_image
from fermix.errors import FermixError
from fermix.preprocess.align import align_face
from fermix.preprocess.detect import Face, choose_face, detect_faces, predict_landmarks, to_gray, whole_image
from fermix.preprocess.models import ModelError
from fermix.preprocess.records import image_relpath, save_record, source_stamp
from fermix.preprocess.settings import Settings


def _round(values: np.ndarray) -> list[Any]:
    return np.round(np.asarray(values, dtype=np.float64), 3).tolist()


def find_face(gray: np.ndarray, item: RawItem, settings: Settings) -> tuple[Face | None, int, str]:
    """(face to use or None, number of faces detected, reason when None)."""
    if settings.detector == "none":
        return whole_image(gray), 1, ""
    if settings.detector == "box":
        if item.box is None:
            if settings.already_cropped:
                return whole_image(gray), 1, ""
            return None, 0, "the dataset provides no face box for this image (preprocess.detector=box)"
        x0, y0, x1, y1 = (float(v) for v in item.box)
        return Face((x0, y0, x1, y1)), 1, ""
    faces = detect_faces(gray, settings.upsample)
    face = choose_face(faces, settings.keep)
    if face is None and settings.already_cropped:
        return whole_image(gray), 0, ""
    if face is None:
        return None, 0, f"no face detected (HOG detector, upsample={settings.upsample})"
    return face, len(faces), ""


def process_item(item: RawItem, settings: Settings, out: Path) -> dict[str, Any]:
    """Detect, landmark, align and write one item; returns (and stores) its record."""
    record: dict[str, Any] = {
        "sample_id": item.sample_id,
        "raw_path": str(item.path),
        "source": source_stamp(Path(item.path)),
    }
    try:
        image = read_image(item.path)
        gray = to_gray(image)
        face, count, reason = find_face(gray, item, settings)
        if face is None:
            return _fail(out, record, reason)
        landmarks = predict_landmarks(gray, face, settings.landmark_model)
        aligned, aligned_landmarks, matrix = align_face(image, landmarks, settings.template)
    except ModelError:
        raise
    except FermixError as e:
        return _fail(out, record, str(e))
    except Exception as e:  # one odd photo (a degenerate face, a dlib error) must not end a long run
        return _fail(out, record, f"{e.__class__.__name__}: {e}")
    rel = image_relpath(item.sample_id, settings.image_format)
    write_image(out / rel, aligned)
    record.update(
        {
            "status": "ok",
            "image": rel,
            "faces": count,
            "box": _round(face.box),
            "score": None if face.score is None else round(face.score, 4),
            "matrix": _round(matrix),
            "landmarks": _round(aligned_landmarks),
        }
    )
    save_record(out, record)
    return record


def _fail(out: Path, record: dict[str, Any], reason: str) -> dict[str, Any]:
    record.update({"status": "failed", "reason": reason})
    save_record(out, record)
    return record


# ------------------------------------------------------------------ process-pool plumbing

_WORKER: dict[str, Any] = {}


def _exit_with_parent(parent: int, interval: float = 0.5) -> None:
    """A killed run must not leave its workers behind: pool workers blocked on their task queue
    never notice that the parent died, so a daemon thread watches the parent pid."""
    while True:
        time.sleep(interval)
        if os.getppid() != parent:
            os._exit(1)


def init_worker(settings: Settings, out: Path) -> None:
    """Pool initializer: remember the run's settings in this process (models load on first use)."""
    import cv2

    cv2.setNumThreads(1)  # one image per process; OpenCV's own threads would only compete
    _WORKER["settings"] = settings
    _WORKER["out"] = out
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()


def process_in_worker(item: RawItem) -> dict[str, Any]:
    return process_item(item, _WORKER["settings"], _WORKER["out"])
