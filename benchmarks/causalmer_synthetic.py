"""CausalMER vs the plain fused model on synthetic_mm (spec causalmer.md §6.2): a unimodal shortcut.

Data: dataset=synthetic_mm with its defaults (IEMOCAP-shaped: 4 emotions as 4 binary tasks, text 300-d /
audio 74-d / vision 35-d, 20 aligned steps; vision is the shortcut, a clean code of the label with
probability rho = 0.8 in train; genuine separation frozen by the gate, docs/results/causalmer.md), in both
genuine-signal regimes: `interaction` (the label is only recoverable from text and audio together) and
`additive` (each is informative alone).
Fused model: `method.fused=mlp` for every model (the time-averaged MLP the spec's §6.2 experiment used as
its MulT stand-in, fermix/models/fused.py): the CPU MulT recipe does not learn the interaction regime, so
it fails the gate (docs/results/causalmer.md, "The gate"). Models, each with its CPU recipe
(experiment=<method>_synthetic_mm: 15 epochs, batch 32, MLP branches, the original's optimiser and
LRs, clip 0.8):
  mult            the plain fused model
  causalmer_mask  CausalMER, fusion=mask (the released configuration), TIE prediction
  causalmer_sum   CausalMER, fusion=sum (the paper's Sec. 4.3), TIE prediction
  mult_novision   the gate's model: mult with vision removed in every split (dataset.remove=v), the
                  shortcut-free reference (trained once per regime and seed: its validation has no shortcut)
Two selections from one training: the validation split also holds a shortcut-free twin of its samples
(dataset.val_twin=random, reported as val/twin_*; with 15 epochs the plateau schedule, patience 20, never acts,
so validation does not steer training):
  val_shortcut  best.ckpt on val/avg_acc, the validation copy whose shortcut is as in training
  val_free      best_twin.ckpt on val/twin_avg_acc, the copy whose shortcut is a random code
Each selected checkpoint is tested, without retraining, on four versions of the same
test samples that differ only in vision: iid, random, reversed ((y + 1) mod 4), zeroed. Metrics: avg_acc
(mean of the 4 binary accuracies; all-"absent" = 0.75) and top1_acc (the same logits read as one 4-way
choice, chance 0.25), plus te_/m_/t_/a_/v_ versions for causalmer. Seeds 0, 1, 2 (data seed = training
seed). One run at a time, one thread. Order: seed-major over regimes and models, then mult_novision.
Heads: `pairs` (IEMOCAP's four binary criteria, the original) in both regimes, and `softmax`
(`method.iemocap_head=softmax`: one 4-way cross-entropy) in the interaction regime, under OUT/softmax/.
Tests run in this process through fermix's command line (`fermix.cli.main(["test", ...])`), the same code
path as `fermix test` without a new interpreter per test.

    nice -n 10 python benchmarks/causalmer_synthetic.py [--seeds 0 1 2] [--heads pairs softmax] [--out DIR]
        # default out runs/bench_causalmer
    python benchmarks/causalmer_synthetic.py --quick    # 1 seed, 5 epochs, interaction, pairs, val_shortcut only
                                                        # (default out runs/bench_causalmer_quick)

Resumable: a finished training (summary.json) or test (test_<selection>_<variant>/summary.json) is not redone.
Layout: OUT/[softmax/]<regime>/<model>/seed<s>/ (a fermix run dir, test_<selection>_<variant>/ inside).

Output OUT/results.json (rewritten after every run, so a partial grid is readable):
  {"protocol": {"seeds": [...], "quick": bool, "extra": [overrides], "models": {...}, "variants": [...]},
   "runs": [{"selection", "head", "regime", "model", "seed", "train_seconds" (only when trained by this call),
             "best_epoch" (of best.ckpt), "test": {variant: {metric: value}},
             "epochs": [{"epoch": e, "val/avg_acc": .., "val/te_avg_acc": .., "val/c_t": .., ...}]}],
   "summary": {"<selection>/<regime>/<model>/<variant>/<metric>": {"mean", "std", "n"}}}
and OUT/table.md (the tables of docs/results/causalmer.md).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from fermix.utils.io import atomic_write_json, atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
MODELS = {
    "mult": ["experiment=mult_synthetic_mm"],  # each method with its CPU recipe (configs/experiment/)
    "causalmer_mask": ["experiment=causalmer_synthetic_mm", "method.fusion=mask"],
    "causalmer_sum": ["experiment=causalmer_synthetic_mm", "method.fusion=sum"],
    "mult_novision": ["experiment=mult_synthetic_mm", "dataset.remove=v"],
}
COMPARED = ("mult", "causalmer_mask", "causalmer_sum")
SELECTIONS = {"val_shortcut": "best.ckpt", "val_free": "best_twin.ckpt"}  # which checkpoint each selection tests
TWIN = ["dataset.val_twin=random", "checkpoint.extra=[{name:best_twin,monitor:val/twin_avg_acc,mode:max}]"]
REGIMES = ("interaction", "additive")
VARIANTS = ("iid", "random", "reversed", "zeroed")
METRICS = ("avg_acc", "top1_acc", "te_avg_acc", "te_top1_acc", "m_avg_acc", "m_top1_acc")
EPOCH_KEYS = tuple(f"val/{p}{k}" for p in ("", "twin_") for k in ("avg_acc", "top1_acc", "te_avg_acc", "te_top1_acc",
                   "m_avg_acc", "m_top1_acc", "t_avg_acc", "a_avg_acc", "v_avg_acc"))  # fmt: skip
EPOCH_KEYS += ("val/loss", "val/c_t", "val/c_a", "val/c_v", "train/loss_epoch")
SHARED = ["dataset=synthetic_mm", "method.fused=mlp", "data.num_workers=0", "trainer.accelerator=cpu", "logger=csv",
          "progress=none"]  # fmt: skip
HEADS = ("pairs", "softmax")  # softmax: interaction regime only


def _fermix(args: list[str]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "fermix", *args], check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)


def _epochs(run: Path) -> list[dict[str, float]]:
    """Per-epoch validation metrics the method logged (csv logger): TIE, TE, MulT, branches, constants."""
    path = run / "csv" / "metrics.csv"
    if not path.is_file():
        return []
    by_epoch: dict[int, dict[str, float]] = {}
    with path.open() as f:
        for row in csv.DictReader(f):
            if not row.get("epoch"):
                continue
            entry = by_epoch.setdefault(int(float(row["epoch"])), {})
            for key in EPOCH_KEYS:
                if row.get(key) not in (None, ""):
                    entry[key] = float(row[key])
    return [{"epoch": e, **v} for e, v in sorted(by_epoch.items()) if v]


def _fermix_test(args: list[str]) -> None:
    """`fermix test ARGS` in this process (fermix's command line; a failure exits with its message)."""
    from fermix.cli import main as fermix_main

    os.environ["OMP_NUM_THREADS"] = "1"
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):  # the metrics table; summary.json has it
        rc = fermix_main(["test", *args])
    if rc != 0:
        raise SystemExit(f"fermix test {' '.join(args)} failed")


def run_path(out: Path, head: str, regime: str, model: str, seed: int) -> Path:
    return (out if head == "pairs" else out / head) / regime / model / f"seed{seed}"


def train(out: Path, head: str, regime: str, model: str, seed: int, extra: list[str]) -> tuple[Path, float | None]:
    """The run dir, trained if it was not; the training's seconds when this call trained it."""
    run = run_path(out, head, regime, model, seed)
    if (run / "summary.json").is_file():
        return run, None
    twin = [] if model == "mult_novision" else TWIN  # vision removed: its twin would be the same samples
    start = time.monotonic()
    _fermix(["train", *SHARED, *MODELS[model], *twin, *extra, f"method.iemocap_head={head}", f"dataset.regime={regime}",
             f"dataset.seed={seed}", f"seed={seed}", f"hydra.run.dir={run}"])  # fmt: skip
    return run, round(time.monotonic() - start, 1)


def test(run: Path, selection: str, model: str) -> dict[str, dict[str, float]]:
    """{variant: {metric: value}} of one selected checkpoint on the test variants."""
    result = {}
    for variant in ("iid",) if model == "mult_novision" else VARIANTS:  # without vision the variants coincide
        test_dir = run / f"test_{selection}_{variant}"
        if not (test_dir / "summary.json").is_file():
            ckpt = run / "checkpoints" / SELECTIONS[selection]
            _fermix_test([f"ckpt={ckpt}", f"dataset.test_variant={variant}", f"hydra.run.dir={test_dir}"])
        metrics = json.loads((test_dir / "summary.json").read_text())["metrics"]["test"]
        result[variant] = {k: float(metrics[k]) for k in METRICS if k in metrics}
    return result


def run_one(
    out: Path,
    head: str,
    regime: str,
    model: str,
    seed: int,
    extra: list[str],
    selections: tuple[str, ...] = tuple(SELECTIONS),
) -> list[dict[str, Any]]:
    """Train (if needed), then test each selection on every variant: one result per selection."""
    run, seconds = train(out, head, regime, model, seed, extra)
    summary = json.loads((run / "summary.json").read_text())
    results = []
    for selection in ("val_shortcut",) if model == "mult_novision" else selections:
        result: dict[str, Any] = {"selection": selection, "head": head, "regime": regime, "model": model, "seed": seed}
        if seconds is not None:
            result["train_seconds"] = seconds
        result["best_epoch"] = summary.get("best_epoch")
        result["test"] = test(run, selection, model)
        result["epochs"] = _epochs(run)
        cells = " ".join(
            f"{v} {m['avg_acc']:.3f}/{m.get('top1_acc', float('nan')):.3f}" for v, m in result["test"].items()
        )
        print(f"{head} {regime} {model} seed {seed} {selection}: {cells} (avg_acc/top1_acc)", flush=True)
        results.append(result)
    return results


def group(run: dict[str, Any]) -> str:
    """The table a run belongs to: its regime, with ` softmax` for the 4-way head."""
    return run["regime"] + ("" if run.get("head", "pairs") == "pairs" else f" {run['head']}")


GROUPS = (*REGIMES, "interaction softmax")


def summarise(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    cells: dict[str, list[float]] = {}
    for r in runs:
        for variant, metrics in r["test"].items():
            for metric, value in metrics.items():
                cells.setdefault(f"{r['selection']}/{group(r)}/{r['model']}/{variant}/{metric}", []).append(value)
    return {
        k: {"mean": statistics.mean(v), "std": statistics.stdev(v) if len(v) > 1 else float("nan"), "n": len(v)}
        for k, v in cells.items()
    }


def table(runs: list[dict[str, Any]], seeds: list[int]) -> str:
    index = {(r["selection"], group(r), r["model"], r["seed"]): r["test"] for r in runs}
    summary = summarise(runs)
    lines: list[str] = []
    for selection in SELECTIONS:
        for regime in GROUPS:
            for metric in ("avg_acc", "top1_acc"):
                rows = [m for m in MODELS if any((selection, regime, m, s) in index for s in seeds)]
                if not rows:
                    continue
                lines += [f"#### {selection}, regime `{regime}`: test {metric} (mean ± std, seeds "
                          f"{', '.join(map(str, seeds))})", "", "| model | " + " | ".join(VARIANTS) + " |",
                          "|---|" + "---|" * len(VARIANTS)]  # fmt: skip
                for model in rows:
                    cells = []
                    for v in VARIANTS:
                        cell = summary.get(f"{selection}/{regime}/{model}/{v}/{metric}")
                        cells.append("—" if cell is None else f"{cell['mean']:.3f} ± {cell['std']:.3f} (n={cell['n']})")
                    lines.append(f"| {model} | " + " | ".join(cells) + " |")
                lines += ["", f"Per seed, causalmer − mult, {metric} (iid / random / reversed / zeroed):", ""]
                for model in ("causalmer_mask", "causalmer_sum"):
                    for s in seeds:
                        a, b = index.get((selection, regime, model, s)), index.get((selection, regime, "mult", s))
                        if a and b:
                            diffs = " / ".join(f"{a[v][metric] - b[v][metric]:+.3f}" for v in VARIANTS)
                            lines.append(f"- {model}, seed {s}: {diffs}")
                lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=None, help="default runs/bench_causalmer[_quick]")
    parser.add_argument("--heads", nargs="+", choices=HEADS, default=list(HEADS), help="softmax: interaction only")
    parser.add_argument(
        "--quick", action="store_true", help="1 seed, 5 epochs, interaction regime, pairs head, val_shortcut selection"
    )
    args = parser.parse_args()
    # a quick run's 5-epoch trainings must never be resumed as finished full ones
    args.out = args.out or ROOT / "runs" / ("bench_causalmer_quick" if args.quick else "bench_causalmer")
    seeds = args.seeds[:1] if args.quick else args.seeds
    extra = ["trainer.max_epochs=5"] if args.quick else []
    regimes = ("interaction",) if args.quick else REGIMES
    heads = ("pairs",) if args.quick else tuple(args.heads)
    selections = ("val_shortcut",) if args.quick else tuple(SELECTIONS)
    cells = [(h, r) for h in heads for r in regimes if h == "pairs" or r == "interaction"]
    jobs = [(h, r, m, s) for s in seeds for h, r in cells for m in COMPARED]
    jobs += [(h, r, "mult_novision", s) for s in seeds for h, r in cells]
    protocol = {"seeds": seeds, "quick": args.quick, "extra": extra, "shared": SHARED, "models": MODELS,
                "heads": list(heads), "selections": SELECTIONS, "twin": TWIN, "variants": list(VARIANTS)}  # fmt: skip
    runs: list[dict[str, Any]] = []
    for job in jobs:
        runs += run_one(args.out, *job, extra, selections)
        atomic_write_json(args.out / "results.json", {"protocol": protocol, "runs": runs, "summary": summarise(runs)})
        atomic_write_text(args.out / "table.md", table(runs, seeds))
    print(table(runs, seeds))


if __name__ == "__main__":
    main()
