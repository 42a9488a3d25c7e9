"""`Predictor`: a trained checkpoint that turns photos into a table of per-face predictions.

One code path for the notebook API (`fermix.load(ckpt).predict(images)`) and `fermix predict`:
faces are detected and aligned with the alignment the checkpoint records (inference/alignment.py),
then go through the checkpoint's evaluation transform in a RecordsDataset, exactly as evaluation
samples do (uint8 H×W×3 crop -> tensor; landmarks moved along when the method reads them), and
through `method.predict` in batches.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig
from torch.utils.data import default_collate

from fermix.data.info import DataInfo
from fermix.data.torch_dataset import RecordsDataset
from fermix.data.transforms import build_transform
from fermix.engine.build import method_class
from fermix.engine.checkpoint import run_checkpoint
from fermix.engine.evaluate import resolve_device
from fermix.engine.restore import restore_method
from fermix.errors import FermixError
from fermix.inference.alignment import alignment_settings
from fermix.inference.faces import AlignedFace, align_faces, as_given
from fermix.inference.sources import Frame, iter_frames
from fermix.methods.base import Method

log = logging.getLogger("fermix")

MODALITY_KEYS = frozenset({"text", "audio", "vision"})
BOX = ("x0", "y0", "x1", "y1")


@dataclass
class Result:
    """One frame's faces and its CSV rows (one per face, or one row saying why there is none)."""

    frame: Frame
    faces: list[AlignedFace] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)


class Predictor:
    """A method in eval mode on a device, with the label space, alignment and eval transform of its
    checkpoint. `predict(images)` -> DataFrame; `run(frames)` streams Results (the CLI draws them)."""

    def __init__(
        self, method: Method, data_cfg: Any, alignment: Any, device: str | torch.device = "cpu", batch_size: int = 32
    ) -> None:
        self.device = resolve_device(str(device)) if not isinstance(device, torch.device) else device
        self.method = method.eval().to(self.device)
        self.data_info: DataInfo = method.data_info
        self.classes = list(self.data_info.label_space.classes)
        self.au_names = list(self.data_info.extras.get("au_names") or []) if "au" in method.tasks else []
        self.transform = build_transform(data_cfg, train=False)
        self.alignment = alignment
        self.batch_size = int(batch_size)
        self.with_landmarks = "landmarks" in method.requires

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "auto", batch_size: int | None = None) -> Predictor:
        """Rebuild the method from a fermix checkpoint alone (as `fermix test` does)."""
        path = Path(path)

        def single_faces(trained: DictConfig) -> None:
            name = str(trained.method.name)
            if method_class(name).requires & MODALITY_KEYS:
                raise FermixError(f"{path} is a {name} checkpoint, a multimodal method; fermix predict reads faces")
            wrapper = method_class(name).sample_wrapper(trained)
            if wrapper is not None:
                raise FermixError(f"{path} is a {name} checkpoint that reads {wrapper.describe()}; fermix predict "
                                  f"predicts one face at a time")  # fmt: skip

        method, meta, trained = restore_method(path, accept=single_faces)
        size = batch_size or int(trained.data.get("batch_size") or 32)
        return cls(method, trained.data, alignment_settings(meta.get("face_alignment")), device, size)

    # ---------------------------------------------------------------- the public API
    def predict(self, images: Any, align: bool = True, batch_size: int | None = None, every: int = 1) -> pd.DataFrame:
        """Per-face predictions for photo paths, folders, videos, numpy RGB arrays or PIL images
        (one or a list). `align=False` takes each image as an already aligned face crop."""
        rows = [row for result in self.run(iter_frames(images, every), align, batch_size) for row in result.rows]
        return self.table(rows)

    def table(self, rows: list[dict[str, Any]]) -> pd.DataFrame:
        """Rows as a DataFrame with the documented column order (docs/predict.md)."""
        extra = [k for k in ("uncertainty",) if any(k in r for r in rows)]
        return pd.DataFrame(rows, columns=self.columns() + extra)

    def columns(self) -> list[str]:
        cols = ["source", "frame", "face", "status", "reason", *BOX, "score"]
        if self.classes:
            cols += ["expression", "probability", *(f"p_{c}" for c in self.classes)]
        cols += [f"au_{a}" for a in self.au_names]
        if "va" in self.method.tasks:
            cols += ["valence", "arousal"]
        return cols

    # ---------------------------------------------------------------- streaming
    def run(self, frames: Iterable[Frame], align: bool = True, batch_size: int | None = None) -> Iterator[Result]:
        """Results in input order; faces of consecutive frames share forward passes of `batch_size`."""
        size = int(batch_size or self.batch_size)
        if size < 1:
            raise FermixError(f"batch_size={size} must be an integer ≥ 1")
        pending: list[Result] = []
        faces = 0
        for frame in frames:
            result = Result(frame, self.faces(frame.image, align) if frame.image is not None else [])
            pending.append(result)
            faces += len(result.faces)
            if faces >= size or len(pending) >= size:
                yield from self._finish(pending, size)
                pending, faces = [], 0
        yield from self._finish(pending, size)

    def faces(self, image: np.ndarray, align: bool = True) -> list[AlignedFace]:
        return align_faces(image, self.alignment) if align else [as_given(image)]

    def batch(self, faces: list[AlignedFace]) -> dict[str, Any]:
        """The faces as the model's input batch, through the same RecordsDataset evaluation uses."""
        use_landmarks = self.with_landmarks and all(f.crop_landmarks is not None for f in faces)

        def load(row: dict[str, Any]) -> dict[str, Any]:
            face = faces[int(row["i"])]
            sample: dict[str, Any] = {"image": face.crop}
            if use_landmarks:
                sample["landmarks"] = np.asarray(face.crop_landmarks, dtype=np.float32)
            return sample

        dataset = RecordsDataset(pd.DataFrame({"i": range(len(faces))}), load, self.transform)
        return default_collate([dataset[i] for i in range(len(faces))])

    @torch.inference_mode()
    def outputs(self, faces: list[AlignedFace]) -> dict[str, torch.Tensor]:
        """`method.predict` on the faces: its output dict, on the CPU, as float tensors."""
        batch = self.batch(faces)
        batch = {k: v.to(self.device) if torch.is_tensor(v) else v for k, v in batch.items()}
        return {k: v.float().cpu() for k, v in self.method.predict(batch).items() if torch.is_tensor(v)}

    def _finish(self, pending: list[Result], size: int) -> Iterator[Result]:
        faces = [f for r in pending for f in r.faces]
        values: list[dict[str, Any]] = []
        for start in range(0, len(faces), size):
            values += self.face_values(self.outputs(faces[start : start + size]))
        at = 0
        for result in pending:
            result.rows = self.frame_rows(result, values[at : at + len(result.faces)])
            at += len(result.faces)
            yield result

    def face_values(self, out: dict[str, torch.Tensor]) -> list[dict[str, Any]]:
        """Per face: top class and its probability, class probabilities, AU probabilities, VA, uncertainty."""
        n = len(next(iter(out.values()))) if out else 0
        columns: dict[str, np.ndarray] = {}
        names: list[str] = []
        if "expr_logits" in out and self.classes:
            probs = out["expr_logits"].softmax(-1).double().numpy()
            top = probs.argmax(1)
            names = [self.classes[int(t)] for t in top]
            columns["probability"] = probs[np.arange(n), top]
            columns.update({f"p_{c}": probs[:, i] for i, c in enumerate(self.classes)})
        if self.au_names and "au_logits" in out:
            au = out["au_logits"].sigmoid().double().numpy()
            columns.update({f"au_{a}": au[:, i] for i, a in enumerate(self.au_names)})
        if "va" in self.method.tasks and "va" in out:
            va = out["va"].double().numpy()
            columns.update({"valence": va[:, 0], "arousal": va[:, 1]})
        if "uncertainty" in out:
            columns["uncertainty"] = out["uncertainty"].double().reshape(n, -1)[:, 0].numpy()
        rows = []
        for i in range(n):
            row: dict[str, Any] = {"expression": names[i]} if names else {}
            row.update({k: float(v[i]) for k, v in columns.items()})
            rows.append(row)
        return rows

    def frame_rows(self, result: Result, values: list[dict[str, Any]]) -> list[dict[str, Any]]:
        frame = result.frame
        base = {"source": frame.source, "frame": frame.frame}
        if frame.image is None:
            return [{**base, "status": "unreadable", "reason": frame.error}]
        if not result.faces:
            return [{**base, "status": "no face", "reason": self.no_face_reason()}]
        rows = []
        for k, (face, value) in enumerate(zip(result.faces, values, strict=True)):
            box = dict(zip(BOX, (float(v) for v in face.box), strict=True))
            rows.append({**base, "face": k, "status": "ok", "reason": "", **box, "score": face.score, **value})
        return rows

    def no_face_reason(self) -> str:
        return f"no face detected (HOG detector, upsample={self.alignment.upsample})"


def load(ckpt: str | Path, device: str = "auto", batch_size: int | None = None) -> Predictor:
    """`fermix.load("best.ckpt").predict(images)`: a Predictor for a fermix checkpoint, or for a run folder
    (its checkpoints/best.ckpt, the model validation selected)."""
    return Predictor.from_checkpoint(run_checkpoint(ckpt), device=device, batch_size=batch_size)
