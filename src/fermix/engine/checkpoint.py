"""The fermix checkpoint (DESIGN §5): one Lightning checkpoint file plus a `fermix` section.

Everything in it is a tensor or a plain container, so it loads with
`torch.load(path, weights_only=True)`: the resolved config as a dict, the label space as a list
of names, the preprocessing spec, data fingerprints, metrics, provenance and RNG states. Files
are written atomically (temporary file in the same folder, fsync, rename): a kill while saving
leaves the previous `last.ckpt` intact.
"""

from __future__ import annotations

import platform
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

import fermix
from fermix.engine.legacy import upgrade_config
from fermix.errors import FermixError
from fermix.utils.io import atomic_path

FORMAT = "fermix-checkpoint"
FORMAT_VERSION = 1


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint I/O that writes atomically and always loads with weights_only=True."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        save_atomic(checkpoint, Path(path))

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict:
        return load_checkpoint(Path(path), map_location=map_location or "cpu")


def save_atomic(obj: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_checkpoint(path: str | Path, map_location: Any = "cpu", mmap: bool = False) -> dict[str, Any]:
    """Load and validate a fermix checkpoint, with one readable sentence for each way it can be wrong; its
    stored config is upgraded to today's form (checkpoints written before `_target_` still work).

    `mmap=True` maps the tensors instead of reading them: a cheap look at the metadata."""
    path = Path(path)
    if path.is_dir():
        best = path / "checkpoints" / "best.ckpt"
        raise FermixError(f"checkpoint {path} is a folder; pass a .ckpt file such as {best}")
    if not path.is_file():
        raise FermixError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as exc:
        raise FermixError(
            f"checkpoint {path} cannot be read: it is truncated, corrupt or holds more than tensors "
            f"and plain containers ({exc.__class__.__name__})"
        ) from exc
    meta = ckpt.get("fermix") if isinstance(ckpt, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise FermixError(f"{path} is not a fermix checkpoint (it has no fermix section)")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise FermixError(
            f"{path} was written by a newer fermix (checkpoint format {meta['format_version']}); upgrade fermix"
        )
    if "state_dict" not in ckpt:
        raise FermixError(f"{path} is a fermix checkpoint without weights")
    if isinstance(meta.get("config"), dict):  # the config as today's code reads it (engine/legacy.py)
        meta["config"] = upgrade_config(meta["config"])
    return ckpt


def provenance() -> dict[str, Any]:
    import lightning

    return {
        "fermix_version": fermix.__version__,
        "git_commit": _git_commit(),
        "torch_version": str(torch.__version__),
        "lightning_version": str(lightning.__version__),
        "python_version": platform.python_version(),
        "command": " ".join(sys.argv),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _git_commit() -> str | None:
    src = Path(fermix.__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=src, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def rng_states() -> dict[str, Any]:
    """Python, numpy and torch RNG states as tensors and plain containers (weights_only-safe)."""
    np_state = np.random.get_state()
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    n = states["numpy"]
    np.random.set_state(
        ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def run_checkpoint(path: str | Path) -> Path:
    """`path` itself, or for a run folder that fermix train wrote its selected model (checkpoints/best.ckpt)."""
    path = Path(path)
    if path.is_dir() and (path / "checkpoints" / "best.ckpt").is_file():
        return path / "checkpoints" / "best.ckpt"
    return path
