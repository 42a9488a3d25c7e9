"""The au_align configs: method defaults, the paper recipes for RAF-DB / AffectNet, the CPU recipe."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torchvision.transforms import v2

from fermix.data.torch_dataset import RecordsDataset
from fermix.data.transforms import build_transform
from fermix.engine.build import plain
from fermix.methods.au_align import AUAlign
from tests.engine.runner import compose_job
from tests.methods.au_align.faces import face


def _cfg(tmp_path, *overrides):
    return plain(compose_job("train", ["method=au_align", *overrides], tmp_path))


def test_method_defaults_are_the_papers_alignment_settings(tmp_path):
    cfg = _cfg(tmp_path, "dataset=imagefolder")["method"]
    config = AUAlign.make_config(cfg)
    assert (config.lam, config.layers, config.attention, config.p, config.scale_to) == (9.0, [5], "random_avg", 1.0,
                                                                                        "attention")  # fmt: skip
    assert (config.heatmap, config.codebook, config.large_maps, config.cams) == ("aus_class", "code", True,
                                                                                 ["cam", "gradcam"])  # fmt: skip


@pytest.mark.parametrize(("overrides", "lam"), [
    (["dataset=affectnet"], 9.0),
    (["dataset=imagefolder", "method_dataset=au_align_rafdb"], 4.0),
])  # fmt: skip
def test_paper_recipes(tmp_path, overrides, lam):
    cfg = _cfg(tmp_path, *overrides)
    assert cfg["method"]["lam"] == lam
    optim = cfg["optim"]
    assert (optim["name"], optim["lr"], optim["momentum"], optim["nesterov"], optim["weight_decay"]) == (
        "sgd", 0.002, 0.9, True, 5e-4)  # fmt: skip
    assert (cfg["sched"]["name"], cfg["sched"]["step_size"], cfg["sched"]["gamma"]) == ("step", 4, 0.9)
    assert cfg["trainer"]["max_epochs"] == 20 and cfg["data"]["batch_size"] == 224
    assert cfg["data"]["image_size"] == 224 and cfg["data"]["mean"] == [0.485, 0.456, 0.406]
    names = [op if isinstance(op, str) else op["name"] for op in cfg["data"]["augment"]["ops"]]
    assert names == ["rotation", "random_resized_crop", "hflip", "grayscale", "color_jitter", "to_float",
                     "random_erasing", "normalize"]  # fmt: skip
    train = build_transform(cfg["data"], train=True)
    assert any(isinstance(t, v2.RandomResizedCrop) for t in train.transforms)
    rows = pd.DataFrame([{"sample_id": "s"}])
    image = np.full((224, 224, 3), 128, dtype=np.uint8)
    dataset = RecordsDataset(rows, lambda r: {"image": image, "landmarks": face().astype(np.float32), "expr": 1}, train)
    sample = dataset[(0, 0)]
    assert sample["image"].shape == (3, 224, 224) and torch.isfinite(sample["landmarks"]).all()


def test_affectnet_recipe_asks_the_adapter_for_landmarks(tmp_path):
    dataset = _cfg(tmp_path, "dataset=affectnet")["dataset"]
    assert (dataset["classes"], dataset["crop"], dataset["landmarks"]) == (7, "box", True)


def test_synthetic_recipe_is_small(tmp_path):
    cfg = _cfg(tmp_path, "dataset=synthetic")
    assert cfg["backbone"]["name"] == "small_cnn" and cfg["trainer"]["max_epochs"] <= 10
    assert cfg["method"]["map_zoom"] == pytest.approx(cfg["data"]["resize"] / cfg["data"]["image_size"])
