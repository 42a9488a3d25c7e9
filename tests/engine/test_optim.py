import io

import pytest
import torch

from fermix.engine.optim import build_optimizer, build_scheduler, lr_table
from fermix.errors import FermixError

pytestmark = pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")

# DMUE's config.py tables (spec §3.1): [until_epoch, lr] steps.
LR1 = [[6, 1e-4], [12, 5e-5], [20, 1e-5], [22, 1e-5], [25, 5e-5], [60, 1e-5]]
LR2 = [[4, 1e-3], [8, 5e-4], [14, 1e-4], [22, 1e-5], [25, 5e-5], [60, 1e-5]]
EXPECTED = {  # epoch: (lr1, lr2), read off the spec's table
    0: (1e-4, 1e-3), 4: (1e-4, 5e-4), 6: (5e-5, 5e-4), 8: (5e-5, 1e-4), 12: (1e-5, 1e-4),
    14: (1e-5, 1e-5), 20: (1e-5, 1e-5), 22: (5e-5, 5e-5), 25: (1e-5, 1e-5), 35: (1e-5, 1e-5),
}


def _optimizer(**group_extra):
    a, b, c = (torch.nn.Parameter(torch.zeros(1)) for _ in range(3))
    groups = [{"params": [a], "name": "base"}, {"params": [b], "name": "classifiers", "lr_scale": 10.0},
              {"params": [c], "name": "other", **group_extra}]
    return build_optimizer({"name": "adam", "lr": 1e-3}, groups)


def _lrs_by_epoch(sched, epochs):
    """What Lightning does with an epoch-interval scheduler: read the LR, train, step at epoch end."""
    out = []
    for _ in range(epochs):
        out.append([g["lr"] for g in sched.optimizer.param_groups])
        sched.step()
    return out


def test_dmue_step_tables_give_the_spec_lr_of_both_groups_at_every_checked_epoch():
    opt = _optimizer()
    cfg = build_scheduler({"name": "table", "groups": {"base": LR1, "classifiers": LR2}}, opt, max_epochs=36)
    assert cfg["interval"] == "epoch"
    lrs = _lrs_by_epoch(cfg["scheduler"], 36)
    for epoch, (lr1, lr2) in EXPECTED.items():
        assert lrs[epoch][0] == pytest.approx(lr1, rel=1e-12)
        assert lrs[epoch][1] == pytest.approx(lr2, rel=1e-12)
        assert lrs[epoch][2] == pytest.approx(1e-3)  # a group without a table keeps its LR


def test_a_plain_list_is_one_value_per_epoch_and_the_last_value_holds():
    opt = _optimizer()
    sched = build_scheduler({"name": "table", "groups": {"base": [0.3, 0.2, 0.1]}}, opt, 10)["scheduler"]
    assert [lr[0] for lr in _lrs_by_epoch(sched, 5)] == pytest.approx([0.3, 0.2, 0.1, 0.1, 0.1])


def test_scale_mode_multiplies_each_groups_configured_lr():
    opt = _optimizer()
    cfg = {"name": "table", "mode": "scale", "groups": {"base": [1.0, 0.5], "classifiers": [1.0, 0.5]}}
    lrs = _lrs_by_epoch(build_scheduler(cfg, opt, 10)["scheduler"], 2)
    assert lrs[0][:2] == pytest.approx([1e-3, 1e-2])
    assert lrs[1][:2] == pytest.approx([5e-4, 5e-3])


def test_scheduler_state_resumes_from_a_weights_only_checkpoint():
    opt = _optimizer()
    cfg = {"name": "table", "groups": {"base": LR1, "classifiers": LR2}}
    sched = build_scheduler(cfg, opt, 36)["scheduler"]
    _lrs_by_epoch(sched, 22)
    buffer = io.BytesIO()
    torch.save({"sched": sched.state_dict(), "opt": opt.state_dict()}, buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    opt2 = _optimizer()
    sched2 = build_scheduler(cfg, opt2, 36)["scheduler"]  # Lightning's order: build both, then restore both
    opt2.load_state_dict(state["opt"])
    sched2.load_state_dict(state["sched"])
    assert [g["lr"] for g in opt2.param_groups][:2] == pytest.approx(list(EXPECTED[22]))
    sched2.step()
    assert [g["lr"] for g in opt2.param_groups][:2] == pytest.approx([5e-5, 5e-5])


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"groups": {"head": [0.1]}}, "parameter group `head`, which the method does not have; its groups: base"),
        ({"groups": {}}, "needs sched.groups"),
        ({"groups": {"base": [[4, 0.1], [2, 0.2]]}}, "does not end after the previous one"),
        ({"groups": {"base": [0.1, [4, 0.2]]}}, "mixes values and steps"),
        ({"groups": {"base": [0.1]}, "mode": "times"}, "sched.mode must be lr or scale"),
    ],
)
def test_bad_tables_are_one_sentence_errors(cfg, message):
    with pytest.raises(FermixError, match=message):
        build_scheduler({"name": "table", **cfg}, _optimizer(), 10)


def test_step_tables_expand_to_per_epoch_values():
    assert lr_table([[2, 0.5], [3, 0.25]], "x") == [0.5, 0.5, 0.25]
