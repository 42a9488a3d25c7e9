"""What a dataset hands to `fermix preprocess`: one raw photograph and what is known about it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RawItem:
    """One raw image to detect, align and crop.

    `label` is the class name in the dataset's canonical label space (or None when unlabelled);
    `native_label` is the label exactly as the dataset writes it (e.g. RAF-DB's "1").
    `box` is a face box the dataset provides, (x0, y0, x1, y1) in the raw image's pixels; when
    it is set, the detector is not run.
    """

    path: Path
    sample_id: str  # unique within the dataset; safe as a relative file path (posix, no suffix needed)
    label: str | None = None
    native_label: str | None = None
    split: str | None = None
    subject: str | None = None
    source: str = ""
    box: tuple[float, float, float, float] | None = None
