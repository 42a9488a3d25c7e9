"""Write samples in Oulu-CASIA's raw published layout (the `oulu_casia` reader lists it for preprocessing).

  <modality>/<illumination>/<P###>/<Emotion>/<frame:03d>.jpeg      (default VL/Strong)

Oulu-CASIA has one sequence per subject and emotion, so samples are grouped by (subject,
expression), frames in `frame` order (else the order given), numbered from 000. Only the six
Oulu-CASIA emotions can be written. Subjects that are not Oulu-style ids (`P` + digits) are
renumbered P001, P002, ... in order of appearance; splits are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from fermix.data.datasets.oulu_casia import EMOTIONS, ILLUMINATIONS, MODALITIES
from fermix.data.label_spaces import canonical_name
from fermix.data.writers import WriterSample
from fermix.data.writers.ckplus import group_sequences, subject_ids
from fermix.data.writers.images import write_image
from fermix.errors import FermixError

_FOLDER_OF = {canonical_name(e): e for e in EMOTIONS}


def write_oulu_casia(
    samples: Iterable[WriterSample], out: Path, modality: str = "VL", illumination: str = "Strong", **_: object
) -> Path:
    out = Path(out)
    if modality not in MODALITIES or illumination not in ILLUMINATIONS:
        raise FermixError(
            f"modality={modality}, illumination={illumination}: use one of {MODALITIES} and one of {ILLUMINATIONS}."
        )
    sequences = group_sequences(samples, by_video=False)
    subjects = subject_ids((subject for subject, _ in sequences), prefix="P")
    for (subject, _), frames in sequences.items():
        label = frames[0].get("expr")
        folder = _FOLDER_OF.get(canonical_name(str(label))) if label is not None else None
        if folder is None:
            raise FermixError(
                f"sample {frames[0]['sample_id']} has class `{label}`; Oulu-CASIA has only {', '.join(EMOTIONS)}."
            )
        base = out / modality / illumination / subjects[subject] / folder
        for k, s in enumerate(frames):
            write_image(base / f"{k:03d}.jpeg", np.asarray(s["image"]))
    return out
