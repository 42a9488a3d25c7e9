"""Validation hooks a method may ask for: its own metrics on the epoch's predictions, and `val/loss`."""

from dataclasses import dataclass
from typing import ClassVar

import pandas as pd
import pytest

from fermix.methods.base import MethodConfig
from fermix.registry import METHODS, Entry
from tests.engine.runner import quick_overrides, run_train_in_process
from tests.engine.toy_methods import PixelLinear
from tests.helpers import write_image_folder


@dataclass
class OwnMetricsConfig(MethodConfig):
    pass


class OwnMetrics(PixelLinear):
    """A linear classifier that reports its own validation metric and its validation loss."""

    name = "own_metrics"
    Config = OwnMetricsConfig
    validation_uses_evaluation_metrics = True
    validation_loss = True
    seen: ClassVar[list[int]] = []

    def predict(self, batch):
        return {"logits": self.logits(batch)}  # no expr_logits: the engine's accuracy is off

    def evaluation_metrics(self, outputs, targets):
        OwnMetrics.seen.append(len(targets["expr"]))
        return {"own_acc": float((outputs["logits"].argmax(1) == targets["expr"]).float().mean())}


@pytest.fixture(autouse=True)
def own_metrics(monkeypatch):
    monkeypatch.setitem(METHODS._entries, "own_metrics", Entry("tests.engine.test_method_validation:OwnMetrics", "t"))


def test_validation_reports_the_methods_metric_and_loss_and_selects_on_it(tmp_path):
    folder = write_image_folder(tmp_path / "faces", per_class=4, size=32, splits=("train", "val", "test"))
    OwnMetrics.seen.clear()
    overrides = quick_overrides(folder, "method=own_metrics", "trainer.max_epochs=2",
                                "checkpoint.monitor=val/own_acc")  # fmt: skip
    summary = run_train_in_process(overrides, tmp_path / "run")
    logged = pd.read_csv(tmp_path / "run" / "csv" / "metrics.csv")
    assert logged["val/own_acc"].notna().sum() == 2 and logged["val/loss"].notna().sum() == 2
    assert OwnMetrics.seen[:2] == [summary["split_sizes"]["val"]] * 2  # every validation sample, once per epoch
    assert "own_acc" in summary["metrics"]["test"] and "acc" not in summary["metrics"]["test"]
