"""Checkpoint callbacks: a run folder that was moved or copied resumes as if it had never moved; the
run's own callbacks are built from `callbacks.<name>._target_`."""

import re
import shutil

import pytest
import torch
from lightning.pytorch.callbacks import Timer
from omegaconf import OmegaConf

from fermix.engine.callbacks import LastCheckpoint, RunCheckpoint, build_callbacks
from fermix.errors import FermixError
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


def test_the_runs_own_callbacks_are_built_by_target_after_the_engines(tmp_path):
    timer = {"_target_": "lightning.pytorch.callbacks.Timer", "duration": "00:00:05:00"}
    cfg = OmegaConf.create({"checkpoint": {"monitor": "val/acc"}, "progress": "none", "callbacks": {"timer": timer}})
    callbacks = build_callbacks(cfg, tmp_path, has_logger=False)
    assert isinstance(callbacks[-1], Timer) and callbacks[-1]._duration == 300
    assert isinstance(callbacks[0], RunCheckpoint)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"_target_": "lightning.pytorch.callbacks.Timerr"}, "callbacks.extra._target_ `lightning.pytorch.callbacks"),
        ({"_target_": "lightning.pytorch.callbacks.Timer", "minutes": 5}, "callbacks.extra: `lightning.pytorch"),
        ({"_target_": "collections.OrderedDict"}, "is not a Lightning callback"),
    ],
)
def test_a_bad_callback_is_one_sentence_naming_it(tmp_path, entry, message):
    cfg = OmegaConf.create({"checkpoint": {"monitor": "val/acc"}, "progress": "none", "callbacks": {"extra": entry}})
    with pytest.raises(FermixError, match=re.escape(message)):
        build_callbacks(cfg, tmp_path, has_logger=False)
