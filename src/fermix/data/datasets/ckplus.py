"""CK+ (Lucey et al., 2010) in its raw published layout, for `fermix preprocess` only.

Layout under `root` (iern spec §4; datasets/ckplus/README.md):
  cohn-kanade-images/<Subj>/<Seq>/<Subj>_<Seq>_<frame:08d>.png
  Emotion/<Subj>/<Seq>/<Subj>_<Seq>_<frame:08d>_emotion.txt    (labelled sequences only)
The emotion file holds one float code: 0 neutral, 1 anger, 2 contempt, 3 disgust, 4 fear,
5 happy, 6 sadness, 7 surprise. A sequence runs from neutral to the peak expression, so the
labelled frames are the last `frames` of each labelled sequence (3 in IERN); unlabelled
sequences are skipped. Contempt is kept only in a label space that has it (basic8).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fermix.data.datasets.base import FolderConfig
from fermix.data.datasets.common import (
    RawLayout,
    at_least,
    dataset_root,
    natural_key,
    visible_dirs,
    visible_files,
)
from fermix.data.images import is_image_file
from fermix.data.label_spaces import LabelSpace, get_label_space, map_label
from fermix.data.raw import RawItem
from fermix.errors import FermixError

log = logging.getLogger("fermix")

# CK+'s emotion codes, in code order (the published Emotion/ README table).
EMOTION_CODES: tuple[str, ...] = ("neutral", "anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")
SOURCE = "CKPlus"


@dataclass(frozen=True)
class CKPlusConfig(FolderConfig):
    """configs/dataset/ckplus.yaml."""

    frames: int = 3  # the last N frames of each labelled sequence
    neutral_frames: int = 0  # also the first N frames as neutral
    keep_contempt: bool = False
    label_space: str | None = None  # null = basic7 (basic8 with keep_contempt); any named space


class CKPlusDataset(RawLayout):
    """CK+ raw sequences: a source for `fermix preprocess`, not a training dataset."""

    name = "ckplus"
    Config = CKPlusConfig

    @classmethod
    def raw_label_space(cls, cfg: Mapping[str, Any]) -> LabelSpace:
        """The space `raw_items` labels live in (recorded by `fermix preprocess`): basic7, or basic8 with
        `keep_contempt`; an explicit `label_space` wins."""
        o: CKPlusConfig = cls.make_options(cfg)
        space = get_label_space(o.label_space or ("basic8" if o.keep_contempt else "basic7"))
        if o.keep_contempt and "contempt" not in space.classes:
            raise FermixError(f"dataset.keep_contempt=true needs a label space with contempt, not `{space.name}`.")
        return space

    @classmethod
    def raw_items(cls, cfg: Mapping[str, Any]) -> list[RawItem]:
        """The last `frames` frames (and first `neutral_frames`) of every labelled sequence."""
        o: CKPlusConfig = cls.make_options(cfg)
        root = dataset_root(o.root, "CK+")
        space = cls.raw_label_space(cfg)
        frames = at_least(o.frames, "frames", minimum=1)
        neutral_frames = at_least(o.neutral_frames, "neutral_frames", minimum=0)
        images_dir, emotion_dir = root / "cohn-kanade-images", root / "Emotion"
        for folder in (images_dir, emotion_dir):
            if not folder.is_dir():
                raise FermixError(f"CK+ folder {folder} not found; see datasets/ckplus/README.md for the layout.")

        items: list[RawItem] = []
        dropped: dict[str, int] = {}
        for subject_dir in visible_dirs(emotion_dir):
            for seq_dir in visible_dirs(subject_dir):
                code = _read_emotion(seq_dir)
                if code is None:
                    continue  # an unlabelled sequence
                seq_images = images_dir / subject_dir.name / seq_dir.name
                images = _frames(seq_images)
                if not images:
                    raise FermixError(
                        f"CK+ sequence {subject_dir.name}/{seq_dir.name} has an emotion label but no images in "
                        f"{seq_images}."
                    )
                n_peak = min(frames, len(images))
                n_neutral = min(neutral_frames, len(images) - n_peak)
                picks = [(p, 0) for p in images[:n_neutral]] + [(p, code) for p in images[len(images) - n_peak :]]
                for path, c in picks:
                    name = EMOTION_CODES[c]
                    try:
                        label = space.classes[map_label(space, name)]
                    except FermixError:
                        dropped[name] = dropped.get(name, 0) + 1
                        continue
                    items.append(
                        RawItem(
                            path=path,
                            sample_id=path.stem,
                            label=label,
                            native_label=str(c),
                            split=None,
                            subject=subject_dir.name,
                            source=SOURCE,
                        )
                    )
        if dropped:
            what = ", ".join(f"{n} {name}" for name, n in sorted(dropped.items()))
            log.info("ckplus: skipped %s frame(s) whose class is not in label space %s", what, space.name)
        if not items:
            raise FermixError(f"no labelled CK+ sequence found under {emotion_dir}.")
        return items


def _frames(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted((p for p in visible_files(folder) if is_image_file(p)), key=natural_key)


def _read_emotion(seq_dir: Path) -> int | None:
    """The sequence's emotion code, or None when its folder has no *_emotion.txt."""
    files = sorted(p for p in visible_files(seq_dir) if p.name.endswith("_emotion.txt"))
    if not files:
        return None
    if len(files) > 1:
        raise FermixError(f"CK+ sequence folder {seq_dir} has {len(files)} emotion files; keep one.")
    text = files[0].read_text(encoding="utf-8", errors="replace").strip()
    try:
        value = float(text)
    except ValueError:
        raise FermixError(f"CK+ emotion file {files[0]} holds `{text}`, not a number.") from None
    if value != round(value) or not 0 <= value < len(EMOTION_CODES):
        raise FermixError(f"CK+ emotion file {files[0]} holds {value:g}, which is not a CK+ emotion code (0..7).")
    return int(value)
