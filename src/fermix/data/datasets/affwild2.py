"""Aff-Wild2 (ABAW 2020): per-video AU / EXPR / VA annotation files and the organisers' cropped frames.

Layout under `root` (multitask spec §4; datasets/affwild2/README.md):
  annotations/{AU_Set,EXPR_Set,VA_Set}/{Training_Set,Validation_Set}/<video>.txt
  cropped_aligned/<video>/<frame:05d>.jpg
Each txt has a header line (`AU1,AU2,...` / `Neutral,Anger,...` / `valence,arousal`); data line k
(1-based, after the header) is frame k, i.e. image `<frame:05d>.jpg`. Missing values: AU -1,
EXPR -1, VA -5. As in the original tools, a task's values on a frame are discarded when any of
them is the missing value, and a frame without a face image is dropped.

Frames are joined across the chosen tasks on (set, video, frame), so one record carries every
label it has: `expr` -1, `au` NaN and `va` NaN where a task has none (DESIGN §1). Frames with no
label in any chosen task are dropped. `subject` is the video name (`_left`/`_right` videos are
one person each).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fermix.data.action_units import AFFWILD2_AUS
from fermix.data.datasets.abaw_submission import ABAWSubmission
from fermix.data.datasets.base import DatasetAdapter, FolderConfig
from fermix.data.datasets.common import dataset_root
from fermix.data.images import read_image
from fermix.data.label_spaces import LabelSpace, get_label_space, map_label
from fermix.errors import FermixError

log = logging.getLogger("fermix")

TASKS = ("expr", "au", "va")
# Folder names per task: ABAW 2020 first, then the later ABAW challenges' names.
TASK_FOLDERS: dict[str, tuple[str, ...]] = {
    "au": ("AU_Set", "AU_Detection_Challenge"),
    "expr": ("EXPR_Set", "EXPR_Classification_Challenge", "EXPR_Recognition_Challenge"),
    "va": ("VA_Set", "VA_Estimation_Challenge"),
}
# Set folder -> the split it is published as.
SET_FOLDERS: dict[str, str] = {
    "Training_Set": "train", "Train_Set": "train", "Validation_Set": "val", "Test_Set": "test",
}  # fmt: skip
EXPR_HEADER: tuple[str, ...] = ("Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise")
VA_HEADER: tuple[str, ...] = ("valence", "arousal")
MISSING = {"au": -1.0, "expr": -1.0, "va": -5.0}
SOURCE = "AffWild2"


class Task(StrEnum):
    expr = "expr"
    au = "au"
    va = "va"


class ValidationSplit(StrEnum):
    val = "val"  # ABAW: select and report on Validation_Set; no labelled test set
    test = "test"  # Validation_Set is the test set; val carved from train


@dataclass(frozen=True)
class AffWild2Config(FolderConfig):
    """configs/dataset/affwild2.yaml."""

    tasks: list[Task] = field(default_factory=lambda: [Task(t) for t in TASKS])  # any non-empty subset
    validation_split: ValidationSplit = ValidationSplit.val
    annotations: str | None = None
    images: str = "cropped_aligned"
    image_ext: str = "jpg"


class AffWild2Dataset(DatasetAdapter):
    """Per-frame records of Aff-Wild2 with the AU, expression and valence/arousal labels of the chosen tasks."""

    name = "affwild2"
    Config = AffWild2Config
    au_names: tuple[str, ...] = AFFWILD2_AUS
    evaluation_protocols = (ABAWSubmission,)  # fermix test ... abaw_submission=true

    def __init__(self, cfg: Mapping[str, Any]) -> None:
        options: AffWild2Config = self.make_options(cfg)
        self.root = dataset_root(options.root, "Aff-Wild2")
        self.tasks = _tasks(options.tasks)
        self.label_space: LabelSpace = get_label_space("basic7")
        validation_split = options.validation_split
        ext = "." + options.image_ext.strip().lstrip(".")
        annotations = _annotation_dir(self.root, options.annotations)
        images = _subdir(self.root, options.images, "images")

        tables = [self._read_task(annotations, task) for task in self.tasks]
        frames = _join(tables)
        frames = self._keep_usable(frames, images, ext)
        if validation_split == "test":
            if (frames["set"] == "test").any():
                raise FermixError(
                    "this Aff-Wild2 copy has a labelled Test_Set, so dataset.validation_split=test would mix the "
                    "validation set into it; keep dataset.validation_split=val."
                )
            frames.loc[frames["set"] == "val", "split"] = "test"
        self.keys: frozenset[str] = frozenset({"image", "sample_id", "subject", *self.tasks})
        self._records = _build_records(frames)

    # ---------------------------------------------------------------- public API

    def records(self) -> pd.DataFrame:
        """One row per frame: the standard columns, video, frame, and the chosen tasks' label columns."""
        return self._records.copy()

    def load(self, row: Mapping[str, Any] | pd.Series) -> dict[str, Any]:
        """The frame and exactly the batch keys of the chosen tasks (missing labels as -1 / NaN)."""
        sample: dict[str, Any] = {
            "image": read_image(row["path"]),
            "sample_id": str(row["sample_id"]),
            "subject": str(row["subject"]),
        }
        if "expr" in self.tasks:
            sample["expr"] = int(row["expr"])
        if "au" in self.tasks:
            sample["au"] = np.array([row[a] for a in AFFWILD2_AUS], dtype=np.float32)
        if "va" in self.tasks:
            sample["va"] = np.array([row["valence"], row["arousal"]], dtype=np.float32)
        return sample

    def __len__(self) -> int:
        return len(self._records)

    # ---------------------------------------------------------------- reading

    def _read_task(self, annotations: Path, task: str) -> pd.DataFrame:
        """All videos of one task: set, video, frame and the task's value columns (missing -> -1 / NaN)."""
        task_dir = next((annotations / f for f in TASK_FOLDERS[task] if (annotations / f).is_dir()), None)
        if task_dir is None:
            raise FermixError(
                f"no Aff-Wild2 {task.upper()} annotations: expected {annotations / TASK_FOLDERS[task][0]}/"
                f"Training_Set/<video>.txt (or drop `{task}` from dataset.tasks)."
            )
        parts = []
        for set_dir in sorted(p for p in task_dir.iterdir() if p.is_dir() and p.name in SET_FOLDERS):
            for txt in sorted(set_dir.glob("*.txt")):
                values = _read_annotation(txt, task, self.label_space)
                n = len(next(iter(values.values())))
                parts.append(
                    pd.DataFrame(
                        {
                            "set": SET_FOLDERS[set_dir.name],
                            "video": txt.stem,
                            "frame": np.arange(1, n + 1, dtype=np.int64),
                            **values,
                        }
                    )
                )
        if not parts:
            raise FermixError(
                f"{task_dir} holds no annotation files; expected {task_dir}/Training_Set/<video>.txt "
                f"and Validation_Set/<video>.txt."
            )
        return pd.concat(parts, ignore_index=True)

    def _keep_usable(self, frames: pd.DataFrame, images: Path, ext: str) -> pd.DataFrame:
        """Drop frames with no label in any chosen task, then frames whose image file is missing."""
        labelled = np.zeros(len(frames), dtype=bool)
        if "expr" in self.tasks:
            labelled |= frames["expr"].to_numpy() >= 0
        if "au" in self.tasks:
            labelled |= frames[AFFWILD2_AUS[0]].notna().to_numpy()
        if "va" in self.tasks:
            labelled |= frames["valence"].notna().to_numpy()
        n_unlabelled = int((~labelled).sum())
        frames = frames[labelled]

        # One directory listing per video, and plain strings: a stat or a Path per frame costs
        # minutes on Aff-Wild2's ~2.6 M frames.
        videos = frames["video"].to_numpy()
        names = [f"{f:05d}{ext}" for f in frames["frame"].to_numpy()]
        listing = {v: _listing(images / v) for v in np.unique(videos)}
        present = np.fromiter((n in listing[v] for v, n in zip(videos, names, strict=True)), bool, count=len(names))
        n_no_image = int((~present).sum())
        frames = frames[present].copy()
        base = images.absolute().as_posix()
        frames["path"] = [f"{base}/{v}/{n}" for v, n, p in zip(videos, names, present, strict=True) if p]
        frames["split"] = frames["set"]
        if n_unlabelled or n_no_image:
            log.info(
                "affwild2: dropped %d frames without a face image in %s and %d frames with no valid %s label",
                n_no_image,
                images,
                n_unlabelled,
                "/".join(t.upper() for t in self.tasks),
            )
        if not len(frames):
            raise FermixError(
                f"no Aff-Wild2 frame under {self.root} has both a label and an image "
                f"({images}/<video>/<frame:05d>{ext}); check dataset.images and dataset.image_ext."
            )
        return frames.reset_index(drop=True)


# -------------------------------------------------------------------- helpers




def _tasks(chosen: list[Task]) -> tuple[str, ...]:
    """The chosen tasks in TASKS order (the schema allows only their names; none chosen is refused here)."""
    if not chosen:
        raise FermixError("dataset.tasks=[] must be a non-empty subset of [expr, au, va].")
    return tuple(t for t in TASKS if t in chosen)


def _subdir(root: Path, value: Any, key: str) -> Path:
    path = Path(str(value)).expanduser()
    path = path if path.is_absolute() else root / path
    if not path.is_dir():
        raise FermixError(f"Aff-Wild2 folder {path} does not exist; set dataset.{key}=... (relative to root).")
    return path


def _annotation_dir(root: Path, value: Any) -> Path:
    """The folder holding AU_Set/EXPR_Set/VA_Set: dataset.annotations, else root/annotations, else root."""
    if value:
        return _subdir(root, value, "annotations")
    known = {f for names in TASK_FOLDERS.values() for f in names}
    for candidate in (root / "annotations", root):
        if candidate.is_dir() and any((candidate / f).is_dir() for f in known):
            return candidate
    raise FermixError(
        f"no Aff-Wild2 annotation folders (AU_Set, EXPR_Set, VA_Set) in {root / 'annotations'} or {root}; "
        f"see datasets/affwild2/README.md."
    )


def _listing(folder: Path) -> set[str]:
    """File names in one video's frame folder (empty when the folder is missing)."""
    try:
        return set(os.listdir(folder))
    except OSError:
        return set()


def _read_annotation(path: Path, task: str, space: LabelSpace) -> dict[str, np.ndarray]:
    """One video's txt as value columns; a task's values on a frame become missing if any is missing."""
    header, values = _read_txt(path, width=1 if task == "expr" else None)
    missing = MISSING[task]
    if task == "expr":
        return {"expr": _expr_column(header, values, path, space)}
    expected = AFFWILD2_AUS if task == "au" else VA_HEADER
    lowered = [h.lower() for h in header]
    if sorted(lowered) != sorted(e.lower() for e in expected):
        raise FermixError(
            f"header of {path} is `{','.join(header)}`; a {task.upper()} file starts with `{','.join(expected)}`."
        )
    values = values[:, [lowered.index(e.lower()) for e in expected]]
    is_missing = values == missing
    if task == "au":
        ok = is_missing | (values == 0) | (values == 1)
        rule = "0, 1 or -1 (missing)"
    else:
        ok = is_missing | ((values >= -1.0) & (values <= 1.0))
        rule = "in [-1, 1] or -5 (missing)"
    if not ok.all():
        line, col = (int(i) for i in np.argwhere(~ok)[0])
        raise FermixError(f"value {values[line, col]:g} on line {line + 2} of {path} is not {rule}.")
    values[is_missing.any(axis=1)] = np.nan
    names = expected if task == "au" else ("valence", "arousal")
    return {n: values[:, i].astype(np.float32) for i, n in enumerate(names)}


def _read_txt(path: Path, width: int | None) -> tuple[list[str], np.ndarray]:
    """Header names and the data lines as a float matrix (`width` values per line; default: one per name).

    Data line k is frame k, so a blank line inside the file would shift every later frame: refused.
    """
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise FermixError(f"cannot read Aff-Wild2 annotation file {path}: {e}") from e
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise FermixError(f"Aff-Wild2 annotation file {path} is empty; it needs a header line.")
    header = [h.strip() for h in lines[0].split(",")]
    width = width or len(header)
    body = lines[1:]
    try:
        values = np.array(",".join(body).replace(" ", "").split(","), dtype=np.float64) if body else np.empty(0)
        if values.size != width * len(body):
            raise ValueError
    except ValueError:
        for i, line in enumerate(body):
            fields = [f.strip() for f in line.split(",")]
            if len(fields) != width:
                raise FermixError(
                    f"line {i + 2} of {path} has {len(fields)} values; this file needs {width} per line."
                ) from None
            for f in fields:
                try:
                    float(f)
                except ValueError:
                    raise FermixError(f"value `{f}` on line {i + 2} of {path} is not a number.") from None
        raise FermixError(f"cannot parse Aff-Wild2 annotation file {path}.") from None
    return header, values.reshape(len(body), width)


def _expr_column(header: list[str], values: np.ndarray, path: Path, space: LabelSpace) -> np.ndarray:
    """EXPR codes (in the file's header order) mapped by class name into the label space; -1 stays -1."""
    try:
        index_of = np.array([map_label(space, name) for name in header], dtype=np.int64)
    except FermixError:
        raise FermixError(
            f"EXPR header of {path} is `{','.join(header)}`; fermix reads the 7 classes "
            f"`{','.join(EXPR_HEADER)}` (any order)."
        ) from None
    codes = values[:, 0]
    ok = (codes == np.round(codes)) & (codes >= -1) & (codes < len(header))
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        raise FermixError(
            f"label {codes[i]:g} on line {i + 2} of {path} is out of range: EXPR labels are "
            f"0..{len(header) - 1} (-1 = missing)."
        )
    codes = codes.astype(np.int64)
    return np.where(codes >= 0, index_of[np.clip(codes, 0, None)], -1)


def _join(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """Outer join of the tasks' frames on (set, video, frame); a task a frame lacks gets its missing value."""
    keys = ["set", "video", "frame"]
    out = tables[0]
    for t in tables[1:]:
        out = out.merge(t, on=keys, how="outer")
    if "expr" in out:
        out["expr"] = out["expr"].fillna(-1).astype(np.int64)
    return out.sort_values(keys, kind="stable").reset_index(drop=True)


def _build_records(frames: pd.DataFrame) -> pd.DataFrame:
    n = len(frames)
    columns = (frames[c].to_numpy() for c in ("set", "video", "frame"))
    ids = [f"{s}/{v}/{f:05d}" for s, v, f in zip(*columns, strict=True)]
    df = pd.DataFrame(
        {
            "sample_id": pd.Series(ids, dtype=object),
            "path": pd.Series(frames["path"].to_numpy(), dtype=object),
            "expr": frames["expr"].to_numpy(dtype=np.int64) if "expr" in frames else np.full(n, -1, dtype=np.int64),
            "split": pd.Series(frames["split"].to_numpy(), dtype=object),
            "subject": pd.Series(frames["video"].to_numpy(), dtype=object),
            "source": pd.Series([SOURCE] * n, dtype=object),
            "video": pd.Series(frames["video"].to_numpy(), dtype=object),
            "frame": frames["frame"].to_numpy(dtype=np.int64),
        }
    )
    for col in (*AFFWILD2_AUS, "valence", "arousal"):
        if col in frames:
            df[col] = frames[col].to_numpy(dtype=np.float32)
    return df.sort_values("sample_id", kind="stable").reset_index(drop=True)
