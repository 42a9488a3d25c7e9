"""Run a fermix job in-process with Hydra's compose API (fast, and lets tests register toy methods)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from fermix.cli import check_test_args, config_dir
from fermix.engine.rundir import register_resolvers


def compose_job(command: str, overrides: Sequence[str], run_dir: Path):
    """The job's config as `fermix <command>` composes it (for test: after the CLI's checks, which add
    the keys of the checkpoint's evaluation protocols)."""
    if command == "test":
        overrides = check_test_args(overrides)
    register_resolvers()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name=command, overrides=list(overrides), return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(run_dir)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    return cfg


def run_train_in_process(overrides: Sequence[str], run_dir: Path) -> dict[str, Any]:
    from fermix.engine.train import run_train

    run_dir.mkdir(parents=True, exist_ok=True)
    return run_train(compose_job("train", overrides, run_dir))


def quick_overrides(root: Path, *extra: str) -> list[str]:
    """A tiny, fast CPU run on an image folder."""
    return [
        "dataset=imagefolder",
        f"dataset.root={root}",
        "backbone.width=8",
        "data.image_size=32",
        "data.resize=32",
        "data.batch_size=8",
        "data.num_workers=0",
        "trainer.accelerator=cpu",
        "trainer.num_sanity_val_steps=0",
        "logger=csv",
        "progress=none",
        *extra,
    ]


def train_toy_method(monkeypatch: Any, tmp_path: Path, name: str, target: str, *extra: str) -> Path:
    """Register the toy method `target` (module:Class) as `name` for this test, train it for one epoch on a
    tiny image folder (tmp_path/faces) and return its best.ckpt."""
    from fermix.registry import METHODS, Entry
    from tests.helpers import write_image_folder

    monkeypatch.setitem(METHODS._entries, name, Entry(target, "toy"))
    folder = write_image_folder(tmp_path / "faces", per_class=4, size=32, splits=("train", "val", "test"))
    run_train_in_process(quick_overrides(folder, f"method={name}", "trainer.max_epochs=1", *extra), tmp_path / "run")
    return tmp_path / "run" / "checkpoints" / "best.ckpt"


def composed_group(group: str, option: str) -> dict[str, Any]:
    """One config group's option as `fermix train` composes it (schema defaults and YAML values together)."""
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"{group}={option}"])
    return OmegaConf.to_container(cfg[group], resolve=False, enum_to_str=True)
