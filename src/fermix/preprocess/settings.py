"""The `preprocess:` config, validated once, and the part of it that decides what the output looks like."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fermix.errors import FermixError
from fermix.preprocess.align import Template
from fermix.preprocess.detect import KEEP_POLICIES
from fermix.preprocess.models import landmark_model_path

DETECTORS = ("hog", "box", "none")
IMAGE_FORMATS = ("png", "jpg")
PROGRESS_MODES = ("auto", "rich", "plain", "none")


@dataclass(frozen=True)
class Settings:
    """Everything a worker needs to turn one raw photo into one aligned face."""

    template: Template
    detector: str = "hog"  # hog | box (the dataset's boxes) | none (the whole image is the face)
    upsample: int = 1
    already_cropped: bool = False  # no detection -> the whole image is the face box (never a failure)
    keep: str = "largest"
    landmark_model: Path = Path()
    image_format: str = "png"

    def fingerprint(self) -> dict[str, Any]:
        """What must match for two runs to share an output folder (not workers, limit or progress)."""
        model = self.landmark_model
        return {
            "template": {"size": self.template.size, "left_eye": list(self.template.left_eye)},
            "detector": self.detector,
            "upsample": self.upsample,
            "already_cropped": self.already_cropped,
            "keep": self.keep,
            "landmark_model": {"name": model.name, "bytes": model.stat().st_size if model.is_file() else None},
            "image_format": self.image_format,
        }


def _choice(cfg: Mapping[str, Any], key: str, choices: tuple[str, ...], default: str) -> str:
    value = str(cfg.get(key, default)).strip().lower()
    if value not in choices:
        raise FermixError(f"preprocess.{key}={cfg.get(key)!r} is not one of {', '.join(choices)}.")
    return value


def _int(cfg: Mapping[str, Any], key: str, default: int | None, minimum: int) -> int | None:
    value = cfg.get(key, default)
    if value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = None
    if number is None or number < minimum or (isinstance(value, float) and value != number):
        raise FermixError(f"preprocess.{key}={value!r} is not an integer ≥ {minimum}.")
    return number


def settings_from_config(cfg: Mapping[str, Any]) -> Settings:
    """Validate the `preprocess:` node; every mistake is one sentence naming the key."""
    left_eye = cfg.get("left_eye", (0.35, 0.35))
    values = [] if isinstance(left_eye, str) or not isinstance(left_eye, Iterable) else list(left_eye)
    try:
        x, y = (float(v) for v in values)
    except (TypeError, ValueError):
        message = f"preprocess.left_eye={left_eye!r} must be two fractions [x, y], e.g. [0.35, 0.35]."
        raise FermixError(message) from None
    template = Template(size=_int(cfg, "size", 256, 8) or 256, left_eye=(x, y))
    return Settings(
        template=template,
        detector=_choice(cfg, "detector", DETECTORS, "hog"),
        upsample=_int(cfg, "upsample", 1, 0) or 0,
        already_cropped=bool(cfg.get("already_cropped", False)),
        keep=_choice(cfg, "keep", KEEP_POLICIES, "largest"),
        landmark_model=landmark_model_path(cfg.get("landmark_model")),
        image_format=_choice(cfg, "image_format", IMAGE_FORMATS, "png"),
    )


def num_workers(cfg: Mapping[str, Any]) -> int:
    return _int(cfg, "num_workers", 1, 1) or 1


def limit(cfg: Mapping[str, Any]) -> int | None:
    return _int(cfg, "limit", None, 1)


def progress_mode(value: Any) -> str:
    mode = str(value if value is not None else "auto").strip().lower()
    if mode not in PROGRESS_MODES:
        raise FermixError(f"progress={value!r} is not one of {', '.join(PROGRESS_MODES)}.")
    return mode
