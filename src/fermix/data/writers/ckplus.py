"""Write samples in CK+'s raw published layout (the `ckplus` reader lists it for `fermix preprocess`).

  cohn-kanade-images/<Subj>/<Seq>/<Subj>_<Seq>_<frame:08d>.png
  Emotion/<Subj>/<Seq>/<Subj>_<Seq>_<last frame:08d>_emotion.txt     ("   5.0000000e+00")

Samples become sequences: by their `video` key when they have one, else one sequence per subject
and expression, frames in `frame` order (else the order given). A sequence is labelled with its
last frame's class (CK+ labels the peak); a sequence whose last frame is unlabelled gets no
emotion file, as CK+'s unlabelled sequences have none. Subjects that are not CK+-style ids
(`S` + digits) are renumbered S001, S002, ... in order of appearance; splits are ignored (CK+
has none).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from fermix.data.datasets.ckplus import EMOTION_CODES
from fermix.data.label_spaces import canonical_name
from fermix.data.writers import WriterSample
from fermix.data.writers.images import write_image
from fermix.errors import FermixError
from fermix.utils.io import atomic_write_text

_CODE_OF = {canonical_name(n): i for i, n in enumerate(EMOTION_CODES)}


def write_ckplus(samples: Iterable[WriterSample], out: Path, **_: object) -> Path:
    out = Path(out)
    sequences = group_sequences(samples, by_video=True)
    subjects = subject_ids((subject for subject, _ in sequences), prefix="S")
    seq_numbers: dict[str, int] = {}
    for (subject, _), frames in sequences.items():
        subj = subjects[subject]
        seq_numbers[subj] = seq_numbers.get(subj, 0) + 1
        seq = f"{seq_numbers[subj]:03d}"
        for k, s in enumerate(frames, start=1):
            write_image(out / "cohn-kanade-images" / subj / seq / f"{subj}_{seq}_{k:08d}.png", np.asarray(s["image"]))
        label = frames[-1].get("expr")
        if label is None:
            continue
        code = _CODE_OF.get(canonical_name(str(label)))
        if code is None:
            raise FermixError(f"sample {frames[-1]['sample_id']} has class `{label}`, which CK+ has no code for.")
        name = f"{subj}_{seq}_{len(frames):08d}_emotion.txt"
        atomic_write_text(out / "Emotion" / subj / seq / name, f"   {float(code):.7e}\n")
    return out


# Shared with the Oulu-CASIA writer (the other raw sequence layout).


def group_sequences(samples: Iterable[WriterSample], by_video: bool) -> dict[tuple[str, str], list[WriterSample]]:
    """Samples grouped into sequences keyed (subject, video or class), in order of first appearance;
    frames within a sequence sorted by their `frame` key (stable, so unnumbered frames keep their order)."""
    groups: dict[tuple[str, str], list[WriterSample]] = {}
    for s in samples:
        subject = str(s.get("subject") or "")
        video = s.get("video") if by_video else None
        key = (subject, f"video:{video}" if video else f"expr:{s.get('expr')}")
        groups.setdefault(key, []).append(s)
    for frames in groups.values():
        if all(f.get("frame") is not None for f in frames):
            frames.sort(key=lambda f: int(f["frame"]))
    return groups


def subject_ids(subjects: Iterable[str], prefix: str) -> dict[str, str]:
    """Each subject as a dataset-style id (`prefix` + digits): kept when it is one, else the next free
    `prefix`NNN in order of appearance."""
    ordered = list(dict.fromkeys(subjects))
    pattern = re.compile(rf"{re.escape(prefix)}\d+")
    taken = {s for s in ordered if pattern.fullmatch(s)}
    fresh = _fresh_ids(prefix, taken)
    return {s: s if s in taken else next(fresh) for s in ordered}


def _fresh_ids(prefix: str, taken: set[str]) -> Iterator[str]:
    n = 0
    while True:
        n += 1
        candidate = f"{prefix}{n:03d}"
        if candidate not in taken:
            yield candidate
