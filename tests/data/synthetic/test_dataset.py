import pickle

import numpy as np
import torch

from fermix.data.synthetic import SyntheticDataset
from fermix.data.torch_dataset import RecordsDataset
from fermix.data.transforms import build_transform

CFG = {"train_per_cell": 3, "val_per_cell": 1, "test_per_cell": 2, "noise": 0.3, "ambiguity": 0.5}


def _dataset(tmp_path, **kw):
    return SyntheticDataset({**CFG, **kw, "cache_dir": str(tmp_path / "cache")})


def test_records_cover_generated_splits_with_domains_and_subjects(tmp_path):
    ds = _dataset(tmp_path)
    rec = ds.records()
    assert rec.groupby("split").size().to_dict() == {"train": 63, "val": 21, "test": 42}
    assert rec["sample_id"].is_unique
    assert set(rec["source"]) == {"studio", "lab", "wild"} and ds.num_domains == 3
    assert ds.label_space.name == "basic7"


def test_every_sample_carries_the_documented_keys(tmp_path):
    ds = _dataset(tmp_path)
    row = ds.records().iloc[0]
    s = ds.load(row)
    assert set(s) == set(ds.keys)
    assert s["image"].shape == (64, 64, 3) and s["image"].flags.writeable
    assert s["landmarks"].shape == (68, 2) and s["au"].shape == (16,) and s["va"].shape == (2,)
    assert abs(s["expr_soft"].sum() - 1.0) < 1e-6 and s["expr_soft"].argmax() == s["expr_clean"]
    assert set(np.unique(s["au"])) <= {0.0, 1.0}


def test_noisy_train_labels_keep_the_clean_label_and_test_is_clean(tmp_path):
    ds = _dataset(tmp_path)
    rec = ds.records()
    train = [ds.load(r) for _, r in rec[rec.split == "train"].iterrows()]
    assert any(s["expr"] != s["expr_clean"] for s in train)
    test = [ds.load(r) for _, r in rec[rec.split == "test"].iterrows()]
    assert all(s["expr"] == s["expr_clean"] for s in test)


def test_pickling_drops_the_memory_maps_and_reopens_them(tmp_path):
    ds = _dataset(tmp_path)
    rec = ds.records()
    blob = pickle.dumps(ds)
    assert len(blob) < 10_000  # not a copy of the images
    clone = pickle.loads(blob)
    np.testing.assert_array_equal(clone.load(rec.iloc[3])["image"], ds.load(rec.iloc[3])["image"])


def test_partial_labels_are_missing_values(tmp_path):
    ds = _dataset(tmp_path, partial="disjoint", noise=0.0)
    rec = ds.records()
    samples = [ds.load(r) for _, r in rec[rec.split == "train"].iterrows()]
    has = np.array([[s["expr"] >= 0, not np.isnan(s["au"]).any(), not np.isnan(s["va"]).any()] for s in samples])
    assert (has.sum(axis=1) == 1).all()


def test_landmarks_follow_the_image_through_the_training_transforms(tmp_path):
    """Resize, crop, flip and rotation move the landmarks with the pixels, in pixel-centre coordinates."""
    ds = _dataset(tmp_path, noise=0.0, ambiguity=0.0, num_domains=1, domain_styles=["studio"])
    rec = ds.records()
    data_cfg = {"image_size": 64, "resize": 80, "mean": [0, 0, 0], "std": [1, 1, 1],
                "augment": {"random_crop": True, "hflip": 1.0, "rotation": 15}}
    torch_ds = RecordsDataset(rec, ds.load, build_transform(data_cfg, train=True), seed=3)
    raw = torch_ds[(0, 0)]
    plain = ds.load(rec.iloc[0])
    assert raw["landmarks"].shape == (68, 2) and raw["landmarks"].dtype == torch.float32
    assert raw["landmarks"][36, 0] < raw["landmarks"][45, 0]  # index order restored after the flip
    # The flipped image's left eye is the original's right eye, mirrored.
    assert not torch.allclose(raw["landmarks"], torch.as_tensor(plain["landmarks"]))
    eval_ds = RecordsDataset(rec, ds.load, build_transform({**data_cfg, "resize": 64}, train=False))
    np.testing.assert_allclose(eval_ds[0]["landmarks"].numpy(), plain["landmarks"], atol=1e-4)
    # Resize 64 -> 80 then centre-crop 64: x' = (x + 0.5) * 80 / 64 - 0.5 - 8.
    eval_ds = RecordsDataset(rec, ds.load, build_transform(data_cfg, train=False))
    expected = (plain["landmarks"] + 0.5) * 80 / 64 - 0.5 - 8
    np.testing.assert_allclose(eval_ds[0]["landmarks"].numpy(), expected, atol=1e-4)


def test_writer_samples_round_trip_through_the_imagefolder_writer(tmp_path):
    from fermix.data.datasets.imagefolder import ImageFolderDataset
    from fermix.data.writers import write

    ds = _dataset(tmp_path, noise=0.0)
    root = write("imagefolder", ds.writer_samples(), tmp_path / "folder")
    back = ImageFolderDataset({"root": str(root), "label_space": "basic7"})
    rec = back.records()
    assert len(rec) == 126 and rec.groupby("split").size().to_dict() == {"train": 63, "val": 21, "test": 42}
    ours = ds.records()
    assert sorted(rec["expr"].tolist()) == sorted(ours["expr"].tolist())
