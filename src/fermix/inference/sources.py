"""What `predict` reads: one photo, a folder of photos, a video, or images already in memory.

Everything becomes a stream of `Frame`s (one photo, or one video frame). A photo that cannot be
decoded is an error when it is the only input, and a reported, skipped frame among many: one bad
file must not end a long folder run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fermix.data.images import read_image
from fermix.errors import FermixError

log = logging.getLogger("fermix")

PHOTO_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv")


@dataclass(frozen=True)
class Frame:
    """One image to find faces in. `source` names it in the CSV, `name` is its path below the input
    folder (where its annotated copy goes), `frame` its index in a video; `error` says why `image`
    is None."""

    source: str
    name: str
    image: np.ndarray | None
    frame: int | None = None
    error: str = ""


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


def folder_photos(folder: Path) -> list[Path]:
    """Photos below `folder` (recursively, hidden files left out), sorted by relative path."""
    found = [
        p for p in folder.rglob("*")
        if p.suffix.lower() in PHOTO_EXTENSIONS and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    ]  # fmt: skip
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def check_input(path: str | os.PathLike[str]) -> Path:
    """The input path, or one sentence on why it cannot be predicted on."""
    p = Path(path).expanduser()
    if not p.exists():
        raise FermixError(f"input {p} does not exist; give a photo, a folder of photos or a video")
    if p.is_file() and p.suffix.lower() not in PHOTO_EXTENSIONS + VIDEO_EXTENSIONS:
        raise FermixError(
            f"input {p} is neither a photo ({', '.join(PHOTO_EXTENSIONS)}) nor a video ({', '.join(VIDEO_EXTENSIONS)})"
        )
    return p


def read_photo(path: Path, name: str, strict: bool) -> Frame:
    """The photo as a Frame; an unreadable photo raises when `strict`, else is logged and carried as an error."""
    try:
        return Frame(str(path), name, read_image(path))
    except FermixError as exc:
        if strict:
            raise
        log.warning("skipped: %s", exc)
        return Frame(str(path), name, None, error=str(exc))


def open_video(path: Path) -> Any:
    import cv2

    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise FermixError(f"cannot read video {path}: OpenCV cannot open it (not a video, or a codec it lacks)")
    return capture


def video_properties(path: Path) -> tuple[float, int]:
    """(frames per second, frame count as the container states it; 0 when unknown)."""
    import cv2

    capture = open_video(path)
    try:
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        return (fps if fps > 0 else 25.0), max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
    finally:
        capture.release()


def video_frames(path: Path, every: int = 1) -> Iterator[Frame]:
    """Frames 0, every, 2·every, ... of a video as RGB Frames."""
    import cv2

    if int(every) < 1:
        raise FermixError(f"every={every} must be an integer ≥ 1 (predict on every N-th video frame)")
    capture = open_video(path)
    index = 0
    try:
        while True:
            ok = capture.grab()
            if not ok:
                break
            if index % every == 0:
                ok, bgr = capture.retrieve()
                if ok and bgr is not None:
                    rgb = np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
                    yield Frame(str(path), path.name, rgb, frame=index)
                else:
                    yield Frame(str(path), path.name, None, frame=index, error=f"frame {index} cannot be decoded")
            index += 1
    finally:
        capture.release()
    if index == 0:
        raise FermixError(f"cannot read video {path}: it has no frames OpenCV can decode")


def in_memory(image: Any, index: int) -> Frame:
    """A numpy H×W×3 uint8 RGB array (or H×W gray) or a PIL image as a Frame named `image[i]`."""
    name = f"image[{index}]"
    array = np.asarray(image.convert("RGB")) if hasattr(image, "convert") and hasattr(image, "mode") else image
    if not isinstance(array, np.ndarray):
        raise FermixError(f"{name} is a {type(image).__name__}; give file paths, numpy RGB arrays or PIL images")
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise FermixError(f"{name} is a {array.dtype} array of shape {array.shape}; give H×W×3 uint8 RGB images")
    return Frame(name, f"image_{index}.png", np.ascontiguousarray(array))


def iter_frames(inputs: Any, every: int = 1) -> Iterator[Frame]:
    """Frames from paths (photos, folders, videos), arrays or PIL images, one or a list of them.

    A single photo given alone must be readable; anything else reports unreadable photos as Frames
    with an `error` and goes on.
    """
    items: Sequence[Any] = inputs if isinstance(inputs, (list, tuple)) else [inputs]
    strict = len(items) == 1
    for i, item in enumerate(items):
        if isinstance(item, (str, os.PathLike)):
            path = check_input(item)
            if path.is_dir():
                photos = folder_photos(path)
                if not photos:
                    log.warning("no photos (%s) in %s", ", ".join(PHOTO_EXTENSIONS), path)
                for photo in photos:
                    yield read_photo(photo, photo.relative_to(path).as_posix(), strict=False)
            elif is_video(path):
                yield from video_frames(path, every)
            else:
                yield read_photo(path, path.name, strict=strict)
        else:
            yield in_memory(item, i)


def count_frames(inputs: Any, every: int = 1) -> int:
    """How many Frames `iter_frames` will yield (for the progress bar; a video's count is its header's)."""
    items: Sequence[Any] = inputs if isinstance(inputs, (list, tuple)) else [inputs]
    total = 0
    for item in items:
        if not isinstance(item, (str, os.PathLike)):
            total += 1
            continue
        path = check_input(item)
        if path.is_dir():
            total += len(folder_photos(path))
        elif is_video(path):
            total += -(-video_properties(path)[1] // max(1, int(every)))
        else:
            total += 1
    return total
