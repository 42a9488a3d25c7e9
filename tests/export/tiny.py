"""Tiny image methods (small_cnn width 8, 32 px) with BatchNorm statistics and IERN's dictionary moved
off their initial values, so that an export that ran in training mode, or lost a buffer, shows."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

import fermix.methods  # noqa: F401  (registers the methods)
from fermix.data.info import DataInfo
from fermix.data.label_spaces import get_label_space
from fermix.methods.base import Method
from fermix.registry import METHODS

IMAGE_METHODS = ("erm", "iern", "au_align", "multitask", "dmue")
SIZE = 32
AU_NAMES = ["AU1", "AU2", "AU4", "AU12"]
SMALL = {"name": "small_cnn", "width": 8}

_OPTIONS: dict[str, dict[str, Any]] = {"iern": {"channels": 16}, "multitask": {"n_students": 1}}


def data_info(method: str) -> DataInfo:
    extra = {"iern": {"domain"}, "au_align": {"landmarks"}}.get(method, set())
    keys = {"image", "expr"} | extra
    return DataInfo(
        label_space=get_label_space("basic7"),
        keys=frozenset(keys),
        image_size=SIZE,
        num_domains=3 if method == "iern" else 1,
        extras={"au_names": AU_NAMES} if method == "multitask" else {},
    )


def build(method: str, seed: int = 0) -> Method:
    """The method in eval mode, with randomised BN statistics (and dictionary, thresholds)."""
    torch.manual_seed(seed)
    cls = METHODS.get(method)
    model = cls(cls.make_config({"name": method, **_OPTIONS.get(method, {})}), data_info(method), SMALL)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.running_mean is not None:
                module.running_mean.normal_(0.0, 0.5)
                module.running_var.uniform_(0.5, 2.0)
        if method == "iern":
            model.dictionary.normal_()
        if method == "multitask":
            model.au_thresholds.uniform_(0.3, 0.7)
    return model.eval()


def images(n: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))
