"""The user's path, in fresh processes: `fermix train` -> checkpoint -> `fermix test`."""

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from tests.conftest import assert_one_sentence_error, run_fermix
from tests.helpers import write_image_folder

COMMON = [
    "dataset=imagefolder",
    "backbone.width=8",
    "data.image_size=32",
    "data.resize=36",
    "data.batch_size=16",
    "data.num_workers=0",
    "data.val_fraction=0.25",
    "data.test_fraction=0.25",
    "trainer.accelerator=cpu",
    "optim.lr=0.01",
]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("work")
    write_image_folder(work / "faces", per_class=16, size=32)
    return work


@pytest.fixture(scope="module")
def trained(workdir) -> Path:
    result = run_fermix(["train", "dataset.root=faces", "trainer.max_epochs=2", *COMMON], workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted((workdir / "runs" / "erm_imagefolder").iterdir())
    assert len(runs) == 1
    return runs[0]


def test_train_writes_the_documented_run_directory(trained):
    for name in ("checkpoints/best.ckpt", "checkpoints/last.ckpt", "summary.json", "predictions_val.csv",
                 "predictions_test.csv", "confusion_val.png", "confusion_test.png", "csv/metrics.csv",
                 ".hydra/config.yaml", "train.log"):
        assert (trained / name).is_file(), name
    assert any((trained / "tensorboard").glob("events.out.tfevents.*"))
    summary = json.loads((trained / "summary.json").read_text())
    assert summary["epochs_trained"] == 2 and set(summary["metrics"]) == {"val", "test"}
    preds = pd.read_csv(trained / "predictions_test.csv")
    assert list(preds.columns[:5]) == ["sample_id", "label", "label_name", "pred", "pred_name"]
    assert len(preds) == summary["split_sizes"]["test"]
    assert math.isclose((preds["label"] == preds["pred"]).mean(), summary["metrics"]["test"]["acc"], abs_tol=1e-6)


def test_checkpoint_is_self_describing_and_loads_weights_only(trained):
    ckpt = torch.load(trained / "checkpoints/best.ckpt", map_location="cpu", weights_only=True)
    meta = ckpt["fermix"]
    assert meta["method"] == "erm" and meta["dataset"] == "imagefolder"
    assert meta["label_space"]["classes"] == ["happy", "sad", "surprise"]
    assert meta["preprocessing"] == {"image_size": 32, "resize": 36, "mean": [0.5] * 3, "std": [0.5] * 3,
                                     "interpolation": "bilinear"}
    assert meta["config"]["backbone"] == {"name": "small_cnn", "width": 8, "pretrained": None}
    assert set(meta["data_fingerprints"]) == {"train", "val", "test"}
    assert meta["provenance"]["torch_version"] == str(torch.__version__)
    assert "train" in meta["provenance"]["command"]
    assert not any(k.startswith("module.") for k in ckpt["state_dict"])
    assert {"optimizer_states", "lr_schedulers", "loops"} <= set(ckpt)
    assert torch.is_tensor(meta["rng"]["torch"])


def test_fermix_test_on_val_reproduces_the_checkpoint_metrics_exactly(trained, workdir):
    ckpt = trained / "checkpoints/best.ckpt"
    result = run_fermix(["test", f"ckpt={ckpt}", "split=val"], workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    stored = torch.load(ckpt, weights_only=True)["fermix"]["metrics"]["val"]
    evals = sorted((trained / "eval").glob("val_*"))
    summary = json.loads((evals[-1] / "summary.json").read_text())
    assert summary["metrics"]["val"] == stored  # exact, not approximate
    assert (evals[-1] / "predictions_val.csv").is_file() and (evals[-1] / "confusion_val.png").is_file()


def test_fermix_test_defaults_to_the_test_split(trained, workdir):
    result = run_fermix(["test", f"ckpt={trained / 'checkpoints/best.ckpt'}"], workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "acc" in result.stdout
    evals = sorted((trained / "eval").glob("test_*"))
    summary = json.loads((evals[-1] / "summary.json").read_text())
    trained_summary = json.loads((trained / "summary.json").read_text())
    assert summary["metrics"]["test"] == trained_summary["metrics"]["test"]


def test_fermix_test_accepts_a_moved_dataset_root(trained, workdir, tmp_path):
    moved = tmp_path / "moved"
    (workdir / "faces").rename(moved)
    try:
        result = run_fermix(["test", f"ckpt={trained / 'checkpoints/best.ckpt'}", f"dataset.root={moved}"], workdir)
    finally:
        moved.rename(workdir / "faces")
    assert result.returncode == 0, result.stderr[-3000:]


def test_resume_auto_continues_last_checkpoint_to_the_same_weights(workdir):
    """1 epoch, then resume=auto to 2 epochs == 2 epochs straight (CPU, same seed)."""
    base = ["dataset.root=faces", *COMMON, "logger=none", "data.augment.rotation=10"]
    straight = run_fermix(["train", *base, "trainer.max_epochs=2", "hydra.run.dir=runs/straight"], workdir)
    first = run_fermix(["train", *base, "trainer.max_epochs=1", "hydra.run.dir=runs/resumed"], workdir)
    after_one = torch.load(workdir / "runs/resumed/checkpoints/last.ckpt", weights_only=True)
    second = run_fermix(["train", *base, "trainer.max_epochs=2", "hydra.run.dir=runs/resumed", "resume=auto"], workdir)
    for r in (straight, first, second):
        assert r.returncode == 0, r.stderr[-3000:]
    assert "resuming from" in second.stderr + second.stdout
    a = torch.load(workdir / "runs/straight/checkpoints/last.ckpt", weights_only=True)
    b = torch.load(workdir / "runs/resumed/checkpoints/last.ckpt", weights_only=True)
    assert b["global_step"] == a["global_step"] == 2 * after_one["global_step"]
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    for sa, sb in zip(a["optimizer_states"][0]["state"].values(), b["optimizer_states"][0]["state"].values(),
                      strict=True):
        assert torch.equal(sa["exp_avg"], sb["exp_avg"]) and torch.equal(sa["exp_avg_sq"], sb["exp_avg_sq"])


def test_resume_auto_finds_the_newest_unfinished_run(workdir, fermix_main):
    """Without a run dir, resume=auto picks the newest run of the same method/dataset lacking summary.json."""
    base = ["dataset.root=faces", *COMMON, "logger=none", "paths.runs_dir=auto_runs"]
    first = fermix_main(["train", *base, "trainer.max_epochs=1"], workdir)
    assert first.returncode == 0, first.stderr[-3000:]
    (run,) = (workdir / "auto_runs/erm_imagefolder").iterdir()
    (run / "summary.json").unlink()  # as if the job had been killed before finishing
    second = fermix_main(["train", *base, "trainer.max_epochs=2", "resume=auto"], workdir)
    assert second.returncode == 0, second.stderr[-3000:]
    assert [p.name for p in (workdir / "auto_runs/erm_imagefolder").iterdir()] == [run.name]
    assert torch.load(run / "checkpoints/last.ckpt", weights_only=True)["fermix"]["epoch"] == 1


# --- bad input: one sentence, non-zero exit, no traceback (the full table: tests/test_bad_input.py)


def test_unreadable_image_inside_a_loader_worker_is_still_one_sentence(tmp_path, fermix_main):
    root = write_image_folder(tmp_path / "faces", per_class=6)
    (root / "sad" / "broken.jpg").write_bytes(b"this is not a jpeg")
    args = ["train", f"dataset.root={root}", "trainer.max_epochs=1", *COMMON, "data.num_workers=1"]
    assert_one_sentence_error(fermix_main(args, tmp_path), "broken.jpg")


def test_cross_dataset_evaluation_maps_labels_by_name(trained, tmp_path, fermix_main):
    other = write_image_folder(tmp_path / "other", classes=("Surprise", "happiness"), per_class=3, size=32)
    ckpt = trained / "checkpoints/best.ckpt"
    result = fermix_main(["test", f"ckpt={ckpt}", "dataset=imagefolder", f"dataset.root={other}",
                          "data.test_fraction=0.5"], tmp_path)
    assert result.returncode != 0  # data.* other than batch size / workers would change the pipeline
    result = fermix_main(["test", f"ckpt={ckpt}", "dataset=imagefolder", f"dataset.root={other}", "split=train"],
                         tmp_path)
    assert result.returncode == 0, result.stderr
    evals = sorted((trained / "eval").glob("train_*"))
    preds = pd.read_csv(evals[-1] / "predictions_train.csv")
    assert set(preds["label_name"]) == {"surprise", "happy"}  # the model's names, mapped from the folder's


def test_two_process_cpu_ddp_run_shares_one_run_directory(workdir):
    """Lightning's launcher re-runs the command line for rank 1; both ranks must land in one run dir."""
    args = ["train", "dataset.root=faces", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
            "trainer.max_epochs=1", *COMMON, "logger=csv", "paths.runs_dir=ddp_runs"]
    result = run_fermix(args, workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = (workdir / "ddp_runs/erm_imagefolder").iterdir()
    assert (run / "summary.json").is_file() and (run / "checkpoints/best.ckpt").is_file()
    assert sorted(p.name for p in run.glob("*.log")) == ["train.log"]  # rank 1 wrote no log of its own


def test_fermix_test_does_not_read_the_pretrained_file_again(workdir, tmp_path):
    from fermix.models.backbones import SmallCNN

    weights = tmp_path / "init.pt"
    torch.save(SmallCNN(width=8).state_dict(), weights)
    run = tmp_path / "run"
    train = run_fermix(
        ["train", "dataset.root=faces", "trainer.max_epochs=1", f"backbone.pretrained={weights}",
         f"hydra.run.dir={run}", *COMMON],
        workdir,
    )  # fmt: skip
    assert train.returncode == 0, train.stderr[-3000:]
    weights.unlink()  # the checkpoint holds the trained weights; the starting point is not needed any more
    ckpt = run / "checkpoints" / "best.ckpt"
    result = run_fermix(["test", f"ckpt={ckpt}", f"hydra.run.dir={tmp_path / 'eval'}"], workdir)
    assert result.returncode == 0, result.stderr[-3000:]
