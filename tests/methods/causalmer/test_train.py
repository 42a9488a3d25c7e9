"""`fermix train experiment=causalmer_synthetic_mm` through the engine, then `fermix test` from the
checkpoint alone, with a missing-modality run (tiny sizes: one epoch, 64 training samples)."""

import pandas as pd
import pytest

from fermix.engine.checkpoint import load_checkpoint
from tests.engine.runner import compose_job, run_train_in_process

TINY = ["dataset=synthetic_mm", "dataset.train=64", "dataset.val=32", "dataset.test=32", "data.batch_size=16",
        "data.num_workers=0", "trainer.max_epochs=1", "trainer.accelerator=cpu", "trainer.num_sanity_val_steps=0",
        "logger=csv", "progress=none"]  # fmt: skip


@pytest.fixture(scope="module")
def causalmer_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("causalmer")
    return run, run_train_in_process(["experiment=causalmer_synthetic_mm", *TINY], run)


def test_causalmer_trains_with_its_recipe_and_reports_its_own_validation_metrics(causalmer_run):
    run, summary = causalmer_run
    cfg = summary["config"]
    assert cfg["trainer"]["gradient_clip_val"] == 0.8 and cfg["sched"]["monitor"] == "val/loss"
    logged = pd.read_csv(run / "csv" / "metrics.csv")
    assert logged["val/avg_acc"].notna().sum() == 1 and logged["val/loss"].notna().sum() == 1
    assert {"train/cls_epoch", "train/kl_epoch"} <= set(logged.columns)
    assert {"avg_acc", "te_avg_acc", "m_avg_acc", "acc_neutral"} <= set(summary["metrics"]["test"])
    state = load_checkpoint(run / "checkpoints" / "last.ckpt")["state_dict"]
    assert all(state[f"method.constants.constant_{k}"].item() != 0.0 for k in "tav")  # the KL moved them


def test_fermix_test_rebuilds_causalmer_from_the_checkpoint_and_removes_a_modality(causalmer_run, tmp_path):
    from fermix.engine.testing import run_test

    run, summary = causalmer_run
    tested = run_test(compose_job("test", [f"ckpt={run / 'checkpoints' / 'best.ckpt'}", "eval.remove=[v]"], tmp_path))
    assert tested["metrics"]["test"] == summary["metrics"]["test"]
    removed = tested["missing_modality"]["settings"]["v"]
    assert "avg_acc" in removed["metrics"] and "avg_acc" in removed["gap"]


def test_causalmer_around_the_fused_mlp_with_a_softmax_head_trains_and_tests_from_its_checkpoint(tmp_path):
    """The synthetic benchmark's configuration (method.fused=mlp, method.iemocap_head=softmax) end to end."""
    from fermix.engine.testing import run_test

    run = tmp_path / "run"
    summary = run_train_in_process(
        [
            "experiment=causalmer_synthetic_mm",
            "method.fusion=sum",
            "method.fused=mlp",
            "method.iemocap_head=softmax",
            *TINY,
        ],
        run,
    )
    state = load_checkpoint(run / "checkpoints" / "last.ckpt")["state_dict"]
    assert state["method.mult.out_layer.weight"].shape[0] == 4  # one logit per emotion
    assert not any(".crossmodal." in k for k in state)  # no MulT inside
    assert {"avg_acc", "top1_acc", "te_top1_acc", "m_top1_acc"} <= set(summary["metrics"]["test"])
    tested = run_test(compose_job("test", [f"ckpt={run / 'checkpoints' / 'best.ckpt'}"], tmp_path / "test"))
    assert tested["metrics"]["test"] == summary["metrics"]["test"]
