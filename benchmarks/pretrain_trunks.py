"""Pretrained trunks for the image benchmarks: `identity` (face recognition) and `expression`.

Every image paper starts from a pretrained trunk (DMUE: a face-recognition ResNet-18 trained on MS-Celeb),
while the benchmarks' from-scratch runs start from random weights. This script writes two starts, as
backbone state dicts for `backbone.pretrained=PATH`, under pretrained_models/synthetic/ (git-ignored):

  identity    the MS-Celeb analogue: erm on dataset=synthetic_identity, which labels 300 synthetic people
              (none of them in any expression split of any preset or data seed) seen in all 5 capture styles
              and all 8 expression prototypes at random intensities (0-1). It learns faces, not expressions.
  expression  the stronger start DMUE's benchmark used first: erm on the expression classes of
              dataset=synthetic with dataset.seed=7 (other people than the benchmarks' data seeds 0-2),
              clean labels; exactly benchmarks/dmue_synthetic.py's former recipe (batch 72, Adam 1e-3,
              constant LR, 8 epochs, final epoch).

Names: <kind>_<backbone>[_w<width>]_<size>px[_e<epochs>].pt, e.g. identity_small_cnn_w32_64px.pt (the
epochs suffix only for a budget other than the default below). trunks.json next to them records, per
trunk, the final validation accuracy (identity: telling the 300 people apart on unseen faces of them,
chance 0.0033; expression: 7 classes on data seed 7's validation people), the test accuracy, the run
directory and the wall time.

Budget (fixed before the first run; one process, one thread, nice -n 10, on the 2-core CPU machine):
identity: erm, Adam lr 1e-3 with a cosine schedule to 0, batch 64, default augmentation (72 -> random
64 crop + flip), training seed 0, data seed 0, 9000 training faces (300 people x 30), final-epoch
weights (checkpoint.monitor=null); small_cnn 10 epochs, resnet18 6 epochs (estimated before the run on
an idle core: ~0.5 min/epoch at width 16, ~2 min at width 32, ~4.5 min for resnet18; measured times in
docs/synthetic.md). expression: the recipe above, 8 epochs for every backbone. No setting was tuned on
a result.

    nice -n 10 python benchmarks/pretrain_trunks.py
    nice -n 10 python benchmarks/pretrain_trunks.py --kinds identity --backbones small_cnn:16 resnet18 \
        --epochs 2 --out /tmp/trunks

A finished trunk is not retrained; a killed build resumes its run (`resume=auto`) on the next call.
Other scripts import `ensure_trunk(kind, backbone, width, image_size, epochs) -> Path`.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "pretrained_models" / "synthetic"
RUNS = ROOT / "runs" / "pretrain_trunks"
KINDS = ("identity", "expression")
# The image benchmarks' backbones: iern and multitask small_cnn width 32, au_align and dmue width 16; resnet18.
DEFAULT_BACKBONES = ("small_cnn:16", "small_cnn:32", "resnet18")
RECORD = "trunks.json"

# Everything but the backbone, the epochs and the run directory; see the docstring's budget.
RECIPES: dict[str, list[str]] = {
    "identity": [
        "method=erm",
        "dataset=synthetic_identity",
        "optim=adam",
        "optim.lr=1e-3",
        "sched=cosine",
        "data.batch_size=64",
        "checkpoint.monitor=null",
        "seed=0",
        "data.num_workers=0",
        "compute.threads=1",
        "trainer.accelerator=cpu",
        "logger=csv",
        "progress=none",
    ],
    # benchmarks/dmue_synthetic.py's SHARED list without its dataset, plus its pretraining arguments
    "expression": [
        "backbone.width=16",
        "data.batch_size=72",
        "optim=adam",
        "optim.lr=1e-3",
        "data.num_workers=1",
        "trainer.accelerator=cpu",
        "logger=csv",
        "progress=none",
        "method=erm",
        "dataset=synthetic",
        "dataset.seed=7",
        "seed=0",
    ],
}


def default_epochs(kind: str, backbone: str) -> int:
    if kind == "expression":
        return 8
    return 6 if backbone.startswith("resnet") else 10


def _check(kind: str, backbone: str, width: int | None) -> int | None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if backbone == "small_cnn":
        return 32 if width is None else int(width)
    if width is not None:
        raise ValueError(f"backbone {backbone} has no width (got width={width})")
    return None


def trunk_name(
    kind: str, backbone: str, width: int | None = None, image_size: int = 64, epochs: int | None = None
) -> str:
    """`identity_small_cnn_w32_64px`: the file stem of a trunk (and of its run directory)."""
    width = _check(kind, backbone, width)
    name = f"{kind}_{backbone}" + (f"_w{width}" if width is not None else "") + f"_{image_size}px"
    if epochs is not None and epochs != default_epochs(kind, backbone):
        name += f"_e{epochs}"
    return name


def train_overrides(kind: str, backbone: str, width: int | None, image_size: int, epochs: int) -> list[str]:
    """The `fermix train` overrides of a trunk's pretraining run (without its run directory)."""
    width = _check(kind, backbone, width)
    args = [a for a in RECIPES[kind] if not a.startswith("backbone.")]
    args.append(f"backbone={backbone}")
    if width is not None:
        args.append(f"backbone.width={width}")
    if image_size != 64:  # the generator renders at the input size; resize keeps the default 72/64 margin
        args += [f"dataset.image_size={image_size}", f"data.image_size={image_size}",
                 f"data.resize={round(image_size * 72 / 64)}"]  # fmt: skip
    return [*args, f"trainer.max_epochs={epochs}"]


def extract_trunk(ckpt: Path, dest: Path) -> Path:
    """The backbone of a fermix checkpoint (`method.backbone.*`) as a plain state dict at `dest`, written
    atomically: what `backbone.pretrained=PATH` loads."""
    import torch

    from fermix.engine.checkpoint import load_checkpoint
    from fermix.utils.io import atomic_path

    state = load_checkpoint(ckpt)["state_dict"]
    prefix = "method.backbone."
    trunk = {k.removeprefix(prefix): v.clone() for k, v in state.items() if k.startswith(prefix)}
    if not trunk:
        raise ValueError(f"{ckpt} has no method.backbone.* weights")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest) as tmp:
        torch.save(trunk, tmp)
    return dest


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """One builder per trunk: a second caller (another benchmark) waits, then finds the file."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _record(out: Path, name: str, entry: dict[str, Any]) -> None:
    from fermix.utils.io import atomic_write_json

    with _lock(out / f".{RECORD}.lock"):
        path = out / RECORD
        records = json.loads(path.read_text()) if path.is_file() else {}
        records[name] = entry
        atomic_write_json(path, dict(sorted(records.items())))


def ensure_trunk(
    kind: str,
    backbone: str,
    width: int | None = None,
    image_size: int = 64,
    epochs: int | None = None,
    *,
    out: Path | None = None,
    runs: Path | None = None,
    extra: Sequence[str] = (),
) -> Path:
    """The path of a `kind` ("identity" | "expression") trunk for `backbone` (small_cnn: `width`, default 32),
    built first if absent (resuming an interrupted build). `extra` overrides are for tests only."""
    out = Path(out) if out is not None else OUT
    runs = Path(runs) if runs is not None else RUNS
    epochs = default_epochs(kind, backbone) if epochs is None else int(epochs)
    name = trunk_name(kind, backbone, width, image_size, epochs)
    path = (out / f"{name}.pt").resolve()
    if path.is_file():
        return path
    with _lock(out / f".{name}.lock"):
        if path.is_file():  # built by another process while this one waited
            return path
        run_dir = runs / name
        if not (run_dir / "summary.json").is_file():
            resuming = (run_dir / "checkpoints" / "last.ckpt").is_file()
            print(f"{'resuming' if resuming else 'pretraining'} trunk {name} ({epochs} epochs) in {run_dir} ...",
                  flush=True)  # fmt: skip
            args = [*train_overrides(kind, backbone, width, image_size, epochs), *extra, "resume=auto",
                    f"hydra.run.dir={run_dir}"]  # fmt: skip
            env = {**os.environ, "OMP_NUM_THREADS": "1"}
            subprocess.run([sys.executable, "-m", "fermix", "train", *args], check=True, cwd=ROOT, env=env,
                           stdout=subprocess.DEVNULL)  # fmt: skip
        summary = json.loads((run_dir / "summary.json").read_text())
        extract_trunk(run_dir / "checkpoints" / "last.ckpt", path)
        _record(out, name, {
            "kind": kind, "backbone": backbone, "width": _check(kind, backbone, width), "image_size": image_size,
            "epochs": epochs, "epochs_trained": summary.get("epochs_trained"),
            "val_acc": summary["metrics"]["val"].get("acc"), "test_acc": summary["metrics"]["test"].get("acc"),
            "classes": len(summary["per_class_acc"]["val"]), "train_seconds": summary.get("seconds"),
            "run_dir": str(run_dir), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "overrides": [*train_overrides(kind, backbone, width, image_size, epochs), *extra],
        })  # fmt: skip
    return path


def _backbone_spec(spec: str) -> tuple[str, int | None]:
    """`small_cnn:16` -> ("small_cnn", 16); `resnet18` -> ("resnet18", None)."""
    name, _, width = spec.partition(":")
    return name, (int(width) if width else None)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--backbones", nargs="+", default=list(DEFAULT_BACKBONES),
                        help="backbone[:width], e.g. small_cnn:16 small_cnn:32 resnet18")  # fmt: skip
    parser.add_argument("--epochs", type=int, default=None, help="pretraining epochs (default: the docstring's budget)")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--out", type=Path, default=OUT, help="where the trunks and trunks.json go")
    args = parser.parse_args(argv)
    for kind in args.kinds:  # identity first: the benchmarks' new start
        for spec in args.backbones:
            backbone, width = _backbone_spec(spec)
            start = time.monotonic()
            path = ensure_trunk(kind, backbone, width, args.image_size, args.epochs, out=args.out)
            print(f"{path}  ({time.monotonic() - start:.0f} s)", flush=True)
    records = json.loads((args.out / RECORD).read_text()) if (args.out / RECORD).is_file() else {}
    for name, r in records.items():
        print(f"{name}: val acc {r['val_acc']:.4f}, test acc {r['test_acc']:.4f} ({r['classes']} classes)")


if __name__ == "__main__":
    main()
