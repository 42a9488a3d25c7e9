"""DMUE's noisy-label experiment (spec dmue.md §7.2) on synthetic faces, and its inference cost.

Data: dataset=synthetic_noisy (7 classes × 3 capture styles, 64 px, 2100 train / 420 val / 840 test
faces, disjoint subjects), with `dataset.noise` = 0, 0.2, 0.4 (symmetric: exactly that share of
each class's training and validation labels moved to a uniformly drawn other class), and one
"ambiguous" setting: no flipped labels, but half of all faces blend a second expression prototype
(`dataset.ambiguity=0.5`, primary weight 0.55-0.8; the label is the primary class). Test labels
are never flipped, so accuracy is measured against the clean class (checked per run below).

Models, same backbone (small_cnn width 16, 64 px), batch 72, Adam lr 1e-3, constant LR,
augmentation (random 64 of 72 crop + flip) and epochs:
  erm         backbone + GAP + linear, cross-entropy; plain shuffling
  dmue            the CPU recipe (experiment=dmue_synthetic_noisy): the uncertainty
                  MLP and BN-neck scale trained (the recipe's train_ue_head=true): fermix's variant;
                  heads at 10× the LR, ramp α = 2 of 10 epochs, γ = 10
  dmue_fixed      the same with the uncertainty MLP and the BN-neck scale left at their
                  initialisation, as the original code does (the original: method.train_ue_head=false
                  method.train_bnneck_weight=false)
  dmue_gamma1000  the CPU recipe with the paper's γ = 1000 (--models dmue_gamma1000; not in the
                  default grid: it stays at chance, see docs/results/dmue.md)
Reported: test accuracy of the final epoch (last.ckpt) and of the validation-selected epoch
(best.ckpt, selected on the validation split, noisy like training), mean ± std over seeds; for
dmue the mean uncertainty score s of the flipped (or blended) training samples against the others
and AUROC(−s → flipped / blended), computed with the final model over the training split.

With --trunk expression (the older spelling --pretrained-trunk does the same) every model (erm too) starts
from a small_cnn trunk ERM-trained first on synthetic faces of another data seed (dataset.seed=7: other
people, same expressions; clean labels), a stand-in for the paper's face-pretrained ResNet-18 (a stronger one:
it learnt expressions, not identities). With --trunk identity they start from the trunk trained to tell
synthetic people apart (the MS-Celeb analogue). benchmarks/pretrain_trunks.py builds and caches both.
Per run also the final training loss and the final model's accuracy on its un-augmented training split,
against the labels it trained on (noisy ones included: how much of the noise it memorised).

Then the inference cost of the exported model against the training graph: parameters, forward
FLOPs (torch.utils.flop_counter) and CPU time per image (one thread), for small_cnn at 64 px and for the
paper's ResNet-18 at 224 px (C = 8).

    nice -n 10 python benchmarks/dmue_synthetic.py [--seeds 0 1 2] [--epochs 10] [--out runs/bench_dmue]
    nice -n 10 python benchmarks/dmue_synthetic.py --pretrained-trunk --conditions "noise 20%" \
        --models erm dmue dmue_fixed dmue_gamma1000 --out runs/bench_dmue_pretrained --no-cost
    nice -n 10 python benchmarks/dmue_synthetic.py --trunk identity --conditions "noise 20%" "noise 40%" \
        "ambiguous 50%" --out runs/bench_dmue_identity --no-cost

Runs are resumable: finished runs (summary.json present) are not retrained. Besides <out>/<table>.json and
.md, writes <out>/results.json (<out>/results_<table>.json for another --table) in the shared shape of
benchmarks/_results.py.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch.utils.flop_counter import FlopCounterMode

from fermix.data.info import DataInfo
from fermix.data.label_spaces import LabelSpace
from fermix.engine.build import build_method
from fermix.engine.checkpoint import load_checkpoint
from fermix.engine.datamodule import FermixDataModule
from fermix.engine.evaluate import predict_split
from fermix.methods.dmue import DMUE
from fermix.methods.dmue.model import batch_is_valid
from fermix.utils.io import atomic_write_json, atomic_write_text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import TRUNKS, final_train_loss, row, train_accuracy, trunk_overrides, write_results

ROOT = Path(__file__).resolve().parents[1]
CONDITIONS = {
    "noise 0%": ["dataset.noise=0.0"],
    "noise 20%": ["dataset.noise=0.2"],
    "noise 40%": ["dataset.noise=0.4"],
    "ambiguous 50%": ["dataset.noise=0.0", "dataset.ambiguity=0.5"],
}
MODELS = {
    "erm": ["method=erm"],
    "dmue": ["experiment=dmue_synthetic_noisy"],  # method=dmue with its CPU recipe (configs/experiment/)
    "dmue_fixed": ["experiment=dmue_synthetic_noisy", "method.train_ue_head=false", "method.train_bnneck_weight=false"],
    "dmue_gamma1000": ["experiment=dmue_synthetic_noisy", "method.sp_weight=1000"],  # not in the default grid
}
SHARED = [
    "dataset=synthetic_noisy",
    "backbone.width=16",
    "data.batch_size=72",
    "optim=adam",
    "optim.lr=1e-3",
    "data.num_workers=1",
    "trainer.accelerator=cpu",
    "logger=csv",
    "progress=none",
]


def _slug(text: str) -> str:
    return text.replace(" ", "_").replace("%", "")


def _fermix_train(args: list[str]) -> None:
    start = time.monotonic()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # many small ops: one thread is far faster on a busy CPU
    subprocess.run(
        [sys.executable, "-m", "fermix", "train", *args], check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL
    )
    print(f"  {time.monotonic() - start:.0f} s", flush=True)


def train(condition: str, model: str, seed: int, epochs: int, out: Path, extra: list[str]) -> Path:
    run_dir = out / _slug(condition) / model / f"seed{seed}"
    if (run_dir / "summary.json").is_file():
        return run_dir
    print(f"training {model} · {condition} · seed {seed} ...", flush=True)
    _fermix_train(
        [
            *SHARED,
            *CONDITIONS[condition],
            *MODELS[model],
            *extra,
            f"seed={seed}",
            f"trainer.max_epochs={epochs}",
            f"hydra.run.dir={run_dir}",
        ]
    )
    return run_dir


def _load(path: Path, augment: bool = True) -> tuple[Any, FermixDataModule]:
    ckpt = load_checkpoint(path)
    cfg = ckpt["fermix"]["config"]
    # the checkpoint holds every weight: initial weights files are not read again
    method_cfg = {**cfg["method"], "pretrained": None} if "pretrained" in cfg["method"] else cfg["method"]
    backbone_cfg = {**cfg["backbone"], "pretrained": None}
    data = {**cfg["data"], "num_workers": 0}
    if not augment:
        data["augment"] = {"random_crop": False, "hflip": 0.0}
    dm = FermixDataModule(cfg["dataset"], data, seed=int(cfg["seed"]))
    method = build_method(method_cfg, backbone_cfg, dm.build())
    method.load_state_dict({k.removeprefix("method."): v for k, v in ckpt["state_dict"].items()})
    return method, dm


def _clean_test_labels(dm: FermixDataModule) -> torch.Tensor:
    """The test split's observed labels, after checking they equal the generator's clean classes."""
    meta = dm.adapter.splits["test"].meta
    assert np.array_equal(np.asarray(meta["expr"]), np.asarray(meta["cls"])), "flipped labels in the test split"
    return torch.as_tensor(dm.split_records("test")["expr"].to_numpy().copy())


def clean_test_accuracy(path: Path) -> float:
    method, dm = _load(path)
    labels = _clean_test_labels(dm)
    preds = predict_split(method, dm.loader("test"), torch.device("cpu"))
    assert torch.equal(preds["expr"], labels)
    return float((preds["expr_logits"].argmax(1) == labels).float().mean())


@torch.no_grad()
def uncertainty_diagnostic(path: Path) -> dict[str, float]:
    """Mean s of the training samples whose label is wrong (flipped) or ambiguous (a blend of two
    expressions) against the others, and AUROC(−s → wrong/ambiguous): final model, eval mode,
    un-augmented images in class-balanced batches of 72 as in training (s needs every class)."""
    method, dm = _load(path, augment=False)
    if not isinstance(method, DMUE):
        return {}
    dataset = dm.dataset("train")
    meta = dm.adapter.splits["train"].meta
    rows = dm.split_records("train")["row"].to_numpy()
    flagged = (np.asarray(meta["expr"]) != np.asarray(meta["cls"])) | (np.asarray(meta["blend_cls"]) >= 0)
    method.eval()
    keys = [i for i, _ in method.train_sampler(dataset)]
    scores: dict[int, list[float]] = {}
    for start in range(0, len(keys) - 71, 72):
        idx = keys[start : start + 72]
        batch = [dataset[i] for i in idx]
        labels = torch.stack([b["expr"] for b in batch])
        if not batch_is_valid(labels, method.num_classes):
            continue
        out = method.forward_from_layer3(method.trunk(torch.stack([b["image"] for b in batch])), labels)
        for i, s in zip(idx, out["score"].squeeze(1).tolist(), strict=True):
            scores.setdefault(i, []).append(s)
    ids = sorted(scores)
    s = np.array([np.mean(scores[i]) for i in ids])
    f = flagged[rows[ids]]
    if not 0 < f.sum() < len(f):
        return {"s_clean": float(s.mean())}
    return {"s_clean": float(s[~f].mean()), "s_flagged": float(s[f].mean()), "auroc": float(roc_auc_score(f, -s))}


def evaluate(run_dir: Path) -> dict[str, float]:
    result = {
        "final": clean_test_accuracy(run_dir / "checkpoints" / "last.ckpt"),
        "best": clean_test_accuracy(run_dir / "checkpoints" / "best.ckpt"),
    }
    result.update(uncertainty_diagnostic(run_dir / "checkpoints" / "last.ckpt"))
    result["train_loss"] = final_train_loss(run_dir)
    result["train_acc"] = train_accuracy(run_dir / "checkpoints" / "last.ckpt")
    return result


# --- inference cost ---------------------------------------------------------------------------
def _cost(module: torch.nn.Module, run: Any, repeats: int = 5) -> dict[str, float]:
    params = sum(p.numel() for p in module.parameters())
    with torch.no_grad():
        with FlopCounterMode(display=False) as counter:
            run()
        run()  # warm-up
        start = time.perf_counter()
        for _ in range(repeats):
            run()
        seconds = (time.perf_counter() - start) / repeats
    return {"params_M": params / 1e6, "gflops": counter.get_total_flops() / 1e9, "seconds": seconds}


def inference_cost(backbone: dict[str, Any], num_classes: int, size: int, batch: int) -> dict[str, Any]:
    names = tuple(f"c{i}" for i in range(num_classes))
    info = DataInfo(label_space=LabelSpace("cost", names), keys=frozenset({"image", "expr"}), image_size=size)
    torch.manual_seed(0)
    method = DMUE(DMUE.make_config({}), info, backbone).eval()
    exported = method.export()
    images = torch.randn(batch, 3, size, size)
    labels = torch.arange(num_classes).repeat(batch // num_classes + 1)[:batch]
    training = _cost(method, lambda: method.forward_from_layer3(method.trunk(images), labels))
    target = _cost(exported, lambda: exported(images))
    for cost in (training, target):
        cost["ms_per_image"] = 1000 * cost.pop("seconds") / batch
        cost["gflops"] /= batch
    return {
        "backbone": backbone["name"],
        "size": size,
        "classes": num_classes,
        "batch": batch,
        "training_graph": training,
        "exported": target,
    }


def _fmt(values: list[float]) -> str:
    values = [v for v in values if v == v]  # drop NaN
    if not values:
        return "—"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.fmean(values):.1f} ± {100 * sd:.1f}"


def _fmt_s(values: list[float]) -> str:
    values = [v for v in values if v == v]
    if not values:
        return "—"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.3f} ± {sd:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_dmue")
    parser.add_argument("--models", nargs="+", default=["erm", "dmue", "dmue_fixed"])
    parser.add_argument("--table", default="table", help="name of the results files in --out")
    parser.add_argument("--no-cost", action="store_true", help="skip the inference-cost measurement")
    parser.add_argument("--conditions", nargs="+", default=list(CONDITIONS))
    parser.add_argument("--trunk", choices=TRUNKS, default="none", help="the backbone every model starts from")
    parser.add_argument("--pretrained-trunk", action="store_true", help="the same as --trunk expression")
    parser.add_argument(
        "--pretrain-epochs",
        type=int,
        default=None,
        help="epochs of the trunk's pretraining (default: benchmarks/pretrain_trunks.py's)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    trunk = "expression" if args.pretrained_trunk else args.trunk
    extra = trunk_overrides(trunk, "small_cnn", 16, epochs=args.pretrain_epochs)
    rows: dict[str, dict[str, list[dict[str, float]]]] = {c: {m: [] for m in args.models} for c in args.conditions}
    metrics = ("final", "best", "s_clean", "s_flagged", "auroc", "train_loss", "train_acc")
    for seed in args.seeds:
        for condition in args.conditions:
            for model in args.models:
                run_dir = train(condition, model, seed, args.epochs, args.out, extra)
                result = {"seed": seed, **evaluate(run_dir)}
                print(condition, model, result, flush=True)
                rows[condition][model].append(result)
                # after every run, so that an interrupted grid's results are readable (n says how many seeds)
                atomic_write_json(args.out / f"{args.table}.json", rows)
                shared = [row(m, k, {r["seed"]: r.get(k, float("nan")) for r in rs}, condition=c)
                          for c, by_model in rows.items() for m, rs in by_model.items() for k in metrics
                          if any(k in r for r in rs)]  # fmt: skip
                budget = {"epochs": args.epochs, "seeds": args.seeds, "conditions": args.conditions}
                name = "results.json" if args.table == "table" else f"results_{args.table}.json"
                write_results(args.out, "dmue_synthetic", trunk, shared, budget=budget, name=name)
    lines = ["| condition | model | final test acc | best-on-val test acc | s (others) | s (flipped / blended) "
             "| AUROC(−s → flipped / blended) | train loss (final) | train acc (final) |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for condition, by_model in rows.items():
        for model, rs in by_model.items():
            cells = [
                _fmt([r["final"] for r in rs]),
                _fmt([r["best"] for r in rs]),
                _fmt_s([r.get("s_clean", float("nan")) for r in rs]),
                _fmt_s([r.get("s_flagged", float("nan")) for r in rs]),
                _fmt_s([r.get("auroc", float("nan")) for r in rs]),
                _fmt_s([r.get("train_loss", float("nan")) for r in rs]),
                _fmt([r.get("train_acc", float("nan")) for r in rs]),
            ]
            lines.append(f"| {condition} | {model} | " + " | ".join(cells) + " |")
    costs = (
        []
        if args.no_cost
        else [
            inference_cost({"name": "small_cnn", "width": 16}, 7, 64, 72),
            inference_cost({"name": "resnet18"}, 8, 224, 16),
        ]
    )
    if costs:
        atomic_write_json(args.out / "inference_cost.json", costs)
        lines += [
            "",
            "| backbone | input | C | graph | params (M) | GFLOPs / image | CPU ms / image |",
            "|---|---|---|---|---|---|---|",
        ]
    for cost in costs:
        for graph in ("training_graph", "exported"):
            c = cost[graph]
            lines.append(
                f"| {cost['backbone']} | {cost['size']} px | {cost['classes']} | {graph} | "
                f"{c['params_M']:.2f} | {c['gflops']:.3f} | {c['ms_per_image']:.2f} |"
            )
    table = "\n".join(lines)
    print(table)
    atomic_write_text(args.out / f"{args.table}.md", table + "\n")


if __name__ == "__main__":
    main()
