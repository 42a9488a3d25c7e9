"""Write samples in AffectNet's published layout (the `affectnet` adapter reads it back).

  Manually_Annotated_file_lists/training.csv      samples of split train
  Manually_Annotated_file_lists/validation.csv    samples of split val or test
  Manually_Annotated_Images/<n>/<stem>.jpg

AffectNet's images are photographs in which the CSV's face box marks the face. To write files of
that kind, each face image is placed in a larger canvas (`pad` × its size of grey on each side)
and its box and landmarks are given in the canvas's pixels. An unlabelled sample is written with
code 9 (Uncertain), and a missing valence/arousal as -2, as AffectNet does.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fermix.data.datasets.affectnet import COLUMNS, EXPRESSION_CODES, MISSING_VA
from fermix.data.label_spaces import canonical_name
from fermix.data.writers import WriterSample
from fermix.data.writers.images import write_image
from fermix.errors import FermixError
from fermix.utils.io import atomic_path

_CODE_OF = {canonical_name(n): i for i, n in enumerate(EXPRESSION_CODES[:8])}
_UNCERTAIN = 9
_PER_FOLDER = 1000


def write_affectnet(samples: Iterable[WriterSample], out: Path, pad: float = 0.2, **_: object) -> Path:
    out = Path(out)
    if pad < 0:
        raise FermixError(f"pad={pad} must be >= 0.")
    rows: dict[str, list[dict[str, Any]]] = {"training.csv": [], "validation.csv": []}
    for n, s in enumerate(samples):
        stem = str(s["sample_id"]).replace("/", "_").replace("\\", "_")
        rel = f"{1 + n // _PER_FOLDER}/{stem}.jpg"
        image = np.asarray(s["image"])
        h, w = image.shape[:2]
        px, py = round(pad * w), round(pad * h)
        canvas = cv2.copyMakeBorder(image, py, py, px, px, cv2.BORDER_CONSTANT, value=(128, 128, 128))
        write_image(out / "Manually_Annotated_Images" / rel, canvas)
        code = _code(s)
        valence, arousal = _va(s.get("va")) if code != _UNCERTAIN else (MISSING_VA, MISSING_VA)
        split = str(s.get("split") or "train")
        rows["training.csv" if split == "train" else "validation.csv"].append(
            {
                "subDirectory_filePath": rel,
                "face_x": px,
                "face_y": py,
                "face_width": w,
                "face_height": h,
                "facial_landmarks": _landmarks(s.get("landmarks"), px, py),
                "expression": code,
                "valence": valence,
                "arousal": arousal,
            }
        )
    for fname, table in rows.items():
        with atomic_path(out / "Manually_Annotated_file_lists" / fname) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(COLUMNS))
            writer.writeheader()
            writer.writerows(table)
    return out


def _code(sample: WriterSample) -> int:
    expr = sample.get("expr")
    if expr is None:
        return _UNCERTAIN
    code = _CODE_OF.get(canonical_name(str(expr)))
    if code is None:
        raise FermixError(f"sample {sample['sample_id']} has class `{expr}`, which AffectNet has no code for.")
    return code


def _va(va: Any) -> tuple[float, float]:
    if va is None:
        return MISSING_VA, MISSING_VA
    v, a = (float(x) for x in np.asarray(va, dtype=np.float64).reshape(2))
    if np.isnan(v) or np.isnan(a):
        return MISSING_VA, MISSING_VA
    return round(v, 6), round(a, 6)


def _landmarks(landmarks: Any, px: int, py: int) -> str:
    if landmarks is None:
        return ""
    pts = np.asarray(landmarks, dtype=np.float64).reshape(68, 2) + np.array([px, py])
    if not np.isfinite(pts).all():
        return ""
    return ";".join(f"{v:.2f}" for v in pts.reshape(-1))
