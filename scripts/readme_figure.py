"""Draw the README pictures from a real run, with the code TensorBoard's validation figures use.

    python scripts/readme_figure.py                    # `fermix train` (the synthetic default), then draw
    python scripts/readme_figure.py --ckpt runs/erm_synthetic/<run>/checkpoints/best.ckpt
    python scripts/readme_figure.py --confusion "" --samples "" \\
        --overlay docs/figures/au_align_overlay.png experiment=au_align_synthetic   # au_align's attention / CAMs

Trailing arguments are `fermix train` overrides (used only without --ckpt). The pictures are of the
checkpoint's `--split` (test by default: the split whose metrics the README quotes):
  confusion  the confusion matrix (engine/artifacts.py confusion_figure, as confusion_<split>.png)
  samples    16 faces spread over the classes with true class, prediction and probability
             (engine/figures.py prediction_grid, TensorBoard's val/samples)
  overlay    the method's evaluation figure (au_align: image, AU map, attention, CAMs), on the samples
             `fermix test` draws it on (engine/evaluate.py figure_batch)
An empty path skips a picture.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import default_collate

from fermix.engine.artifacts import confusion_figure
from fermix.engine.datamodule import FermixDataModule
from fermix.engine.evaluate import figure_batch, method_figures, predict_split
from fermix.engine.figures import prediction_grid, sample_indices
from fermix.engine.restore import restore_method
from fermix.metrics import ExpressionMetrics, scalar_metrics
from fermix.utils.io import atomic_path

FIGURES = Path("docs/figures")


def train(run_dir: Path, overrides: list[str]) -> Path:
    """`fermix train OVERRIDES` into run_dir, as a user runs it; returns its best.ckpt."""
    command = [sys.executable, "-m", "fermix", "train", f"hydra.run.dir={run_dir}", "progress=plain", *overrides]
    print("$", " ".join(command[1:]), flush=True)
    subprocess.run(command, check=True)
    summary = json.loads((run_dir / "summary.json").read_text())
    print("run:", run_dir, "| best epoch", summary["best_epoch"], "|", f"{summary['seconds']:.0f} s")
    for split, metrics in summary["metrics"].items():
        print(f"  {split}:", ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    return run_dir / "checkpoints" / "best.ckpt"


def restore(ckpt_path: Path) -> tuple[Any, FermixDataModule, dict[str, Any]]:
    """The trained method and its datamodule, rebuilt from the checkpoint alone (as `fermix test`)."""
    method, meta, trained = restore_method(ckpt_path)
    dm = FermixDataModule(trained.dataset, trained.data, seed=int(trained.seed))
    dm.build()
    return method.eval(), dm, meta


def save(figure: Any, path: Path, dpi: int | None = None, colours: int = 256) -> None:
    """The figure as a palette PNG: the README pictures stay small (at most 200 KB, not 300+)."""
    from PIL import Image

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi or figure.dpi)
    image = Image.open(buffer).convert("RGB").quantize(colors=colours)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG", optimize=True)
    print(f"wrote {path} ({path.stat().st_size // 1024} KB)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", type=Path, help="a fermix checkpoint; without it, `fermix train` runs first")
    parser.add_argument("--run-dir", type=Path, default=Path("runs/readme_figure"), help="where training writes")
    parser.add_argument("--split", default="test")
    parser.add_argument("--confusion", default=str(FIGURES / "confusion_synthetic.png"))
    parser.add_argument("--samples", default=str(FIGURES / "samples_synthetic.png"))
    parser.add_argument("--overlay", default="", help="the method's evaluation figure (au_align overlays)")
    parser.add_argument("--sample-images", type=int, default=16)
    args, overrides = parser.parse_known_args(argv)

    ckpt = args.ckpt or train(args.run_dir, overrides)
    method, dm, meta = restore(ckpt)
    device = torch.device("cpu")
    split, classes = args.split, list(method.data_info.label_space.classes)
    name = f"{meta['method']} on {meta['dataset']}"

    preds = predict_split(method, dm.loader(split), device)
    metrics = ExpressionMetrics(len(classes), sync_across_ranks=False)
    metrics.update(preds["expr_logits"], preds["expr"])
    values = metrics.compute()
    acc = scalar_metrics(values)["acc"]
    print(f"{name}, {split} split: acc {acc:.4f} over {len(preds['sample_id'])} faces")
    if args.confusion:
        title = f"{name} · {split} split · accuracy {acc:.3f}"
        save(confusion_figure(values["confusion"], classes, title=title, dpi=100), Path(args.confusion))

    dataset = dm.dataset(split)
    labels = preds["expr"].numpy()
    if args.samples:
        picked = sample_indices(labels, args.sample_images, len(dataset))
        batch = default_collate([dataset[i] for i in picked])
        figure = prediction_grid(method, batch, meta["preprocessing"], device, title=f"{name} · {split} faces")
        save(figure, Path(args.samples))
    if args.overlay:
        if method.figure_samples_per_class <= 0:
            raise SystemExit(f"method {method.name} draws no evaluation figures")
        batch = figure_batch(dm.loader(split).dataset, preds["expr"], method.figure_samples_per_class, None)
        (figure,) = method_figures(method, batch, device).values()
        save(figure, Path(args.overlay), dpi=80, colours=128)


if __name__ == "__main__":
    main()
