"""The paper recipes (configs/experiment/dmue_*.yaml) compose and say what spec §3 says."""

import pytest
import torch
from torchvision.transforms import v2

from fermix.data.transforms import build_transform
from fermix.engine.build import plain
from fermix.engine.optim import build_optimizer, build_scheduler
from tests.engine.runner import compose_job
from tests.engine.test_optim import EXPECTED as LR  # epoch: (base, classifiers), spec §3.1
from tests.methods.dmue.conftest import build


@pytest.fixture(scope="module", params=[("affectnet", 6, 8), ("rafdb", 10, None)])
def recipe(request, tmp_path_factory):
    dataset, alpha, classes = request.param
    cfg = compose_job("train", [f"experiment=dmue_{dataset}"], tmp_path_factory.mktemp("c"))
    return plain(cfg), alpha, classes


def test_recipe_loop_settings(recipe):
    cfg, alpha, classes = recipe
    assert cfg["data"]["batch_size"] == 72 and cfg["trainer"]["max_epochs"] == 36
    assert (cfg["data"]["image_size"], cfg["data"]["resize"]) == (224, 256)
    assert cfg["data"]["mean"] == [0.5] * 3 and cfg["data"]["std"] == [0.5] * 3
    assert cfg["method"]["ramp_alpha"] == alpha and cfg["method"]["sp_weight"] == 1000
    assert cfg["optim"]["_target_"] == "torch.optim.Adam" and cfg["optim"]["weight_decay"] == 1e-4
    if classes:
        assert cfg["dataset"]["classes"] == classes


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step")
def test_recipe_lr_tables_give_the_spec_lr_of_dmues_two_groups(recipe):
    cfg, _, _ = recipe
    model = build()
    opt = build_optimizer(cfg["optim"], model.param_groups())
    sched = build_scheduler(cfg["sched"], opt, cfg["trainer"]["max_epochs"])["scheduler"]
    seen = {}
    for epoch in range(36):
        seen[epoch] = tuple(g["lr"] for g in opt.param_groups)
        sched.step()
    for epoch, expected in LR.items():
        assert seen[epoch] == pytest.approx(expected, rel=1e-12)
    assert [g["name"] for g in opt.param_groups] == ["base", "classifiers"]
    assert opt.defaults["betas"] == (0.9, 0.999)


def test_recipe_augmentation_is_spec_3_2_in_order(recipe):
    cfg, _, _ = recipe
    ops = list(build_transform(cfg["data"], train=True).transforms)
    names = [type(t).__name__ for t in ops]
    noise = ops[2]
    assert isinstance(noise, v2.RandomApply) and noise.p == 0.25
    assert type(noise.transforms[0]).__name__ == "PixelNoise"
    assert noise.transforms[0].std == pytest.approx(30**0.5, rel=1e-3)  # variance 30
    assert isinstance(ops[3], v2.RandomCrop) and ops[3].size == (224, 224)
    assert isinstance(ops[4], v2.RandomHorizontalFlip) and ops[4].p == 0.5
    assert isinstance(ops[6], v2.Normalize) and list(ops[6].mean) == [0.5] * 3
    erasing = ops[7]
    assert "Erasing" in names[7] and erasing.p == 0.5
    assert erasing.scale == (0.02, 0.25) and erasing.ratio == (0.3, 3.3)
    image = torch.randint(0, 256, (3, 256, 256), dtype=torch.uint8)
    assert build_transform(cfg["data"], train=True)(image).shape == (3, 224, 224)
    evaluation = [type(t).__name__ for t in build_transform(cfg["data"], train=False).transforms]
    assert evaluation == ["ToImage", "Resize", "CenterCrop", "ToDtype", "Normalize"]


def test_the_cpu_recipe_on_synthetic_faces(tmp_path):
    cfg = plain(compose_job("train", ["experiment=dmue_synthetic_noisy"], tmp_path))
    assert cfg["backbone"]["name"] == "small_cnn" and cfg["data"]["batch_size"] == 72
    assert cfg["method"]["ramp_alpha"] == 2 and cfg["optim"]["lr"] == 1e-3 and cfg["method"]["sp_weight"] == 10
    assert cfg["method"]["classifier_lr_scale"] == 10  # heads at 1e-2 (spec §7.2)


@pytest.mark.parametrize("experiment", ["dmue_affectnet", "dmue_rafdb", "dmue_rafdb_r50ibn"])
def test_paper_experiments_train_what_the_released_code_trains(experiment, tmp_path):
    """The released code's Adam groups are `base` and `classifiers` only: its uncertainty MLP and
    BN-neck scale are never stepped, and its SP Gram is built from the auxiliary logits."""
    cfg = plain(compose_job("train", [f"experiment={experiment}"], tmp_path))
    options = {key: cfg["method"][key] for key in ("train_ue_head", "train_bnneck_weight", "sp_gram")}
    assert options == {"train_ue_head": False, "train_bnneck_weight": False, "sp_gram": "logits"}
    model = build(**options)
    trained = {id(p) for g in model.param_groups() for p in g["params"]}
    assert trained == {id(p) for p in [*model.trunk.parameters(), *model.branches.parameters()]} | {
        id(p) for p in model.classifiers.parameters()
    }


def test_the_papers_learnt_mlp_is_a_named_option_on_the_paper_experiments(tmp_path):
    overrides = ["experiment=dmue_rafdb", "method.train_ue_head=true", "method.train_bnneck_weight=true"]
    cfg = plain(compose_job("train", overrides, tmp_path))
    model = build(
        train_ue_head=cfg["method"]["train_ue_head"], train_bnneck_weight=cfg["method"]["train_bnneck_weight"]
    )
    classifiers = {id(p) for p in {g["name"]: g for g in model.param_groups()}["classifiers"]["params"]}
    assert {id(p) for p in model.ue.parameters()} | {id(model.neck.weight)} <= classifiers


def test_the_cpu_recipe_trains_the_mlp_as_its_benchmark_rows_did(tmp_path):
    cfg = plain(compose_job("train", ["experiment=dmue_synthetic_noisy"], tmp_path))
    assert cfg["method"]["train_ue_head"] and cfg["method"]["train_bnneck_weight"]  # docs/results/dmue.md `dmue`
