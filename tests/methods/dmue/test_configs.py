"""The paper runs as experiments (configs/experiment/dmue_*.yaml): each composes with its backbone, its stem
and the paper recipe, and the ResNet-18 ones build the authors' network."""

import pytest
import torch

from fermix.data.info import DataInfo
from fermix.data.label_spaces import LabelSpace
from fermix.engine.build import build_method, plain
from tests.engine.runner import compose_job

RUNS = {  # experiment: (dataset, backbone, stem, classes, ramp alpha)
    "dmue_rafdb": ("rafdb", "resnet18", "msceleb", None, 10),
    "dmue_affectnet": ("affectnet", "resnet18", "msceleb", 8, 6),
    "dmue_rafdb_r50ibn": ("rafdb", "resnet50_ibn", "torchvision", None, 10),
}


@pytest.fixture(scope="module", params=sorted(RUNS))
def composed(request, tmp_path_factory):
    cfg = compose_job("train", [f"experiment={request.param}"], tmp_path_factory.mktemp("c"))
    return request.param, plain(cfg)


def test_experiment_selects_method_dataset_backbone_and_stem(composed):
    name, cfg = composed
    dataset, backbone, stem, classes, _ = RUNS[name]
    assert (cfg["method"]["name"], cfg["dataset"]["name"], cfg["backbone"]["name"]) == ("dmue", dataset, backbone)
    assert cfg["method"]["stem"] == stem
    assert cfg["method"]["pretrained"] is None  # the authors' MS-Celeb weights are a user-supplied PATH
    assert cfg["backbone"]["pretrained"] is None
    assert cfg["method"]["bnneck"] is None  # the authors' choice: on for ResNet-18, off for ResNet-50-IBN
    if classes:
        assert cfg["dataset"]["classes"] == classes
    assert cfg["trainer"]["accelerator"] == "gpu" and cfg["trainer"]["precision"] == "16-mixed"


def test_experiment_carries_the_paper_recipe(composed):
    name, cfg = composed
    assert cfg["method"]["ramp_alpha"] == RUNS[name][4] and cfg["method"]["sp_weight"] == 1000
    assert cfg["data"]["batch_size"] == 72 and cfg["trainer"]["max_epochs"] == 36
    assert (cfg["data"]["image_size"], cfg["data"]["resize"]) == (224, 256)
    assert cfg["optim"]["_target_"] == "torch.optim.Adam" and cfg["optim"]["weight_decay"] == 1e-4
    assert cfg["sched"]["_target_"] == "fermix.engine.schedulers.table"
    assert set(cfg["sched"]["groups"]) == {"base", "classifiers"}


@pytest.mark.parametrize("name", ["dmue_rafdb", "dmue_affectnet"])
def test_resnet18_experiments_build_the_authors_stem(name, tmp_path):
    cfg = plain(compose_job("train", [f"experiment={name}"], tmp_path))
    classes = cfg["dataset"].get("classes", 7)
    space = LabelSpace(f"toy{classes}", tuple(f"c{i}" for i in range(classes)))
    info = DataInfo(label_space=space, keys=frozenset({"image", "expr"}), image_size=224)
    method = build_method(cfg["method"], cfg["backbone"], info)
    stem = method.trunk[0]
    assert isinstance(stem[2], torch.nn.Identity) and stem[3].kernel_size == 2  # no ReLU, 2×2 max-pool
    assert len(method.branches) == classes + 1 and method.classifiers[-1].out_features == classes


def test_an_experiment_runs_on_cpu_with_trainer_cpu(tmp_path):
    cfg = plain(compose_job("train", ["experiment=dmue_rafdb", "trainer=cpu"], tmp_path))
    assert (cfg["trainer"]["accelerator"], cfg["trainer"]["precision"]) == ("cpu", "32-true")
    assert cfg["backbone"]["name"] == "resnet18" and cfg["trainer"]["max_epochs"] == 36


def test_dmue_declares_its_initial_weights_so_fermix_test_does_not_read_them_again():
    from fermix.methods.dmue import DMUE

    assert DMUE.weight_files == ("pretrained",)
    info = DataInfo(LabelSpace("toy3", ("a", "b", "c")), frozenset({"image", "expr"}), image_size=32)
    method = build_method({"name": "dmue", "pretrained": "/nowhere/mv_epoch_17.pt"}, {"name": "small_cnn", "width": 8},
                          info, from_checkpoint=True)  # fmt: skip
    assert method.config.pretrained is None
