"""Checkpoints written from the authors' released weights (IERN's and multitask's importers).

An importer maps a release into a fermix state dict; this module turns that state dict into an
ordinary fermix checkpoint, so `fermix test`, `export` and `predict` take it like a trained run,
and proves the file loads into the model its recorded config builds before anyone relies on it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from fermix.data.info import DataInfo
from fermix.engine.restore import STATE_PREFIX
from fermix.errors import FermixError


def compose_train_config(overrides: Sequence[str], what: str) -> dict[str, Any]:
    """The resolved `fermix train` config for `overrides`, as a plain dict without the hydra section."""
    from hydra import compose, initialize_config_dir

    from fermix.cli import config_dir
    from fermix.engine.build import plain
    from fermix.engine.rundir import register_resolvers

    register_resolvers()
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            cfg = compose(config_name="train", overrides=list(overrides))
    except FermixError:
        raise
    except Exception as exc:  # Hydra's composition and override-parsing errors
        reason = " ".join(str(exc).split()) or exc.__class__.__name__  # Hydra wraps its messages over lines
        raise FermixError(f"cannot compose the {what} config from {' '.join(overrides)}: {reason}") from exc
    return plain(cfg)


def reference_state(config: Mapping[str, Any], info: DataInfo) -> dict[str, Tensor]:
    """The state dict (names and shapes, on the meta device) of the model `config` builds."""
    from fermix.engine.build import build_method

    with torch.device("meta"):
        return build_method(config["method"], config["backbone"], info).state_dict()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_imported_checkpoint(
    out: str | Path,
    config: dict[str, Any],
    info: DataInfo,
    state: Mapping[str, Tensor],
    imported_from: dict[str, Any],
    epoch: int = 0,
) -> dict[str, Any]:
    """Save `state` as a fermix checkpoint of `config` (atomically), check it loads, return its `fermix` section.

    `imported_from` (repository, commit, files and their sha256, ...) goes into the provenance."""
    from fermix.data.transforms import preprocessing_spec
    from fermix.engine.checkpoint import FORMAT, FORMAT_VERSION, provenance, save_atomic

    meta: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "method": config["method"]["name"],
        "dataset": config["dataset"]["name"],
        "config": config,
        "label_space": info.label_space.to_dict(),
        "data_info": info.to_dict(),
        "preprocessing": preprocessing_spec(config["data"]),
        "data_fingerprints": {},
        "split_sizes": {},
        "provenance": {**provenance(), "imported_from": imported_from},
        "metrics": {"val": {}},
        "epoch": epoch,
        "global_step": 0,
    }
    checkpoint = {
        "epoch": epoch,
        "global_step": 0,
        "state_dict": {STATE_PREFIX + k: v for k, v in state.items()},
        "fermix": meta,
    }
    save_atomic(checkpoint, Path(out))
    verify_checkpoint(out)
    return meta


def verify_checkpoint(path: str | Path) -> None:
    """Load `path` as `fermix test` does; its weights must match the model its config builds, key for key and shape
    for shape."""
    from fermix.engine.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)
    meta = ckpt["fermix"]
    expected = reference_state(meta["config"], DataInfo.from_dict(meta["data_info"]))
    state = {k.removeprefix(STATE_PREFIX): v for k, v in ckpt["state_dict"].items() if k.startswith(STATE_PREFIX)}
    wrong = [k for k in expected if k not in state or tuple(state[k].shape) != tuple(expected[k].shape)]
    if wrong or set(state) - set(expected):
        raise FermixError(f"the checkpoint written to {path} does not load into the model its config builds")
