"""Optimizers and schedulers from configs/optim/*.yaml and configs/sched/*.yaml.

Methods give parameter groups; a group may carry `lr` (absolute), `lr_scale` (times the
configured lr) and `name` (shown in the LR log). IERN and DMUE use two learning rates this way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from fermix.errors import FermixError


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


def build_optimizer(cfg: Mapping[str, Any], param_groups: Iterable[Mapping[str, Any]]) -> Optimizer:
    name = cfg["name"]
    lr = float(cfg["lr"])
    groups = _groups(param_groups, lr)
    wd = float(cfg.get("weight_decay", 0.0))
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=tuple(cfg.get("betas", (0.9, 0.999))), weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(cfg.get("betas", (0.9, 0.999))), weight_decay=wd)
    if name == "sgd":
        return torch.optim.SGD(
            groups,
            lr=lr,
            momentum=float(cfg.get("momentum", 0.9)),
            nesterov=bool(cfg.get("nesterov", False)),
            weight_decay=wd,
        )
    raise FermixError(f"unknown optimizer `{name}`; known: adam, adamw, sgd")


def warmup_linear(cfg: Mapping[str, Any]) -> Callable[[int], float]:
    """LR factor per 0-based epoch: linear warm-up, a constant stretch, then linear decay (IERN, spec §2).

    Epoch e (1-based) gets e/W during the W warm-up epochs, 1 for the next `epochs` epochs, then
    1 − (e − W − epochs)/(decay + 1): the decay ends at 1/(decay + 1), never at 0, as in the original.
    """
    warmup = int(cfg.get("warmup_epochs", 0))
    hold = int(cfg.get("hold_epochs", 0))
    decay = int(cfg.get("decay_epochs", 0))

    def factor(index: int) -> float:
        epoch = index + 1
        if epoch <= warmup:
            return epoch / warmup
        if epoch <= warmup + hold or decay == 0:
            return 1.0
        return max(1.0 - (epoch - warmup - hold) / (decay + 1), 1.0 / (decay + 1))

    return factor


class TableLR(LRScheduler):
    """Per-group, per-epoch learning rates read from a table (DMUE's lr1/lr2 lists).

    `tables[i]` holds group i's value for epoch 0, 1, ... (the last one holds for later epochs),
    or None to leave that group's LR alone. Values are learning rates, or with `scale` multipliers
    of the group's configured LR. Plain lists and flags only, so the state dict stays loadable
    with `weights_only=True`.
    """

    def __init__(self, optimizer: Optimizer, tables: list[list[float] | None], scale: bool = False) -> None:
        self.tables = tables
        self.scale = scale
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        epoch = max(self.last_epoch, 0)
        out = []
        for group, base, table in zip(self.optimizer.param_groups, self.base_lrs, self.tables, strict=True):
            if table is None:
                out.append(group["lr"])
            else:
                value = table[min(epoch, len(table) - 1)]
                out.append(base * value if self.scale else value)
        return out


def lr_table(values: Any, where: str) -> list[float]:
    """Per-epoch values from a config list: `[v0, v1, ...]`, or steps `[[until_epoch, value], ...]`
    (the value holds for the epochs before `until_epoch`, as DMUE's config writes its tables)."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise FermixError(f"{where} must be a list of per-epoch values or of [until_epoch, value] steps")
    rows = list(values)
    if not rows:
        raise FermixError(f"{where} is empty")
    if all(isinstance(r, (int, float)) and not isinstance(r, bool) for r in rows):
        return [float(r) for r in rows]
    out: list[float] = []
    for row in rows:
        pair = list(row) if isinstance(row, Iterable) and not isinstance(row, (str, bytes)) else []
        if len(pair) != 2 or int(pair[0]) <= len(out):
            raise FermixError(
                f"{where} mixes values and steps or has a step that does not end after the previous one: {row}"
            )
        out += [float(pair[1])] * (int(pair[0]) - len(out))
    return out


def _table_scheduler(cfg: Mapping[str, Any], optimizer: Optimizer) -> TableLR:
    tables_cfg = dict(cfg.get("groups") or {})
    names = [str(g.get("name", i)) for i, g in enumerate(optimizer.param_groups)]
    unknown = sorted(set(map(str, tables_cfg)) - set(names))
    if unknown:
        raise FermixError(
            f"sched.groups names parameter group `{unknown[0]}`, which the method does not have; "
            f"its groups: {', '.join(names)}"
        )
    if not tables_cfg:
        raise FermixError(f"sched=table needs sched.groups (one table per parameter group: {', '.join(names)})")
    mode = str(cfg.get("mode", "lr"))
    if mode not in ("lr", "scale"):
        raise FermixError(f"sched.mode must be lr or scale, not `{mode}`")
    tables = [lr_table(tables_cfg[n], f"sched.groups.{n}") if n in tables_cfg else None for n in names]
    return TableLR(optimizer, tables, scale=mode == "scale")


def build_scheduler(cfg: Mapping[str, Any], optimizer: Optimizer, max_epochs: int) -> dict[str, Any] | None:
    """A Lightning scheduler config (`{"scheduler", "interval", ...}`), or None for a constant LR."""
    name = cfg.get("name", "none")
    sched: LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau
    if name == "none":
        return None
    if name == "step":
        sched = torch.optim.lr_scheduler.StepLR(optimizer, int(cfg["step_size"]), float(cfg.get("gamma", 0.1)))
    elif name == "multistep":
        sched = torch.optim.lr_scheduler.MultiStepLR(
            optimizer, [int(m) for m in cfg["milestones"]], float(cfg.get("gamma", 0.1))
        )
    elif name == "cosine":
        t_max = int(cfg.get("t_max") or max_epochs)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, t_max, float(cfg.get("eta_min", 0.0)))
    elif name == "warmup_linear":
        sched = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_linear(cfg))
    elif name == "table":
        return {"scheduler": _table_scheduler(cfg, optimizer), "interval": "epoch"}
    elif name == "plateau":
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer,
            mode=str(cfg.get("mode", "max")),
            factor=float(cfg.get("factor", 0.1)),
            patience=int(cfg.get("patience", 10)),
        )
        return {"scheduler": sched, "interval": "epoch", "monitor": str(cfg.get("monitor", "val/acc"))}
    else:
        raise FermixError(
            f"unknown scheduler `{name}`; known: none, step, multistep, cosine, warmup_linear, plateau, table"
        )
    return {"scheduler": sched, "interval": str(cfg.get("interval", "epoch"))}
