"""Write arrays in MulT's pickle layout, which `dataset=iemocap` / `dataset=mosei` read (causalmer.md §3).

    <path>   {"train" | "valid" | "test": {"text", "audio", "vision": float64 (N, L, D),
                                           "labels": float64 IEMOCAP (N, 4, 2) one-hot | MOSEI (N, 1, 1) score,
                                           "id": MOSEI only, (N, 3) str video id / start / end}}

Unlike the image writers (fermix.data.writers), which take a stream of per-image samples, this one
takes whole arrays per split: MulT's file is one pickle of stacked arrays.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fermix.data.datasets.mult_pickle import MODALITIES, PICKLE_SPLITS, task_of
from fermix.errors import FermixError
from fermix.utils.io import atomic_write_bytes

_SPLIT_NAMES = {"train": "train", "valid": "valid", "val": "valid", "validation": "valid", "test": "test"}


def write_mult_pickle(split_arrays: Mapping[str, Mapping[str, Any]], path: str | Path) -> Path:
    """Write {train, valid (or val), test} -> {text, audio, vision, labels[, id]} as MulT's float64 pickle.

    IEMOCAP labels are (N, 4, 2) one-hot, MOSEI labels one score per sample (stored (N, 1, 1)).
    Returns `path`.
    """
    out: dict[str, dict[str, np.ndarray]] = {}
    for name, arrays in split_arrays.items():
        part = _SPLIT_NAMES.get(str(name).lower())
        if part is None or part in out:
            raise FermixError(f"split `{name}` is not one of train, valid (val), test, or is given twice.")
        out[part] = _split(arrays, part)
    missing = [p for p in PICKLE_SPLITS if p not in out]
    if missing:
        raise FermixError(f"no arrays for split {', '.join(missing)}; MulT's layout has train, valid and test.")
    path = Path(path)
    atomic_write_bytes(path, pickle.dumps({p: out[p] for p in PICKLE_SPLITS}, protocol=4))
    return path


def _split(arrays: Mapping[str, Any], part: str) -> dict[str, np.ndarray]:
    missing = [k for k in (*MODALITIES, "labels") if k not in arrays]
    if missing:
        raise FermixError(f"split {part} has no {', '.join(missing)} array.")
    split = {m: np.asarray(arrays[m], dtype=np.float64) for m in MODALITIES}
    for m, a in split.items():
        if a.ndim != 3:
            raise FermixError(f"split {part}: {m} has shape {a.shape}; features must be (samples, steps, size).")
    labels = np.asarray(arrays["labels"], dtype=np.float64)
    n = labels.shape[0] if labels.ndim else -1
    if any(a.shape[0] != n for a in split.values()):
        raise FermixError(f"split {part}: text, audio, vision and labels hold different numbers of samples.")
    if task_of(labels, f"split {part}") == "mosei7":
        labels = labels.reshape(n, 1, 1)
    split["labels"] = labels
    if arrays.get("id") is not None:
        ids = np.asarray(arrays["id"])
        if ids.shape[0] != n:
            raise FermixError(f"split {part}: id has {ids.shape[0]} rows for {n} samples.")
        split["id"] = ids
    return split
