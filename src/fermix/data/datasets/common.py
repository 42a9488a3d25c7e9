"""Small helpers every dataset adapter needs: the root folder, listing folders without hidden
files, natural frame order, range checks of integer options, and the raw-layout refusal."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fermix.data.datasets.base import DatasetAdapter
from fermix.errors import FermixError

_IGNORED = {"__MACOSX", "Thumbs.db", "desktop.ini"}


def dataset_root(value: Any, what: str, name: str | None = None) -> Path:
    """`dataset.root` as an existing folder; `what` names the expected data in the hint, `name`
    (the adapter) prefixes the sentence."""
    prefix = f"{name}: " if name else ""
    if value is None or str(value).strip() == "":
        raise FermixError(f"{prefix}dataset.root is not set; set dataset.root=/path/to/{what}.")
    root = Path(str(value)).expanduser()
    if not root.is_dir():
        raise FermixError(f"{prefix}dataset root {root} does not exist or is not a directory; set dataset.root=...")
    return root


class RawLayout(DatasetAdapter):
    """Base of the raw-layout readers (CK+, Oulu-CASIA): sources for `fermix preprocess`, which
    list photos through `raw_items` and refuse to be trained on directly."""

    name = ""
    preprocessable = True  # each raw layout lists its photos (raw_items)

    def __init__(self, cfg: Any) -> None:
        raise FermixError(raw_layout_message(self.name))

    # Never reached (construction refuses); they complete the contract for preprocess-only layouts.
    def records(self) -> Any:
        raise FermixError(raw_layout_message(self.name))

    def load(self, row: Any) -> Any:
        raise FermixError(raw_layout_message(self.name))


def raw_layout_message(name: str) -> str:
    """Why a raw layout cannot be trained on directly, and what to run instead."""
    return (
        f"{name} is a raw layout; run `fermix preprocess dataset={name}` and train on its output "
        f"(dataset=imagefolder dataset.root=...)."
    )


def at_least(value: int, key: str, minimum: int) -> int:
    """An integer option (typed by the adapter's Config) checked against the smallest value that makes sense."""
    if value < minimum:
        raise FermixError(f"dataset.{key}={value} must be an integer >= {minimum}.")
    return value


def is_hidden(path: Path) -> bool:
    """Dot files and the litter of archive tools and file managers."""
    return path.name.startswith(".") or path.name in _IGNORED


def visible_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not is_hidden(p))


def visible_files(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.is_file() and not is_hidden(p)]


def natural_key(path: Path) -> tuple[Any, ...]:
    """Sort key that orders frame names by their numbers (2 before 10), whatever the padding."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name))
