"""The preprocessing run: which images still need work, the worker pool, and the final outputs.

Results do not depend on the number of workers: each image is processed on its own, and the
manifest and preprocess.json are written at the end from all records, sorted by sample_id.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from fermix.data.raw import RawItem
from fermix.errors import FermixError
from fermix.preprocess.outputs import MANIFEST_FILE, REPORT_FILE, write_manifest, write_report
from fermix.preprocess.progress import Progress
from fermix.preprocess.records import (
    IMAGES_DIR,
    RECORDS_DIR,
    check_sample_id,
    claim_output,
    exclusive_output,
    load_record,
    reusable,
)
from fermix.preprocess.settings import Settings
from fermix.preprocess.worker import init_worker, process_in_worker, process_item
from fermix.utils.io import remove_stale_temps

log = logging.getLogger("fermix")

_IN_FLIGHT_PER_WORKER = 4  # enough to keep workers busy; bounded so a million items do not all queue


def sorted_items(items: Sequence[RawItem], limit: int | None = None) -> list[RawItem]:
    """Items in sample_id order (the first `limit` of them), refusing unsafe or repeated ids."""
    ordered = sorted(items, key=lambda it: it.sample_id)
    for prev, item in itertools.pairwise(ordered):
        if prev.sample_id == item.sample_id:
            raise FermixError(f"sample id {item.sample_id!r} is listed twice ({prev.path} and {item.path}).")
    for item in ordered:
        check_sample_id(item.sample_id)
    return ordered[:limit] if limit is not None else ordered


def _refuse_foreign_output(out: Path) -> None:
    """Never write into a folder that some other tool made."""
    foreign = [n for n in (MANIFEST_FILE, REPORT_FILE) if (out / n).exists()]
    if foreign and not (out / RECORDS_DIR).is_dir():
        raise FermixError(
            f"{out} already holds {foreign[0]} but is not a fermix preprocess output; choose another preprocess.out."
        )


def _remove_leftovers(out: Path) -> None:
    """Temporaries of images, records and reports that a killed run was writing (the caller holds the lock)."""
    removed = remove_stale_temps(out) + [
        path for sub in (IMAGES_DIR, RECORDS_DIR) for path in remove_stale_temps(out / sub, recursive=True)
    ]
    if removed:
        log.info("preprocess: removed %d unfinished file(s) left by an interrupted run in %s", len(removed), out)


def _run_inline(items: Sequence[RawItem], settings: Settings, out: Path) -> Iterator[dict[str, Any]]:
    for item in items:
        yield process_item(item, settings, out)


def _run_pool(items: Sequence[RawItem], settings: Settings, out: Path, workers: int) -> Iterator[dict[str, Any]]:
    """Records in completion order from `workers` spawned processes (spawn: safe beside torch/OpenMP)."""
    context = multiprocessing.get_context("spawn")
    pending = iter(items)
    with ProcessPoolExecutor(workers, mp_context=context, initializer=init_worker, initargs=(settings, out)) as pool:
        in_flight: set[Future] = set()
        try:
            while True:
                while len(in_flight) < workers * _IN_FLIGHT_PER_WORKER:
                    item = next(pending, None)
                    if item is None:
                        break
                    in_flight.add(pool.submit(process_in_worker, item))
                if not in_flight:
                    return
                done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        finally:
            for future in in_flight:
                future.cancel()


def preprocess(
    items: Sequence[RawItem],
    settings: Settings,
    out: Path,
    *,
    workers: int = 1,
    progress: str = "auto",
    limit: int | None = None,
    meta: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Align every item into `out`, reusing finished records; returns the preprocess.json content."""
    out = Path(out).absolute()
    ordered = sorted_items(items, limit)
    if out.exists() and not out.is_dir():
        raise FermixError(f"preprocess.out={out} is a file; give a folder for the aligned faces.")
    out.mkdir(parents=True, exist_ok=True)
    _refuse_foreign_output(out)
    with exclusive_output(out):
        claim_output(out, settings.fingerprint())  # never mix settings in one output folder
        _remove_leftovers(out)
        return _run(ordered, settings, out, workers=workers, progress=progress, meta=meta)


def _run(
    ordered: Sequence[RawItem],
    settings: Settings,
    out: Path,
    *,
    workers: int,
    progress: str,
    meta: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """Reuse finished records, process the rest, write manifest.csv and preprocess.json."""
    records: dict[str, dict[str, Any]] = {}
    todo: list[RawItem] = []
    for item in ordered:
        record = load_record(out, item.sample_id)
        if record is not None and reusable(out, record, Path(item.path)):
            records[item.sample_id] = record
        else:
            todo.append(item)
    reused = len(records)
    if reused:
        log.info("preprocess: %d of %d images already done in %s", reused, len(ordered), out)

    if todo:
        workers = max(1, min(workers, len(todo)))
        results = _run_inline(todo, settings, out) if workers == 1 else _run_pool(todo, settings, out, workers)
        try:
            with Progress(len(todo), progress) as bar:
                for record in results:
                    records[record["sample_id"]] = record
                    bar.advance(failed=record["status"] != "ok")
        except KeyboardInterrupt:
            raise FermixError(
                f"preprocessing was interrupted after {len(records)} of {len(ordered)} images; finished images "
                f"are kept, so running the same command again continues from there"
            ) from None

    write_manifest(out, ordered, records)
    return write_report(
        out,
        ordered,
        records,
        settings,
        counts={"processed": len(todo), "reused": reused},
        meta=meta or {},
    )
