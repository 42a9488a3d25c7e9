"""Optimizers and schedulers built from their `_target_` configs: DMUE's tables, every config file
of configs/optim and configs/sched, the user-facing keys (t_max null, interval, monitor), and the
one-sentence errors for a bad `_target_` or argument."""

import io
from pathlib import Path

import pytest
import torch

from fermix.engine.optim import build_optimizer, build_scheduler
from fermix.engine.schedulers import lr_table
from fermix.errors import FermixError
from tests.engine.runner import composed_group

pytestmark = pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")

# DMUE's config.py tables (spec §3.1): [until_epoch, lr] steps.

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
ADAM = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3}
TABLE = {"_target_": "fermix.engine.schedulers.table", "_partial_": True}
LR1 = [[6, 1e-4], [12, 5e-5], [20, 1e-5], [22, 1e-5], [25, 5e-5], [60, 1e-5]]
LR2 = [[4, 1e-3], [8, 5e-4], [14, 1e-4], [22, 1e-5], [25, 5e-5], [60, 1e-5]]
EXPECTED = {  # epoch: (lr1, lr2), read off the spec's table
    0: (1e-4, 1e-3),
    4: (1e-4, 5e-4),
    6: (5e-5, 5e-4),
    8: (5e-5, 1e-4),
    12: (1e-5, 1e-4),
    14: (1e-5, 1e-5),
    20: (1e-5, 1e-5),
    22: (5e-5, 5e-5),
    25: (1e-5, 1e-5),
    35: (1e-5, 1e-5),
}


def _optimizer(**group_extra):
    a, b, c = (torch.nn.Parameter(torch.zeros(1)) for _ in range(3))
    groups = [
        {"params": [a], "name": "base"},
        {"params": [b], "name": "classifiers", "lr_scale": 10.0},
        {"params": [c], "name": "other", **group_extra},
    ]
    return build_optimizer(ADAM, groups)


def _lrs_by_epoch(sched, epochs):
    """What Lightning does with an epoch-interval scheduler: read the LR, train, step at epoch end."""
    out = []
    for _ in range(epochs):
        out.append([g["lr"] for g in sched.optimizer.param_groups])
        sched.step()
    return out


def test_dmue_step_tables_give_the_spec_lr_of_both_groups_at_every_checked_epoch():
    opt = _optimizer()
    cfg = build_scheduler({**TABLE, "groups": {"base": LR1, "classifiers": LR2}}, opt, max_epochs=36)
    assert cfg["interval"] == "epoch"
    lrs = _lrs_by_epoch(cfg["scheduler"], 36)
    for epoch, (lr1, lr2) in EXPECTED.items():
        assert lrs[epoch][0] == pytest.approx(lr1, rel=1e-12)
        assert lrs[epoch][1] == pytest.approx(lr2, rel=1e-12)
        assert lrs[epoch][2] == pytest.approx(1e-3)  # a group without a table keeps its LR


def test_a_plain_list_is_one_value_per_epoch_and_the_last_value_holds():
    opt = _optimizer()
    sched = build_scheduler({**TABLE, "groups": {"base": [0.3, 0.2, 0.1]}}, opt, 10)["scheduler"]
    assert [lr[0] for lr in _lrs_by_epoch(sched, 5)] == pytest.approx([0.3, 0.2, 0.1, 0.1, 0.1])


def test_scale_mode_multiplies_each_groups_configured_lr():
    opt = _optimizer()
    cfg = {**TABLE, "mode": "scale", "groups": {"base": [1.0, 0.5], "classifiers": [1.0, 0.5]}}
    lrs = _lrs_by_epoch(build_scheduler(cfg, opt, 10)["scheduler"], 2)
    assert lrs[0][:2] == pytest.approx([1e-3, 1e-2])
    assert lrs[1][:2] == pytest.approx([5e-4, 5e-3])


def test_scheduler_state_resumes_from_a_weights_only_checkpoint():
    opt = _optimizer()
    cfg = {**TABLE, "groups": {"base": LR1, "classifiers": LR2}}
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
        build_scheduler({**TABLE, **cfg}, _optimizer(), 10)


def test_step_tables_expand_to_per_epoch_values():
    assert lr_table([[2, 0.5], [3, 0.25]], "x") == [0.5, 0.5, 0.25]


# --- every config file, and the user-facing keys --------------------------------------------------
def _config(group: str, name: str) -> dict:
    return composed_group(group, name)


OPTIMS = sorted(p.stem for p in (CONFIGS / "optim").glob("*.yaml"))
SCHEDS = sorted(p.stem for p in (CONFIGS / "sched").glob("*.yaml"))
OPTIM_CLASSES = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


@pytest.mark.parametrize("name", OPTIMS)
def test_every_optim_config_builds_its_torch_optimizer_over_the_groups(name):
    cfg = _config("optim", name)
    opt = build_optimizer(
        cfg,
        [
            {"params": [torch.nn.Parameter(torch.zeros(2))], "name": "all"},
            {"params": [torch.nn.Parameter(torch.zeros(1))], "name": "head", "lr_scale": 10.0},
        ],
    )
    assert type(opt) is OPTIM_CLASSES[name]
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([cfg["lr"], 10 * cfg["lr"]])
    assert opt.defaults["weight_decay"] == cfg["weight_decay"]


def test_yaml_lists_reach_the_optimizer_as_tuples_as_torch_stores_them():
    opt = build_optimizer({**ADAM, "betas": [0.5, 0.999]}, [{"params": [torch.nn.Parameter(torch.zeros(1))]}])
    assert opt.defaults["betas"] == (0.5, 0.999) and opt.param_groups[0]["betas"] == (0.5, 0.999)


SCHED_CLASSES = {
    "cosine": torch.optim.lr_scheduler.CosineAnnealingLR,
    "multistep": torch.optim.lr_scheduler.MultiStepLR,
    "plateau": torch.optim.lr_scheduler.ReduceLROnPlateau,
    "step": torch.optim.lr_scheduler.StepLR,
    "warmup_linear": torch.optim.lr_scheduler.LambdaLR,
    "table": torch.optim.lr_scheduler.LRScheduler,
}


@pytest.mark.parametrize("name", SCHEDS)
def test_every_sched_config_builds_its_scheduler(name):
    cfg = _config("sched", name)
    if name == "table":
        cfg["groups"] = {"base": [0.1]}
    built = build_scheduler(cfg, _optimizer(), max_epochs=12)
    if name == "none":
        assert built is None
        return
    assert isinstance(built["scheduler"], SCHED_CLASSES[name])
    assert built["interval"] == cfg.get("interval", "epoch")
    assert built.get("monitor") == cfg.get("monitor")  # plateau: val/acc


def test_cosine_t_max_null_is_the_trainers_max_epochs_and_a_number_is_kept():
    cfg = _config("sched", "cosine")
    assert cfg["t_max"] is None
    assert build_scheduler(cfg, _optimizer(), max_epochs=12)["scheduler"].T_max == 12
    assert build_scheduler({**cfg, "t_max": 5}, _optimizer(), max_epochs=12)["scheduler"].T_max == 5
    assert build_scheduler({**cfg, "interval": "step"}, _optimizer(), 12)["interval"] == "step"


def test_warmup_linear_steps_through_warm_up_hold_and_decay():
    cfg = {**_config("sched", "warmup_linear"), "warmup_epochs": 2, "hold_epochs": 1, "decay_epochs": 3}
    opt = build_optimizer(ADAM, [{"params": [torch.nn.Parameter(torch.zeros(1))]}])
    lrs = [lr[0] / 1e-3 for lr in _lrs_by_epoch(build_scheduler(cfg, opt, 6)["scheduler"], 7)]
    assert lrs == pytest.approx([0.5, 1.0, 1.0, 0.75, 0.5, 0.25, 0.25])


@pytest.mark.parametrize(
    ("optim", "sched", "message"),
    [
        (
            {**ADAM, "_target_": "torch.optim.Adamm"},
            None,
            "optim._target_ `torch.optim.Adamm` cannot be imported (did you mean `torch.optim.Adam`?)",
        ),
        (
            {**ADAM, "bettas": [0.5, 0.9]},
            None,
            "optim: `torch.optim.Adam` takes no argument `bettas`; it takes: params, lr",
        ),
        ({**ADAM, "lr": -1.0}, None, "optim: `torch.optim.Adam` refused its arguments: Invalid learning rate: -1.0"),
        ({"name": "sgd", "lr": 0.1}, None, "optim.name no longer selects the optimizer: choose optim=sgd"),
        ({**ADAM, "_target_": "torch.nn.Identity"}, None, "is not a torch optimizer"),
        ({"lr": 0.1}, None, "optim has no `_target_`"),
        (
            ADAM,
            {"_target_": "torch.optim.lr_scheduler.StepLR"},
            "sched: `torch.optim.lr_scheduler.StepLR` needs `step_size`",
        ),
        (
            ADAM,
            {"_target_": "nowhere.Sched"},
            "sched._target_ `nowhere.Sched` cannot be imported (no module `nowhere`)",
        ),
        (ADAM, {"name": "cosine", "t_max": None}, "sched.name no longer selects the scheduler: choose sched=cosine"),
    ],
)
def test_a_bad_target_or_argument_is_one_sentence_naming_the_key(optim, sched, message):
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))]}]
    with pytest.raises(FermixError) as info:
        opt = build_optimizer(optim, groups)
        build_scheduler(sched, opt, 3)
    assert message in str(info.value) and "\n" not in str(info.value)
