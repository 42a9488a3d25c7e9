"""`fermix train method=mult dataset=synthetic_mm`: the baseline through the engine with its CPU recipe."""

import torch

from tests.engine.runner import run_train_in_process
from tests.methods.causalmer.test_train import TINY


def test_the_plain_mult_baseline_trains_on_the_same_data(tmp_path):
    summary = run_train_in_process(["method=mult", *TINY], tmp_path)
    assert summary["config"]["method"]["mult"]["nlevels"] == 1  # the synthetic_mm CPU recipe
    assert 0.0 <= summary["metrics"]["test"]["avg_acc"] <= 1.0
    assert torch.isfinite(torch.tensor(list(summary["checkpoint_val_metrics"].values()))).all()
