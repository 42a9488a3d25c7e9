"""Which face alignment a checkpoint's model was trained on, so prediction crops faces the same way.

Training records the `fermix preprocess` settings of its dataset (the `settings` fingerprint in
the dataset root's preprocess.json) in the checkpoint meta as `face_alignment`; prediction
rebuilds the preprocess Settings from it. A dataset that was not made by `fermix preprocess`
(synthetic faces, crops from elsewhere) records None, and prediction then uses the preprocess
defaults and says so.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fermix.preprocess.outputs import REPORT_FILE

log = logging.getLogger("fermix")

# The keys of preprocess Settings.fingerprint() that decide how a face is found and warped.
ALIGNMENT_KEYS = ("template", "detector", "upsample", "already_cropped", "keep", "landmark_model", "image_format")


def recorded_alignment(dataset_root: str | os.PathLike[str] | None) -> dict[str, Any] | None:
    """The preprocess fingerprint of the dataset at `dataset_root` (a folder or a manifest CSV in
    it), or None when the dataset has no readable preprocess.json."""
    if dataset_root in (None, ""):
        return None
    root = Path(str(dataset_root)).expanduser()
    folder = root.parent if root.is_file() else root
    report = folder / REPORT_FILE
    if not report.is_file():
        return None
    try:
        settings = json.loads(report.read_text(encoding="utf-8")).get("settings")
    except (OSError, ValueError, AttributeError):
        log.warning("%s is not readable JSON; the checkpoint records no face alignment", report)
        return None
    if not isinstance(settings, Mapping) or not isinstance(settings.get("template"), Mapping):
        return None
    return {key: settings[key] for key in ALIGNMENT_KEYS if key in settings}


def alignment_settings(recorded: Mapping[str, Any] | None) -> Any:
    """preprocess Settings that reproduce a recorded alignment (None: the preprocess defaults).

    The landmark model is always the local copy (the checkpoint records only its name and size);
    a size that differs from the recorded one is worth a warning, not a refusal.
    """
    from fermix.preprocess.settings import settings_from_config

    if not recorded:
        log.info("the checkpoint records no face alignment (its dataset was not made by fermix preprocess); "
                 "aligning with the preprocess defaults")  # fmt: skip
        return settings_from_config({})
    template = recorded.get("template") or {}
    settings = settings_from_config(
        {
            "size": template.get("size", 256),
            "left_eye": template.get("left_eye", (0.35, 0.35)),
            "detector": recorded.get("detector", "hog"),
            "upsample": recorded.get("upsample", 1),
            "already_cropped": recorded.get("already_cropped", False),
            "keep": recorded.get("keep", "largest"),
        }
    )
    model = recorded.get("landmark_model") or {}
    local = settings.landmark_model
    if model.get("bytes") is not None and local.is_file() and local.stat().st_size != model["bytes"]:
        log.warning("the landmark model %s differs from the one the training faces were aligned with (%s, %s bytes)",
                    local, model.get("name"), model["bytes"])  # fmt: skip
    return settings
