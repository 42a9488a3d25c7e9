"""Tiny DMUE models for the faithfulness tests: C=4 classes, B=16 (each class 4×), small_cnn width 8."""

import pytest
import torch

from fermix.data.info import DataInfo
from fermix.data.label_spaces import LabelSpace
from fermix.methods.dmue import DMUE

FOUR = LabelSpace("toy4", ("a", "b", "c", "d"))
SMALL = {"name": "small_cnn", "width": 8}


def build(num_classes: int = 4, backbone: dict | None = None, image_size: int = 32, **options) -> DMUE:
    space = FOUR if num_classes == 4 else LabelSpace(f"toy{num_classes}", tuple(f"c{i}" for i in range(num_classes)))
    info = DataInfo(label_space=space, keys=frozenset({"image", "expr"}), image_size=image_size)
    return DMUE(DMUE.make_config({"name": "dmue", **options}), info, backbone or SMALL)


@pytest.fixture
def model() -> DMUE:
    torch.manual_seed(0)
    return build()


@pytest.fixture
def labels() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.arange(4).repeat(4)[torch.randperm(16, generator=g)]


@pytest.fixture
def layer3() -> torch.Tensor:
    """A layer3 map for small_cnn width 8 at 32 px (32 channels, 4×4), row i marked with 1000 + i."""
    g = torch.Generator().manual_seed(2)
    x = torch.rand(16, 32, 4, 4, generator=g)
    x[:, 0, 0, 0] = 1000 + torch.arange(16).float()
    return x
