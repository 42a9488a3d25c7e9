"""Generator throughput: synthetic faces per second in one process (one core), per image size.

    python benchmarks/synthetic_rate.py [--repeats 5]

Prints a markdown table (median of the repeats, and the spread) for docs/synthetic.md.
Rendering only: the on-disk cache write is not included.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2

from fermix.data.synthetic.config import SyntheticConfig
from fermix.data.synthetic.design import split_table
from fermix.data.synthetic.generate import person, render_split

cv2.setNumThreads(1)


def rate(size: int, per_cell: int, seed: int) -> float:
    cfg = SyntheticConfig(seed=seed, image_size=size, train_per_cell=per_cell)
    table = split_table(cfg, "train")
    person.cache_clear()
    start = time.perf_counter()
    render_split(cfg, table)
    return len(table) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rate(64, 5, 99)  # warm-up: imports, noise bank, grids
    print("| size | faces | faces/s (median) | min - max |")
    print("|---|---|---|---|")
    for size, per_cell in ((64, 100), (112, 50), (224, 15)):
        rates = [rate(size, per_cell, seed) for seed in range(args.repeats)]
        n = per_cell * 21
        print(f"| {size} px | {n} | {statistics.median(rates):.0f} | {min(rates):.0f} - {max(rates):.0f} |")


if __name__ == "__main__":
    main()
