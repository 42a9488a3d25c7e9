"""Atomic file writes: a reader (or a resumed run) sees the old file or the new one, never half.

A crash, a pre-empted Slurm job or a full disk in the middle of writing a checkpoint, a CSV or
summary.json must not destroy the previous good copy. Every writer here writes a temporary file
in the target's directory (same filesystem, so the rename is atomic), fsyncs it and
`os.replace`s it onto the target.

A process killed while writing (SIGKILL, OOM killer, power loss) cannot delete its temporary: it
stays beside the target as a hidden `.<name>.tmp-<8 hex><suffixes>` file that no reader picks
up. The directory's owner removes such leftovers with `remove_stale_temps` when it starts work
there (a resumed run's checkpoint folder, a re-run preprocessing output).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "is_temp_name",
    "remove_stale_temps",
]

_TEMP_INFIX = ".tmp-"
_TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.tmp-[0-9a-f]{8}(?P<suffix>.*)$")


def _current_umask() -> int:
    """The process umask; read from /proc where possible, because os.umask must set it to read it."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:  # write mode: Windows refuses fsync on read-only handles
        os.fsync(f.fileno())


def _fsync_dir(directory: Path) -> None:
    """Persist the rename itself; not possible (nor needed) on every platform."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success move it onto `path`, on error delete it.

    The temporary keeps the target's suffixes, so writers that choose a format from the
    extension (matplotlib's savefig, pandas' compression inference) behave as for `path`.
    Parent directories are created.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temp(target)
    try:
        yield tmp
        # Keep an existing file's mode; else what a plain open() would give (the temporary is 0600).
        mode = target.stat().st_mode & 0o7777 if target.exists() else 0o666 & ~_current_umask()
        os.chmod(tmp, mode)
        _fsync_file(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)


def _create_temp(target: Path) -> Path:
    """A new, empty, private (0600) file `.<name>.tmp-<8 hex><suffixes>` beside `target`."""
    for _ in range(100):
        tmp = target.with_name(f".{target.name}{_TEMP_INFIX}{secrets.token_hex(4)}{''.join(target.suffixes)}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"no free temporary name beside {target}")


def is_temp_name(name: str) -> bool:
    """True for the name of a temporary that `atomic_path` creates (and a killed writer leaves)."""
    match = _TEMP_NAME.match(name)
    return match is not None and match["suffix"] == "".join(Path(match["target"]).suffixes)


def remove_stale_temps(directory: str | os.PathLike[str], recursive: bool = False) -> list[Path]:
    """Delete the temporaries that killed writers left in `directory`; returns what was removed.

    Only the owner of the directory may call this, when no write of its own is in flight: a
    temporary of a live writer would be removed too (its rename then fails). Only names of
    `atomic_path`'s pattern are touched; a missing directory is not an error.
    """
    removed: list[Path] = []
    walk = os.walk(directory) if recursive else [next(os.walk(directory), (str(directory), [], []))]
    for dirpath, _dirnames, filenames in walk:
        for name in filenames:
            if is_temp_name(name):
                path = Path(dirpath) / name
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed.append(path)
    return sorted(removed)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> None:
    """Write `text` to `path` atomically (UTF-8, no newline translation)."""
    atomic_write_bytes(path, text.encode(encoding))


def _jsonable(obj: Any) -> Any:
    """Strict-JSON version of `obj`: NaN/inf become null, tensors/arrays/numpy scalars become lists/numbers.

    Python's json writes NaN as the bare token `NaN`, which is not JSON and which many readers
    (jq, JavaScript, pandas with strict parsers) reject.
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    if isinstance(obj, Mapping):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "tolist"):  # torch.Tensor, numpy arrays and numpy scalars, without importing either
        return _jsonable(obj.tolist())
    return obj  # let json raise its own clear TypeError


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write `obj` as indented JSON (key order kept, non-finite floats as null) atomically."""
    text = json.dumps(_jsonable(obj), indent=2, sort_keys=False, allow_nan=False, ensure_ascii=False)
    atomic_write_text(path, text + "\n")
