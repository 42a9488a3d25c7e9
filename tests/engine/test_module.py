"""FermixModule stops a fit at the first non-finite loss term, naming epoch, step and term."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fermix.engine.checkpoint import load_checkpoint
from fermix.errors import FermixError
from fermix.methods.base import Method, MethodConfig
from fermix.registry import METHODS, Entry
from tests.engine.runner import quick_overrides, run_train_in_process
from tests.helpers import write_image_folder

LIVE: list[Method] = []  # the toy instances of the current test, to look at their weights afterwards


@dataclass
class PoisonConfig(MethodConfig):
    poison_at: int = -1  # the training call (0, 1, ...) whose `aux` term is spoiled
    kind: str = "nan"  # nan | inf | overflow (two finite terms whose sum is inf)
    manual: bool = False


class Poisoned(Method):
    """A linear classifier whose loss turns non-finite at one chosen call."""

    name = "poisoned"
    Config = PoisonConfig

    def __init__(self, config, data_info, backbone) -> None:
        super().__init__(config, data_info, backbone)
        self.head = nn.Linear(3 * data_info.image_size**2, data_info.num_classes)
        self.calls = 0
        self.weights_when_poisoned: torch.Tensor | None = None
        LIVE.append(self)

    def _terms(self, batch):
        ce = F.cross_entropy(self.head(batch["image"].flatten(1)), batch["expr"])
        aux = 0.0 * ce
        if self.calls == self.config.poison_at:
            self.weights_when_poisoned = self.head.weight.detach().clone()
            aux = {"nan": ce * float("nan"), "inf": ce + float("inf"), "overflow": ce * 0 + 3e38}[self.config.kind]
            if self.config.kind == "overflow":
                return {"ce": ce * 0 + 3e38, "aux": aux}
        self.calls += 1
        return {"ce": ce, "aux": aux}

    def training_step(self, batch):
        return self._terms(batch)

    def manual_step(self, batch, opt):
        terms = self._terms(batch)
        opt.zero_grad(0)
        opt.backward(terms["ce"])
        opt.step(0)
        return {k: v.detach() for k, v in terms.items()}

    def predict(self, batch):
        return {"expr_logits": self.head(batch["image"].flatten(1))}


class ManualPoisoned(Poisoned):
    automatic_optimization = False


@pytest.fixture(autouse=True)
def toys(monkeypatch):
    LIVE.clear()
    monkeypatch.setitem(METHODS._entries, "poisoned", Entry("tests.engine.test_module:Poisoned", "toy"))
    monkeypatch.setitem(METHODS._entries, "manual_poisoned", Entry("tests.engine.test_module:ManualPoisoned", "toy"))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    # 12 training images, batch 8: two steps per epoch
    return write_image_folder(tmp_path_factory.mktemp("data") / "faces", per_class=4, size=32,
                              splits=("train", "val", "test"))


def _train(folder, run_dir, name, poison_at, kind="nan"):
    overrides = quick_overrides(folder, f"method={name}", f"method.poison_at={poison_at}",
                                f"method.kind='{kind}'", "trainer.max_epochs=2")
    with pytest.raises(FermixError) as info:
        run_train_in_process(overrides, run_dir)
    return str(info.value)


@pytest.mark.parametrize(
    ("kind", "named"),
    [("nan", "term `aux` is nan"), ("inf", "term `aux` is inf"), ("overflow", "the total is inf")],
)
def test_a_non_finite_term_stops_before_the_optimizer_steps(folder, tmp_path, kind, named):
    message = _train(folder, tmp_path / "run", "poisoned", poison_at=1, kind=kind)
    assert message.startswith(f"non-finite loss at epoch 0 step 1 (batch 1 of the epoch): {named} (")
    assert "`ce`" not in message.split("(")[1]  # only the offending term is named
    (method,) = LIVE
    assert torch.equal(method.head.weight, method.weights_when_poisoned)  # the poisoned batch did not step
    assert torch.isfinite(method.head.weight).all()


def test_the_checkpoint_of_the_finished_epoch_survives_a_later_nan(folder, tmp_path):
    message = _train(folder, tmp_path / "run", "poisoned", poison_at=2)
    assert message.startswith("non-finite loss at epoch 1 step 2 (batch 0 of the epoch): term `aux` is nan")
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert ckpt["fermix"]["epoch"] == 0 and ckpt["global_step"] == 2
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())


def test_a_manual_method_is_stopped_at_the_step_that_reported_it(folder, tmp_path):
    message = _train(folder, tmp_path / "run", "manual_poisoned", poison_at=1)
    assert message.startswith("non-finite loss at epoch 0 step ")
    assert "(batch 1 of the epoch): term `aux` is nan" in message
    (method,) = LIVE
    assert method.calls == 2  # calls 0 and 1 (the poisoned one), none after it
