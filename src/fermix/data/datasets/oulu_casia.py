"""Oulu-CASIA NIR&VIS (Zhao et al., 2011) in its raw published layout, for `fermix preprocess` only.

Layout under `root` (iern spec §4; datasets/oulu_casia/README.md):
  VL/Strong/<P###>/<Emotion>/<frame>.jpeg      (or OriginalImg/VL/Strong/...)
with one sequence per subject and emotion (Anger, Disgust, Fear, Happiness, Sadness, Surprise),
running from neutral to the peak. The labelled frames are the last `frames` of each sequence (3 in
IERN); the label is the emotion folder's name. Sample ids follow IERN's `<P###>_<Emotion>_<frame>`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
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

EMOTIONS: tuple[str, ...] = ("Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise")
SOURCE = "OuluCASIA"


class Modality(StrEnum):
    VL = "VL"  # visible light (IERN)
    NI = "NI"  # near infrared


class Illumination(StrEnum):
    Strong = "Strong"  # IERN
    Weak = "Weak"
    Dark = "Dark"


MODALITIES = tuple(m.value for m in Modality)
ILLUMINATIONS = tuple(i.value for i in Illumination)

@dataclass(frozen=True)
class OuluCASIAConfig(FolderConfig):
    """configs/dataset/oulu_casia.yaml."""

    frames: int = 3  # the last N frames of each sequence
    modality: Modality = Modality.VL
    illumination: Illumination = Illumination.Strong
    label_space: str = "basic7"  # basic7, basic8 or mixbasic6


class OuluCASIADataset(RawLayout):
    """Oulu-CASIA raw sequences: a source for `fermix preprocess`, not a training dataset."""

    name = "oulu_casia"
    Config = OuluCASIAConfig

    @classmethod
    def raw_label_space(cls, cfg: Mapping[str, Any]) -> LabelSpace:
        """The space `raw_items` labels live in (recorded by `fermix preprocess`): basic7 unless set."""
        return get_label_space(cls.make_options(cfg).label_space)

    @classmethod
    def raw_items(cls, cfg: Mapping[str, Any]) -> list[RawItem]:
        """The last `frames` frames of every subject × emotion sequence of the chosen capture set."""
        o: OuluCASIAConfig = cls.make_options(cfg)
        root = dataset_root(o.root, "Oulu-CASIA")
        space = cls.raw_label_space(cfg)
        frames = at_least(o.frames, "frames", minimum=1)
        capture = _capture_dir(root, o.modality, o.illumination)
        label_of: dict[str, str] = {}
        items: list[RawItem] = []
        for subject_dir in visible_dirs(capture):
            for emotion_dir in visible_dirs(subject_dir):
                emotion = emotion_dir.name
                if emotion not in label_of:
                    label_of[emotion] = _label(space, emotion, emotion_dir)
                images = sorted((p for p in visible_files(emotion_dir) if is_image_file(p)), key=natural_key)
                if not images:
                    raise FermixError(f"Oulu-CASIA sequence folder {emotion_dir} has no images.")
                for path in images[-frames:]:
                    items.append(
                        RawItem(
                            path=path,
                            sample_id=f"{subject_dir.name}_{emotion}_{path.stem}",
                            label=label_of[emotion],
                            native_label=emotion,
                            split=None,
                            subject=subject_dir.name,
                            source=SOURCE,
                        )
                    )
        if not items:
            raise FermixError(f"no Oulu-CASIA sequences found under {capture} (expected <P###>/<Emotion>/*.jpeg).")
        return items


def _capture_dir(root: Path, modality: str, illumination: str) -> Path:
    for base in (root, root / "OriginalImg"):
        capture = base / modality / illumination
        if capture.is_dir():
            return capture
    raise FermixError(
        f"Oulu-CASIA folder {root / modality / illumination} not found; see datasets/oulu_casia/README.md."
    )


def _label(space: LabelSpace, emotion: str, folder: Path) -> str:
    """The label-space class of an emotion folder; a folder that is no Oulu-CASIA emotion is a user error."""
    if emotion.lower() not in {e.lower() for e in EMOTIONS}:
        raise FermixError(f"Oulu-CASIA folder {folder} is not one of the six emotions ({', '.join(EMOTIONS)}).")
    try:
        return space.classes[map_label(space, emotion)]
    except FermixError:
        raise FermixError(f"Oulu-CASIA emotion `{emotion}` is not in label space `{space.name}`.") from None
