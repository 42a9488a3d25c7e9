"""Fixed-length frame windows for sequence models (multitask's CNN-RNN variant, spec §4, §7.8).

Windows are cut per video and per task, over the frames labelled for that task, in frame order:
- a video is the records' `video` column, its frames ordered by `frame`; a dataset without a
  `video` column (the synthetic faces) uses `subject` as the video and record order as frame order;
- training windows start every `train_stride` frames (default seq_len/2), evaluation windows every
  seq_len frames, and the last window is aligned to the video's end;
- a video shorter than the stride gives no window (`short_videos: drop`, the original) or one
  window padded by repeating its last frame (`pad`); a video at least one stride long but shorter
  than seq_len gives one padded window (the original started it at a negative frame instead);
- tasks whose labelled frames are the same in a video share their windows (the windows the
  original cuts per task are then identical), so a fully labelled split is cut once.

A window carries the labels of its tasks only (the others read as unlabelled). At evaluation a
frame that a window covers a second time (the end-aligned last window, padding) is unlabelled in
that window, so every labelled (frame, task) pair counts exactly once in every metric.

A window item holds the frames' samples stacked along T; `collate_windows` flattens B windows
into B·T frame rows in (B, T) order — the same order for tensors and for `sample_id` — and adds
`seq_len`, so a model reshapes with `view(B, T, ...)`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, default_collate

from fermix.data.torch_dataset import sample_seed
from fermix.errors import FermixError
from fermix.methods.base import DatasetWrapper

TASKS = ("expr", "au", "va")  # the label keys windows are cut for (batch keys, DESIGN §1)
WINDOW_KEYS = frozenset({"window"})  # per-window entries of an item; every other entry is per frame
SHORT_VIDEOS = ("drop", "pad")


@dataclass(frozen=True)
class WindowConfig:
    """`data.windows`: how frames are grouped into windows (null = no windows, one sample per frame)."""

    seq_len: int = 32
    train_stride: int | None = None  # None = seq_len // 2 (the original)
    short_videos: str = "drop"  # drop (the original) | pad (repeat the last frame)

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any] | None) -> WindowConfig | None:
        if not cfg:
            return None
        values = dict(cfg)
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise FermixError(f"data.windows has no option {unknown[0]!r}; its options: {', '.join(sorted(known))}")
        config = cls(**values)
        if int(config.seq_len) < 1:
            raise FermixError(f"data.windows.seq_len={config.seq_len} must be at least 1")
        if config.train_stride is not None and int(config.train_stride) < 1:
            raise FermixError(f"data.windows.train_stride={config.train_stride} must be at least 1 (or null)")
        if config.short_videos not in SHORT_VIDEOS:
            raise FermixError(f"data.windows.short_videos={config.short_videos} is not one of drop, pad")
        return config

    def stride(self, train: bool) -> int:
        if not train:
            return int(self.seq_len)
        return int(self.train_stride) if self.train_stride is not None else max(1, int(self.seq_len) // 2)


def window_starts(length: int, seq_len: int, stride: int, short_videos: str = "drop") -> list[int]:
    """Start frames of the windows over `length` frames; a window may run past the end (padded)."""
    if length <= 0 or (length < stride and short_videos == "drop"):
        return []
    if length <= seq_len:
        return [0]
    starts = list(range(0, length - seq_len + 1, stride))
    if starts[-1] + seq_len < length:
        starts.append(length - seq_len)  # the last window ends at the video's last frame
    return starts


def window_positions(length: int, seq_len: int, stride: int, short_videos: str = "drop") -> np.ndarray:
    """(W, seq_len) positions into the video's frames; padding repeats the last frame."""
    starts = window_starts(length, seq_len, stride, short_videos)
    if not starts:
        return np.zeros((0, seq_len), dtype=np.int64)
    positions = np.asarray(starts)[:, None] + np.arange(seq_len)[None, :]
    return np.minimum(positions, length - 1).astype(np.int64)


def first_occurrence(positions: np.ndarray) -> np.ndarray:
    """(W, T) mask: True where a position appears for the first time in (window, frame) order."""
    flat = positions.reshape(-1)
    keep = np.zeros(flat.shape, dtype=bool)
    keep[np.unique(flat, return_index=True)[1]] = True
    return keep.reshape(positions.shape)


def labelled_masks(labels: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per task, which rows have ground truth (expr ≥ 0; au / va without NaN, AU not negative)."""
    masks = {}
    for task in TASKS:
        if task not in labels:
            continue
        values = np.asarray(labels[task])
        if task == "expr":
            masks[task] = values >= 0
        else:
            with np.errstate(invalid="ignore"):
                bad = np.isnan(values) | (values < 0) if task == "au" else np.isnan(values)
            masks[task] = ~bad.reshape(len(values), -1).any(axis=1)
    return masks


def videos(records: pd.DataFrame) -> list[np.ndarray]:
    """Row positions of each video in frame order: `video` + `frame` columns, else `subject` + record order."""
    if "video" in records:
        key = records["video"].to_numpy()
        order = records["frame"].to_numpy() if "frame" in records else np.arange(len(records))
    elif "subject" in records:
        key = records["subject"].to_numpy()
        order = np.arange(len(records))
    else:
        raise FermixError("frame windows need a `video` (or `subject`) column in the dataset's records")
    codes = pd.factorize(key)[0]  # videos numbered by first appearance
    rows = np.arange(len(records))
    sorted_rows = rows[np.lexsort((order, codes))]  # by video (first appearance), then frame
    boundaries = np.flatnonzero(np.diff(codes[sorted_rows])) + 1
    return [part for part in np.split(sorted_rows, boundaries) if len(part)]


@dataclass(frozen=True)
class Windows:
    """The windows of one split: dataset rows (W, T), labels kept (W, T) and the tasks of each window (W, K)."""

    rows: np.ndarray
    keep: np.ndarray
    tasks: np.ndarray
    task_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.rows)


def cut_windows(records: pd.DataFrame, labels: Mapping[str, np.ndarray], config: WindowConfig, train: bool) -> Windows:
    """Cut the windows of one split (see the module docstring); `labels` are its per-frame labels."""
    masks = labelled_masks(labels)
    names = tuple(masks)
    seq_len, stride = int(config.seq_len), config.stride(train)
    rows, keep, tasks = [], [], []
    for video in videos(records):
        groups: list[tuple[np.ndarray, list[int]]] = []  # labelled frames -> the tasks labelled exactly there
        for k, name in enumerate(names):
            frames = video[masks[name][video]]
            if not len(frames):
                continue
            same = next((g for g in groups if np.array_equal(g[0], frames)), None)
            if same is None:
                groups.append((frames, [k]))
            else:
                same[1].append(k)
        for frames, members in groups:
            positions = window_positions(len(frames), seq_len, stride, config.short_videos)
            if not len(positions):
                continue
            rows.append(frames[positions])
            keep.append(np.ones(positions.shape, dtype=bool) if train else first_occurrence(positions))
            flags = np.zeros((len(positions), len(names)), dtype=bool)
            flags[:, members] = True
            tasks.append(flags)
    if not rows:
        return Windows(
            np.zeros((0, seq_len), np.int64), np.zeros((0, seq_len), bool), np.zeros((0, len(names)), bool), names
        )
    return Windows(np.concatenate(rows), np.concatenate(keep), np.concatenate(tasks), names)


def hide_labels(sample: dict[str, Any], tasks: Sequence[str]) -> dict[str, Any]:
    """The sample with the labels of `tasks` marked unlabelled (expr −1, au / va NaN)."""
    for task in tasks:
        if task not in sample:
            continue
        if task == "expr":
            sample[task] = torch.as_tensor(-1, dtype=torch.long)
        else:
            sample[task] = np.full(np.shape(sample[task]), np.nan, dtype=np.float32)
    return sample


class WindowDataset(Dataset):
    """Windows of frames over a per-frame dataset (a `RecordsDataset`).

    Indexed like it: an int at evaluation, an `(index, epoch)` pair from a training sampler, in
    which case every frame of the window is transformed under the same seed (seed, epoch, index),
    so a window gets one crop and one flip for all its frames (spec §1: per-sequence augmentation).
    """

    def __init__(self, frames: Dataset, windows: Windows, seed: int = 0) -> None:
        self.frames = frames
        self.windows = windows
        self.seed = seed

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, epoch = key if isinstance(key, tuple) else (int(key), None)
        w = self.windows
        names = w.task_names
        own = [n for k, n in enumerate(names) if w.tasks[index, k]]
        others = [n for n in names if n not in own]
        samples = []
        with torch.random.fork_rng(devices=[]):
            for t, row in enumerate(w.rows[index]):
                if epoch is not None:
                    torch.manual_seed(sample_seed(self.seed, epoch, index))  # the same draw for every frame
                sample = dict(self.frames[int(row)])
                samples.append(hide_labels(sample, names if not w.keep[index, t] else others))
        item = default_collate(samples)  # tensors stacked to (T, ...), strings as lists of T
        item["window"] = index
        return item

    def task_labels(self, frame_labels: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Window-level labels for per-task training sources: a window's tasks carry the labels of its
        first frame, its other tasks read as unlabelled (−1 / NaN)."""
        w = self.windows
        first = w.rows[:, 0] if len(w) else np.zeros(0, np.int64)
        out = {}
        for k, name in enumerate(w.task_names):
            values = np.asarray(frame_labels[name])[first].copy()
            mine = w.tasks[:, k]
            if name == "expr":
                values[~mine] = -1
            else:
                values = values.astype(np.float32)
                values[~mine] = np.nan
            out[name] = values
        return out

    @staticmethod
    def collate_fn(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return collate_windows(items)


def collate_windows(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """B window items -> one batch of B·T frame rows in (B, T) order, plus `seq_len` = T.

    (default_collate would turn the per-frame string lists into T lists of B — the (T, B) order
    the original then flattened as if it were (B, T), spec §7.8.)
    """
    seq_len = len(items[0]["image"])
    batch: dict[str, Any] = {}
    for key in items[0]:
        values = [item[key] for item in items]
        if key in WINDOW_KEYS:
            batch[key] = default_collate(values)
        elif torch.is_tensor(values[0]):
            batch[key] = torch.cat(values)
        else:
            batch[key] = [v for value in values for v in value]
    batch["seq_len"] = seq_len
    return batch


def window_dataset(
    frames: Dataset,
    records: pd.DataFrame,
    labels: Mapping[str, np.ndarray],
    config: WindowConfig,
    split: str,
    seed: int = 0,
) -> WindowDataset:
    """The split's window dataset; a split without any window is a one-sentence error."""
    windows = cut_windows(records, labels, config, train=split == "train")
    if len(windows) == 0:
        raise FermixError(
            f"the {split} split has no window of data.windows.seq_len={config.seq_len} frames: every video's "
            f"labelled frames are fewer than the stride {config.stride(split == 'train')}; "
            "use data.windows.short_videos=pad or a shorter seq_len"
        )
    return WindowDataset(frames, windows, seed)


class FrameWindows(DatasetWrapper):
    """`data.windows` as a method's sample unit (declared by sequence methods: multitask_rnn)."""

    key = "data.windows"

    def __init__(self, config: WindowConfig) -> None:
        self.config = config

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> FrameWindows | None:
        windows = WindowConfig.from_cfg((config.get("data") or {}).get("windows"))
        return cls(windows) if windows is not None else None

    def wrap(
        self, frames: Dataset, records: pd.DataFrame, labels: Mapping[str, np.ndarray], split: str, seed: int
    ) -> WindowDataset:
        return window_dataset(frames, records, labels, self.config, split, seed)

    def task_labels(self, wrapped: Dataset, labels: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        assert isinstance(wrapped, WindowDataset)
        return wrapped.task_labels(labels)

    def describe(self) -> str:
        return f"windows of {self.config.seq_len} frames (data.windows.seq_len)"
