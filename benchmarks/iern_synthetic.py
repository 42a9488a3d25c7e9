"""IERN's "spurious context" experiment (spec iern.md §7) on synthetic faces.

Data: dataset=synthetic_bias — 6 classes × 3 capture styles; in training every style withholds two
classes (MixBasic's Latin square, fold v1, bias100). OOD test = only the withheld (style, class)
cells; IID test = fresh faces from the trained cells (unseen subjects in both).

Models, same backbone (small_cnn, 64 px), optimiser (Adam β1 0.5, lr 2e-4), schedule (warm-up 2 +
8 + 20 linear decay = 30 epochs), batch 32, augmentation (default crop + flip) and final-epoch model:
  erm         backbone + GAP + linear, cross-entropy
  iern        the full method (C=64 on small_cnn's 4×4 map)
  iern_noint  IERN without intervention: same training, classify f_c(e) (method.intervention=none)
Per run: IID and OOD accuracy, and a linear probe (logistic regression on standardised features)
trained on the training split's features to predict the capture style, scored on the IID test
split: GAP(e) for IERN, GAP(backbone) for erm. For IERN also d_c's accuracy on e (test IID).

Per run also the final training loss and the final model's accuracy on its (un-augmented) training split.

With --trunk identity (or expression) every model, erm too, starts from that pretrained small_cnn trunk
(benchmarks/pretrain_trunks.py builds and caches it); --trunk none (the default) is the from-scratch run.
Fewer than 30 epochs scale the warm-up / constant / decay phases in proportion (a quick check only).

The protocol was fixed before the first run; the numbers are reported as they came out.

    python benchmarks/iern_synthetic.py [--seeds 0 1 2] [--epochs 30] [--out runs/bench_iern]
    nice -n 10 python benchmarks/iern_synthetic.py --trunk identity --out runs/bench_iern_identity

Runs are resumable: finished runs (summary.json present) are not retrained. Writes <out>/results.json
(the shared shape, benchmarks/_results.py), <out>/per_run.json and <out>/table.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fermix.engine.build import build_method
from fermix.engine.checkpoint import load_checkpoint
from fermix.engine.datamodule import FermixDataModule
from fermix.engine.evaluate import predict_split
from fermix.utils.io import atomic_write_json, atomic_write_text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import TRUNKS, final_train_loss, row, train_accuracy, trunk_overrides, write_results

ROOT = Path(__file__).resolve().parents[1]
MODELS = {
    "erm": ["method=erm"],
    "iern": ["experiment=iern_synthetic_bias"],  # method=iern with its CPU recipe (configs/experiment/)
    "iern_noint": ["experiment=iern_synthetic_bias", "method.intervention=none"],
}
# erm gets IERN's recipe explicitly (the iern arms get it from their method config and experiment).
SHARED = [
    "dataset=synthetic_bias",
    "optim=adam",
    "optim.lr=2e-4",
    "optim.betas=[0.5,0.999]",
    "sched=warmup_linear",
    "sched.warmup_epochs=2",
    "sched.hold_epochs=8",
    "data.batch_size=32",
    "checkpoint.monitor=null",
    "trainer.accelerator=cpu",
    "progress=none",
    "data.num_workers=0",  # per-sample seeding: the data do not depend on it; workers only cost CPU here
]


def schedule(epochs: int) -> list[str]:
    """Warm-up 2 + constant 8 + linear decay to the end; under 30 epochs the phases shrink in proportion."""
    warm = 2 if epochs >= 30 else max(1, round(2 * epochs / 30))
    hold = 8 if epochs >= 30 else round(8 * epochs / 30)
    return [f"sched.warmup_epochs={warm}", f"sched.hold_epochs={hold}", f"sched.decay_epochs={epochs - warm - hold}"]


def train(model: str, seed: int, epochs: int, out: Path, extra: list[str] | None = None) -> Path:
    run_dir = out / model / f"seed{seed}"
    if (run_dir / "summary.json").is_file():
        return run_dir
    args = [
        *SHARED,
        *MODELS[model],
        *(extra or []),
        f"seed={seed}",
        f"trainer.max_epochs={epochs}",
        *schedule(epochs),
        f"hydra.run.dir={run_dir}",
    ]
    if model.startswith("iern"):
        args.append("method.channels=64")
    print(f"training {model} seed {seed} ...", flush=True)
    subprocess.run([sys.executable, "-m", "fermix", "train", *args], check=True, cwd=ROOT)
    return run_dir


def _datamodule(cfg: dict[str, Any], test: str) -> FermixDataModule:
    data = {**cfg["data"], "augment": {"random_crop": False, "hflip": 0.0}, "num_workers": 0}
    dm = FermixDataModule({**cfg["dataset"], "test": test}, data, seed=int(cfg["seed"]))
    dm.build()
    return dm


def evaluate(run_dir: Path) -> dict[str, float]:
    """The run's measures, computed once and kept in <run>/bench_eval.json (the script resumes)."""
    cached = run_dir / "bench_eval.json"
    results = json.loads(cached.read_text()) if cached.is_file() else _measure(run_dir)
    if "train_acc" not in results:
        results["train_loss"] = final_train_loss(run_dir)
        results["train_acc"] = train_accuracy(run_dir / "checkpoints" / "last.ckpt")
    atomic_write_json(cached, results)
    return results


def _measure(run_dir: Path) -> dict[str, float]:
    ckpt = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    cfg = ckpt["fermix"]["config"]
    cpu = torch.device("cpu")
    results: dict[str, float] = {}
    feats: dict[str, np.ndarray] = {}
    domains: dict[str, np.ndarray] = {}
    for test in ("iid", "ood"):
        dm = _datamodule(cfg, test)
        method = build_method(cfg["method"], {**cfg["backbone"], "pretrained": None}, dm.info)  # weights: ckpt
        method.load_state_dict({k.removeprefix("method."): v for k, v in ckpt["state_dict"].items()})
        captured: list[torch.Tensor] = []
        hook = None
        if hasattr(method, "emo_gen"):
            hook = method.emo_gen.register_forward_hook(lambda _m, _i, out, sink=captured: sink.append(out))
        for split in ("train", "test") if test == "iid" else ("test",):
            captured.clear()
            preds = predict_split(method, dm.loader(split), cpu)
            if split == "test":
                results[f"{test}_acc"] = float((preds["expr_logits"].argmax(1) == preds["expr"]).float().mean())
            if test == "iid":
                feats[split] = preds["features"].numpy()
                domains[split] = dm.split_records(split)["domain"].to_numpy()
                if split == "test" and captured:
                    with torch.inference_mode():
                        method.eval()
                        dc = torch.cat([method.con_dis(e) for e in captured]).argmax(1).numpy()
                    results["dc_acc_on_e"] = float((dc == domains["test"]).mean())
        if hook is not None:
            hook.remove()
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    probe.fit(feats["train"], domains["train"])
    results["source_probe"] = float(probe.score(feats["test"], domains["test"]))
    return results


def _fmt(values: list[float]) -> str:
    if not values:
        return "—"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.fmean(values):.1f} ± {100 * sd:.1f}"


def _fmt_loss(values: list[float]) -> str:
    if not values:
        return "—"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.3f} ± {sd:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_iern")
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--trunk", choices=TRUNKS, default="none", help="the backbone every model starts from")
    parser.add_argument("--pretrain-epochs", type=int, default=None,
                        help="trunk pretraining epochs (default: benchmarks/pretrain_trunks.py's)")  # fmt: skip
    args = parser.parse_args()
    extra = trunk_overrides(args.trunk, "small_cnn", 32, epochs=args.pretrain_epochs)
    rows: dict[str, list[dict[str, float]]] = {m: [] for m in args.models}
    metrics = ["iid_acc", "ood_acc", "source_probe", "dc_acc_on_e", "train_loss", "train_acc"]
    for seed in args.seeds:
        for model in args.models:
            run_dir = train(model, seed, args.epochs, args.out, extra)
            result = {"seed": seed, **evaluate(run_dir)}
            print(model, result, flush=True)
            rows[model].append(result)
            # after every run, so that an interrupted grid's results are readable (n says how many seeds)
            atomic_write_json(args.out / "per_run.json", rows)
            write_results(args.out, "iern_synthetic", args.trunk,
                          [row(m, k, {r["seed"]: r[k] for r in rs if k in r}) for m, rs in rows.items()
                           for k in metrics if any(k in r for r in rs)],
                          budget={"epochs": args.epochs, "seeds": args.seeds})  # fmt: skip
    lines = [
        f"| model | {' | '.join(metrics)} |",
        f"|---|{'---|' * len(metrics)}",
        *(
            f"| {m} | "
            + " | ".join((_fmt_loss if k == "train_loss" else _fmt)([r[k] for r in rs if k in r]) for k in metrics)
            + " |"
            for m, rs in rows.items()
        ),
    ]
    table = "\n".join(lines)
    print(table)
    atomic_write_text(args.out / "table.md", table + "\n")


if __name__ == "__main__":
    main()
