"""A trained method rebuilt from its checkpoint alone: what `fermix test`, `export` and `predict` start from.

The checkpoint carries the resolved config and the data info (label space, AU names, image size),
so the method is built exactly as it was trained and its weights are loaded under the `method.`
prefix the LightningModule gives them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from fermix.data.info import DataInfo
from fermix.engine.build import build_method
from fermix.engine.checkpoint import load_checkpoint
from fermix.errors import FermixError
from fermix.methods.base import Method

STATE_PREFIX = "method."  # FermixModule holds the method as `self.method`


def restore_method(
    ckpt_path: str | Path, accept: Callable[[DictConfig], None] | None = None
) -> tuple[Method, dict[str, Any], DictConfig]:
    """The method with the checkpoint's weights, the checkpoint's `fermix` metadata and its training config.

    `accept(trained_config)` may refuse the checkpoint (raise FermixError) before anything is built.
    """
    ckpt_path = Path(ckpt_path)
    ckpt = load_checkpoint(ckpt_path)
    meta = ckpt["fermix"]
    trained = OmegaConf.create(meta["config"])
    if accept is not None:
        accept(trained)
    info = DataInfo.from_dict(meta["data_info"])
    method = build_method(trained.method, trained.backbone, info, from_checkpoint=True)
    state = {k.removeprefix(STATE_PREFIX): v for k, v in ckpt["state_dict"].items() if k.startswith(STATE_PREFIX)}
    try:
        method.load_state_dict(state)
    except RuntimeError as exc:
        raise FermixError(f"the weights in {ckpt_path} do not fit the {method.name} model they claim to be") from exc
    method.end_stages()  # a staged method predicts with its final model (multitask: the students' ensemble)
    return method, meta, trained
