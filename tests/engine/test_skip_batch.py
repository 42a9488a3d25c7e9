"""A method's training_step may return {} to skip a batch: no backward, no optimizer step, counted."""

from dataclasses import dataclass

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fermix.methods.base import Method, MethodConfig
from fermix.registry import METHODS, Entry
from tests.engine.runner import quick_overrides, run_train_in_process
from tests.helpers import write_image_folder

pytestmark = pytest.mark.filterwarnings("ignore:`training_step` returned `None`")


@dataclass
class SkipConfig(MethodConfig):
    skip: str = "none"  # none | all | odd (batches whose first index is odd)


class Skipper(Method):
    """A linear classifier from zero weights that declines some batches."""

    name = "skipper"
    Config = SkipConfig

    def __init__(self, config, data_info, backbone) -> None:
        super().__init__(config, data_info, backbone)
        self.head = nn.Linear(3 * data_info.image_size**2, data_info.num_classes)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def training_step(self, batch):
        first = int(batch["index"][0])
        if self.config.skip == "all" or (self.config.skip == "odd" and first % 2):
            return {}
        return {"ce": F.cross_entropy(self.head(batch["image"].flatten(1)), batch["expr"])}

    def predict(self, batch):
        return {"expr_logits": self.head(batch["image"].flatten(1))}


@pytest.fixture(autouse=True)
def skipper(monkeypatch):
    monkeypatch.setitem(METHODS._entries, "skipper", Entry("tests.engine.test_skip_batch:Skipper", "toy"))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("data") / "faces", per_class=4, size=32,
                              splits=("train", "val", "test"))


def _train(folder, run_dir, skip, *extra):
    overrides = quick_overrides(folder, "method=skipper", f"method.skip={skip}", "trainer.max_epochs=2",
                                "optim.weight_decay=0.1", *extra)
    run_train_in_process(overrides, run_dir)
    ckpt = torch.load(run_dir / "checkpoints/last.ckpt", weights_only=True)
    logged = pd.read_csv(run_dir / "csv/metrics.csv").dropna(subset=["train/skipped"])
    return ckpt, logged["train/skipped"].tolist()


def test_a_method_that_skips_every_batch_leaves_weights_and_optimizer_state_untouched(folder, tmp_path):
    ckpt, skipped = _train(folder, tmp_path / "run", "all")
    weights = [v for k, v in ckpt["state_dict"].items() if k.startswith("method.head.")]
    assert all(torch.count_nonzero(w) == 0 for w in weights)  # Adam + weight decay would have moved them
    assert ckpt["optimizer_states"][0]["state"] == {}  # no Adam step, no moments
    assert skipped == [2.0, 2.0]  # 12 training images, batch 8: two batches per epoch, both skipped


def test_skipped_batches_are_counted_and_the_others_train(folder, tmp_path):
    ckpt, skipped = _train(folder, tmp_path / "run", "odd")
    steps = [int(s["step"]) for s in ckpt["optimizer_states"][0]["state"].values()]
    assert steps and len(set(steps)) == 1
    assert steps[0] == 4 - int(sum(skipped))  # Adam stepped exactly for the batches not skipped
    assert 0 < sum(skipped) < 4


def test_a_method_that_never_skips_logs_zero_skipped(folder, tmp_path):
    ckpt, skipped = _train(folder, tmp_path / "run", "none")
    assert skipped == [0.0, 0.0]
    assert all(int(s["step"]) == 4 for s in ckpt["optimizer_states"][0]["state"].values())
