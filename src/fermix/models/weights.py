"""Reading a local weights file: the one place that calls `torch.load` for pretrained weights."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from fermix.errors import FermixError


def read_state_dict(path: str | Path, what: str = "pretrained weights file") -> dict[str, Tensor]:
    """The tensors of a state-dict file (`weights_only=True`), unwrapped from a `state_dict` entry
    and stripped of DataParallel's `module.` prefix; a missing or unreadable file is one sentence."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise FermixError(f"{what} {file} does not exist")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise FermixError(f"{file} is not a readable state dict ({exc.__class__.__name__})") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise FermixError(f"{file} does not hold a state dict")
    return {str(k).removeprefix("module."): v for k, v in state.items() if isinstance(v, Tensor)}
