"""IERN through the engine: `fermix train` / `fermix test` on synthetic_bias, and exact resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fermix.engine.checkpoint import load_checkpoint
from tests.engine.runner import compose_job, run_train_in_process


def _tiny(data_dir: Path, *extra: str) -> list[str]:
    return [
        "experiment=iern_synthetic_bias",
        "dataset.train_per_cell=4",
        "dataset.val_per_cell=1",
        "dataset.test_per_cell=2",
        f"paths.data_dir={data_dir}",
        "backbone.width=8",
        "method.channels=8",
        "data.image_size=32",
        "data.resize=36",
        "data.batch_size=8",
        "data.num_workers=0",
        "sched.warmup_epochs=1",
        "sched.hold_epochs=0",
        "sched.decay_epochs=2",
        "trainer.accelerator=cpu",
        "trainer.num_sanity_val_steps=0",
        "logger=none",
        "progress=none",
        *extra,
    ]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def straight(data_dir, tmp_path_factory) -> tuple[Path, dict]:
    """Two epochs without interruption."""
    run = tmp_path_factory.mktemp("straight")
    return run, run_train_in_process(_tiny(data_dir, "trainer.max_epochs=2"), run)


def test_train_then_test_on_synthetic_bias_gives_the_same_test_metrics(straight, tmp_path):
    run, summary = straight
    ckpt = load_checkpoint(run / "checkpoints" / "last.ckpt")
    state = ckpt["state_dict"]
    assert torch.equal(state["method.dictionary"], state["method.centers"].view_as(state["method.dictionary"]))
    assert len(ckpt["optimizer_states"]) == 3 and len(ckpt["lr_schedulers"]) == 3
    assert ckpt["fermix"]["config"]["optim"]["betas"] == [0.5, 0.999]

    from fermix.engine.testing import run_test

    tested = run_test(compose_job("test", [f"ckpt={run / 'checkpoints' / 'best.ckpt'}"], tmp_path / "test"))
    assert tested["metrics"]["test"] == summary["metrics"]["test"]


def test_resume_restores_centers_dictionary_and_all_three_optimizers(data_dir, straight, tmp_path):
    resumed = tmp_path / "resumed"
    run_train_in_process(_tiny(data_dir, "trainer.max_epochs=1"), resumed)
    run_train_in_process(_tiny(data_dir, "trainer.max_epochs=2", "resume=auto"), resumed)
    a = load_checkpoint(straight[0] / "checkpoints" / "last.ckpt")
    b = load_checkpoint(resumed / "checkpoints" / "last.ckpt")
    assert a["global_step"] == b["global_step"] > 0
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    for opt_a, opt_b in zip(a["optimizer_states"], b["optimizer_states"], strict=True):
        assert opt_a["state"].keys() == opt_b["state"].keys()
        for sa, sb in zip(opt_a["state"].values(), opt_b["state"].values(), strict=True):
            assert torch.equal(sa["exp_avg"], sb["exp_avg"]) and torch.equal(sa["exp_avg_sq"], sb["exp_avg_sq"])
        assert [g["lr"] for g in opt_a["param_groups"]] == [g["lr"] for g in opt_b["param_groups"]]
    assert a["lr_schedulers"] == b["lr_schedulers"]
