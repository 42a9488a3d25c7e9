"""Data pipeline: training-loader throughput (decode + augment + collate) against the model's consumption rate.

    python benchmarks/data_pipeline.py [--workers 0 1 2] [--repeats 3] [--no-write]

Two sources with the CPU default pipeline (72 px resize, random 64 px crop, flip, batch 64):
  synthetic    the default dataset: generated faces cached as uint8 arrays (memory-mapped .npy);
  imagefolder  the same faces written as PNG files, decoded by OpenCV every epoch.
Loader rate: images/s of one pass over the training loader (first batch excluded: worker
start-up), median over repeats, for each `--workers`. Model rate: images/s of training steps of
the default model (`erm`, small_cnn) on in-memory batches, same thread count. The ratio
loader/model says how much faster the loader delivers than the model consumes (goal ≥ 4× at 2
workers). On a 2-core machine loader workers and the model share the cores, so the table also
gives one end-to-end epoch (loader + training in the same loop) per worker count.
The table is printed and written to docs/performance.md, section "Data pipeline".
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import torch
import torch.nn.functional as F
from _doc import machine, write_section
from hydra import compose, initialize_config_dir

from fermix.cli import config_dir
from fermix.engine.build import build_method
from fermix.engine.datamodule import FermixDataModule
from fermix.engine.rundir import register_resolvers

SECTION = "## Data pipeline"


def compose_cfg(overrides: list[str]):
    register_resolvers()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def write_png_folder(dm: FermixDataModule, out: Path) -> None:
    """The synthetic training faces as class-folder PNGs (what a preprocessed dataset looks like)."""
    records = dm.split_records("train")
    classes = dm.info.label_space.classes
    for _, row in records.iterrows():
        image = dm.adapter.load(row)["image"]
        folder = out / classes[int(row["expr"])]
        folder.mkdir(parents=True, exist_ok=True)
        name = str(row["sample_id"]).replace("/", "_").replace(":", "_")
        if not cv2.imwrite(str(folder / f"{name}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
            raise SystemExit(f"could not write {folder / name}.png")


def loader_rate(dm: FermixDataModule, workers: int, batch: int) -> float:
    dm.data_cfg["num_workers"] = workers
    loader = dm.loader("train", train=True, batch_size=batch)
    it = iter(loader)
    next(it)  # worker start-up and the first batch are not throughput
    start, images = time.perf_counter(), 0
    for b in it:
        images += len(b["expr"])
    return images / (time.perf_counter() - start)


def train_step(method, opt, batch: dict) -> None:
    opt.zero_grad(set_to_none=True)
    logits, _ = method(batch["image"])
    F.cross_entropy(logits, batch["expr"]).backward()
    opt.step()


def model_rate(cfg, info, batches: list[dict]) -> float:
    torch.manual_seed(0)
    method = build_method(cfg.method, cfg.backbone, info)
    method.train()
    opt = torch.optim.Adam(method.parameters(), lr=1e-3)
    start, images = 0.0, 0
    for i, b in enumerate(batches):
        if i == 2:
            start, images = time.perf_counter(), 0
        train_step(method, opt, b)
        images += len(b["expr"])
    return images / (time.perf_counter() - start)


def end_to_end_rate(cfg, info, dm: FermixDataModule, workers: int, batch: int) -> float:
    torch.manual_seed(0)
    method = build_method(cfg.method, cfg.backbone, info)
    method.train()
    opt = torch.optim.Adam(method.parameters(), lr=1e-3)
    dm.data_cfg["num_workers"] = workers
    it = iter(dm.loader("train", train=True, batch_size=batch))
    next(it)
    start, images = time.perf_counter(), 0
    for b in it:
        train_step(method, opt, b)
        images += len(b["expr"])
    return images / (time.perf_counter() - start)


def measure(name: str, overrides: list[str], args) -> list[dict]:
    cfg = compose_cfg(overrides)
    dm = FermixDataModule(cfg.dataset, cfg.data, seed=0)
    info = dm.build()
    batch = int(cfg.data.batch_size)
    batches = []
    for b in dm.loader("train", train=True, batch_size=batch):
        batches.append({"image": b["image"], "expr": b["expr"]})
        if len(batches) == 12:
            break
    model = statistics.median(model_rate(cfg, info, batches) for _ in range(args.repeats))
    rows = []
    for workers in args.workers:
        loader = statistics.median(loader_rate(dm, workers, batch) for _ in range(args.repeats))
        both = statistics.median(end_to_end_rate(cfg, info, dm, workers, batch) for _ in range(args.repeats))
        rows.append({"source": name, "workers": workers, "loader": loader, "model": model, "ratio": loader / model,
                     "end_to_end": both, "n": len(dm.split_records("train"))})  # fmt: skip
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    env = machine()
    with tempfile.TemporaryDirectory() as tmp:
        base = ["trainer.accelerator=cpu", f"paths.data_dir={tmp}/data"]
        rows = measure("synthetic (uint8 arrays)", base, args)
        src = FermixDataModule(compose_cfg(base).dataset, compose_cfg(base).data, seed=0)
        src.build()
        write_png_folder(src, Path(tmp) / "png")
        rows += measure("imagefolder (PNG decode)", [*base, "dataset=imagefolder", f"dataset.root={tmp}/png"], args)
    lines = [
        SECTION, "",
        f"`python benchmarks/data_pipeline.py --workers {' '.join(map(str, args.workers))} --repeats {args.repeats}` "
        f"({env}). CPU default pipeline: resize 72, random crop 64, flip, batch 64; model `erm` + small_cnn. "
        f"Medians over {args.repeats} repeats.", "",
        "| source | train images | workers | loader img/s | model img/s | loader / model | end-to-end img/s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]  # fmt: skip
    lines += [f"| {r['source']} | {r['n']} | {r['workers']} | {r['loader']:.0f} | {r['model']:.0f} | "
              f"{r['ratio']:.1f}× | {r['end_to_end']:.0f} |" for r in rows]  # fmt: skip
    at_two = [r for r in rows if r["workers"] == 2]
    lines.append("")
    if at_two:
        held = [r["source"] for r in at_two if r["ratio"] >= 4]
        missed = [f"{r['source']} ({r['ratio']:.1f}×)" for r in at_two if r["ratio"] < 4]
        lines.append(("Goal (≥ 4× at 2 workers) holds for: " + ", ".join(held) + ". " if held else "")
                     + ("Not met for: " + ", ".join(missed) + "." if missed else ""))  # fmt: skip
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
