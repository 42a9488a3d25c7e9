"""ABAW 2020 submission files: one `<video>.txt` per test video (spec §6, the original's `test.py`).

An evaluation protocol of the Aff-Wild2 adapter: `fermix test ckpt=... abaw_submission=true` writes
`abaw_submission/<AU|EXPR|VA>/<video>.txt` next to the test's summary.json.

Each file is a header line naming the task's columns, then one line per frame in frame order:
AU `0,1,...` (8 ints), EXPR one int (0..6, header order), VA `v,a` with 4 decimals; no newline
after the last line. The challenge maps the k-th data line to the k-th frame, so a gap in a
video's frames would shift every later prediction: it is refused. Where the numbering starts is
not checked (Aff-Wild2's `frames_ids` start at 0, its image names at 1).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fermix.errors import FermixError
from fermix.protocols import EvalContext, EvalProtocol
from fermix.utils.io import atomic_write_text

__all__ = ["ABAW_HEADERS", "PREDICTION_COLUMNS", "ABAWSubmission", "write_abaw_submission"]

ABAW_HEADERS: dict[str, tuple[str, ...]] = {
    "AU": ("AU1", "AU2", "AU4", "AU6", "AU12", "AU15", "AU20", "AU25"),
    "EXPR": ("Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise"),
    "VA": ("valence", "arousal"),
}
# the DataFrame columns each task's values are read from
PREDICTION_COLUMNS: dict[str, tuple[str, ...]] = {
    "AU": ABAW_HEADERS["AU"],
    "EXPR": ("expr",),
    "VA": ("valence", "arousal"),
}


def _task_name(task: str) -> str:
    name = str(task).upper()
    if name.endswith("_SET"):  # the original's folder names: AU_Set, EXPR_Set, VA_Set
        name = name[: -len("_SET")]
    if name not in ABAW_HEADERS:
        raise FermixError(f"ABAW task must be one of AU, EXPR, VA, got {task!r}.")
    return name


def _integers(values: np.ndarray, low: int, high: int, what: str) -> np.ndarray:
    """`values` as ints, refusing anything that is not a whole number in [low, high]."""
    as_float = values.astype(np.float64)
    if not (np.isfinite(as_float).all() and (as_float == np.round(as_float)).all()):
        raise FermixError(f"ABAW {what} predictions must be whole numbers; threshold or argmax them first.")
    ints = as_float.astype(np.int64)
    if ints.min(initial=low) < low or ints.max(initial=high) > high:
        raise FermixError(f"ABAW {what} predictions must lie in {low}..{high}, got {ints.min()}..{ints.max()}.")
    return ints


def _lines(task: str, values: np.ndarray) -> list[str]:
    if task == "AU":
        return [",".join(str(v) for v in row) for row in _integers(values, 0, 1, "AU")]
    if task == "EXPR":
        return [str(v) for v in _integers(values[:, 0], 0, len(ABAW_HEADERS["EXPR"]) - 1, "EXPR")]
    va = values.astype(np.float64)
    if not np.isfinite(va).all():
        raise FermixError("ABAW VA predictions contain NaN or infinite values.")
    return [f"{v:.4f},{a:.4f}" for v, a in va]


def _check_frames(video: str, frames: np.ndarray) -> None:
    if len(np.unique(frames)) != len(frames):
        raise FermixError(f"Video {video!r} has the same frame more than once in the ABAW predictions.")
    if frames[-1] - frames[0] + 1 != len(frames):
        raise FermixError(
            f"Video {video!r} has frames missing between frame {frames[0]} and frame {frames[-1]}; "
            "the ABAW format needs one line per frame."
        )


def _video_file(out_dir: Path, video: str) -> Path:
    if not video or video in (".", "..") or "/" in video or (os.sep in video) or "\0" in video:
        raise FermixError(f"Video name {video!r} cannot be used as an ABAW file name.")
    return out_dir / f"{video}.txt"


def write_abaw_submission(out_dir: str | os.PathLike[str], task: str, predictions: pd.DataFrame) -> list[Path]:
    """Write one ABAW 2020 `<video>.txt` per video of `predictions` into `out_dir`; return the paths, by video.

    `predictions` has columns `video`, `frame` (integer) and the task's values: AU1..AU25 (0/1)
    for AU, `expr` (0..6) for EXPR, `valence` and `arousal` for VA. Rows may come in any order.
    """
    name = _task_name(task)
    columns = PREDICTION_COLUMNS[name]
    missing = [c for c in ("video", "frame", *columns) if c not in predictions.columns]
    if missing:
        raise FermixError(f"ABAW {name} predictions need the columns {', '.join(missing)}.")
    if predictions.empty:
        raise FermixError(f"ABAW {name} predictions are empty; there is no video to write.")
    if predictions[["video", "frame"]].isna().any().any():
        raise FermixError("ABAW predictions have rows without a video or a frame.")
    frames = pd.to_numeric(predictions["frame"], errors="coerce").to_numpy(np.float64)
    if not (np.isfinite(frames).all() and (frames == np.round(frames)).all()):
        raise FermixError("ABAW predictions need whole-number frame indices in the column frame.")
    predictions = predictions.assign(frame=frames.astype(np.int64))

    out = Path(out_dir)
    header = ",".join(ABAW_HEADERS[name])
    jobs: list[tuple[Path, str]] = []
    for video, rows in predictions.groupby(predictions["video"].astype(str), sort=True):
        rows = rows.sort_values("frame", kind="stable")
        frame_ids = rows["frame"].to_numpy()
        _check_frames(str(video), frame_ids)
        path = _video_file(out, str(video))
        jobs.append((path, "\n".join([header, *_lines(name, rows[list(columns)].to_numpy())])))
    for path, text in jobs:  # every video checked before the first file is written
        atomic_write_text(path, text)
    return [path for path, _ in jobs]


def fill_missing_frames(predictions: pd.DataFrame) -> pd.DataFrame:
    """One row per frame between each video's first and last: a missing frame repeats the previous
    frame's prediction (the original does the same for test frames without a detected face)."""
    parts = []
    for video, rows in predictions.groupby(predictions["video"].astype(str), sort=True):
        rows = rows.sort_values("frame", kind="stable").drop_duplicates("frame").set_index("frame")
        full = rows.reindex(range(int(rows.index.min()), int(rows.index.max()) + 1)).ffill()
        parts.append(full.assign(video=video).rename_axis("frame").reset_index())
    return pd.concat(parts, ignore_index=True)


def submission_frames(
    records: pd.DataFrame,
    *,
    expr_index: np.ndarray | None = None,
    class_names: tuple[str, ...] = (),
    au_pred: np.ndarray | None = None,
    au_names: tuple[str, ...] = (),
    va: np.ndarray | None = None,
) -> dict[str, pd.DataFrame]:
    """A model's predictions for `records` (columns `video`, `frame`; same row order) as the
    per-task tables `write_abaw_submission` takes. Expression indices are mapped by class name to
    the ABAW order; AU columns are named by `au_names` and must cover the 8 ABAW AUs."""
    from fermix.data.label_spaces import canonical_name

    missing = [c for c in ("video", "frame") if c not in records]
    if missing:
        raise FermixError("an ABAW submission needs a dataset with video and frame columns (Aff-Wild2).")
    base = records[["video", "frame"]].reset_index(drop=True)
    tables: dict[str, pd.DataFrame] = {}
    if expr_index is not None:
        abaw = {canonical_name(c): i for i, c in enumerate(ABAW_HEADERS["EXPR"])}
        unknown = [c for c in class_names if canonical_name(c) not in abaw]
        if unknown:
            raise FermixError(f"the model's classes {', '.join(unknown)} have no ABAW expression index.")
        to_abaw = np.array([abaw[canonical_name(c)] for c in class_names])
        tables["EXPR"] = base.assign(expr=to_abaw[np.asarray(expr_index)])
    if au_pred is not None:
        lacking = [a for a in ABAW_HEADERS["AU"] if a not in au_names]
        if lacking:
            raise FermixError(f"the model predicts no {', '.join(lacking)}; the ABAW AU track needs all 8 AUs.")
        columns = {a: np.asarray(au_pred)[:, list(au_names).index(a)].astype(np.int64) for a in ABAW_HEADERS["AU"]}
        tables["AU"] = base.assign(**columns)
    if va is not None:
        tables["VA"] = base.assign(valence=np.asarray(va)[:, 0], arousal=np.asarray(va)[:, 1])
    return tables


def write_submission(out: Path, records: pd.DataFrame, preds: dict[str, Any], class_names: tuple[str, ...],
                     au_names: tuple[str, ...]) -> dict[str, int]:  # fmt: skip
    """ABAW 2020 files (one txt per video and task) from a split's predictions; returns files per task.

    Predictions are matched to records by sample id, first occurrence first (a sequence model
    sees a frame twice where windows overlap; the first prediction counts, as in the original).
    AU decisions use the method's tuned thresholds when it predicts `au_pred`, else σ > 0.5; a
    frame missing from a video repeats the previous frame's prediction.
    """
    first: dict[str, int] = {}
    for i, sample_id in enumerate(preds["sample_id"]):
        first.setdefault(str(sample_id), i)
    records = records[records["sample_id"].astype(str).isin(first)]
    rows = np.array([first[str(i)] for i in records["sample_id"]], dtype=np.int64)
    au = preds.get("au_pred")
    if au is None and "au_logits" in preds:
        au = (preds["au_logits"].sigmoid() > 0.5).float()
    tables = submission_frames(
        records,
        expr_index=preds["expr_logits"].argmax(1).numpy()[rows] if "expr_logits" in preds else None,
        class_names=class_names,
        au_pred=au.numpy()[rows] if au is not None else None,
        au_names=au_names,
        va=preds["va"].numpy()[rows] if "va" in preds else None,
    )
    return {task: len(write_abaw_submission(out / task, task, fill_missing_frames(t))) for task, t in tables.items()}


class ABAWSubmission(EvalProtocol):
    key = "abaw_submission"
    summary_key = "abaw_submission"
    help = "true: also write ABAW 2020 files, abaw_submission/<AU|EXPR|VA>/<video>.txt"

    def run(self, value: Any, ctx: EvalContext) -> dict[str, Any] | None:
        if value is not True and str(value).lower() != "true":
            raise FermixError(f"abaw_submission={value} must be true or false")
        written = write_submission(
            ctx.run_dir / "abaw_submission",
            ctx.records,
            ctx.result["predictions"],
            tuple(ctx.method.data_info.label_space.classes),
            tuple(ctx.method.data_info.extras.get("au_names") or ()),
        )
        ctx.log(f"ABAW submission files: {', '.join(f'{t} {n}' for t, n in written.items())}")
        return None

