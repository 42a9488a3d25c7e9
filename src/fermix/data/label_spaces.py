"""Canonical label spaces: the single place where class order is written.

Label order is data. Adapters map native class names into one of these spaces through
`canonical_name`, so a checkpoint's class index means the same thing on every dataset.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fermix.errors import FermixError


@dataclass(frozen=True)
class LabelSpace:
    """An ordered tuple of class names; index i is the model's output i."""

    name: str
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        # Accept lists (e.g. from a checkpoint's plain-dict config) but store a tuple.
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def index(self, name: str) -> int:
        """Class index of `name`, case-insensitive."""
        wanted = str(name).strip().lower()
        for i, c in enumerate(self.classes):
            if c.lower() == wanted:
                return i
        raise FermixError(
            f"class `{name}` is not in label space `{self.name}`; known classes: {', '.join(self.classes)}."
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain python, so it can travel in a weights_only checkpoint."""
        return {"name": self.name, "classes": list(self.classes)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LabelSpace:
        return cls(name=str(d["name"]), classes=tuple(d["classes"]))


_BASIC7 = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger")

LABEL_SPACES: dict[str, LabelSpace] = {
    "basic7": LabelSpace("basic7", _BASIC7),
    "basic8": LabelSpace("basic8", (*_BASIC7, "contempt")),
    # IERN's MixBasic order (CK+ / MMI / Oulu-CASIA), as its emotion_labels.pkl stores it.
    "mixbasic6": LabelSpace("mixbasic6", ("anger", "disgust", "fear", "happiness", "sadness", "surprise")),
    "iemocap4": LabelSpace("iemocap4", ("neutral", "happy", "sad", "angry")),
    "mosei7": LabelSpace("mosei7", ("-3", "-2", "-1", "0", "1", "2", "3")),  # sentiment round(clip(y, ±3))
}


def get_label_space(name: str) -> LabelSpace:
    """Look up a named label space."""
    if name not in LABEL_SPACES:
        raise FermixError(f"unknown label space `{name}`; known: {', '.join(sorted(LABEL_SPACES))}.")
    return LABEL_SPACES[name]


def identity_label_space(n: int) -> LabelSpace:
    """`n` people as classes (`person0000`, ...): the synthetic identity-pretraining preset's labels."""
    return LabelSpace(f"identity{n}", tuple(f"person{i:04d}" for i in range(n)))


# Native spellings -> basic names. Only used to map a dataset's class names into a named space.
ALIASES: dict[str, str] = {
    "happiness": "happy",
    "happy": "happy",
    "joy": "happy",
    "sadness": "sad",
    "sad": "sad",
    "angry": "anger",
    "anger": "anger",
    "surprised": "surprise",
    "surprise": "surprise",
    "fearful": "fear",
    "fear": "fear",
    "afraid": "fear",
    "disgusted": "disgust",
    "disgust": "disgust",
    "contemptuous": "contempt",
    "contempt": "contempt",
    "neutral": "neutral",
}


def canonical_name(name: str) -> str:
    """Lower-case a class name and map common native spellings to the basic name."""
    key = str(name).strip().lower()
    return ALIASES.get(key, key)


def map_label(space: LabelSpace, name: str) -> int:
    """Index of a native class name in `space`, comparing canonical names on both sides.

    Both sides go through `canonical_name`, so "happiness" finds `basic7`'s "happy" and "happy"
    finds `mixbasic6`'s "happiness".
    """
    wanted = canonical_name(name)
    for i, c in enumerate(space.classes):
        if canonical_name(c) == wanted:
            return i
    raise FermixError(
        f"label `{name}` is not in label space `{space.name}`; known classes: {', '.join(space.classes)}."
    )
