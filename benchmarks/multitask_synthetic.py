"""The multitask method's incomplete-label experiment (spec multitask.md §8) on synthetic faces.

Data: dataset=synthetic_partial — the synthetic faces (7 classes × 3 capture styles, 64 px) whose
2100 training faces are cut into three disjoint training sets of 700, each labelled for one task
only (expression / 16 AUs / valence-arousal); validation (420) and test (840) are fully labelled.
Data seed = training seed = s for s in --seeds (`dataset.seed=s seed=s`).

Runs per seed, all `experiment=multitask_synthetic_partial` (method=multitask dataset=synthetic_partial with
the CPU recipe's defaults, configs/experiment/multitask_synthetic_partial.yaml: small_cnn 64 px, batch 20 per
task, Adam 1e-3 β1 0.5, teacher 8 epochs, 3 students × 3 epochs; each model's epoch selected on validation):
  full              teacher + 3 students (teacher, each student, their mean, the student ensemble)
  single_<task>     `method.stages=teacher method.train_tasks=[<task>]`, scored on its own task only
  teacher_seed<t>   `method.stages=teacher` with training seed t = s+100, s+200 (and t = s for the
                    reproducibility check): GT-only models for the control ensemble (spec §8 (d))
The control ensemble = the full run's teacher + the two extra GT-only teachers, if a stages=teacher
run with seed s reproduces the full run's teacher exactly (checked on the --verify seeds: equal
weights and equal test metrics); otherwise three stages=teacher runs (seeds s, s+100, s+200). It is
computed here from the three best.ckpt: mean of softmax, mean of σ, mean of VA expectations.

All scores on the TEST split (ABAW definitions, fermix.metrics.abaw): S_AU at threshold 0.5,
S_EXPR, CCC_V, CCC_A; mean ± std over seeds; per-seed (mean student − teacher) deltas.

Per run also the teacher stage's last-epoch training loss and the final model's expression accuracy on the
training faces labelled for expression (un-augmented): the student ensemble for `full`, the teacher otherwise.

With --trunk identity (or expression) every network, teacher, students, single-task and GT-only models alike,
starts from that pretrained small_cnn (width 32) trunk (benchmarks/pretrain_trunks.py builds and caches it);
--trunk none (the default) is the from-scratch run. --no-single skips the single-task models.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/multitask_synthetic.py [--seeds 0 1 2] [--out runs/bench_multitask]
    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/multitask_synthetic.py --trunk identity \
        --overrides method.teacher_epochs=8 method.student_epochs=3 --out runs/bench_multitask_identity

Runs are resumable: finished runs (summary.json present) are not retrained. Writes <out>/results.json in the
shared shape of benchmarks/_results.py (metric `mean4` = the mean of the four scores).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fermix.engine.build import build_method
from fermix.engine.checkpoint import load_checkpoint
from fermix.engine.datamodule import FermixDataModule
from fermix.engine.evaluate import predict_split
from fermix.metrics.abaw import au_scores, expr_scores, va_scores
from fermix.utils.io import atomic_write_json, atomic_write_text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import TRUNKS, final_train_loss, row, train_accuracy, trunk_overrides, write_results

ROOT = Path(__file__).resolve().parents[1]
SCORES = ("au_score", "expr_score", "ccc_v", "ccc_a")
HEADERS = {"au_score": "S_AU (thr 0.5)", "expr_score": "S_EXPR", "ccc_v": "CCC_V", "ccc_a": "CCC_A"}
SINGLE = {"au": ("au_score",), "expr": ("expr_score",), "va": ("ccc_v", "ccc_a")}
SHARED = [
    "experiment=multitask_synthetic_partial",  # method=multitask dataset=synthetic_partial, the CPU recipe
    "data.num_workers=0",  # results do not depend on it (per-sample seeding); workers only cost CPU here
    "trainer.accelerator=cpu",
    "logger=csv",
    "progress=none",
]
TEACHER_ONLY = ["method.stages=teacher"]


EXTRA: list[str] = []  # --overrides: for a quick smoke test of the script only; the reported grid uses none


def train(name: str, overrides: list[str], data_seed: int, seed: int, out: Path, times: dict[str, float]) -> Path:
    run_dir = out / f"seed{data_seed}" / name
    if (run_dir / "summary.json").is_file():
        return run_dir
    args = [*SHARED, *EXTRA, *overrides, f"dataset.seed={data_seed}", f"seed={seed}", f"hydra.run.dir={run_dir}"]
    print(f"training {name} · data seed {data_seed} · seed {seed} ...", flush=True)
    start = time.monotonic()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [sys.executable, "-m", "fermix", "train", *args], check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL
    )
    times[str(run_dir.relative_to(out))] = round(time.monotonic() - start, 1)
    print(f"  {times[str(run_dir.relative_to(out))]:.0f} s", flush=True)
    return run_dir


def test_metrics(run_dir: Path) -> dict[str, float]:
    return json.loads((run_dir / "summary.json").read_text())["metrics"]["test"]


def member_scores(metrics: dict[str, float], prefix: str, keys: tuple[str, ...] = SCORES) -> dict[str, float]:
    return {k: float(metrics[f"{prefix}/{k}"]) for k in keys}


# --- GT-only ensemble ---------------------------------------------------------------------------
def teacher_predictions(run_dir: Path) -> dict[str, Any]:
    """Member 0 (the teacher) of a run's best.ckpt on the test split: softmax, σ and VA expectations."""
    ckpt = load_checkpoint(run_dir / "checkpoints" / "best.ckpt")
    cfg = ckpt["fermix"]["config"]
    dm = FermixDataModule(cfg["dataset"], {**cfg["data"], "num_workers": 0}, seed=int(cfg["seed"]))
    method = build_method(cfg["method"], {**cfg["backbone"], "pretrained": None}, dm.build())  # weights: ckpt
    method.load_state_dict({k.removeprefix("method."): v for k, v in ckpt["state_dict"].items()})
    preds = predict_split(method, dm.loader("test"), torch.device("cpu"))
    return {
        "sample_id": preds["sample_id"],
        "targets": preds["targets"],
        "expr_prob": preds["members_expr_prob"][:, 0],
        "au_prob": preds["members_au_prob"][:, 0],
        "va": preds["members_va"][:, 0],
    }


def scores(expr_prob: Any, au_prob: Any, va: Any, targets: dict[str, Any]) -> dict[str, float]:
    s = {
        **expr_scores(expr_prob, targets["expr"]),
        **au_scores(au_prob, targets["au"], 0.5),
        **va_scores(va, targets["va"]),
    }
    return {k: float(s[k]) for k in SCORES}


def gt_only_ensemble(run_dirs: list[Path]) -> dict[str, Any]:
    """Scores of each GT-only model (checked against its run's own summary) and of their ensemble."""
    members = [teacher_predictions(d) for d in run_dirs]
    first = members[0]
    for m in members[1:]:
        assert m["sample_id"] == first["sample_id"], "the GT-only models were tested on different samples"
        for key, target in first["targets"].items():
            assert torch.equal(m["targets"][key].nan_to_num(-9.0), target.nan_to_num(-9.0)), f"{key} targets differ"
    single = []
    for run_dir, m in zip(run_dirs, members, strict=True):
        s = scores(m["expr_prob"], m["au_prob"], m["va"], m["targets"])
        stored = member_scores(test_metrics(run_dir), "teacher")
        gap = max(abs(s[k] - stored[k]) for k in SCORES)
        assert gap < 1e-6, f"rescored teacher of {run_dir} differs from its summary.json by {gap}"
        single.append(s)
    ensemble = scores(
        torch.stack([m["expr_prob"] for m in members]).mean(0),
        torch.stack([m["au_prob"] for m in members]).mean(0),
        torch.stack([m["va"] for m in members]).mean(0),
        first["targets"],
    )
    return {"members": single, "ensemble": ensemble}


def same_teacher(full: Path, teacher_only: Path) -> dict[str, Any]:
    """Does a stages=teacher run reproduce the full run's teacher: equal weights, equal test metrics?"""
    a = load_checkpoint(full / "checkpoints" / "best.ckpt")["state_dict"]
    b = load_checkpoint(teacher_only / "checkpoints" / "best.ckpt")["state_dict"]
    keys_a = {k for k in a if ".members.0." in f".{k}"}
    keys_b = {k for k in b if ".members.0." in f".{k}"}
    weights = keys_a == keys_b and len(keys_a) > 0 and all(torch.equal(a[k], b[k]) for k in keys_a)
    ma, mb = test_metrics(full), test_metrics(teacher_only)
    names = sorted(k for k in ma if k.startswith("teacher/"))
    metrics = bool(names) and all(ma[k] == mb.get(k) for k in names)
    return {"weights_equal": bool(weights), "test_metrics_equal": metrics, "compared_metrics": len(names)}


# --- the grid -------------------------------------------------------------------------------
def train_fit(run_dir: Path) -> dict[str, float]:
    """The teacher stage's last training loss and the final model's expression accuracy on its training faces."""
    cached = run_dir / "bench_train.json"
    if not cached.is_file():
        teacher_logs = run_dir / "csv" / "teacher"
        loss = _teacher_loss(teacher_logs) if teacher_logs.is_dir() else final_train_loss(run_dir)
        atomic_write_json(
            cached, {"train_loss": loss, "train_acc": train_accuracy(run_dir / "checkpoints" / "best.ckpt")}
        )
    return json.loads(cached.read_text())


def _teacher_loss(logs: Path) -> float:
    import csv

    values = []
    for path in logs.rglob("metrics.csv"):
        with path.open(newline="") as f:
            values += [row["train/loss_epoch"] for row in csv.DictReader(f) if row.get("train/loss_epoch")]
    return float(values[-1]) if values else float("nan")


def run_seed(seed: int, verify: bool, out: Path, times: dict[str, float], single: bool = True) -> dict[str, Any]:
    full = train("full", [], seed, seed, out, times)
    singles = {
        task: train(f"single_{task}", [*TEACHER_ONLY, f"method.train_tasks=[{task}]"], seed, seed, out, times)
        for task in (SINGLE if single else ())
    }
    extra = [train(f"teacher_seed{t}", TEACHER_ONLY, seed, t, out, times) for t in (seed + 100, seed + 200)]
    check = None
    own = out / f"seed{seed}" / f"teacher_seed{seed}"
    if verify or (own / "summary.json").is_file():
        own = train(f"teacher_seed{seed}", TEACHER_ONLY, seed, seed, out, times)
        check = same_teacher(full, own)
        print(f"seed {seed}: stages=teacher reproduces the full run's teacher: {check}", flush=True)
    return {"full": full, "singles": singles, "extra": extra, "check": check}


def collect(seed: int, runs: dict[str, Any], reproduced: bool, out: Path, times: dict[str, float]) -> dict[str, Any]:
    m = test_metrics(runs["full"])
    n_students = sum(1 for k in m if k.startswith("student") and k.endswith("/au_score") and "mean" not in k)
    result: dict[str, Any] = {
        "seed": seed,
        "teacher": member_scores(m, "teacher"),
        "students": [member_scores(m, f"student{k}") for k in range(n_students)],
        "students_mean": member_scores(m, "students_mean"),
        "ensemble": member_scores(m, "ensemble"),
        "ensemble_au_tuned": {
            "au_score": float(m["ensemble/au_score_tuned"]),
            "au_f1": float(m["ensemble/au_f1_tuned"]),
            "au_acc": float(m["ensemble/au_acc_tuned"]),
        },
        "single": {},
        "train_fit": train_fit(runs["full"]),
    }
    for task, run_dir in runs["singles"].items():
        result["single"].update(member_scores(test_metrics(run_dir), "teacher", SINGLE[task]))
    if reproduced:
        gt_dirs = [runs["full"], *runs["extra"]]
    else:
        gt_dirs = [train(f"teacher_seed{seed}", TEACHER_ONLY, seed, seed, out, times), *runs["extra"]]
    gt = gt_only_ensemble(gt_dirs)
    result["gt_only_members"] = gt["members"]
    result["gt_only_ensemble"] = gt["ensemble"]
    result["gt_only_runs"] = [str(d.relative_to(out)) for d in gt_dirs]
    result["check"] = runs["check"]
    return result


# --- report ---------------------------------------------------------------------------------
def _fmt(values: list[float]) -> str:
    if not values:
        return "—"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.3f} ± {sd:.3f}"


def _signed(values: list[float]) -> str:
    return " / ".join(f"{v:+.3f}" for v in values)


def table(results: list[dict[str, Any]]) -> str:
    def row(label: str, pick: Any, keys: tuple[str, ...] = SCORES) -> str:
        cells = [_fmt([pick(r)[k] for r in results]) if k in keys else "—" for k in SCORES]
        return f"| {label} | " + " | ".join(cells) + " |"

    def mean_gt(r: dict[str, Any]) -> dict[str, float]:
        return {k: float(np.mean([g[k] for g in r["gt_only_members"]])) for k in SCORES}

    seeds = ", ".join(str(r["seed"]) for r in results)
    single_keys = tuple(k for k in SCORES if all(k in r["single"] for r in results))
    lines = [
        f"Test split, mean ± std over seeds {seeds}. Full run's teacher: final training loss "
        f"{_fmt([r['train_fit']['train_loss'] for r in results])}; student ensemble's accuracy on the "
        f"expression-labelled training faces {_fmt([r['train_fit']['train_acc'] for r in results])}.",
        "",
        "| model | " + " | ".join(HEADERS[k] for k in SCORES) + " |",
        "|---|---|---|---|---|",
        row("single-task (one model per task)", lambda r: r["single"], single_keys),
        row("teacher", lambda r: r["teacher"]),
        row("single student (mean of the students)", lambda r: r["students_mean"]),
        row("student ensemble", lambda r: r["ensemble"]),
        row("GT-only model (mean of the 3)", mean_gt),
        row("GT-only ensemble (3 teachers)", lambda r: r["gt_only_ensemble"]),
        row("student ensemble, tuned AU thresholds", lambda r: r["ensemble_au_tuned"], ("au_score",)),
    ]
    lines += [
        "",
        "Per seed (" + seeds + "):",
        "",
        "| difference | " + " | ".join(HEADERS[k] for k in SCORES) + " |",
        "|---|---|---|---|---|",
    ]

    def diff(label: str, a: Any, b: Any) -> None:
        cells = [_signed([a(r)[k] - b(r)[k] for r in results]) for k in SCORES]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    diff("mean student − teacher", lambda r: r["students_mean"], lambda r: r["teacher"])
    diff("student ensemble − teacher", lambda r: r["ensemble"], lambda r: r["teacher"])
    diff("student ensemble − GT-only ensemble", lambda r: r["ensemble"], lambda r: r["gt_only_ensemble"])
    if all(len(r["single"]) == len(SCORES) for r in results):
        diff("teacher − single-task", lambda r: r["teacher"], lambda r: r["single"])
    cells = []
    for k in SCORES:
        deltas = [s[k] - r["teacher"][k] for r in results for s in r["students"]]
        wins = sum(d > 0 for d in deltas)
        cells.append(f"{min(deltas):+.3f}…{max(deltas):+.3f} ({wins}/{len(deltas)} > 0)")
    lines.append("| each student − its teacher, min…max over all students | " + " | ".join(cells) + " |")
    cells = []
    for k in SCORES:
        spread = [max(g[k] for g in r["gt_only_members"]) - min(g[k] for g in r["gt_only_members"]) for r in results]
        cells.append(_signed(spread).replace("+", ""))
    lines.append("| spread (max − min) of the 3 GT-only models | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--verify",
        type=int,
        nargs="*",
        default=None,
        help="seeds on which a stages=teacher run is checked against the full run's teacher (default: the first seed)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_multitask")
    parser.add_argument("--trunk", choices=TRUNKS, default="none", help="the backbone every network starts from")
    parser.add_argument("--pretrain-epochs", type=int, default=None,
                        help="trunk pretraining epochs (default: benchmarks/pretrain_trunks.py's)")  # fmt: skip
    parser.add_argument("--no-single", action="store_true", help="skip the single-task models")
    parser.add_argument(
        "--overrides",
        nargs="*",
        default=[],
        help="extra `fermix train` overrides for every run (a smoke test of the script; not the grid)",
    )
    args = parser.parse_args()
    EXTRA[:] = [*args.overrides, *trunk_overrides(args.trunk, "small_cnn", 32, epochs=args.pretrain_epochs)]
    torch.set_num_threads(1)
    verify = set(args.seeds[:1] if args.verify is None else args.verify)
    times_path = args.out / "train_seconds.json"
    times: dict[str, float] = json.loads(times_path.read_text()) if times_path.is_file() else {}
    runs = {}
    for seed in args.seeds:
        runs[seed] = run_seed(seed, seed in verify, args.out, times, single=not args.no_single)
        atomic_write_json(times_path, times)
    checks = {s: r["check"] for s, r in runs.items() if r["check"] is not None}
    reproduced = bool(checks) and all(c["weights_equal"] and c["test_metrics_equal"] for c in checks.values())
    print(f"teacher reproducibility: {checks} -> {'reproduced' if reproduced else 'NOT reproduced'}", flush=True)
    results = [collect(seed, runs[seed], reproduced, args.out, times) for seed in args.seeds]
    atomic_write_json(times_path, times)
    atomic_write_json(
        args.out / "table.json",
        {"reproduced": reproduced, "checks": checks, "results": results, "train_seconds": times},
    )
    write_results(args.out, "multitask_synthetic", args.trunk, result_rows(results),
                  budget={"overrides": args.overrides, "seeds": args.seeds})  # fmt: skip
    text = table(results)
    print(text)
    atomic_write_text(args.out / "table.md", text + "\n")


def result_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The shared-shape rows: each model's four scores and their mean (`mean4`), and the training fit."""
    models = {
        "teacher": lambda r: r["teacher"],
        "students_mean": lambda r: r["students_mean"],
        "ensemble": lambda r: r["ensemble"],
        "gt_only_mean": lambda r: {k: float(np.mean([g[k] for g in r["gt_only_members"]])) for k in SCORES},
        "gt_only_ensemble": lambda r: r["gt_only_ensemble"],
        "single": lambda r: r["single"],
    }
    out = []
    for name, pick in models.items():
        for k in (*SCORES, "mean4"):
            per_seed = {}
            for r in results:
                scores_ = pick(r)
                if k == "mean4":
                    if all(s in scores_ for s in SCORES):
                        per_seed[r["seed"]] = float(np.mean([scores_[s] for s in SCORES]))
                elif k in scores_:
                    per_seed[r["seed"]] = float(scores_[k])
            if per_seed:
                out.append(row(name, k, per_seed))
    for k in ("train_loss", "train_acc"):
        out.append(row("full", k, {r["seed"]: r["train_fit"][k] for r in results}))
    return out


if __name__ == "__main__":
    main()
