"""`fermix preprocess` as a user runs it, and `fermix train` on what it wrote."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from fermix.errors import FermixError
from fermix.registry import Entry, Registry
from tests.conftest import assert_one_sentence_error
from tests.engine.runner import quick_overrides, run_train_in_process
from tests.preprocess.photos import astronaut, rotated, save, write_photo_folder


@pytest.fixture(scope="module")
def raw_splits(tmp_path_factory) -> Path:
    """train/val/test folders, two classes, one astronaut variant each (labels are arbitrary)."""
    root = tmp_path_factory.mktemp("split_photos") / "raw"
    photo = astronaut()
    variants = {"happy": photo, "sad": cv2.flip(photo, 1)}
    for split, angle in (("train", 0), ("val", 10), ("test", -10)):
        for name, image in variants.items():
            save(root / split / name / f"{name}_{split}.jpg", rotated(image, angle) if angle else image)
    return root


def test_cli_preprocess_writes_outputs_and_keeps_hydra_files_inside_the_output(fermix_main, tmp_path):
    write_photo_folder(tmp_path / "raw")
    result = fermix_main(["preprocess", "dataset.root=raw", "preprocess.out=faces", "progress=none"], tmp_path)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "faces"
    assert (out / "manifest.csv").is_file() and (out / "preprocess.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["faces", "raw"]  # nothing else in cwd
    assert list((out / ".hydra_runs").glob("*/.hydra/config.yaml"))
    report = json.loads((out / "preprocess.json").read_text())
    assert report["label_space"] == {"name": "imagefolder", "classes": ["happy", "neutral"]}
    assert report["dataset"] == "imagefolder" and report["counts"]["aligned"] == 2
    assert report["dataset_root"] == str((tmp_path / "raw").absolute())


def test_preprocessed_folder_trains_with_its_splits_labels_and_landmarks(fermix_main, raw_splits, tmp_path):
    out = tmp_path / "faces"
    result = fermix_main(
        ["preprocess", f"dataset.root={raw_splits}", f"preprocess.out={out}", "preprocess.size=64",
         "progress=none", "preprocess.num_workers=1"],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "preprocess.json").read_text())["counts"]["aligned"] == 6

    from fermix.data.datasets.imagefolder import ImageFolderDataset

    ds = ImageFolderDataset({"root": str(out)})
    assert "landmarks" in ds.keys and ds.label_space.classes == ("happy", "sad")
    assert ds.records()["split"].value_counts().to_dict() == {"train": 2, "val": 2, "test": 2}

    summary = run_train_in_process(
        quick_overrides(out, "dataset=imagefolder", "trainer.max_epochs=1", "data.batch_size=2"), tmp_path / "run"
    )
    assert summary["split_sizes"] == {"train": 2, "val": 2, "test": 2}
    assert summary["epochs_trained"] == 1


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["dataset.root=absent"], ("dataset root absent does not exist",)),
        (["dataset.root=raw", "preprocess.landmark_model=none.dat"], ("landmark model none.dat does not exist",)),
        (["dataset.root=raw", "preprocess.out=raw/aligned"], ("is inside dataset.root",)),
        (["dataset.root=raw", "preprocess.detector=cnn"], ("preprocess.detector='cnn' is not one of",)),
    ],
)
def test_bad_input_is_one_sentence(fermix_main, tmp_path, args, fragments):
    write_photo_folder(tmp_path / "raw")
    result = fermix_main(["preprocess", "preprocess.out=faces", *args], tmp_path)
    assert_one_sentence_error(result, *fragments)


def test_changing_the_template_into_an_existing_output_is_one_sentence(fermix_main, tmp_path):
    write_photo_folder(tmp_path / "raw")
    base = ["preprocess", "dataset.root=raw", "preprocess.out=faces", "progress=none"]
    assert fermix_main(base, tmp_path).returncode == 0
    result = fermix_main([*base, "preprocess.size=128"], tmp_path)
    assert_one_sentence_error(result, "was preprocessed with other settings (template)")


class NoRawPhotos:
    """A dataset that reads aligned images only."""


def test_dataset_without_raw_items_cannot_be_preprocessed(monkeypatch):
    from fermix.preprocess import run

    fake = Registry("dataset", {"aligned_only": Entry(f"{__name__}:NoRawPhotos", "")})
    monkeypatch.setattr(run, "DATASETS", fake)
    with pytest.raises(FermixError, match=r"^dataset aligned_only cannot be preprocessed; it does not list raw"):
        run.raw_items_of("aligned_only", {})


def _children(pid: int) -> list[int]:
    """Pids whose parent is `pid` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="needs Linux /proc")
def test_sigkill_mid_run_leaves_no_workers_and_the_rerun_finishes_the_rest(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    photo = astronaut()[:300, 80:380]  # the face and some margin: quicker to search than the full photo
    for i in range(16):
        save(tmp_path / "raw" / "happy" / f"a{i:02d}.png", rotated(photo, i - 8))
    args = ["dataset.root=raw", "preprocess.out=out", "preprocess.num_workers=2", "progress=none"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen([sys.executable, "-m", "fermix", "preprocess", *args], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    records = tmp_path / "out" / ".records" / "happy"
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline and len(list(records.glob("*.json"))) < 2:
        time.sleep(0.05)
    workers = _children(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(list(records.glob("*.json")))
    assert 2 <= done_before < 16 and not (tmp_path / "out" / "manifest.csv").exists()

    deadline = time.monotonic() + 30
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(w) for w in workers), "worker processes outlived the killed run"

    from fermix.data.datasets.imagefolder import ImageFolderDataset
    from fermix.preprocess.pipeline import preprocess
    from fermix.preprocess.settings import settings_from_config

    items = ImageFolderDataset.raw_items({"root": str(tmp_path / "raw")})
    report = preprocess(items, settings_from_config({}), tmp_path / "out", progress="none")
    counts = report["counts"]
    assert counts["aligned"] == 16 and counts["reused"] >= done_before
    assert counts["processed"] + counts["reused"] == 16


def test_config_defaults_write_beside_the_data_and_keep_hydra_runs_inside_the_output(tmp_path):
    from tests.engine.runner import compose_job

    cfg = compose_job("preprocess", ["dataset=imagefolder"], tmp_path)
    pre = cfg.preprocess
    assert pre.out == "datasets/imagefolder_aligned"
    assert (pre.size, list(pre.left_eye), pre.detector, pre.keep) == (256, [0.35, 0.35], "hog", "largest")
    assert cfg.hydra.run.dir.startswith("datasets/imagefolder_aligned/.hydra_runs/")
