"""Optimizers and schedulers from configs/optim/*.yaml and configs/sched/*.yaml, built by `_target_`.

The optimizer config names a torch optimizer with `_partial_: true`: the method gives the
parameters. Methods give parameter groups; a group may carry `lr` (absolute), `lr_scale` (times
`optim.lr`) and `name` (shown in the LR log). IERN and DMUE use two learning rates this way, and
IERN builds three optimizers from the one config (`Method.configure_optimizers(factory)`).

The scheduler config names a torch scheduler or one of fermix's (engine/schedulers.py), again
partial: the engine gives the optimizer. `interval` and `monitor` are Lightning's, not the
scheduler's, and `_target_: null` (sched=none) keeps the learning rate constant.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from torch.optim import Optimizer

from fermix.errors import FermixError
from fermix.utils.targets import accepts, call, instantiate

LIGHTNING_KEYS = ("interval", "monitor")  # read by Lightning's scheduler loop, not passed to the scheduler


def _groups(param_groups: Iterable[Mapping[str, Any]], base_lr: float) -> list[dict[str, Any]]:
    groups = []
    for group in param_groups:
        g = dict(group)
        scale = float(g.pop("lr_scale", 1.0))
        g.setdefault("lr", base_lr * scale)
        g["params"] = list(g["params"])
        if g["params"]:
            groups.append(g)
    if not groups:
        raise FermixError("the method has no trainable parameters")
    return groups


def _plain(cfg: Mapping[str, Any], key: str) -> dict[str, Any]:
    """The config as a dict; the pre-`_target_` form (`name: adam`) named as what to change."""
    from omegaconf import DictConfig, OmegaConf

    args = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    assert isinstance(args, dict)
    if "_target_" not in args and "name" in args:
        raise FermixError(
            f"{key}.name no longer selects the {'optimizer' if key == 'optim' else 'scheduler'}: choose "
            f"{key}={args['name']} (configs/{key}/), or give {key}._target_"
        )
    return {str(k): v for k, v in args.items()}


def build_optimizer(cfg: Mapping[str, Any], param_groups: Iterable[Mapping[str, Any]]) -> Optimizer:
    """`cfg._target_` (e.g. torch.optim.Adam) over the method's parameter groups.

    An argument set to null is not passed, so the optimizer's own default applies (switching class with
    `optim._target_=torch.optim.SGD` over optim=adam's keys: `optim.betas=null`)."""
    args = {k: v for k, v in _plain(cfg, "optim").items() if v is not None or k.startswith("_")}
    if not isinstance(args.get("lr"), (int, float)) or isinstance(args.get("lr"), bool):
        raise FermixError(f"optim.lr must be a number (parameter groups scale it), got `{args.get('lr')}`")
    factory = instantiate(args, "optim", _partial_=True)
    # YAML has no tuples; torch's optimizers document their pairs (betas) as tuples and store them so.
    pairs = {k: tuple(v) for k, v in args.items() if isinstance(v, list) and not k.startswith("_")}
    optimizer = call(factory, "optim", args["_target_"], _groups(param_groups, float(args["lr"])), **pairs)
    if not isinstance(optimizer, Optimizer):
        built = type(optimizer).__name__
        raise FermixError(f"optim._target_ `{args['_target_']}` is not a torch optimizer (it built {built})")
    return optimizer


def build_scheduler(cfg: Mapping[str, Any], optimizer: Optimizer, max_epochs: int) -> dict[str, Any] | None:
    """A Lightning scheduler config (`{"scheduler", "interval", ...}`), or None for a constant LR.

    `max_epochs` (the trainer's, or a staged method's stage's) goes to a scheduler factory that has
    a `max_epochs` parameter (engine/schedulers.cosine: `sched.t_max: null`)."""
    args = _plain(cfg, "sched")
    if "_target_" in args and args["_target_"] is None:
        return None
    lightning = {"interval": str(args.pop("interval", "epoch"))}
    if "monitor" in args:
        lightning["monitor"] = str(args.pop("monitor"))
    factory = instantiate(args, "sched", _partial_=True)
    extra = {"max_epochs": int(max_epochs)} if accepts(factory, "max_epochs") else {}
    return {"scheduler": call(factory, "sched", args["_target_"], optimizer, **extra), **lightning}
