"""Atomic file writes: a reader (or a resumed run) sees the old file or the new one, never half.

A crash, a pre-empted Slurm job or a full disk in the middle of writing a checkpoint, a CSV or
summary.json must not destroy the previous good copy. Every writer here writes a temporary file
in the target's directory (same filesystem, so the rename is atomic), fsyncs it and
`os.replace`s it onto the target.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_json", "atomic_write_text"]


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
    fd, tmp_name = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.tmp-", suffix="".join(target.suffixes)
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # Keep an existing file's mode; else what a plain open() would give (mkstemp makes 0600).
        mode = target.stat().st_mode & 0o7777 if target.exists() else 0o666 & ~_current_umask()
        os.chmod(tmp, mode)
        _fsync_file(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)


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
