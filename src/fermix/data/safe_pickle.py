"""Reading pickled dataset files without running code from them (DESIGN §7).

A pickle can name any importable callable (`os.system`, `builtins.eval`, ...) and have it called
while loading, so `pickle.load` on a downloaded file is code execution. Dataset pickles (MixBasic's
`emotion_labels.pkl`, MulT's `*_data.pkl`) only hold builtin containers, scalars and numpy arrays.
`restricted_load` admits exactly the globals those need and refuses every other one before it is
resolved, so a refused callable is never imported, let alone called.
"""

from __future__ import annotations

import collections
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

from fermix.errors import FermixError

__all__ = ["restricted_load"]

_BUILTIN_NAMES = ("dict", "list", "tuple", "set", "frozenset", "str", "bytes", "int", "float", "bool", "complex")


def _latin1_bytes(text: Any, encoding: str = "latin1") -> bytes:
    """Stand-in for `_codecs.encode`, which protocol-2 pickles use to spell every bytes object.

    Only the latin-1 round trip pickle itself writes is allowed, not arbitrary codecs.
    """
    if not isinstance(text, str) or encoding.replace("-", "").replace("_", "").lower() != "latin1":
        raise pickle.UnpicklingError(f"_codecs.encode called with {type(text).__name__!s} / {encoding!r}")
    return text.encode("latin1")


def _numpy_globals() -> dict[tuple[str, str], Callable[..., Any]]:
    """The globals numpy 1.x and 2.x write when pickling arrays, dtypes and scalars.

    Both module spellings map to the objects of the numpy that is installed (numpy 2 renamed
    `numpy.core` to `numpy._core`), so files written under either version load under both.
    """
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy < 1.26
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    table: dict[tuple[str, str], Callable[..., Any]] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for core in ("numpy.core", "numpy._core"):
        table[(f"{core}.multiarray", "_reconstruct")] = multiarray._reconstruct
        table[(f"{core}.multiarray", "scalar")] = multiarray.scalar
        # Protocol 5 pickles contiguous arrays as _frombuffer(bytes, dtype, shape, order).
        table[(f"{core}.numeric", "_frombuffer")] = numeric._frombuffer
    return table


def _allowed_globals() -> dict[tuple[str, str], Callable[..., Any]]:
    import builtins

    table: dict[tuple[str, str], Callable[..., Any]] = {}
    for name in _BUILTIN_NAMES:
        # Protocols 0-2 spell the builtins module the Python 2 way.
        table[("builtins", name)] = table[("__builtin__", name)] = getattr(builtins, name)
    table[("collections", "OrderedDict")] = collections.OrderedDict
    table[("_codecs", "encode")] = _latin1_bytes
    table.update(_numpy_globals())
    return table


_ALLOWED = _allowed_globals()


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves globals from the allow-list only; never imports a module a pickle names."""

    def __init__(self, file: IO[bytes], where: str, encoding: str) -> None:
        super().__init__(file, encoding=encoding)
        self._where = where

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise FermixError(
                f"{self._where} refers to `{module}.{name}`, which fermix refuses to load (dataset pickles may "
                f"hold only builtin containers and numpy arrays), so nothing from it was run."
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise FermixError(f"{self._where} uses persistent ids, which dataset pickles never need; it was not loaded.")


# What a truncated or corrupt pickle raises from inside the unpickler.
_CORRUPT = (
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    AttributeError,
    IndexError,
    KeyError,
    OverflowError,
    MemoryError,
    RecursionError,
    UnicodeDecodeError,
)


def restricted_load(path_or_file: str | os.PathLike[str] | IO[bytes], *, encoding: str = "latin1") -> Any:
    """Unpickle a dataset file that may only hold builtin containers/scalars and numpy arrays.

    `encoding` decodes Python 2 `str` objects; latin1 is what numpy needs for Python 2 array pickles.
    Any other global, a truncated file or a corrupt one ends in one `FermixError` sentence.
    """
    if isinstance(path_or_file, (str, os.PathLike)):
        path = Path(path_or_file)
        try:
            with open(path, "rb") as f:
                return _load(f, str(path), encoding)
        except OSError as e:
            raise FermixError(f"cannot open {path}: {e.strerror or e}.") from e
    where = str(getattr(path_or_file, "name", "the pickle stream"))
    return _load(path_or_file, where, encoding)


def _load(file: IO[bytes], where: str, encoding: str) -> Any:
    try:
        return _RestrictedUnpickler(file, where, encoding).load()
    except FermixError:
        raise
    except _CORRUPT as e:
        detail = str(e).strip().rstrip(".") or type(e).__name__
        raise FermixError(f"cannot read {where}: it is truncated or not a valid pickle ({detail}).") from e
