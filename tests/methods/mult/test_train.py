"""`fermix train experiment=mult_synthetic_mm`: the baseline through the engine with its CPU recipe, and the
best-validation-loss checkpoint it keeps next to the best-avg-acc one (as the original does)."""

import pandas as pd
import torch

from fermix.engine.checkpoint import load_checkpoint
from fermix.methods.base import ExtraCheckpoint
from fermix.registry import METHODS
from tests.engine.runner import run_train_in_process
from tests.methods.causalmer.test_train import TINY


def test_the_plain_mult_baseline_trains_on_the_same_data(tmp_path):
    summary = run_train_in_process(["experiment=mult_synthetic_mm", *TINY], tmp_path)
    assert summary["config"]["method"]["mult"]["nlevels"] == 1  # the synthetic_mm CPU recipe
    assert 0.0 <= summary["metrics"]["test"]["avg_acc"] <= 1.0
    assert torch.isfinite(torch.tensor(list(summary["checkpoint_val_metrics"].values()))).all()


def test_best_loss_and_best_avg_acc_checkpoints_each_hold_their_own_best_epoch(tmp_path):
    # a learning rate high enough that val/loss and val/avg_acc do not improve in step over four epochs
    overrides = ["experiment=mult_synthetic_mm", *TINY, "trainer.max_epochs=4", "optim.lr=0.02", "seed=3"]
    run_train_in_process(overrides, tmp_path)
    logged = pd.read_csv(tmp_path / "csv" / "metrics.csv")
    val = logged.dropna(subset=["val/loss"]).groupby("epoch")[["val/loss", "val/avg_acc"]].last()
    assert len(val) == 4
    ckpts = tmp_path / "checkpoints"
    best, best_loss = load_checkpoint(ckpts / "best.ckpt"), load_checkpoint(ckpts / "best_loss.ckpt")
    # Lightning's `epoch` in a checkpoint is the epoch it was saved at (0-based), as the CSV's.
    assert best["epoch"] == val["val/avg_acc"].idxmax()  # first best on ties, as ModelCheckpoint keeps it
    assert best_loss["epoch"] == val["val/loss"].idxmin()
    assert (ckpts / "last.ckpt").is_file()


def test_causalmer_and_mult_declare_the_best_loss_checkpoint():
    for name in ("causalmer", "mult"):
        assert METHODS.get(name).extra_checkpoints == (ExtraCheckpoint("best_loss", "val/loss", "min"),)


def test_best_loss_checkpoint_coexists_with_best_ckpt_watching_the_same_metric(tmp_path):
    import lightning.pytorch as pl

    from fermix.engine.callbacks import ExtraCheckpoint as ExtraCheckpointCallback
    from fermix.engine.callbacks import build_callbacks

    cfg = {"method": {"name": "causalmer"}, "checkpoint": {"monitor": "val/loss", "mode": "min"}, "progress": "none"}
    callbacks = build_callbacks(cfg, tmp_path, has_logger=False)
    extra = [c for c in callbacks if isinstance(c, ExtraCheckpointCallback)]
    assert [(c.filename, c.monitor, c.mode) for c in extra] == [("best_loss", "val/loss", "min")]
    pl.Trainer(callbacks=callbacks, logger=False, accelerator="cpu")  # distinct state keys: no duplicate error
    no_validation = {**cfg, "checkpoint": {"monitor": None}}
    assert not any(isinstance(c, ExtraCheckpointCallback) for c in build_callbacks(no_validation, tmp_path, False))


def test_a_validation_twin_gives_a_second_selection_from_one_training(tmp_path):
    # synthetic_mm's val_twin appends the validation samples with a random shortcut; mult reports them as twin_*
    # and checkpoint.extra keeps best_twin.ckpt on them, next to best.ckpt on the copy that is as in training
    extra = "checkpoint.extra=[{name:best_twin,monitor:val/twin_avg_acc,mode:max}]"
    summary = run_train_in_process(
        ["method=mult", *TINY, "trainer.max_epochs=2", "dataset.val_twin=random", extra], tmp_path
    )
    assert {"avg_acc", "top1_acc", "twin_avg_acc", "twin_top1_acc"} <= set(summary["checkpoint_val_metrics"])
    assert summary["split_sizes"]["val"] == 64  # 32 samples and their twins
    logged = pd.read_csv(tmp_path / "csv" / "metrics.csv")
    val = logged.dropna(subset=["val/twin_avg_acc"]).groupby("epoch")["val/twin_avg_acc"].last()
    best_twin = load_checkpoint(tmp_path / "checkpoints" / "best_twin.ckpt")
    assert best_twin["epoch"] == val.idxmax()
