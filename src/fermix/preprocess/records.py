"""Per-image records that make a run idempotent and resumable.

Each finished image — aligned or failed — gets a small JSON sidecar under `<out>/.records/`,
written atomically after its aligned image. A re-run reuses every record whose raw file is
unchanged (same size and modification time) and whose aligned image is still there; a killed run
therefore loses at most the images that were in flight. The output folder also remembers the
settings it was made with (`.records/settings.json`): a run with other settings is refused rather
than mixing two templates in one dataset. One run at a time writes into a folder
(`.records/lock`), so a run may clear the temporaries that a killed run left.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from fermix.errors import FermixError
from fermix.utils.io import atomic_write_json

RECORDS_DIR = ".records"
SETTINGS_FILE = "settings.json"
LOCK_FILE = "lock"
IMAGES_DIR = "images"

log = logging.getLogger("fermix")


def check_sample_id(sample_id: str) -> str:
    """A sample id must be a safe relative posix path: it names files inside the output folder."""
    sid = str(sample_id)
    if not sid or "\\" in sid or any(p in ("", ".", "..") for p in sid.split("/")):
        raise FermixError(f"sample id {sid!r} cannot name a file inside the output folder; the dataset must fix it.")
    return sid


def image_relpath(sample_id: str, image_format: str) -> str:
    """Where the aligned image of `sample_id` goes, relative to the output folder (posix)."""
    return f"{IMAGES_DIR}/{check_sample_id(sample_id)}.{image_format}"


def record_path(out: Path, sample_id: str) -> Path:
    return out / RECORDS_DIR / f"{check_sample_id(sample_id)}.json"


def source_stamp(path: Path) -> dict[str, int] | None:
    """Size and modification time of a raw file: a changed file is processed again."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return {"bytes": int(st.st_size), "mtime_ns": int(st.st_mtime_ns)}


def save_record(out: Path, record: Mapping[str, Any]) -> None:
    atomic_write_json(record_path(out, str(record["sample_id"])), dict(record))


def load_record(out: Path, sample_id: str) -> dict[str, Any] | None:
    """The stored record, or None when absent or unreadable (a torn write counts as not done)."""
    path = record_path(out, sample_id)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("sample_id") != sample_id or record.get("status") not in (
        "ok",
        "failed",
    ):
        return None
    return record


def reusable(out: Path, record: Mapping[str, Any] | None, raw_path: Path) -> bool:
    """True when `record` still describes `raw_path`'s current content and its output exists."""
    if record is None or record.get("source") != source_stamp(raw_path):
        return False
    return record["status"] != "ok" or (out / str(record.get("image", ""))).is_file()


def claim_output(out: Path, fingerprint: Mapping[str, Any]) -> None:
    """Record the settings of this output folder, or refuse when it was made with other settings."""
    path = out / RECORDS_DIR / SETTINGS_FILE
    wanted = json.loads(json.dumps(dict(fingerprint)))
    if path.is_file():
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            stored = None
        if stored == wanted:
            return
        changed = sorted(k for k in wanted if not isinstance(stored, dict) or stored.get(k) != wanted[k])
        raise FermixError(
            f"output folder {out} was preprocessed with other settings ({', '.join(changed) or 'unreadable'}); "
            f"choose another preprocess.out or delete that folder to start again."
        )
    atomic_write_json(path, wanted)


@contextlib.contextmanager
def exclusive_output(out: Path) -> Iterator[None]:
    """Hold `<out>/.records/lock` while a run writes into `out`; a second run is refused.

    An flock dies with its process, so a killed run never blocks the next one. Where flock is
    missing or refused (Windows, some network filesystems) runs are not serialised.
    """
    path = out / RECORDS_DIR / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows
        fcntl = None
    with open(path, "a+b") as handle:
        if fcntl is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise FermixError(
                    f"another fermix preprocess is writing into {out}; wait for it to finish or choose another "
                    f"preprocess.out."
                ) from None
            except OSError as exc:
                log.debug("preprocess: no lock on %s (%s); not guarding against a concurrent run", path, exc)
        yield
