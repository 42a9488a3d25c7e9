"""A tiny trained checkpoint and real photographs for the prediction tests (trained once per session)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.engine.runner import quick_overrides, run_train_in_process
from tests.helpers import write_image_folder
from tests.preprocess.photos import astronaut, save

# The astronaut's face and some margin (as the preprocess tests crop it): quicker for dlib.
CROP = (slice(0, 300), slice(80, 380))
# Her eyes in the crop, (x, y): skimage's photo has them at (204, 102) and (246, 104).
CROP_EYES = np.array([[124.0, 102.0], [166.0, 104.0]])
# A recorded alignment that differs from the preprocess defaults (size 96 instead of 256).
ALIGNMENT = {
    "template": {"size": 96, "left_eye": [0.3, 0.4]},
    "detector": "hog",
    "upsample": 1,
    "already_cropped": False,
    "keep": "largest",
    "landmark_model": {"name": "shape_predictor_68_face_landmarks.dat", "bytes": None},
    "image_format": "png",
}


def astronaut_face() -> np.ndarray:
    return np.ascontiguousarray(astronaut()[CROP])


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """A 1-epoch erm run (32 px, 3 classes) on an image folder that `fermix preprocess` claims to
    have made: its preprocess.json records a 96 px alignment template."""
    work = tmp_path_factory.mktemp("predict_ckpt")
    faces = write_image_folder(work / "faces", per_class=8, size=32)
    (faces / "preprocess.json").write_text(json.dumps({"settings": {**ALIGNMENT, "landmark_model_path": "/x"}}))
    run = work / "runs" / "erm_imagefolder" / "tiny"
    run_train_in_process(quick_overrides(faces, "trainer.max_epochs=1", "data.batch_size=4"), run)
    assert (run / "checkpoints" / "best.ckpt").is_file()
    return run


@pytest.fixture(scope="session")
def ckpt(trained_run) -> Path:
    return trained_run / "checkpoints" / "best.ckpt"


@pytest.fixture(scope="session")
def photo(tmp_path_factory) -> Path:
    return save(tmp_path_factory.mktemp("photos") / "astronaut.png", astronaut_face())
