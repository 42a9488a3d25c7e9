"""Building a method from config — the one place train and test both go through."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from fermix.data.info import DataInfo
from fermix.methods.base import Method
from fermix.registry import METHODS


def plain(cfg: Any) -> Any:
    """A resolved plain-python copy of a config node (what checkpoints and methods receive)."""
    if isinstance(cfg, DictConfig):
        node = cfg.copy()
        with open_dict(node):
            node.pop("hydra", None)  # present when composed in-process with return_hydra_config
        return OmegaConf.to_container(node, resolve=True)
    return cfg


def method_class(name: str) -> type[Method]:
    return METHODS.get(name)


def build_method(method_cfg: Mapping[str, Any], backbone_cfg: Mapping[str, Any], data_info: DataInfo) -> Method:
    cls = method_class(method_cfg["name"])
    config = cls.make_config(plain(method_cfg))
    return cls(config, data_info, plain(backbone_cfg))
