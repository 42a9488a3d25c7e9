"""The two files a preprocessing run leaves for its readers: manifest.csv and preprocess.json.

The manifest (columns in fermix.data.manifest) lists the aligned faces with their labels and
landmarks in the aligned image's pixel coordinates; it makes the output folder a dataset that
`dataset=imagefolder dataset.root=OUT` reads. preprocess.json records how the faces were made
and which photos failed, and why.
"""

from __future__ import annotations

import csv
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fermix import __version__
from fermix.data.manifest import COLUMNS, landmark_fields
from fermix.data.raw import RawItem
from fermix.preprocess.models import dlib_version
from fermix.preprocess.settings import Settings
from fermix.utils.io import atomic_path, atomic_write_json

MANIFEST_FILE = "manifest.csv"
REPORT_FILE = "preprocess.json"


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def manifest_rows(items: Sequence[RawItem], records: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per aligned face, in the items' (sample_id) order; failed photos are not listed."""
    rows = []
    for item in items:
        record = records.get(item.sample_id)
        if record is None or record["status"] != "ok":
            continue
        rows.append(
            {
                "sample_id": item.sample_id,
                "split": _text(item.split),
                "path": record["image"],
                "label": _text(item.label),
                "native_label": _text(item.native_label),
                "source": item.source,
                "subject": _text(item.subject),
                **landmark_fields(np.asarray(record["landmarks"], dtype=np.float64)),
            }
        )
    return rows


def write_manifest(out: Path, items: Sequence[RawItem], records: Mapping[str, Mapping[str, Any]]) -> Path:
    path = out / MANIFEST_FILE
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(COLUMNS))
        writer.writeheader()
        writer.writerows(manifest_rows(items, records))
    return path


def versions() -> dict[str, str]:
    import cv2

    return {
        "fermix": __version__,
        "dlib": dlib_version(),
        "opencv": str(cv2.__version__),
        "numpy": str(np.__version__),
        "python": platform.python_version(),
    }


def write_report(
    out: Path,
    items: Sequence[RawItem],
    records: Mapping[str, Mapping[str, Any]],
    settings: Settings,
    counts: Mapping[str, int],
    meta: Mapping[str, Any],
) -> dict[str, Any]:
    """Write preprocess.json: versions, template, settings, counts and every failure with its reason."""
    done = [records[i.sample_id] for i in items if i.sample_id in records]
    failures = [
        {"sample_id": r["sample_id"], "path": r.get("raw_path", ""), "reason": r.get("reason", "")}
        for r in done
        if r["status"] != "ok"
    ]
    report = {
        **dict(meta),
        "versions": versions(),
        "template": settings.template.to_dict(),
        "settings": {**settings.fingerprint(), "landmark_model_path": str(settings.landmark_model)},
        "counts": {
            "items": len(items),
            "aligned": sum(r["status"] == "ok" for r in done),
            "failed": len(failures),
            "multiple_faces": sum(int(r.get("faces") or 0) > 1 for r in done),
            **dict(counts),
        },
        "manifest": MANIFEST_FILE,
        "failures": failures,
    }
    atomic_write_json(out / REPORT_FILE, report)
    return report
