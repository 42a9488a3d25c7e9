"""Trainer overhead: images/s of fermix's training loop against a bare PyTorch loop, same process.

    python benchmarks/trainer_overhead.py [--sizes 64 112] [--batch 64] [--steps 40] [--repeats 3] [--no-write]

Both loops train the same `erm` model (ResNet-18 by default) on the same batches, already in
memory, with the same optimizer (Adam), batch and thread count. They differ only in what runs
around the step:
  bare     for batch: zero_grad, forward, cross-entropy, backward, step;
  fermix   lightning.Trainer + FermixModule exactly as `fermix train` builds them (loggers, progress,
           checkpoint callbacks, per-step logging of train/loss and its terms, skip-batch bookkeeping).
Each timing covers `--steps` steps after `--warmup` warm-up steps; the two loops alternate within
each repeat and the table gives medians over repeats and the median of per-repeat ratios.
The table is printed and written to docs/performance.md, section "Trainer overhead".
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from _doc import machine, write_section
from hydra import compose, initialize_config_dir

from fermix.cli import config_dir
from fermix.engine.build import build_method
from fermix.engine.datamodule import FermixDataModule
from fermix.engine.module import FermixModule
from fermix.engine.rundir import register_resolvers
from fermix.engine.train import _trainer, _trainer_cfg

SECTION = "## Trainer overhead"


def compose_cfg(size: int, batch: int, backbone: str, run_dir: Path):
    register_resolvers()
    overrides = [f"backbone={backbone}", f"data.image_size={size}", f"data.resize={size}", f"data.batch_size={batch}",
                 "trainer.accelerator=cpu", "checkpoint.monitor=null", "progress=plain", f"hydra.run.dir={run_dir}"]
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def in_memory_batches(cfg, count: int) -> tuple[list[dict[str, torch.Tensor]], object]:
    dm = FermixDataModule(cfg.dataset, cfg.data, seed=0)
    info = dm.build()
    loader = dm.loader("train", train=True, batch_size=int(cfg.data.batch_size))
    batches = []
    while len(batches) < count:
        for batch in loader:
            if len(batch["expr"]) == int(cfg.data.batch_size):
                batches.append({"image": batch["image"].contiguous(), "expr": batch["expr"], "index": batch["index"]})
            if len(batches) == count:
                break
    return batches, info


class Window(pl.Callback):
    """Wall time from the start of step `warmup` to the end of the last step."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.t0, self.t1 = warmup, 0.0, 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == self.warmup:
            self.t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.t1 = time.perf_counter()


def time_bare(cfg, info, batches, warmup: int) -> float:
    torch.manual_seed(0)
    method = build_method(cfg.method, cfg.backbone, info)
    method.train()
    opt = torch.optim.Adam(method.parameters(), lr=float(cfg.optim.lr))
    t0 = 0.0
    for i, batch in enumerate(batches):
        if i == warmup:
            t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        logits, _ = method(batch["image"])
        F.cross_entropy(logits, batch["expr"]).backward()
        opt.step()
    return time.perf_counter() - t0


def time_fermix(cfg, info, batches, warmup: int, run_dir: Path) -> float:
    torch.manual_seed(0)
    method = build_method(cfg.method, cfg.backbone, info)
    trainer_cfg, clip = _trainer_cfg(cfg, method)
    module = FermixModule(method, cfg.optim, cfg.sched, {"config": {}}, clip=clip)
    trainer_cfg.update(max_epochs=1, num_sanity_val_steps=0)
    trainer = _trainer(cfg, run_dir, run_dir / "checkpoints", trainer_cfg)
    window = Window(warmup)
    trainer.callbacks.append(window)
    trainer.fit(module, train_dataloaders=batches)  # a list of batches is an iterable Lightning accepts
    return window.t1 - window.t0


class Replay:
    """The in-memory batches as one iterable (a bare list would read as several dataloaders)."""

    def __init__(self, batches: list) -> None:
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def measure(size: int, args) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp)
        cfg = compose_cfg(size, args.batch, args.backbone, run_dir)
        batches, info = in_memory_batches(cfg, args.warmup + args.steps)
        bare, ours = [], []
        for r in range(args.repeats):
            order = ("bare", "fermix") if r % 2 == 0 else ("fermix", "bare")
            for which in order:
                if which == "bare":
                    bare.append(time_bare(cfg, info, batches, args.warmup))
                else:
                    ours.append(time_fermix(cfg, info, Replay(batches), args.warmup, run_dir / f"r{r}"))
    images = args.steps * args.batch
    return {
        "bare": images / statistics.median(bare),
        "fermix": images / statistics.median(ours),
        "ratio": statistics.median(b / f for b, f in zip(bare, ours, strict=True)),
    }


def render(rows: list[dict], args, env: str) -> str:
    lines = [
        SECTION,
        "",
        f"`python benchmarks/trainer_overhead.py --sizes {' '.join(map(str, args.sizes))} --batch {args.batch} "
        f"--steps {args.steps} --warmup {args.warmup} --repeats {args.repeats} --threads {args.threads}` ({env}).",
        "Both loops train `erm` on the same in-memory batches with Adam; `fermix` is lightning.Trainer + "
        "FermixModule as `fermix train` builds them (loggers, progress, checkpoint callbacks, per-step logging, "
        "the skip and non-finite checks). Images/s are medians over repeats; the ratio is the median of "
        "per-repeat ratios fermix/bare (goal ≥ 0.97).",
        "",
        "| model | bare loop img/s | fermix img/s | fermix / bare |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {r['name']} | {r['bare']:.1f} | {r['fermix']:.1f} | {r['ratio']:.3f} |" for r in rows]
    worst = min(r["ratio"] for r in rows)
    lines.append("")
    if worst >= 0.97:
        lines.append(f"The goal holds: the slowest configuration keeps {worst:.1%} of the bare loop's throughput.")
    else:
        lines.append(f"The goal does not hold: the worst configuration keeps {worst:.1%} of the bare loop's "
                     "throughput; see the profile notes below.")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 112])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    env = machine()
    rows = []
    for size in args.sizes:
        rows.append({"name": f"{args.backbone}, {size} px, batch {args.batch}", **measure(size, args)})
        print(rows[-1], flush=True)
    text = render(rows, args, env)
    print(text)
    if not args.no_write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
