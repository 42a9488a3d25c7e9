"""Write a synthetic dataset to disk in a published layout (for adapter tests or other tools).

    python scripts/write_synthetic.py --format imagefolder --out /tmp/faces [key=value ...]

key=value pairs set generator fields (see configs/dataset/synthetic.yaml), e.g.
`train_per_cell=20 bias=bias100 image_size=128`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from fermix.data.synthetic import SyntheticDataset
from fermix.data.writers import WRITERS, write


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--format", default="imagefolder", choices=sorted(WRITERS))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("fields", nargs="*", help="generator fields as key=value")
    args = parser.parse_args()
    cfg = {k: yaml.safe_load(v) for k, v in (f.split("=", 1) for f in args.fields)}
    dataset = SyntheticDataset({**cfg, "cache": False})
    root = write(args.format, dataset.writer_samples(), args.out)
    print(f"wrote {sum(len(s) for s in dataset.splits.values())} samples as {args.format} to {root}")


if __name__ == "__main__":
    main()
