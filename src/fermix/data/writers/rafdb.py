"""Write samples in RAF-DB's published `basic` layout, which `dataset=rafdb` reads.

    <out>/EmoLabel/list_patition_label.txt     "train_00001.jpg 5" lines, train then test, in sample order
    <out>/Image/original/train_00001.jpg       the sample's image as given
    <out>/Image/aligned/train_00001_aligned.jpg  the same face resized to aligned_size (100 as published)

Names are numbered per split as RAF-DB numbers them (train_%05d, test_%04d); val samples are
written as train (RAF-DB has no validation list). Labels are written as RAF-DB's 1..7 (1 Surprise ...
7 Neutral), found by class name, so a sample labelled "surprise" gets 1 and "neutral" gets 7.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from fermix.data.datasets.rafdb import LABEL_FILE, RAF_CLASSES, image_path
from fermix.data.label_spaces import canonical_name
from fermix.data.writers import WriterSample
from fermix.data.writers.images import write_image
from fermix.errors import FermixError
from fermix.utils.io import atomic_write_text

_NAME_FORMAT = {"train": "train_{:05d}.jpg", "test": "test_{:04d}.jpg"}
_NATIVE = {canonical_name(name): number for number, name in RAF_CLASSES.items()}


def write_rafdb(samples: Iterable[WriterSample], out: Path, *, aligned_size: int = 100, **_: object) -> Path:
    """Write images and the label list under `out` (the `basic` folder a config points at); returns `out`."""
    out = Path(out)
    counts = {"train": 0, "test": 0}
    lines: dict[str, list[str]] = {"train": [], "test": []}
    for s in samples:
        split = _split(s)
        native = _native(s)
        counts[split] += 1
        name = _NAME_FORMAT[split].format(counts[split])
        image = np.asarray(s["image"])
        write_image(image_path(out, name, "original"), image)
        write_image(image_path(out, name, "aligned"), _resized(image, aligned_size))
        lines[split].append(f"{name} {native}")
    if not any(lines.values()):
        raise FermixError("no samples to write; a RAF-DB root needs at least one image.")
    atomic_write_text(out / LABEL_FILE, "".join(f"{line}\n" for line in [*lines["train"], *lines["test"]]))
    return out


def _split(sample: WriterSample) -> str:
    split = str(sample.get("split") or "").strip().lower()
    if split not in ("train", "val", "test"):
        raise FermixError(f"sample {sample['sample_id']} has split {sample.get('split')!r}; use train, val or test.")
    return "test" if split == "test" else "train"


def _native(sample: WriterSample) -> int:
    expr = sample.get("expr")
    number = None if expr is None else _NATIVE.get(canonical_name(str(expr)))
    if number is None:
        known = ", ".join(RAF_CLASSES.values())
        raise FermixError(f"sample {sample['sample_id']} has label {expr}, which is not a RAF-DB class ({known}).")
    return number


def _resized(image: np.ndarray, size: int) -> np.ndarray:
    if image.shape[:2] == (size, size):
        return image
    shrinking = image.shape[0] > size or image.shape[1] > size
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)
