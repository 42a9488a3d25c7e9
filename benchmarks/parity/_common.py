"""Shared by the parity scripts: check the original checkout, make it importable, write golden files.

A parity script runs an original implementation from a checkout the user names (never from this
repository: no code of the originals is committed here) and writes only numbers to
`tests/golden/<method>/`: `<case>.pt` (a flat dict of tensors, ints, floats, strings and lists,
loadable with `torch.load(..., weights_only=True)`) and `meta.json` (where the numbers came from).
The checkout may be a git work tree or a `git archive` export (which has no .git); the commit is
therefore checked through the sha256 of the original's files the script imports, recorded in the
script next to the commit they belong to.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

# Golden numbers are written single-threaded and tests/parity/conftest.py replays them so: the
# summation order of a reduction follows the thread count (see that file).
torch.set_num_threads(1)

REPO_ROOT = Path(__file__).resolve().parents[2]
GOLDEN_ROOT = REPO_ROOT / "tests" / "golden"


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def verify_checkout(checkout: Path, expected: dict[str, str], repository: str, commit: str) -> Path:
    """Refuse a checkout whose imported files differ from those of the recorded commit.

    `expected` maps a path inside the checkout to its sha256 at `commit`."""
    checkout = Path(checkout).expanduser().resolve()
    if not checkout.is_dir():
        sys.exit(f"parity: {checkout} is not a folder; pass a checkout of {repository} at {commit}")
    wrong = []
    for rel, digest in expected.items():
        path = checkout / rel
        if not path.is_file():
            wrong.append(f"{rel} (missing)")
        elif file_sha256(path) != digest:
            wrong.append(f"{rel} (differs)")
    if wrong:
        sys.exit(
            f"parity: {checkout} is not {repository} at {commit}: "
            + ", ".join(wrong[:5])
            + (f" and {len(wrong) - 5} more" if len(wrong) > 5 else "")
        )
    return checkout


def hashes_of(checkout: Path, files: Iterable[str]) -> dict[str, str]:
    """The `expected` dict for verify_checkout (run once, by hand, when a script is first written)."""
    return {rel: file_sha256(Path(checkout) / rel) for rel in files}


def importable(checkout: Path, *subdirs: str) -> None:
    """Put the checkout (or folders inside it) first on sys.path, as the original's own scripts run."""
    for sub in reversed(subdirs or ("",)):
        sys.path.insert(0, str(Path(checkout) / sub))


def write_golden(method: str, cases: dict[str, dict[str, Any]], meta: dict[str, Any]) -> Path:
    """Write `<case>.pt` for each case and `meta.json` atomically into tests/golden/<method>/.

    `meta` must name `repository`, `commit`, `script`, `command` and `patches` (the run-time
    patches the script applied, one sentence each)."""
    for key in ("repository", "commit", "script", "command", "patches"):
        if key not in meta:
            raise ValueError(f"golden meta needs {key!r}")
    out = GOLDEN_ROOT / method
    out.mkdir(parents=True, exist_ok=True)
    for name, payload in cases.items():
        tmp = out / f".{name}.pt.tmp"
        torch.save(payload, tmp)
        torch.load(tmp, weights_only=True)  # the tests load it this way: fail here, not there
        os.replace(tmp, out / f"{name}.pt")
    full = {
        **meta,
        "cases": sorted(cases),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "created": _dt.date.today().isoformat(),
    }
    tmp = out / ".meta.json.tmp"
    tmp.write_text(json.dumps(full, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, out / "meta.json")
    size = sum(p.stat().st_size for p in out.iterdir())
    print(f"parity: wrote {len(cases)} case(s) to {out.relative_to(REPO_ROOT)} ({size / 1024:.0f} KiB)")
    return out
