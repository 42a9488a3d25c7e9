"""Processes fermix did not start itself: torchrun workers, srun tasks, Lightning's re-run children.

Lightning finds the launcher from the environment (TorchElastic first, then Slurm) but still needs
`devices`, `num_nodes` and a DDP strategy that match it; this module derives them, so that
`torchrun --nproc_per_node=2 -m fermix train` is one 2-process run and not two 1-process ones.
It also tells the CLI which process may write (global rank 0), and lets all ranks of a torchrun
launch agree on a value (the run directory) through torchrun's own key-value store.

Only the environment is read here; torch is imported lazily (the CLI imports this module).
"""

from __future__ import annotations

import datetime
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fermix.errors import FermixError

# Strategies that start their own worker processes: wrong when a launcher already started them.
_SELF_LAUNCHING = ("ddp_spawn", "ddp_fork", "ddp_notebook")
_FIND_UNUSED = "ddp_find_unused_parameters_true"


@dataclass(frozen=True)
class Launch:
    """What an external launcher started: `world_size` processes, `processes_per_node` per node."""

    launcher: str  # "torchrun" | "srun"
    world_size: int
    rank: int
    processes_per_node: int
    num_nodes: int


def _int(environ: Mapping[str, str], key: str, default: int | None = None) -> int:
    value = environ.get(key)
    if value is None or value == "":
        if default is None:
            raise FermixError(f"the launcher did not set {key}; launch fermix with torchrun or srun, not by hand")
        return default
    try:
        return int(value)
    except ValueError:
        raise FermixError(f"cannot read {key}={value!r} as a number of processes") from None


def slurm_manages_processes(environ: Mapping[str, str] = os.environ) -> bool:
    """Lightning's SLURMEnvironment rule: SLURM_NTASKS is set and the job is not named `bash` or
    `interactive` (those names let Lightning start the processes itself inside an allocation)."""
    return "SLURM_NTASKS" in environ and environ.get("SLURM_JOB_NAME") not in ("bash", "interactive")


def _slurm_tasks_per_node(environ: Mapping[str, str], ntasks: int) -> int:
    value = environ.get("SLURM_NTASKS_PER_NODE")
    if value is None:
        if ntasks > 1:
            raise FermixError(
                f"Slurm runs {ntasks} tasks without --ntasks-per-node, which Lightning needs; "
                f"request --nodes=N --ntasks-per-node=K (K processes per node) instead of --ntasks"
            )
        return 1
    match = re.fullmatch(r"(\d+)(?:\(x\d+\))?", value.strip())  # "2", or "2(x3)": 2 on each of 3 nodes
    if match is None:
        raise FermixError(
            f"Slurm gives different task counts per node (SLURM_NTASKS_PER_NODE={value}); "
            f"request the same --ntasks-per-node on every node"
        )
    return int(match.group(1))


def external_launch(environ: Mapping[str, str] = os.environ) -> Launch | None:
    """The launcher that started this process and its other ranks, as Lightning will detect it;
    None when fermix runs alone or Lightning starts the processes (trainer=ddp)."""
    if "TORCHELASTIC_RUN_ID" in environ:  # torch.distributed.is_torchelastic_launched()
        world = _int(environ, "WORLD_SIZE")
        per_node = _int(environ, "LOCAL_WORLD_SIZE")
        if per_node < 1 or world % per_node:
            raise FermixError(
                f"torchrun started {world} processes in groups of {per_node}; "
                f"every node must run the same --nproc_per_node"
            )
        return Launch("torchrun", world, _int(environ, "RANK"), per_node, world // per_node)
    if slurm_manages_processes(environ):
        ntasks = _int(environ, "SLURM_NTASKS")
        nnodes = _int(environ, "SLURM_NNODES", 1)
        per_node = _slurm_tasks_per_node(environ, ntasks)
        return Launch("srun", ntasks, _int(environ, "SLURM_PROCID", 0), per_node, nnodes)
    return None


def process_rank(environ: Mapping[str, str] = os.environ) -> int:
    """This process's global rank before any process group exists: 0 for the process that writes.

    Exact under torchrun (RANK) and srun (SLURM_PROCID); for a child that Lightning's own launcher
    re-ran (LOCAL_RANK / NODE_RANK, no RANK) it is > 0 exactly when the child is not rank 0.
    """
    if "RANK" in environ:
        return _int(environ, "RANK")
    if slurm_manages_processes(environ) and "SLURM_PROCID" in environ:
        return _int(environ, "SLURM_PROCID")
    local = _int(environ, "LOCAL_RANK", 0)
    node = _int(environ, "NODE_RANK", _int(environ, "GROUP_RANK", 0))
    return local + node * max(local + 1, _int(environ, "LOCAL_WORLD_SIZE", 1))


def override_keys(overrides: Iterable[str]) -> set[str]:
    """`trainer.devices` from `trainer.devices=2`, `+trainer.devices=2`, `++trainer.devices=2`."""
    return {arg.split("=", 1)[0].lstrip("+~") for arg in overrides if "=" in arg and not arg.startswith("-")}


def _device_count(devices: Any) -> int | None:
    """How many processes per node `trainer.devices` asks for; None for `auto` / -1 (whatever there is)."""
    if isinstance(devices, (list, tuple)):
        return len(devices)
    if isinstance(devices, str):
        text = devices.strip()
        if text in ("auto", "-1"):
            return None
        if "," in text:
            return len([d for d in text.split(",") if d.strip()])
        return int(text) if text.lstrip("-").isdigit() else None
    if isinstance(devices, int) and devices >= 0:
        return devices
    return None


def _choose_strategy(strategy: Any, launch: Launch | None, find_unused: bool) -> Any:
    if not isinstance(strategy, str):  # a Strategy object from a custom config: the user's choice
        return strategy
    if launch is not None and launch.world_size > 1:
        if strategy.startswith(_SELF_LAUNCHING):
            raise FermixError(
                f"trainer.strategy={strategy} starts its own processes, but {launch.launcher} already started "
                f"{launch.world_size}; use trainer.strategy=ddp"
            )
        if strategy == "auto":
            strategy = "ddp"
    if strategy == "ddp" and find_unused:
        strategy = _FIND_UNUSED
    return strategy


def trainer_settings(
    trainer_cfg: Mapping[str, Any],
    explicit: Iterable[str] = (),
    find_unused_parameters: bool = False,
    environ: Mapping[str, str] = os.environ,
) -> dict[str, Any]:
    """`trainer_cfg` with `devices`, `num_nodes` and `strategy` made to match the launcher.

    `explicit` names the trainer keys the user set on the command line: an explicit `devices` or
    `num_nodes` must agree with a multi-process launcher (one-sentence error otherwise), a preset's
    value (trainer=ddp's devices: 2) yields to it. A launcher that started one process leaves the
    settings alone, unless they ask for more processes than it started (then Lightning would wait
    for ranks that never come, or fail). `find_unused_parameters`: some trainable parameters may get
    no gradient in a step, so plain `ddp` becomes `ddp_find_unused_parameters_true`.
    """
    settings = dict(trainer_cfg)
    launch = external_launch(environ)
    if launch is not None:
        explicit = set(explicit)
        wanted = {"devices": launch.processes_per_node, "num_nodes": launch.num_nodes}
        for key, value in wanted.items():
            given = settings.get(key)
            count = _device_count(given)
            if count is None or count == value:
                settings[key] = given if count is not None else value
            elif key in explicit or launch.world_size == 1:
                raise FermixError(_mismatch(key, given, value, launch))
            else:
                settings[key] = value
    settings["strategy"] = _choose_strategy(settings.get("strategy", "auto"), launch, find_unused_parameters)
    return settings


def _mismatch(key: str, given: Any, value: int, launch: Launch) -> str:
    what = "processes per node" if key == "devices" else "nodes"
    hint = "--nproc_per_node / --nnodes" if launch.launcher == "torchrun" else "--ntasks-per-node / --nodes and srun"
    return (
        f"trainer.{key}={given} asks for {given} {what}, but {launch.launcher} started {value}; "
        f"drop trainer.{key} (fermix takes it from the launcher) or launch with {hint}"
    )


def quiet_secondary_process() -> None:
    """On ranks > 0: no log file and only warnings (a launcher that ran the Hydra job on every
    rank, e.g. submitit with several tasks, would otherwise write every line once per rank)."""
    if process_rank() == 0:
        return
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, logging.FileHandler):
            root.removeHandler(handler)
            handler.close()
    root.setLevel(logging.WARNING)


def store_available(environ: Mapping[str, str] = os.environ) -> bool:
    """torchrun's agent hosts a key-value store at MASTER_ADDR:MASTER_PORT that its workers may use."""
    return (
        environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True" and "MASTER_ADDR" in environ and "MASTER_PORT" in environ
    )


def agree(key: str, choose: Callable[[], str], timeout_s: float = 900.0) -> str:
    """Global rank 0's `choose()`, on every rank of a multi-process torchrun launch; `choose()` elsewhere.

    Rank 0 publishes through torchrun's store (compare-and-set: a restarted rank 0 gets the first
    answer back, so an elastic restart keeps the run directory); the other ranks wait for it.
    """
    launch = external_launch()
    if launch is None or launch.launcher != "torchrun" or launch.world_size == 1 or not store_available():
        return choose()
    from torch.distributed import TCPStore

    store = TCPStore(
        os.environ["MASTER_ADDR"],
        int(os.environ["MASTER_PORT"]),
        is_master=False,
        timeout=datetime.timedelta(seconds=timeout_s),
        wait_for_workers=False,
    )
    if launch.rank == 0:
        return store.compare_set(key, "", choose()).decode()
    return store.get(key).decode()
