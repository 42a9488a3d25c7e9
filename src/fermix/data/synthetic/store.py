"""Generated splits on disk: built once, keyed by the generator config, memory-mapped to read.

Layout: <cache_dir>/<config key>/{train,val,test}_images.npy, {split}_meta.npz, config.json.
config.json is written last and marks a complete build, so a killed build is redone, never
half-read; a changed config has a different key and therefore never reads a stale cache.
Concurrent builders (DDP ranks under torchrun) are serialised with a lock file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from fermix.data.synthetic.config import GENERATOR_VERSION, SyntheticConfig
from fermix.data.synthetic.design import SPLITS, split_table
from fermix.data.synthetic.generate import render_split
from fermix.errors import FermixError
from fermix.utils.io import atomic_path, atomic_write_json

log = logging.getLogger("fermix")

_META_FIELDS = ("cls", "domain", "subject", "blend_cls", "blend_w", "expr", "has_au", "has_va")


class SplitData:
    """One split's arrays (images possibly memory-mapped)."""

    def __init__(self, images: np.ndarray, meta: dict[str, np.ndarray]) -> None:
        self.images = images
        self.meta = meta

    def __len__(self) -> int:
        return len(self.meta["cls"])


def build_split(cfg: SyntheticConfig, split: str) -> SplitData:
    table = split_table(cfg, split)
    arrays = render_split(cfg, table)
    meta = {f: getattr(table, f) for f in _META_FIELDS}
    meta.update(landmarks=arrays.landmarks, au_intensity=arrays.au_intensity, va=arrays.va)
    return SplitData(arrays.images, meta)


def build_all(cfg: SyntheticConfig) -> dict[str, SplitData]:
    return {s: build_split(cfg, s) for s in SPLITS if len(split_table(cfg, s))}


def cache_folder(cfg: SyntheticConfig, cache_dir: str | os.PathLike[str]) -> Path:
    return Path(cache_dir).expanduser() / f"{cfg.image_size}px-{cfg.key()}"


def load_or_build(cfg: SyntheticConfig, cache_dir: str | os.PathLike[str] | None) -> dict[str, SplitData]:
    """The generated splits, from the cache when it holds this config, else built (and cached)."""
    if cache_dir is None:
        return build_all(cfg)
    folder = cache_folder(cfg, cache_dir)
    if not _complete(folder):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise FermixError(f"cannot create the synthetic cache folder {folder}: {e.strerror or e}.") from e
        with _lock(folder / ".lock"):
            if not _complete(folder):  # another process may have built it while we waited
                log.info("generating synthetic faces into %s (once; later runs read this cache)", folder)
                _write(folder, cfg, build_all(cfg))
    return _read(folder)


def _complete(folder: Path) -> bool:
    return (folder / "config.json").is_file()


def _write(folder: Path, cfg: SyntheticConfig, splits: dict[str, SplitData]) -> None:
    for split, data in splits.items():
        with atomic_path(folder / f"{split}_images.npy") as tmp, open(tmp, "wb") as f:
            np.save(f, data.images)
        with atomic_path(folder / f"{split}_meta.npz") as tmp, open(tmp, "wb") as f:
            np.savez(f, **data.meta)
    atomic_write_json(
        folder / "config.json",
        {"generator_version": GENERATOR_VERSION, "splits": sorted(splits), "config": dataclasses.asdict(cfg)},
    )


def _read(folder: Path) -> dict[str, SplitData]:
    try:
        info = json.loads((folder / "config.json").read_text())
        out = {}
        for split in info["splits"]:
            images = np.load(folder / f"{split}_images.npy", mmap_mode="r")
            with np.load(folder / f"{split}_meta.npz") as z:
                meta = {k: z[k] for k in z.files}
            out[split] = SplitData(images, meta)
        return out
    except (OSError, ValueError, KeyError) as e:
        raise FermixError(
            f"the synthetic cache in {folder} is damaged ({e}); delete that folder and run again."
        ) from None


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[Any]:
    """An exclusive advisory lock (POSIX flock); elsewhere no lock (atomic files still hold)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield None
        return
    with open(path, "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield f
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)

