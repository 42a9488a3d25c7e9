import pytest
import torch

from fermix.engine.datamodule import FermixDataModule
from fermix.errors import FermixError
from tests.helpers import write_image_folder

DATA = {"batch_size": 4, "num_workers": 0, "image_size": 24, "resize": 32, "mean": [0.5] * 3, "std": [0.5] * 3,
        "augment": {"random_crop": True, "hflip": 0.5, "rotation": 15, "color_jitter": 0.2},
        "val_fraction": 0.25, "test_fraction": 0.25, "split_seed": 0}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("d") / "faces", per_class=8, size=32)


def _dm(root, seed=0, **data):
    return FermixDataModule({"name": "imagefolder", "root": str(root)}, {**DATA, **data}, seed=seed)


def test_splits_are_disjoint_and_independent_of_the_training_seed(root):
    a, b = _dm(root, seed=0), _dm(root, seed=7)
    for split in ("train", "val", "test"):
        assert a.split_records(split)["sample_id"].tolist() == b.split_records(split)["sample_id"].tolist()
    ids = [set(a.split_records(s)["sample_id"]) for s in ("train", "val", "test")]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert sum(map(len, ids)) == 24


def test_a_method_needing_a_missing_key_fails_in_one_sentence(root):
    with pytest.raises(FermixError, match=r"method iern needs `domain`, which dataset imagefolder does not supply"):
        _dm(root).check_requires(frozenset({"image", "expr", "domain"}), "iern")


def _epoch_batches(dm, workers, epoch):
    dm.data_cfg = {**dm.data_cfg, "num_workers": workers}
    loader = dm.loader("train", train=True)
    loader.sampler.set_epoch(epoch)
    return [b["image"] for b in loader]


def test_augmented_batches_do_not_depend_on_worker_count(root):
    dm = _dm(root)
    serial, parallel = _epoch_batches(dm, 0, 1), _epoch_batches(dm, 2, 1)
    assert all(torch.equal(a, b) for a, b in zip(serial, parallel, strict=True))


def test_each_epoch_sees_a_new_order_and_new_augmentation(root):
    dm = _dm(root)
    first, second = _epoch_batches(dm, 0, 0), _epoch_batches(dm, 0, 1)
    assert not torch.equal(torch.cat(first), torch.cat(second))


def test_evaluation_transform_is_deterministic(root):
    dm = _dm(root)
    a = [b["image"] for b in dm.loader("val")]
    b = [b["image"] for b in dm.loader("val")]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert a[0].shape[-2:] == (24, 24)


def test_batches_carry_the_documented_keys(root):
    batch = next(iter(_dm(root).loader("train", train=True)))
    assert {"image", "expr", "sample_id", "subject", "index"} <= set(batch)
    assert batch["expr"].dtype == torch.long and batch["image"].dtype == torch.float32


def test_subject_independent_split_keeps_each_subject_in_one_split(root, tmp_path):
    import pandas as pd

    rows = [{"path": str(p), "label": p.parent.name, "subject": f"s{i % 6}"}
            for i, p in enumerate(sorted(root.rglob("*.png")))]
    manifest = tmp_path / "m.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    dm = FermixDataModule({"name": "imagefolder", "root": str(root), "manifest": str(manifest)},
                          {**DATA, "split_by": "subject", "val_fraction": 0.2, "test_fraction": 0.2}, seed=0)
    subjects = [set(dm.split_records(s)["subject"]) for s in ("train", "val", "test")]
    assert all(subjects)
    assert not (subjects[0] & subjects[1] or subjects[0] & subjects[2] or subjects[1] & subjects[2])


def test_global_batch_size_is_split_over_ranks(root):
    from types import SimpleNamespace

    dm = _dm(root, batch_size=8)
    dm.trainer = SimpleNamespace(world_size=2)
    assert dm.train_dataloader().batch_size == 4 and dm.val_dataloader().batch_size == 4
    assert dm.loader("val").batch_size == 8  # single-process evaluation keeps the whole batch
    dm.trainer = SimpleNamespace(world_size=3)
    with pytest.raises(FermixError, match="cannot be split evenly over 3"):
        dm.train_dataloader()


# --- data.bad_images and empty splits ------------------------------------------------------------
def _with_bad_files(tmp_path):
    faces = write_image_folder(tmp_path / "faces", per_class=8, size=32)
    (faces / "sad" / "broken.jpg").write_bytes(b"not an image")
    (faces / "happy" / "empty.png").write_bytes(b"")
    return faces


@pytest.mark.parametrize("workers", [0, 2])
def test_skip_leaves_unreadable_images_out_before_the_splits_are_carved(tmp_path, workers):
    faces = _with_bad_files(tmp_path)
    dm = _dm(faces, bad_images="skip", num_workers=workers)
    dm.build()
    assert sorted(s["sample_id"] for s in dm.skipped_images) == ["happy/empty.png", "sad/broken.jpg"]
    assert all(s["path"].endswith(s["sample_id"]) and "cannot read image" in s["reason"] for s in dm.skipped_images)
    assert sum(dm.split_sizes().values()) == 24
    clean = _dm(write_image_folder(tmp_path / "clean", per_class=8, size=32))
    for split in ("train", "val", "test"):  # the same carve as a folder without the bad files
        assert dm.split_records(split)["sample_id"].tolist() == clean.split_records(split)["sample_id"].tolist()


def test_fail_reads_nothing_ahead_and_keeps_every_record(tmp_path):
    dm = _dm(_with_bad_files(tmp_path))
    assert sum(dm.split_sizes().values()) == 26 and dm.skipped_images == []
    with pytest.raises(FermixError, match=r"data.bad_images=sometimes is not one of fail, skip"):
        _dm(tmp_path / "faces", bad_images="sometimes").build()


def test_skipping_every_image_of_an_explicit_split_is_an_error(tmp_path):
    root = write_image_folder(tmp_path / "split", per_class=2, size=32, splits=["train", "test"])
    for image in (root / "test").rglob("*.png"):
        image.write_bytes(b"")
    with pytest.raises(FermixError, match=r"split test of dataset imagefolder has no samples after leaving out 6"):
        _dm(root, bad_images="skip").build()


def test_a_fit_without_training_samples_stops_at_setup_while_evaluation_may_proceed(tmp_path):
    root = write_image_folder(tmp_path / "only_test", per_class=2, size=32, splits=["test"])
    dm = _dm(root)
    dm.setup("test")  # fermix test on such a folder is fine
    assert len(dm.dataset("test")) == 6
    with pytest.raises(FermixError, match=r"^split train of dataset imagefolder has no samples \(the 6 samples are in: "
                                          r"test 6\); check the dataset's split folders or manifest$"):
        dm.setup("fit")
