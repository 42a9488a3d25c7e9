"""Checkpoint callbacks: a run folder that was moved or copied resumes as if it had never moved."""

import shutil

import torch

from fermix.engine.callbacks import LastCheckpoint, RunCheckpoint
from tests.engine.runner import quick_overrides, run_train_in_process
from tests.helpers import write_image_folder


def test_a_moved_run_restores_best_score_and_paths_inside_the_new_folder(tmp_path):
    root = write_image_folder(tmp_path / "faces", per_class=6, size=32)
    old, new = tmp_path / "old", tmp_path / "new"
    run_train_in_process(quick_overrides(root, "trainer.max_epochs=1"), old)
    shutil.copytree(old, new)
    shutil.rmtree(old)
    states = torch.load(new / "checkpoints/last.ckpt", weights_only=True)["callbacks"]
    (best_state,) = [v for k, v in states.items() if k.startswith("ModelCheckpoint")]
    assert best_state["best_model_score"] is not None

    best = RunCheckpoint(dirpath=new / "checkpoints", filename="best", monitor="val/acc", mode="max")
    best.load_state_dict(best_state)
    assert best.best_model_path == str(new / "checkpoints/best.ckpt")
    assert torch.equal(best.best_model_score, best_state["best_model_score"])  # selection continues, not restarts
    assert set(best.best_k_models) == {str(new / "checkpoints/best.ckpt")}

    last = LastCheckpoint(new / "checkpoints")
    last.load_state_dict(states["LastCheckpoint"])
    assert last.last_model_path in ("", str(new / "checkpoints/last.ckpt"))
    assert str(old) not in last.best_model_path


def test_resuming_a_moved_run_evaluates_the_new_folders_checkpoint(tmp_path):
    root = write_image_folder(tmp_path / "faces", per_class=6, size=32)
    old, new = tmp_path / "old", tmp_path / "new"
    run_train_in_process(quick_overrides(root, "trainer.max_epochs=1"), old)
    (old / "summary.json").unlink()  # as if killed before the end
    shutil.copytree(old, new)
    shutil.rmtree(old)
    summary = run_train_in_process(quick_overrides(root, "trainer.max_epochs=2", "resume=auto"), new)
    assert summary["best_checkpoint"].startswith(str(new))
    assert summary["epochs_trained"] == 2
