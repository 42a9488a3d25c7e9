"""The `compute:` knobs of `fermix train`: CPU threads, channels-last memory format, torch.compile.

Precision (AMP: `trainer.precision=bf16-mixed` also on CPU) stays with Lightning. What each knob
does on this project's reference CPU, measured, is in docs/performance.md ("CPU knobs"); the
defaults follow those measurements: torch's own thread count, channels-last from 112 px up (below
that the measurements disagree), no compilation (its start-up costs more than a short run gains).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from fermix.errors import FermixError

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
CHANNELS_LAST_FROM = 112  # `channels_last: auto` turns it on from this input size (docs/performance.md)


def _threads(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise FermixError(f"compute.threads={value!r} must be a whole number ≥ 1, or null for torch's default")
    return value


def channels_last_wanted(value: Any, image_size: int, device: str) -> bool:
    """`auto`: on for inputs of CHANNELS_LAST_FROM px and up, or on a GPU (where it helps convolutions)."""
    if isinstance(value, bool):
        return value
    if str(value).lower() == "auto":
        return image_size >= CHANNELS_LAST_FROM or device != "cpu"
    raise FermixError(f"compute.channels_last={value!r} must be true, false or auto")


def compile_mode(value: Any) -> str | None:
    """None = no compilation; `true` = torch.compile's default mode."""
    if value is None or value is False:
        return None
    if value is True:
        return "default"
    if str(value) in COMPILE_MODES:
        return str(value)
    raise FermixError(f"compute.compile={value!r} must be false, true or one of {', '.join(COMPILE_MODES)}")


def _has_compiler() -> bool:
    return any(shutil.which(c) for c in (os.environ.get("CXX") or "g++", "c++", "clang++"))


def apply_compute(compute: Mapping[str, Any] | None, method: nn.Module, image_size: int, device: str) -> dict[str, Any]:
    """Set the process's threads and prepare the method; returns what was applied (for the log)."""
    compute = compute or {}
    applied: dict[str, Any] = {}
    threads = _threads(compute.get("threads"))
    if threads is not None:
        torch.set_num_threads(threads)
    applied["threads"] = torch.get_num_threads()
    if channels_last_wanted(compute.get("channels_last", False), image_size, device):
        method.to(memory_format=torch.channels_last)
        applied["channels_last"] = True
    mode = compile_mode(compute.get("compile", False))
    if mode is not None:
        if device == "cpu" and not _has_compiler():
            raise FermixError("compute.compile needs a C++ compiler (g++ or clang++) on the PATH for CPU code; "
                              "install one or set compute.compile=false")
        # In place (nn.Module.compile), per child module, so parameter names and checkpoints are unchanged.
        for child in method.children():
            if next(child.parameters(), None) is not None:
                child.compile(mode=mode)
        applied["compile"] = mode
    return applied
