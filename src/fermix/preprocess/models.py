"""dlib's face detector and 68-point shape predictor, located on disk and created once per process.

The landmark model ships in the `face-recognition-models` package. Its `__init__` imports
pkg_resources (gone from recent setuptools), so the package is never imported: its folder is
found with importlib's spec machinery instead.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from fermix.errors import FermixError

LANDMARK_MODEL_NAME = "shape_predictor_68_face_landmarks.dat"

_CACHE: dict[tuple[str, str], Any] = {}


class ModelError(FermixError):
    """The landmark model cannot be loaded: fatal for the run, unlike a problem with one photo."""


def packaged_models_dir() -> Path | None:
    """face_recognition_models/models/ of the installed package, or None when it is not installed."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def landmark_model_path(value: str | Path | None = None) -> Path:
    """The 68-landmark model file: `value` when given, else the copy in face-recognition-models."""
    if value not in (None, ""):
        path = Path(str(value)).expanduser()
        if not path.is_file():
            raise FermixError(
                f"landmark model {path} does not exist; point preprocess.landmark_model at dlib's "
                f"{LANDMARK_MODEL_NAME} or set it to null to use the face-recognition-models copy."
            )
        return path
    folder = packaged_models_dir()
    if folder is None or not (folder / LANDMARK_MODEL_NAME).is_file():
        raise FermixError(
            f"cannot find dlib's {LANDMARK_MODEL_NAME}; install face-recognition-models "
            f"(pip install face-recognition-models) or set preprocess.landmark_model=PATH."
        )
    return folder / LANDMARK_MODEL_NAME


def face_detector() -> Any:
    """dlib's HOG frontal face detector (one per process)."""
    key = ("detector", "hog")
    if key not in _CACHE:
        import dlib

        _CACHE[key] = dlib.get_frontal_face_detector()
    return _CACHE[key]


def shape_predictor(path: Path) -> Any:
    """dlib's shape predictor loaded from `path` (one per process and file)."""
    key = ("predictor", str(path))
    if key not in _CACHE:
        import dlib

        try:
            _CACHE[key] = dlib.shape_predictor(str(path))
        except RuntimeError as e:
            reason = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
            raise ModelError(
                f"cannot load landmark model {path} ({reason}); is it dlib's {LANDMARK_MODEL_NAME}?"
            ) from e
    return _CACHE[key]


def dlib_version() -> str:
    import dlib

    return str(dlib.__version__)
