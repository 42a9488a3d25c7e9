"""fermix's own learning-rate schedules, named by `_target_` in configs/sched/ next to torch's.

Each is a factory `f(optimizer, **config)` returning a torch scheduler, so checkpoints hold the
same scheduler state whichever way it was configured. A factory with a `max_epochs` parameter gets
the trainer's epoch count from the engine (a staged method: the stage's), which is how
`sched.t_max: null` means "the whole run".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR, LambdaLR, LRScheduler

from fermix.errors import FermixError


def cosine(optimizer: Optimizer, t_max: int | None = None, eta_min: float = 0.0, max_epochs: int = 1) -> LRScheduler:
    """CosineAnnealingLR over `t_max` epochs; null = the trainer's max_epochs."""
    return CosineAnnealingLR(optimizer, int(t_max or max_epochs), float(eta_min))


def warmup_linear(
    optimizer: Optimizer, warmup_epochs: int = 0, hold_epochs: int = 0, decay_epochs: int = 0
) -> LambdaLR:
    """IERN's `warmup` + `linear` policy (spec §2) as a LambdaLR stepped per epoch (see `warmup_linear_factor`)."""
    return LambdaLR(optimizer, warmup_linear_factor(int(warmup_epochs), int(hold_epochs), int(decay_epochs)))


def warmup_linear_factor(warmup: int, hold: int, decay: int) -> Callable[[int], float]:
    """LR factor per 0-based epoch: linear warm-up, a constant stretch, then linear decay (IERN, spec §2).

    Epoch e (1-based) gets e/W during the W warm-up epochs, 1 for the next `hold` epochs, then
    1 − (e − W − hold)/(decay + 1): the decay ends at 1/(decay + 1), never at 0, as in the original.
    """

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


def table(optimizer: Optimizer, groups: Mapping[str, Any] | None = None, mode: str = "lr") -> TableLR:
    """A TableLR from `sched.groups` ({parameter group name: table}, see `lr_table`) and `sched.mode`."""
    tables_cfg = dict(groups or {})
    names = [str(g.get("name", i)) for i, g in enumerate(optimizer.param_groups)]
    unknown = sorted(set(map(str, tables_cfg)) - set(names))
    if unknown:
        raise FermixError(
            f"sched.groups names parameter group `{unknown[0]}`, which the method does not have; "
            f"its groups: {', '.join(names)}"
        )
    if not tables_cfg:
        raise FermixError(f"sched=table needs sched.groups (one table per parameter group: {', '.join(names)})")
    mode = str(mode)
    if mode not in ("lr", "scale"):
        raise FermixError(f"sched.mode must be lr or scale, not `{mode}`")
    tables = [lr_table(tables_cfg[n], f"sched.groups.{n}") if n in tables_cfg else None for n in names]
    return TableLR(optimizer, tables, scale=mode == "scale")


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
