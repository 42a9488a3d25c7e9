"""Frame windows (multitask spec §4, §7.8, §8.7): strides, end alignment, short videos, de-duplication, (B, T) order."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from fermix.data.windows import (
    FrameWindows,
    WindowConfig,
    WindowDataset,
    collate_windows,
    cut_windows,
    videos,
    window_dataset,
    window_positions,
    window_starts,
)
from fermix.errors import FermixError

NAN = float("nan")


def test_train_windows_overlap_by_half_and_evaluation_windows_do_not() -> None:
    cfg = WindowConfig(seq_len=4)
    assert (cfg.stride(train=True), cfg.stride(train=False)) == (2, 4)
    assert window_starts(12, 4, cfg.stride(True)) == [0, 2, 4, 6, 8]
    assert window_starts(12, 4, cfg.stride(False)) == [0, 4, 8]
    assert WindowConfig(seq_len=5).stride(True) == 2 and WindowConfig(seq_len=4, train_stride=3).stride(True) == 3


@pytest.mark.parametrize("stride", [1, 2, 3, 4])
def test_the_last_window_ends_at_the_last_frame(stride: int) -> None:
    for length in range(4, 30):
        starts = window_starts(length, 4, stride)
        assert starts[-1] + 4 == length, (length, starts)
        assert starts == sorted(set(starts))  # no window twice (the original repeats one when stride divides length)
    assert window_starts(10, 4, 4) == [0, 4, 6]  # the end-aligned window overlaps its predecessor


def test_videos_shorter_than_the_stride_are_dropped_or_padded_with_their_last_frame() -> None:
    assert window_starts(1, 4, 2) == [] and window_starts(3, 4, 4) == []  # the original: no window
    assert window_positions(1, 4, 2, "pad").tolist() == [[0, 0, 0, 0]]
    assert window_positions(3, 4, 4, "pad").tolist() == [[0, 1, 2, 2]]


def test_a_video_between_the_stride_and_seq_len_is_padded_never_started_before_its_first_frame() -> None:
    # the original started this window at frame len − T < 0 (a negative iloc: the video's last frames only)
    for option in ("drop", "pad"):
        assert window_positions(3, 4, 2, option).tolist() == [[0, 1, 2, 2]]
        assert window_positions(6, 8, 4, option).tolist() == [[0, 1, 2, 3, 4, 5, 5, 5]]


@pytest.mark.parametrize("seq_len", [1, 3, 4, 8])
def test_evaluation_windows_cover_every_frame_exactly_once_after_deduplication(seq_len: int) -> None:
    records = pd.DataFrame({"video": ["a"] * 37 + ["b"] * 11 + ["c"] * 2, "frame": np.r_[1:38, 1:12, 1:3]})
    labels = {"expr": np.zeros(len(records), np.int64)}
    w = cut_windows(records, labels, WindowConfig(seq_len=seq_len, short_videos="pad"), train=False)
    kept = w.rows[w.keep]
    assert sorted(kept.tolist()) == list(range(len(records)))  # every frame once
    assert (~w.keep).sum() == w.rows.size - len(records)  # only repeats are hidden


def test_frames_are_ordered_by_frame_within_each_video() -> None:
    records = pd.DataFrame({"video": ["b", "a", "b", "a", "b"], "frame": [3, 2, 1, 1, 2]})
    assert [v.tolist() for v in videos(records)] == [[2, 4, 0], [3, 1]]  # videos by first appearance
    synthetic = pd.DataFrame({"subject": ["p1", "p2", "p1", "p1"]})  # no video column: subject + record order
    assert [v.tolist() for v in videos(synthetic)] == [[0, 2, 3], [1]]


def _records_two_tasks() -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """One video of 10 frames: AU labelled on frames 0-7, EXPR on 2-9, VA on the same frames as AU."""
    n = 10
    records = pd.DataFrame({"video": ["v"] * n, "frame": np.arange(1, n + 1), "sample_id": [f"f{i}" for i in range(n)]})
    expr = np.full(n, -1)
    expr[2:] = np.arange(8) % 7
    au = np.full((n, 2), NAN, np.float32)
    au[:8] = 1.0
    va = np.full((n, 2), NAN, np.float32)
    va[:8] = 0.5
    return records, {"expr": expr, "au": au, "va": va}


def test_windows_are_cut_per_task_over_its_labelled_frames_and_tasks_labelled_alike_share_them() -> None:
    records, labels = _records_two_tasks()
    w = cut_windows(records, labels, WindowConfig(seq_len=4), train=False)
    assert w.task_names == ("expr", "au", "va")
    by_tasks = {tuple(np.asarray(w.task_names)[t]): r.tolist() for t, r in zip(w.tasks, w.rows, strict=True)}
    expr_rows = [r for t, r in zip(w.tasks, w.rows, strict=True) if t.tolist() == [True, False, False]]
    au_va_rows = [r for t, r in zip(w.tasks, w.rows, strict=True) if t.tolist() == [False, True, True]]
    assert [r.tolist() for r in expr_rows] == [[2, 3, 4, 5], [6, 7, 8, 9]]
    assert [r.tolist() for r in au_va_rows] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert len(by_tasks) == 2 and len(w) == 4


class FrameDataset(Dataset):
    """Frame i: an image filled with i (plus torch.rand noise, to see the augmentation seed), its labels."""

    def __init__(self, records: pd.DataFrame, labels: dict[str, np.ndarray]) -> None:
        self.records, self.labels = records, labels

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict:
        return {
            "image": torch.full((3, 2, 2), float(i)) + torch.rand(1) * 1e-3,
            "expr": torch.as_tensor(int(self.labels["expr"][i])),
            "au": self.labels["au"][i].copy(),
            "va": self.labels["va"][i].copy(),
            "sample_id": str(self.records["sample_id"].iloc[i]),
            "index": i,
        }


def test_a_window_carries_its_own_tasks_labels_and_hides_the_others() -> None:
    records, labels = _records_two_tasks()
    ds = window_dataset(FrameDataset(records, labels), records, labels, WindowConfig(seq_len=4), "val")
    for i in range(len(ds)):
        item = ds[i]
        own = ds.windows.tasks[i]
        assert (item["expr"] >= 0).all().item() == bool(own[0]) and (item["expr"] < 0).all().item() == (not own[0])
        assert item["au"].isnan().all().item() == (not own[1])
        assert item["va"].isnan().all().item() == (not own[2])


def test_the_collate_flattens_b_by_t_in_b_t_order_for_tensors_and_ids_alike() -> None:
    records = pd.DataFrame({"video": ["v"] * 12, "frame": np.arange(12), "sample_id": [f"f{i}" for i in range(12)]})
    labels = {"expr": np.arange(12) % 7, "au": np.ones((12, 2), np.float32), "va": np.zeros((12, 2), np.float32)}
    ds = window_dataset(FrameDataset(records, labels), records, labels, WindowConfig(seq_len=4), "val")
    items = [ds[0], ds[1], ds[2]]
    batch = collate_windows(items)
    assert batch["seq_len"] == 4 and batch["image"].shape == (12, 3, 2, 2)
    ids = [f"f{i}" for i in range(12)]  # windows [0-3], [4-7], [8-11]
    assert batch["sample_id"] == ids
    assert batch["image"][:, 0, 0, 0].round().long().tolist() == list(range(12))  # rows match their ids
    assert batch["expr"].tolist() == (np.arange(12) % 7).tolist()
    assert batch["window"].tolist() == [0, 1, 2]
    # what the original did (spec §7.8): default collation gives the ids as T lists of B, i.e. (T, B)
    transposed = [x for row in default_collate(items)["sample_id"] for x in row]
    assert transposed != ids and transposed[:3] == ["f0", "f4", "f8"]


def test_a_frame_covered_twice_at_evaluation_is_scored_once_through_a_loader() -> None:
    records = pd.DataFrame({"video": ["a"] * 10 + ["b"] * 7, "frame": np.r_[0:10, 0:7]})
    records["sample_id"] = [f"s{i}" for i in range(len(records))]
    n = len(records)
    labels = {"expr": np.arange(n) % 7, "au": np.ones((n, 2), np.float32), "va": np.zeros((n, 2), np.float32)}
    ds = window_dataset(FrameDataset(records, labels), records, labels, WindowConfig(seq_len=4), "test")
    loader = DataLoader(ds, batch_size=3, collate_fn=ds.collate_fn)
    ids, expr, au, va = [], [], [], []
    for batch in loader:
        ids += batch["sample_id"]
        expr.append(batch["expr"])
        au.append(batch["au"])
        va.append(batch["va"])
    expr, au, va = torch.cat(expr), torch.cat(au), torch.cat(va)
    assert len(ids) > n  # the end-aligned windows repeat frames ...
    for labelled in (expr >= 0, ~au.isnan().any(1), ~va.isnan().any(1)):
        scored = [i for i, keep in zip(ids, labelled.tolist(), strict=True) if keep]
        assert sorted(scored) == sorted(records["sample_id"])  # ... which count once, for every task


def test_training_windows_keep_every_label_and_share_one_augmentation_draw_per_window() -> None:
    records = pd.DataFrame({"video": ["a"] * 9, "frame": np.arange(9), "sample_id": [f"s{i}" for i in range(9)]})
    labels = {"expr": np.arange(9) % 7, "au": np.ones((9, 2), np.float32), "va": np.zeros((9, 2), np.float32)}
    ds = window_dataset(FrameDataset(records, labels), records, labels, WindowConfig(seq_len=4), "train", seed=3)
    assert ds.windows.rows.tolist() == [[0, 1, 2, 3], [2, 3, 4, 5], [4, 5, 6, 7], [5, 6, 7, 8]]
    assert ds.windows.keep.all()
    item = ds[(1, 0)]
    noise = item["image"][:, 0, 0, 0] - item["image"][:, 0, 0, 0].round()
    assert torch.allclose(noise, noise[0].expand(4))  # one draw for the whole window
    again, other_epoch = ds[(1, 0)], ds[(1, 1)]
    assert torch.equal(item["image"], again["image"]) and not torch.equal(item["image"], other_epoch["image"])


def test_window_task_labels_select_each_tasks_windows() -> None:
    records, labels = _records_two_tasks()
    ds = window_dataset(FrameDataset(records, labels), records, labels, WindowConfig(seq_len=4), "train")
    wl = ds.task_labels(labels)
    assert len(wl["expr"]) == len(ds)
    assert (wl["expr"] >= 0).tolist() == ds.windows.tasks[:, 0].tolist()
    assert (~np.isnan(wl["au"]).any(1)).tolist() == ds.windows.tasks[:, 1].tolist()
    first = ds.windows.rows[ds.windows.tasks[:, 0], 0]
    assert wl["expr"][ds.windows.tasks[:, 0]].tolist() == labels["expr"][first].tolist()


def test_bad_window_settings_and_a_split_without_windows_are_one_sentence_errors() -> None:
    with pytest.raises(FermixError, match="short_videos"):
        WindowConfig.from_cfg({"seq_len": 4, "short_videos": "loop"})
    with pytest.raises(FermixError, match="no option 'stride'"):
        WindowConfig.from_cfg({"seq_len": 4, "stride": 2})
    assert WindowConfig.from_cfg(None) is None
    records = pd.DataFrame({"video": ["a", "b"], "frame": [0, 0], "sample_id": ["x", "y"]})
    labels = {"expr": np.zeros(2, np.int64)}
    with pytest.raises(FermixError, match="short_videos=pad"):
        window_dataset(FrameDataset(records, labels), records, labels, WindowConfig(seq_len=4), "val")


def test_the_datamodule_serves_windows_of_a_dataset_without_videos(tmp_path) -> None:
    from fermix.engine.datamodule import FermixDataModule

    dataset = {"name": "synthetic_partial", "partial": "disjoint", "cache": False, "image_size": 32,
               "train_per_cell": 4, "val_per_cell": 2, "test_per_cell": 1,
               "subjects_per_domain": [1, 1, 1]}  # fmt: skip
    data = {"image_size": 32, "resize": 32, "mean": [0.5] * 3, "std": [0.5] * 3, "batch_size": 2, "num_workers": 0,
            "val_fraction": 0.0, "test_fraction": 0.0, "windows": {"seq_len": 4}}  # fmt: skip
    dm = FermixDataModule(dataset, data, seed=0, wrapper=FrameWindows.from_config({"data": data}))  # multitask_rnn's
    dm.build()
    assert isinstance(dm.dataset("val"), WindowDataset)
    batch = next(iter(dm.loader("val")))
    assert batch["seq_len"] == 4 and batch["image"].shape == (8, 3, 32, 32) and len(batch["sample_id"]) == 8
    assert len({s for s in batch["subject"][:4]}) == 1  # a window is one person (the synthetic "video")
    frames, windows = dm.frame_labels("train"), dm.task_labels("train")
    assert len(frames["expr"]) == len(dm.split_records("train")) and len(windows["expr"]) == len(dm.dataset("train"))
    for task in ("expr", "au", "va"):  # disjoint single-task training sets: each window is one task's
        mine = windows[task] >= 0 if task == "expr" else ~np.isnan(windows[task]).any(1)
        assert mine.any()
    sources = {t: rows for t, rows in zip(("expr", "au", "va"), dm.dataset("train").windows.tasks.T, strict=True)}
    assert not (sources["expr"] & sources["au"]).any()
