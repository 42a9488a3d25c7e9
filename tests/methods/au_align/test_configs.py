"""The au_align configs: method defaults, the paper recipes for RAF-DB / AffectNet, the CPU recipe."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf
from torchvision.transforms import v2

from fermix.data.info import DataInfo
from fermix.data.label_spaces import get_label_space
from fermix.data.torch_dataset import RecordsDataset
from fermix.data.transforms import build_transform
from fermix.data.writers import write
from fermix.engine.build import build_method, plain
from fermix.engine.datamodule import FermixDataModule
from fermix.engine.optim import build_optimizer, build_scheduler
from fermix.methods.au_align import AUAlign
from fermix.registry import DATASETS
from tests.conftest import assert_one_sentence_error
from tests.engine.runner import compose_job
from tests.methods.au_align.faces import face

AUGMENTATION_DOC = Path(__file__).resolve().parents[3] / "docs" / "augmentation.md"
PAPER_RUNS = {"au_align_rafdb": ("imagefolder", 4.0), "au_align_affectnet": ("affectnet", 9.0)}
STEP_LR = "torch.optim.lr_scheduler.StepLR"


def _cfg(tmp_path, *overrides):
    return plain(compose_job("train", ["method=au_align", *overrides], tmp_path))


def _built(cfg, image_size: int | None = None) -> AUAlign:
    """The method a composed config builds (random init: no weights are fetched)."""
    info = DataInfo(get_label_space("basic7"), frozenset({"image", "expr", "landmarks"}),
                    image_size or cfg["data"]["image_size"])  # fmt: skip
    return build_method(cfg["method"], {**cfg["backbone"], "pretrained": None}, info)


def _synthetic_samples(landmarks: bool = True):
    """84 small synthetic faces (7 classes x 3 styles x train/val/test 2/1/1) in the writers' vocabulary."""
    synthetic = DATASETS.get("synthetic")({"train_per_cell": 2, "val_per_cell": 1, "test_per_cell": 1, "cache": False})
    for sample in synthetic.writer_samples():
        yield sample if landmarks else {**sample, "landmarks": None}


def test_method_defaults_are_the_papers_alignment_settings(tmp_path):
    cfg = _cfg(tmp_path, "dataset=imagefolder")["method"]
    config = AUAlign.make_config(cfg)
    assert (config.lam, config.layers, config.attention, config.p, config.scale_to) == (9.0, [5], "random_avg", 1.0,
                                                                                        "attention")  # fmt: skip
    assert (config.heatmap, config.codebook, config.large_maps, config.cams) == ("aus_class", "code", True,
                                                                                 ["cam", "gradcam"])  # fmt: skip


@pytest.mark.parametrize(("overrides", "lam"), [
    (["experiment=au_align_affectnet"], 9.0),
    (["experiment=au_align_rafdb"], 4.0),
])  # fmt: skip
def test_paper_recipes(tmp_path, overrides, lam):
    cfg = _cfg(tmp_path, *overrides)
    assert cfg["method"]["lam"] == lam
    optim = cfg["optim"]
    assert (optim["_target_"], optim["lr"], optim["momentum"], optim["nesterov"], optim["weight_decay"]) == (
        "torch.optim.SGD", 0.002, 0.9, True, 5e-4)  # fmt: skip
    assert (cfg["sched"]["_target_"], cfg["sched"]["step_size"], cfg["sched"]["gamma"]) == (STEP_LR, 4, 0.9)
    opt = build_optimizer(optim, [{"params": [torch.nn.Parameter(torch.zeros(1))]}])  # adam's betas are not passed
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["nesterov"] and "betas" not in opt.defaults
    assert isinstance(build_scheduler(cfg["sched"], opt, 20)["scheduler"], torch.optim.lr_scheduler.StepLR)
    assert cfg["trainer"]["max_epochs"] == 20 and cfg["data"]["batch_size"] == 224
    assert cfg["data"]["image_size"] == 224 and cfg["data"]["mean"] == [0.485, 0.456, 0.406]
    names = [op["_target_"].rpartition(".")[2] for op in cfg["data"]["augment"]["ops"]]
    assert names == ["Rotation", "RandomResizedCrop", "RandomHorizontalFlip", "RandomGrayscale", "ColorJitter",
                     "ToFloat", "RandomErasing", "Normalize"]  # fmt: skip
    train = build_transform(cfg["data"], train=True)
    assert any(isinstance(t, v2.RandomResizedCrop) for t in train.transforms)
    rows = pd.DataFrame([{"sample_id": "s"}])
    image = np.full((224, 224, 3), 128, dtype=np.uint8)
    dataset = RecordsDataset(rows, lambda r: {"image": image, "landmarks": face().astype(np.float32), "expr": 1}, train)
    sample = dataset[(0, 0)]
    assert sample["image"].shape == (3, 224, 224) and torch.isfinite(sample["landmarks"]).all()


def test_affectnet_recipe_asks_the_adapter_for_landmarks(tmp_path):
    dataset = _cfg(tmp_path, "experiment=au_align_affectnet")["dataset"]
    assert (dataset["classes"], dataset["crop"], dataset["landmarks"]) == (7, "box", True)


def test_synthetic_recipe_is_small(tmp_path):
    cfg = _cfg(tmp_path, "experiment=au_align_synthetic")
    assert cfg["backbone"]["name"] == "small_cnn" and cfg["trainer"]["max_epochs"] <= 10
    assert (cfg["data"]["resize"], cfg["data"]["image_size"]) == (72, 64)
    assert _built(cfg).map_spec.zoom == pytest.approx(72 / 64)  # resize 72 -> crop 64 magnifies the face


@pytest.mark.parametrize(("resize", "zoom"), [(72, 72 / 64), (64, 1.0), (80, 1.25)])
def test_map_zoom_auto_follows_data_resize(tmp_path, resize, zoom):
    cfg = _cfg(tmp_path, "dataset=imagefolder", f"data.resize={resize}", "data.image_size=64")
    assert cfg["method"]["map_zoom"] == "auto" and cfg["method"]["data_resize"] == resize
    assert _built(cfg).map_spec.zoom == pytest.approx(zoom)
    fixed = _cfg(tmp_path, "dataset=imagefolder", f"data.resize={resize}", "method.map_zoom=1.5")
    assert _built(fixed).map_spec.zoom == 1.5


# --- the one-line paper runs: experiment/au_align_{rafdb,affectnet}.yaml ----------------------------


@pytest.mark.parametrize("experiment", sorted(PAPER_RUNS))
def test_paper_experiment_composes_backbone_method_dataset_and_recipe(tmp_path, experiment):
    dataset, lam = PAPER_RUNS[experiment]
    cfg = plain(compose_job("train", [f"experiment={experiment}"], tmp_path))
    assert (cfg["method"]["name"], cfg["dataset"]["name"], cfg["method"]["lam"]) == ("au_align", dataset, lam)
    assert (cfg["backbone"]["name"], cfg["backbone"]["pretrained"]) == ("resnet50", "IMAGENET1K_V1")  # as the original
    assert (cfg["trainer"]["accelerator"], cfg["trainer"]["precision"]) == ("gpu", "16-mixed")  # the paper's AMP
    optim, sched = cfg["optim"], cfg["sched"]
    assert (optim["_target_"], optim["lr"], optim["momentum"], optim["nesterov"], optim["weight_decay"]) == (
        "torch.optim.SGD", 0.002, 0.9, True, 5e-4)  # fmt: skip
    assert (sched["_target_"], sched["step_size"], sched["gamma"]) == (STEP_LR, 4, 0.9)
    assert (cfg["trainer"]["max_epochs"], cfg["data"]["batch_size"], cfg["data"]["image_size"]) == (20, 224, 224)
    assert cfg["trainer"]["gradient_clip_val"] is None
    method = _built(cfg).eval()
    assert method.map_spec.zoom == 1.0  # resize 224 = image_size: evaluation shows the stored crop as it is
    with torch.no_grad():
        _, _, feats = method.features(torch.randn(1, 3, 224, 224), {5})
    assert tuple(feats[5].shape) == (1, 2048, 28, 28)  # layer3 + layer4 strides removed (spec §3.1)
    on_cpu = plain(compose_job("train", [f"experiment={experiment}", "trainer=cpu"], tmp_path))
    assert on_cpu["trainer"]["accelerator"] == "cpu" and on_cpu["method"]["lam"] == lam


def test_rafdb_experiment_reads_what_fermix_preprocess_writes_for_rafdb(tmp_path):
    train = compose_job("train", ["experiment=au_align_rafdb"], tmp_path)
    preprocess = compose_job("preprocess", ["dataset=rafdb"], tmp_path)
    assert train.dataset.root == preprocess.preprocess.out == "datasets/rafdb_aligned"


def _doc_recipe() -> dict:
    blocks = re.findall(r"```yaml\n(.*?)```", AUGMENTATION_DOC.read_text(encoding="utf-8"), flags=re.S)
    (block,) = [b for b in blocks if re.search(r"^# recipe: au_align$", b, flags=re.M)]
    return OmegaConf.to_container(OmegaConf.create(block))["data"]


@pytest.mark.parametrize("experiment", sorted(PAPER_RUNS))
def test_docs_augmentation_block_is_what_the_recipes_use(tmp_path, experiment):
    documented = _doc_recipe()
    data = plain(compose_job("train", [f"experiment={experiment}"], tmp_path))["data"]
    assert documented["resize"] == documented["image_size"] == 224  # evaluation resizes straight to 224 (spec §2.2)
    assert data["augment"]["ops"] == documented.pop("augment")["ops"]
    assert {key: data[key] for key in documented} == documented


# --- landmarks: RAF-DB has none; the recipe refuses a dataset without them in one sentence ----------


def test_rafdb_without_landmarks_is_refused_in_one_sentence(tmp_path, fermix_main):
    root = write("rafdb", _synthetic_samples(), tmp_path / "rafdb")
    result = fermix_main(["train", "method=au_align", "dataset=rafdb", f"dataset.root={root}",
                          "dataset.images=original", "trainer=cpu", "progress=none"], tmp_path)  # fmt: skip
    assert_one_sentence_error(result, "method au_align needs `landmarks`", "dataset rafdb does not supply")


def test_rafdb_experiment_on_a_folder_without_landmarks_is_refused_in_one_sentence(tmp_path, fermix_main):
    root = write("imagefolder", _synthetic_samples(landmarks=False), tmp_path / "faces")
    assert "landmarks" not in DATASETS.get("imagefolder")({"root": str(root)}).keys
    result = fermix_main(["train", "experiment=au_align_rafdb", f"dataset.root={root}", "backbone.pretrained=null",
                          "trainer=cpu", "progress=none"], tmp_path)  # fmt: skip
    assert_one_sentence_error(result, "method au_align needs `landmarks`", "dataset imagefolder does not supply")


def test_rafdb_experiment_draws_maps_from_the_landmarks_of_a_preprocessed_folder(tmp_path):
    """The recipe's train pipeline (rotation, resized crop, flip, erasing) at 32 px on a folder whose
    manifest has landmarks, as `fermix preprocess` writes it: the dataset passes the requires check
    and every labelled non-neutral face of a training batch gets a map, which the loss uses."""
    root = write("imagefolder", _synthetic_samples(), tmp_path / "faces")
    cfg = compose_job("train", ["experiment=au_align_rafdb", f"dataset.root={root}", "data.image_size=32",
                                "data.resize=32", "data.batch_size=42", "data.num_workers=0"], tmp_path)  # fmt: skip
    dm = FermixDataModule(cfg.dataset, cfg.data, seed=0)
    method = build_method(cfg.method, {"name": "small_cnn", "width": 8}, dm.build())
    dm.check_requires(method.requires, method.name)
    batch = next(iter(dm.loader("train", train=True)))
    maps, valid = method.target_maps(batch)
    neutral = batch["expr"] == method.class_names.index("neutral")
    assert torch.equal(valid, ~neutral) and valid.sum() >= 30
    assert float(maps[valid].amax(dim=(1, 2, 3)).min()) > 0.5 and maps[~valid].abs().sum() == 0
    terms = method.train().training_step(batch)
    assert 0.0 < float(terms["align"].detach()) <= 4.0  # lambda 4, RAF-DB's recipe
