"""CausalMER vs the plain fused MulT on synthetic_mm (spec causalmer.md §6.2): a unimodal shortcut.

Data: dataset=synthetic_mm with its defaults (IEMOCAP-shaped: 4 emotions as 4 binary tasks, text 300-d /
audio 74-d / vision 35-d, 20 aligned steps; vision is the shortcut, a clean code of the label with
probability rho = 0.8 in train and val), in both genuine-signal regimes: `interaction` (the label is
only recoverable from text and audio together) and `additive` (each is informative alone).
Models, each with its CPU recipe (method_dataset/<method>_synthetic_mm.yaml: 15 epochs, batch 32,
1-layer MulT, MLP branches, the original's optimiser and LRs, clip 0.8):
  mult            the plain fused MulT
  causalmer_mask  CausalMER, fusion=mask (the released configuration), TIE prediction
  causalmer_sum   CausalMER, fusion=sum (the paper's Sec. 4.3), TIE prediction
Each is selected on validation (val/avg_acc, the shortcut as in training) and tested, without
retraining, on four versions of the same test samples that differ only in the shortcut modality:
iid (as training), random (a random code), reversed (the code of the next class), zeroed (vision
all zeros). Metric: avg_acc (mean of the 4 emotions' accuracies; all-"absent" scores 0.75).
Seeds 0, 1, 2 (data seed = training seed). Two runs at a time, one thread each.

    nice -n 10 python benchmarks/causalmer_synthetic.py [--seeds 0 1 2] [--out runs/bench_causalmer]

Resumable: a finished training (summary.json) or test (test_<variant>/summary.json) is not redone.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fermix.utils.io import atomic_write_json, atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
MODELS = {
    "mult": ["method=mult"],
    "causalmer_mask": ["method=causalmer", "method.fusion=mask"],
    "causalmer_sum": ["method=causalmer", "method.fusion=sum"],
}
REGIMES = ("interaction", "additive")
VARIANTS = ("iid", "random", "reversed", "zeroed")
SHARED = ["dataset=synthetic_mm", "data.num_workers=0", "trainer.accelerator=cpu", "logger=csv", "progress=none"]


def _fermix(args: list[str]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "fermix", *args], check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)


def run_one(out: Path, regime: str, model: str, seed: int) -> dict[str, float]:
    """Train (if needed) and test on every variant; returns {variant: avg_acc} and the train time."""
    run = out / regime / model / f"seed{seed}"
    result: dict[str, float] = {}
    if not (run / "summary.json").is_file():
        start = time.monotonic()
        _fermix(["train", *SHARED, *MODELS[model], f"dataset.regime={regime}", f"dataset.seed={seed}", f"seed={seed}",
                 f"hydra.run.dir={run}"])  # fmt: skip
        result["train_seconds"] = round(time.monotonic() - start, 1)
    ckpt = json.loads((run / "summary.json").read_text())["best_checkpoint"]
    for variant in VARIANTS:
        test_dir = run / f"test_{variant}"
        if not (test_dir / "summary.json").is_file():
            _fermix(["test", f"ckpt={ckpt}", f"dataset.test_variant={variant}", f"hydra.run.dir={test_dir}"])
        result[variant] = float(json.loads((test_dir / "summary.json").read_text())["metrics"]["test"]["avg_acc"])
    print(f"{regime} {model} seed {seed}: " + " ".join(f"{v} {result[v]:.3f}" for v in VARIANTS), flush=True)
    return result


def table(results: dict[tuple[str, str, int], dict[str, float]], seeds: list[int]) -> str:
    lines = []
    for regime in REGIMES:
        lines += [f"### regime `{regime}` (test avg_acc, mean ± std over seeds {', '.join(map(str, seeds))})", "",
                  "| model | " + " | ".join(VARIANTS) + " |", "|---|" + "---|" * len(VARIANTS)]  # fmt: skip
        for model in MODELS:
            cells = []
            for v in VARIANTS:
                xs = [results[(regime, model, s)][v] for s in seeds if (regime, model, s) in results]
                sd = statistics.stdev(xs) if len(xs) > 1 else float("nan")
                cells.append(f"{statistics.mean(xs):.3f} ± {sd:.3f}" if xs else "—")
            lines.append(f"| {model} | " + " | ".join(cells) + " |")
        lines += ["", "Per seed, causalmer − mult (iid / random / reversed / zeroed):", ""]
        for model in ("causalmer_mask", "causalmer_sum"):
            for s in seeds:
                a, b = results.get((regime, model, s)), results.get((regime, "mult", s))
                if a and b:
                    lines.append(f"- {model}, seed {s}: " + " / ".join(f"{a[v] - b[v]:+.3f}" for v in VARIANTS))
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_causalmer")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    jobs = [(r, m, s) for s in args.seeds for r in REGIMES for m in MODELS]
    with ThreadPoolExecutor(args.jobs) as pool:
        done = dict(zip(jobs, pool.map(lambda j: run_one(args.out, *j), jobs), strict=True))
    atomic_write_json(args.out / "results.json", {"/".join(map(str, k)): v for k, v in done.items()})
    atomic_write_text(args.out / "table.md", table(done, args.seeds))
    print(table(done, args.seeds))


if __name__ == "__main__":
    main()
