"""In-process engine runs with toy methods: what the trainer guarantees to every method."""

import json

import pandas as pd
import pytest
import torch

from fermix.registry import METHODS, Entry
from tests.engine.runner import quick_overrides, run_train_in_process
from tests.helpers import write_image_folder


@pytest.fixture(autouse=True)
def toy_methods(monkeypatch):
    """Registered for these tests only, so registry-wide tests elsewhere never see them."""
    monkeypatch.setitem(METHODS._entries, "oracle", Entry("tests.engine.toy_methods:EpochOracle", "toy"))
    monkeypatch.setitem(METHODS._entries, "three_opt", Entry("tests.engine.toy_methods:ThreeOptimizers", "toy"))


@pytest.fixture(scope="module")
def split_folder(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("data") / "faces", per_class=4, size=32,
                              splits=("train", "val", "test"))


def test_best_checkpoint_is_selected_on_validation_never_on_test(split_folder, tmp_path):
    summary = run_train_in_process(
        quick_overrides(split_folder, "method=oracle", "trainer.max_epochs=3"), tmp_path / "run"
    )
    best = torch.load(tmp_path / "run/checkpoints/best.ckpt", weights_only=True)
    assert best["fermix"]["epoch"] == 1  # val is perfect only in epoch 1
    assert summary["metrics"]["val"]["acc"] == 1.0
    assert summary["metrics"]["test"]["acc"] == 0.0  # the test-perfect epoch 2 was not chosen
    last = torch.load(tmp_path / "run/checkpoints/last.ckpt", weights_only=True)
    assert last["fermix"]["epoch"] == 2  # last.ckpt is written every epoch regardless
    logged = pd.read_csv(tmp_path / "run/csv/metrics.csv").dropna(subset=["val/acc"])
    assert logged["val/acc"].tolist() == [0.0, 1.0, 0.0]


def test_manual_optimisation_steps_several_optimizers_with_schedulers_and_clipping(split_folder, tmp_path):
    overrides = quick_overrides(
        split_folder, "method=three_opt", "trainer.max_epochs=2", "sched=step", "sched.step_size=1",
        "sched.gamma=0.5", "trainer.gradient_clip_val=0.01", "optim.lr=0.01",
    )
    run_train_in_process(overrides, tmp_path / "run")
    ckpt = torch.load(tmp_path / "run/checkpoints/last.ckpt", weights_only=True)
    steps_per_epoch = 2  # 12 train images (3 classes × 4), batch 8
    assert ckpt["global_step"] == 2 * steps_per_epoch * 3  # Lightning counts every optimizer step
    assert len(ckpt["optimizer_states"]) == 3
    for state in ckpt["optimizer_states"]:
        assert all(int(s["step"]) == 2 * steps_per_epoch for s in state["state"].values())
        assert state["param_groups"][0]["lr"] == pytest.approx(0.01 * 0.5**2)  # stepped once per epoch
    assert len(ckpt["lr_schedulers"]) == 3


def test_gradient_clipping_reaches_manual_methods(split_folder, tmp_path, monkeypatch):
    from tests.engine import toy_methods

    seen = {}
    original = toy_methods.ThreeOptimizers.predict

    def spy(self, batch):
        seen["max"] = self.max_grad_norm_seen
        return original(self, batch)

    monkeypatch.setattr(toy_methods.ThreeOptimizers, "predict", spy)
    run_train_in_process(
        quick_overrides(split_folder, "method=three_opt", "trainer.max_epochs=1",
                        "trainer.gradient_clip_val=0.01"),
        tmp_path / "run",
    )
    assert 0 < seen["max"] <= 0.01 + 1e-6


def test_bf16_mixed_precision_trains_and_saves_on_cpu(split_folder, tmp_path):
    summary = run_train_in_process(
        quick_overrides(split_folder, "trainer.max_epochs=1", "trainer.precision=bf16-mixed"), tmp_path / "run"
    )
    assert summary["metrics"]["test"]["acc"] >= 0.0
    saved = json.loads((tmp_path / "run/summary.json").read_text())
    assert saved["global_step"] == 2


def test_several_learning_rate_groups(split_folder, tmp_path, monkeypatch):
    from fermix.methods.erm import ERM

    def groups(self):
        return [
            {"params": self.backbone.parameters(), "lr_scale": 0.1, "name": "backbone"},
            {"params": self.classifier.parameters(), "name": "head"},
        ]

    monkeypatch.setattr(ERM, "param_groups", groups)
    run_train_in_process(quick_overrides(split_folder, "trainer.max_epochs=1", "optim.lr=0.02"), tmp_path / "run")
    ckpt = torch.load(tmp_path / "run/checkpoints/last.ckpt", weights_only=True)
    lrs = {g["name"]: g["lr"] for g in ckpt["optimizer_states"][0]["param_groups"]}
    assert lrs == {"backbone": pytest.approx(0.002), "head": pytest.approx(0.02)}


def test_early_stopping_watches_the_validation_metric(split_folder, tmp_path):
    summary = run_train_in_process(
        quick_overrides(split_folder, "method=oracle", "trainer.max_epochs=6",
                        "early_stopping.patience=1"),
        tmp_path / "run",
    )
    assert summary["epochs_trained"] == 3  # val/acc 0, 1, 0 -> no improvement for 1 epoch -> stop
    assert summary["best_epoch"] == 1
