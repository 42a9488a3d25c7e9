"""Write samples as an image folder: root/<split>/<class>/<stem>.png plus root/manifest.csv.

The folders alone are a valid `dataset=imagefolder` root; the manifest adds subjects and
landmarks (`dataset.manifest=manifest.csv`).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from fermix.data.manifest import COLUMNS, landmark_fields
from fermix.data.writers import WriterSample
from fermix.data.writers.images import write_png
from fermix.errors import FermixError
from fermix.utils.io import atomic_path


def write_imagefolder(samples: Iterable[WriterSample], out: Path, **_: object) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for s in samples:
        if s.get("expr") is None:
            raise FermixError(f"sample {s['sample_id']} has no expression label; an image folder needs one.")
        stem = str(s["sample_id"]).replace("/", "_")
        rel = Path(str(s["split"])) / str(s["expr"]) / f"{stem}.png"
        write_png(out / rel, s["image"])
        rows.append(
            {
                "sample_id": stem,
                "split": s["split"],
                "path": rel.as_posix(),
                "label": s["expr"],
                "native_label": s["expr"],
                "source": s.get("domain", ""),
                "subject": s.get("subject", ""),
                **landmark_fields(s.get("landmarks")),
            }
        )
    with atomic_path(out / "manifest.csv") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    return out
