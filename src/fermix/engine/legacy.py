"""Configs stored by fermix before leaf objects were named by `_target_`, rewritten to today's form.

A checkpoint carries the resolved config it was trained with. Before `_target_`, optimizers,
schedulers and augmentation ops were chosen by name (`optim.name: adam`, `sched.name: cosine`,
`data.augment.ops: [{name: hflip, p: 0.5}, normalize]`) and loggers by two switches.
`upgrade_config` rewrites those forms so that such a checkpoint still loads, tests, predicts and
resumes; `load_checkpoint` applies it to every checkpoint it reads. The rewrite keeps exactly what
the old code read: the arguments it passed (the others it ignored are dropped) and its defaults
where they differ from the target's (SGD's momentum 0.9, RandomGrayscale's p 1, plateau's mode max).
"""

from __future__ import annotations

import copy
from typing import Any

_OPTIMIZERS: dict[str, tuple[str, dict[str, Any]]] = {
    # name: (target, {argument the old code read: its default there})
    "adam": ("torch.optim.Adam", {"lr": None, "betas": [0.9, 0.999], "weight_decay": 0.0}),
    "adamw": ("torch.optim.AdamW", {"lr": None, "betas": [0.9, 0.999], "weight_decay": 0.0}),
    "sgd": ("torch.optim.SGD", {"lr": None, "momentum": 0.9, "nesterov": False, "weight_decay": 0.0}),
}
_SCHEDULERS: dict[str, tuple[str | None, dict[str, Any]]] = {
    "none": (None, {}),
    "step": ("torch.optim.lr_scheduler.StepLR", {"step_size": None, "gamma": 0.1, "interval": "epoch"}),
    "multistep": ("torch.optim.lr_scheduler.MultiStepLR", {"milestones": None, "gamma": 0.1, "interval": "epoch"}),
    "cosine": ("fermix.engine.schedulers.cosine", {"t_max": None, "eta_min": 0.0, "interval": "epoch"}),
    "warmup_linear": (
        "fermix.engine.schedulers.warmup_linear",
        {"warmup_epochs": 0, "hold_epochs": 0, "decay_epochs": 0, "interval": "epoch"},
    ),
    "table": ("fermix.engine.schedulers.table", {"groups": None, "mode": "lr"}),  # always per epoch
    "plateau": (
        "torch.optim.lr_scheduler.ReduceLROnPlateau",
        {"mode": "max", "factor": 0.1, "patience": 10, "monitor": "val/acc"},  # always per epoch
    ),
}
_AUGMENT = "fermix.data.augment_ops"
_OPS: dict[str, tuple[str, dict[str, Any]]] = {
    # name: (target, defaults the old op had where the target's differ)
    "random_crop": (f"{_AUGMENT}.RandomCrop", {}),
    "fixed_crop_flip": (f"{_AUGMENT}.FixedCropFlip", {}),
    "center_crop": (f"{_AUGMENT}.CenterCrop", {}),
    "random_resized_crop": (f"{_AUGMENT}.RandomResizedCrop", {}),
    "hflip": ("torchvision.transforms.v2.RandomHorizontalFlip", {}),
    "rotation": (f"{_AUGMENT}.Rotation", {}),
    "affine": (f"{_AUGMENT}.Affine", {}),
    "color_jitter": (f"{_AUGMENT}.ColorJitter", {}),
    "grayscale": ("torchvision.transforms.v2.RandomGrayscale", {"p": 1.0}),
    "gaussian_blur": (f"{_AUGMENT}.GaussianBlur", {}),
    "gaussian_noise": (f"{_AUGMENT}.GaussianNoise", {}),
    "random_erasing": (f"{_AUGMENT}.RandomErasing", {}),
    "random_order": (f"{_AUGMENT}.RandomOrder", {}),
    "to_float": (f"{_AUGMENT}.ToFloat", {}),
    "normalize": (f"{_AUGMENT}.Normalize", {}),
}
LOGGER_TARGETS: dict[str, dict[str, Any]] = {  # what configs/logger/default.yaml builds
    "tensorboard": {"_target_": "fermix.engine.loggers.tensorboard", "_partial_": True},
    "csv": {"_target_": "fermix.engine.loggers.ResumableCSVLogger", "_partial_": True},
}


def upgrade_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """A copy of a stored (plain, resolved) config in today's form; a config already in it is returned equal."""
    out = copy.deepcopy(cfg)
    if isinstance(out.get("optim"), dict):
        out["optim"] = upgrade_optim(out["optim"])
    if isinstance(out.get("sched"), dict):
        out["sched"] = upgrade_sched(out["sched"])
    augment = (out.get("data") or {}).get("augment")
    if isinstance(augment, dict) and augment.get("ops") is not None:
        augment["ops"] = upgrade_ops(augment["ops"])
    logger = out.get("logger")
    if isinstance(logger, dict) and "targets" not in logger:
        logger["targets"] = copy.deepcopy(LOGGER_TARGETS)
    return out


def upgrade_optim(optim: dict[str, Any]) -> dict[str, Any]:
    """`{name: adam, lr, betas, weight_decay}` -> `{_target_: torch.optim.Adam, _partial_: true, ...}`."""
    return _upgrade(optim, _OPTIMIZERS, partial=True)


def upgrade_sched(sched: dict[str, Any]) -> dict[str, Any]:
    """`{name: cosine, t_max, ...}` -> `{_target_: fermix.engine.schedulers.cosine, _partial_: true, ...}`."""
    return _upgrade(sched, _SCHEDULERS, partial=True)


def _upgrade(cfg: dict[str, Any], table: dict[str, tuple[str | None, dict[str, Any]]], partial: bool) -> dict[str, Any]:
    if "_target_" in cfg or str(cfg.get("name")) not in table:
        return cfg  # today's form, or a name no fermix knew: the builder names the problem
    target, read = table[str(cfg["name"])]
    if target is None:
        return {"_target_": None}
    out: dict[str, Any] = {"_target_": target, "_partial_": partial}
    for key, default in read.items():
        value = cfg.get(key, default)
        if key not in cfg and default is None:
            continue  # a required argument the old config lacked: the builder says so
        out[key] = value
    return out


def upgrade_ops(ops: Any) -> Any:
    """`[{name: hflip, p: 0.5}, normalize]` -> `[{_target_: <its flip>, p: 0.5}, {_target_: <Normalize>}]`."""
    if not isinstance(ops, list):
        return ops
    return [upgrade_op(entry) for entry in ops]


def upgrade_op(entry: Any) -> Any:
    """One `data.augment.ops` entry; `random_order`'s nested ops too. Unknown names are left for the builder."""
    if isinstance(entry, str):
        entry = {"name": entry}
    if not isinstance(entry, dict) or "_target_" in entry or str(entry.get("name")) not in _OPS:
        return entry
    args = {k: v for k, v in entry.items() if k != "name"}
    target, defaults = _OPS[str(entry["name"])]
    if "ops" in args and entry["name"] == "random_order":
        args["ops"] = upgrade_ops(args["ops"])
    return {"_target_": target, **defaults, **args}
