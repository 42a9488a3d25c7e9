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
        return OmegaConf.to_container(node, resolve=True, enum_to_str=True)
    return cfg


def method_class(name: str) -> type[Method]:
    return METHODS.get(name)


def build_method(
    method_cfg: Mapping[str, Any],
    backbone_cfg: Mapping[str, Any],
    data_info: DataInfo,
    from_checkpoint: bool = False,
) -> Method:
    """The method of a config. `from_checkpoint`: its weights come from a checkpoint next, so no
    pretrained file is read (backbone `pretrained`, the method's `weight_files` options): `fermix
    test` then needs neither the files nor the network they once came from."""
    cls = method_class(method_cfg["name"])
    method_values = dict(plain(method_cfg))
    backbone = dict(plain(backbone_cfg))
    if from_checkpoint:
        if "pretrained" in backbone:
            backbone["pretrained"] = None
        method_values.update({key: None for key in cls.weight_files if key in method_values})
    config = cls.make_config(method_values)
    return cls(config, data_info, backbone)


def untyped(cfg: DictConfig) -> DictConfig:
    """The composed config without its schema types: Enum values become their strings, so nothing the run
    writes (checkpoints load with weights_only=True) holds a fermix class. Still struct: unknown keys raise."""
    plain_cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False, enum_to_str=True))
    OmegaConf.set_struct(plain_cfg, True)
    return plain_cfg
