"""Writers: save samples to disk in a published dataset layout.

Every writer has the signature `write(samples, out, **options) -> Path` and takes an iterable
of sample dicts (`WriterSample`). The synthetic generator yields such dicts, and so can a test,
so each dataset adapter is tested on files in exactly the layout a user's real download has.

WriterSample keys:
    image       uint8 H×W×3 RGB
    sample_id   str, unique, usable as a file stem (may contain "/" for sub-folders)
    split       "train" | "val" | "test"
    expr        canonical class name ("neutral", "happy", "sad", "surprise", "fear", "disgust",
                "anger", "contempt") or None when unlabelled
    domain      str: source / capture-style name (e.g. "CKPlus"), "" when there is one source
    subject     str ("" when unknown)
    landmarks   float32 68×2 (x, y) pixel coordinates of `image` (pixel centres at integers), or None
    au          float32 vector of AU occurrences (NaN = unknown) in the order of `au_names`, or None
    au_names    tuple of AU names ("AU1", ...) for `au`, or None
    va          float32 (valence, arousal) in [-1, 1] (NaN = unknown), or None
    video, frame  optional: the clip a frame belongs to and its 1-based frame number
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from fermix.errors import FermixError
from fermix.registry import import_target

WriterSample = Mapping[str, Any]
Writer = Callable[..., Path]

# name -> "module:function"; imported on demand.
WRITERS: dict[str, str] = {
    "imagefolder": "fermix.data.writers.imagefolder:write_imagefolder",
    "mixbasic": "fermix.data.writers.mixbasic:write_mixbasic",
    "rafdb": "fermix.data.writers.rafdb:write_rafdb",
    "affectnet": "fermix.data.writers.affectnet:write_affectnet",
    "affwild2": "fermix.data.writers.affwild2:write_affwild2",
    "ckplus": "fermix.data.writers.ckplus:write_ckplus",
    "oulu_casia": "fermix.data.writers.oulu_casia:write_oulu_casia",
}


def get_writer(name: str) -> Writer:
    if name not in WRITERS:
        raise FermixError(f"unknown writer format `{name}`; known: {', '.join(sorted(WRITERS))}.")
    return import_target(WRITERS[name])


def write(fmt: str, samples: Iterable[WriterSample], out: str | Path, **options: Any) -> Path:
    """Write `samples` under `out` in format `fmt`; returns the dataset root a config points at."""
    return get_writer(fmt)(samples, Path(out), **options)
