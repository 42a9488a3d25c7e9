"""Write samples in Aff-Wild2's published layout (ABAW 2020; the `affwild2` adapter reads it back).

  annotations/{AU_Set,EXPR_Set,VA_Set}/{Training_Set,Validation_Set,Test_Set}/<video>.txt
  cropped_aligned/<video>/<frame:05d>.jpg

Samples are grouped into videos by their `video` key (else their subject, else "video") and
numbered by their `frame` key (else 1, 2, ... in the order given). A video gets a task's file
when at least one of its samples has that task's label; every line from frame 1 to its last
frame is written, with the published missing values (AU -1, EXPR -1, VA -5) where a frame has
no label or no sample.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from fermix.data.action_units import AFFWILD2_AUS
from fermix.data.datasets.affwild2 import EXPR_HEADER, MISSING, VA_HEADER
from fermix.data.label_spaces import canonical_name
from fermix.data.writers import WriterSample
from fermix.data.writers.images import write_image
from fermix.errors import FermixError
from fermix.utils.io import atomic_write_text

_SET_OF_SPLIT = {"train": "Training_Set", "val": "Validation_Set", "test": "Test_Set"}
_TASK_FOLDER = {"au": "AU_Set", "expr": "EXPR_Set", "va": "VA_Set"}
_HEADER = {"au": ",".join(AFFWILD2_AUS), "expr": ",".join(EXPR_HEADER), "va": ",".join(VA_HEADER)}
_EXPR_CODE = {canonical_name(n): i for i, n in enumerate(EXPR_HEADER)}


def write_affwild2(samples: Iterable[WriterSample], out: Path, **_: object) -> Path:
    out = Path(out)
    videos: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
    counters: dict[tuple[str, str], int] = {}
    for s in samples:
        split = str(s.get("split") or "train")
        if split not in _SET_OF_SPLIT:
            raise FermixError(f"sample {s['sample_id']} has split `{split}`; use train, val or test.")
        video = _video_name(s)
        key = (_SET_OF_SPLIT[split], video)
        frame = s.get("frame")
        frame = int(frame) if frame is not None else counters.get(key, 0) + 1
        if frame < 1:
            raise FermixError(f"sample {s['sample_id']} has frame {frame}; Aff-Wild2 frames start at 1.")
        counters[key] = max(counters.get(key, 0), frame)
        frames = videos.setdefault(key, {})
        if frame in frames:
            raise FermixError(f"video {video} has two samples for frame {frame} in {key[0]}.")
        frames[frame] = {"expr": _expr_code(s), "au": _au_values(s), "va": _va_values(s)}
        write_image(out / "cropped_aligned" / video / f"{frame:05d}.jpg", np.asarray(s["image"]))

    for (set_name, video), frames in videos.items():
        last = max(frames)
        for task in ("expr", "au", "va"):
            if all(f[task] is None for f in frames.values()):
                continue
            lines = [_HEADER[task], *(_line(task, frames.get(k, {}).get(task)) for k in range(1, last + 1))]
            path = out / "annotations" / _TASK_FOLDER[task] / set_name / f"{video}.txt"
            atomic_write_text(path, "\n".join(lines) + "\n")
    return out


def _video_name(s: WriterSample) -> str:
    name = str(s.get("video") or s.get("subject") or "video").strip()
    return name.replace("/", "_").replace("\\", "_") or "video"


def _expr_code(s: WriterSample) -> int | None:
    expr = s.get("expr")
    if expr is None:
        return None
    code = _EXPR_CODE.get(canonical_name(str(expr)))
    if code is None:
        raise FermixError(f"sample {s['sample_id']} has class `{expr}`, which Aff-Wild2's 7 EXPR classes lack.")
    return code


def _au_values(s: WriterSample) -> np.ndarray | None:
    au = s.get("au")
    if au is None:
        return None
    au = np.asarray(au, dtype=np.float64).reshape(-1)
    names = tuple(s.get("au_names") or AFFWILD2_AUS)
    if len(names) != len(au):
        raise FermixError(f"sample {s['sample_id']} has {len(au)} AU values but {len(names)} au_names.")
    absent = [a for a in AFFWILD2_AUS if a not in names]
    if absent:
        raise FermixError(f"sample {s['sample_id']} has no value for {', '.join(absent)}, which Aff-Wild2 annotates.")
    picked = au[[names.index(a) for a in AFFWILD2_AUS]]
    return None if np.isnan(picked).all() else picked


def _va_values(s: WriterSample) -> np.ndarray | None:
    va = s.get("va")
    if va is None:
        return None
    va = np.asarray(va, dtype=np.float64).reshape(2)
    return None if np.isnan(va).all() else va


def _line(task: str, value: Any) -> str:
    """One annotation line in the published encoding (missing: AU -1 each, EXPR -1, VA -5,-5)."""
    if task == "expr":
        return str(int(MISSING["expr"]) if value is None else value)
    if task == "au":
        if value is None:
            return ",".join([str(int(MISSING["au"]))] * len(AFFWILD2_AUS))
        return ",".join(str(int(MISSING["au"])) if np.isnan(v) else str(int(v >= 0.5)) for v in value)
    if value is None or np.isnan(value).any():
        return f"{int(MISSING['va'])},{int(MISSING['va'])}"
    return ",".join(f"{float(np.clip(v, -1.0, 1.0)):.6g}" for v in value)
