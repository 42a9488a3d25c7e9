"""benchmarks/pretrain_trunks.py: a trunk it writes loads with backbone.pretrained=PATH into the same backbone
with the trained weights, a trunk of another width is refused in one sentence, and a built trunk is cached."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from fermix.engine.checkpoint import load_checkpoint
from fermix.errors import FermixError
from fermix.models.backbones import build_backbone

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from pretrain_trunks import ensure_trunk, trunk_name

# Two people, a handful of faces, one epoch: the script's code path in seconds.
TINY = ["dataset.identities=2", "dataset.train_per_cell=4", "dataset.val_per_cell=2", "dataset.test_per_cell=2",
        "dataset.cache=false", "data.batch_size=4", "data.resize=32", "data.image_size=32", "dataset.image_size=32",
        "logger=none"]  # fmt: skip


def test_names_follow_kind_backbone_width_size_and_a_non_default_budget():
    assert trunk_name("identity", "small_cnn", 32) == "identity_small_cnn_w32_64px"
    assert trunk_name("expression", "small_cnn", 16, epochs=8) == "expression_small_cnn_w16_64px"
    assert trunk_name("identity", "resnet18", epochs=2) == "identity_resnet18_64px_e2"
    with pytest.raises(ValueError, match="kind"):
        trunk_name("imagenet", "small_cnn", 32)


def test_a_written_trunk_loads_with_equal_weights_and_another_width_is_refused(tmp_path):
    out = tmp_path / "trunks"
    path = ensure_trunk("identity", "small_cnn", 8, epochs=1, out=out, runs=tmp_path / "runs", extra=TINY)
    assert path == out / "identity_small_cnn_w8_64px_e1.pt"
    record = json.loads((out / "trunks.json").read_text())["identity_small_cnn_w8_64px_e1"]
    assert record["classes"] == 2 and 0.0 <= record["val_acc"] <= 1.0

    trained = load_checkpoint(tmp_path / "runs" / path.stem / "checkpoints" / "last.ckpt")["state_dict"]
    loaded = build_backbone({"name": "small_cnn", "width": 8, "pretrained": str(path)}).state_dict()
    assert loaded.keys() == {k.removeprefix("method.backbone.") for k in trained if k.startswith("method.backbone.")}
    for key, value in loaded.items():
        assert torch.equal(value, trained[f"method.backbone.{key}"]), key

    with pytest.raises(FermixError) as refused:
        build_backbone({"name": "small_cnn", "width": 16, "pretrained": str(path)})
    message = str(refused.value)
    assert "\n" not in message and "another architecture or width" in message and path.name in message

    mtime = path.stat().st_mtime_ns  # cached: asking again neither retrains nor rewrites
    assert ensure_trunk("identity", "small_cnn", 8, epochs=1, out=out, runs=tmp_path / "runs", extra=TINY) == path
    assert path.stat().st_mtime_ns == mtime
