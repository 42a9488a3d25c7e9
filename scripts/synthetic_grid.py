"""Draw a grid of synthetic faces, one row per class, one column per sample.

    python scripts/synthetic_grid.py [--out docs/img/synthetic_grid.png] [--size 96] [--per-class 8]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from fermix.data.synthetic.config import SyntheticConfig
from fermix.data.synthetic.design import class_names, split_table
from fermix.data.synthetic.generate import render_split


def grid(size: int, per_class: int, seed: int, classes: str) -> np.ndarray:
    cfg = SyntheticConfig(seed=seed, image_size=size, classes=classes, train_per_cell=per_class)
    table = split_table(cfg, "train")
    images = render_split(cfg, table).images
    label_w = 110
    rows = []
    for c, name in enumerate(class_names(cfg)):
        picks = np.flatnonzero(table.cls == c)[:per_class]
        label = np.full((size, label_w, 3), 255, np.uint8)
        cv2.putText(label, name, (6, size // 2 + 6), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
        rows.append(np.concatenate([label, *images[picks]], axis=1))
    return np.concatenate(rows, axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs/img/synthetic_grid.png"))
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--per-class", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--classes", default="basic8")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), grid(args.size, args.per_class, args.seed, args.classes)[..., ::-1])
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
