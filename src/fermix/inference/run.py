"""`fermix predict ckpt=PATH input=PHOTO|FOLDER|VIDEO`: a thin wrapper over `Predictor`.

Writes into `out` (default: `<run>/eval/predict_<timestamp>/` beside the checkpoint's run):
predictions.csv (one row per face per photo or frame; a photo without a face, or one that
cannot be read, gets one row saying so) and annotated/ (each photo with its faces drawn, a
photo without a face captioned "no face"; a video as one annotated MP4). Every file is written
atomically.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from fermix.errors import FermixError
from fermix.inference.draw import annotate, encode_image
from fermix.inference.predictor import Predictor, Result
from fermix.inference.sources import check_input, count_frames, iter_frames, video_properties
from fermix.preprocess.progress import Progress
from fermix.preprocess.settings import progress_mode
from fermix.utils.io import atomic_path, atomic_write_bytes

log = logging.getLogger("fermix")

CSV_FILE = "predictions.csv"
ANNOTATED_DIR = "annotated"


class VideoSink:
    """An annotated MP4 (OpenCV's mp4v), opened at the first frame and moved into place when closed."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path = path
        self.fps = fps
        self.frames = 0
        self._stack = contextlib.ExitStack()
        self._writer: Any = None
        self._size: tuple[int, int] | None = None

    def write(self, rgb: np.ndarray) -> None:
        import cv2

        if self._writer is None:
            tmp = self._stack.enter_context(atomic_path(self.path))
            self._size = (rgb.shape[1], rgb.shape[0])
            self._writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, self._size)
            if not self._writer.isOpened():
                raise FermixError(f"OpenCV cannot write the MP4 video {self.path} (no mp4v encoder)")
        self._writer.write(np.ascontiguousarray(rgb[..., ::-1]))
        self.frames += 1

    def close(self, ok: bool = True) -> None:
        if self._writer is not None:
            self._writer.release()
        exc = (None, None, None) if ok else (RuntimeError, RuntimeError("prediction failed"), None)
        self._stack.__exit__(*exc)  # moves the video into place, or removes the temporary


def write_annotation(out: Path, result: Result, videos: dict[str, VideoSink], every: int) -> None:
    frame = result.frame
    if frame.image is None:
        return
    picture = annotate(frame.image, result.faces, result.rows)
    if frame.frame is None:
        path = out / ANNOTATED_DIR / frame.name
        atomic_write_bytes(path, encode_image(picture, path.suffix))
        return
    if frame.source not in videos:
        fps, _ = video_properties(Path(frame.source))
        videos[frame.source] = VideoSink(out / ANNOTATED_DIR / f"{Path(frame.name).stem}.mp4", fps / max(1, every))
    videos[frame.source].write(picture)


def run_predict(cfg: DictConfig) -> dict[str, Any]:
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    for key, what in (("ckpt", "a .ckpt that fermix train wrote"), ("input", "a photo, a folder of photos or a video")):
        if OmegaConf.is_missing(cfg, key):
            raise FermixError(f"fermix predict needs {key}=PATH, {what}")
    source = check_input(str(cfg.input))
    batch_size = cfg.get("batch_size")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise FermixError(f"batch_size={batch_size!r} must be an integer ≥ 1 (faces per forward pass), or null")
    if isinstance(cfg.every, bool) or not isinstance(cfg.every, int) or cfg.every < 1:
        raise FermixError(f"every={cfg.every!r} must be an integer ≥ 1 (predict on every N-th video frame)")
    predictor = Predictor.from_checkpoint(str(cfg.ckpt), device=str(cfg.accelerator), batch_size=batch_size)
    out = Path(str(cfg.out)) if cfg.get("out") else Path(HydraConfig.get().runtime.output_dir)
    every = int(cfg.every)
    draw = bool(cfg.annotate)
    total = count_frames(source, every)
    rows: list[dict[str, Any]] = []
    videos: dict[str, VideoSink] = {}
    ok = False
    try:
        with Progress(total, progress_mode(cfg.get("progress")), description="predict") as progress:
            for result in predictor.run(iter_frames(source, every), align=bool(cfg.align)):
                rows += result.rows
                if draw:
                    write_annotation(out, result, videos, every)
                progress.advance(failed=result.frame.image is None)
        ok = True
    finally:
        for sink in videos.values():
            sink.close(ok)
    table = predictor.table(rows)
    with atomic_path(out / CSV_FILE) as tmp:
        table.to_csv(tmp, index=False)
    counts = {
        "frames": int(table.drop_duplicates(["source", "frame"]).shape[0]),
        "faces": int((table["status"] == "ok").sum()),
        "no_face": int((table["status"] == "no face").sum()),
        "unreadable": int((table["status"] == "unreadable").sum()),
    }
    log.info("faces: %d in %d %s (%d without a face, %d unreadable) -> %s", counts["faces"], counts["frames"],
             "frames" if videos else "images", counts["no_face"], counts["unreadable"], out / CSV_FILE)  # fmt: skip
    for bad in table[table["status"] == "unreadable"].itertuples():
        log.info("  unreadable: %s (%s)", bad.source, bad.reason)
    return {"out": str(out), **counts}
