"""Every method's benchmark, from random weights and from each pretrained trunk, and one summary table.

Runs benchmarks/{iern,dmue,au_align,multitask,causalmer}_synthetic.py one after the other (one training at a
time; each script resumes, and a step whose results.json is complete is not started again), then regenerates
docs/results/summary.md from their results.json files (the shared shape of benchmarks/_results.py): per method
its benchmark, its baseline, the paper's predicted effect, the measured effect (method − baseline, paired by
seed, mean ± std over seeds, n stated) and whether the prediction held, decided by RULE below. CausalMER has no
image trunk: it runs only with trunk none.

    nice -n 10 python benchmarks/all_methods.py                          # 3 seeds, trunks none identity expression
    nice -n 10 python benchmarks/all_methods.py --trunks identity        # the pretrained reruns only
    nice -n 10 python benchmarks/all_methods.py --quick                  # 1 seed, reduced budget: checks the pipeline
    python benchmarks/all_methods.py --summary-only                      # rebuild summary.md from finished steps

Measured (2026-12-07, the shared 2-core machine at a load average of about 5 from other jobs): --quick --trunks none
took 37 min (iern 262 s, dmue 314 s, au_align 214 s, multitask 387 s, causalmer 1057 s), not the 20 min aimed at.
Since then the quick mode runs two benchmarks at once (--jobs 2, one per core), pretrains its trunks for one
epoch (cached as <name>_e1) and causalmer's fused model is the time-averaged MLP (about 35 s per training
instead of minutes). Measured (2026-12-07 21:04-21:35, --quick with every start, a fresh output folder and
trunks pretrained from scratch, next to one other training process, so 3 processes on 2 cores for most of it):
30.6 min (per step, s: none iern 274, dmue 283, au_align 174, multitask 416, causalmer 165; identity dmue 405,
iern 496, au_align 180, multitask 377; expression iern 291, dmue 191, au_align 90, multitask 170; each identity
or expression step includes building its 1-epoch trunk). The same run on the idle machine (21:56-22:12, fresh
1-epoch trunks again, nothing else running): 16.0 min (960 s; none iern 127, dmue 131, au_align 78, multitask
176, causalmer 68; identity iern 201, dmue 167, au_align 82, multitask 183; expression iern 141, dmue 141,
au_align 84, multitask 180).

Runs go to runs/all_methods/{full,quick}/<method>/<trunk>/ (a step's log: log.txt there). A quick-mode
summary (runs/all_methods/quick/summary.md unless --summary is given) says so and decides nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
ROOT = Path(__file__).resolve().parents[1]
TRUNKS = ("none", "identity", "expression")
TRUNK_NAMES = {
    "none": "random weights",
    "identity": "identity-pretrained trunk",
    "expression": "expression-pretrained trunk",
}
DMUE_ALL = ["noise 20%", "noise 40%", "ambiguous 50%"]
QUICK_MULTITASK = ["method.teacher_epochs=1", "method.student_epochs=1", "method.n_students=2"]

RULE = (
    "Effect = method − baseline on the same seed, then mean ± sample std over seeds (n seeds). A predicted "
    "rise **held** if mean − std > 0, is **not shown** if mean > 0 but mean − std ≤ 0 (within seed spread), "
    "and **did not hold** if mean ≤ 0 (a predicted fall: the same with the sign turned). A predicted "
    '"no cost" (≈, tolerance t) **held** if mean + std ≥ −t and **did not hold** otherwise. A threshold '
    "prediction on one model's value (≥ t) held if mean − std > t. n < 3: **undecided**. Quick mode: decides "
    "nothing."
)


@dataclass(frozen=True)
class Prediction:
    """One predicted effect, checked on one metric: `model` against `baseline` (or an absolute threshold)."""

    text: str  # the prediction, one line
    model: str
    metric: str
    baseline: str | None = None  # None: a threshold on `model` itself
    direction: str = "+"  # "+" rise | "-" fall | "≈" no cost | ">=" threshold
    tolerance: float = 0.0  # "≈": allowed cost; ">=": the threshold
    condition: str = ""


@dataclass(frozen=True)
class Method:
    name: str
    benchmark: str  # one sentence
    baseline: str  # one sentence
    claim: str  # the paper's predicted effect, one sentence (sources: /work/shared/methods, docs/methods)
    predictions: tuple[Prediction, ...]
    doc: str


METHODS = {
    "iern": Method(
        "iern",
        "`dataset=synthetic_bias`: 6 classes × 3 capture styles, each style withholds 2 classes in training "
        "(bias100); test on the withheld cells (OOD) and fresh trained cells (IID); small_cnn width 32, 30 epochs",
        "`erm` (backbone + GAP + linear, cross-entropy), same backbone, trunk, recipe and budget",
        "IERN beats the plain classifier on the OOD cells by a clear margin (≥ 5-10 points) while staying within a "
        "few points IID, and a linear probe no longer reads the source from its features (≈ chance).",
        (
            Prediction("OOD accuracy rises", "iern", "ood_acc", "erm", "+"),
            Prediction("IID accuracy within a few (3) points", "iern", "iid_acc", "erm", "≈", 0.03),
            Prediction("source probe on the features falls", "iern", "source_probe", "erm", "-"),
        ),
        "iern.md",
    ),
    "dmue": Method(
        "dmue",
        "`dataset=synthetic_noisy`: 7 classes, symmetric label noise 20 % / 40 % or 50 % ambiguous faces, clean "
        "test labels; small_cnn width 16, 10 epochs; `dmue_fixed` = the original (uncertainty MLP untrained), "
        "`dmue` = fermix's trained-MLP variant",
        "`erm` (cross-entropy), same backbone, trunk, optimiser and budget; final-epoch test accuracy",
        "Under label noise DMUE beats cross-entropy at the final epoch (≥ 2 points, mean of 3 seeds), and with a "
        "trained uncertainty MLP its score s separates the flipped samples (AUROC(−s → flipped) > 0.6).",
        tuple(
            p
            for cond in DMUE_ALL
            for p in (
                Prediction(f"{cond}: original DMUE beats erm (final)", "dmue_fixed", "final", "erm", "+", 0, cond),
                Prediction(f"{cond}: trained-MLP DMUE beats erm (final)", "dmue", "final", "erm", "+", 0, cond),
            )
        )
        + tuple(
            Prediction(f"{cond}: AUROC(−s → flipped) > 0.6, trained MLP", "dmue", "auroc", None, ">=", 0.6, cond)
            for cond in ("noise 20%", "noise 40%")
        ),
        "dmue.md",
    ),
    "au_align": Method(
        "au_align",
        "`dataset=synthetic` (7 expressions, true AU maps known); small_cnn width 16 with an 8×8 last map, 8 epochs",
        "the same model with λ = 0 (`lam0`, cross-entropy only) against λ = 4 (`lam4`)",
        "Aligning the attention to the AU maps raises ATT-COS@5 by ≥ 0.15 (to ≥ 0.80) on every seed and CAM-COS by "
        "+0.05 to +0.2, with test accuracy within ±1.5 points.",
        (
            Prediction("ATT-COS@5 rises", "lam4", "att_cos@5", "lam0", "+"),
            Prediction("CAM-COS rises", "lam4", "cam_cos", "lam0", "+"),
            Prediction("accuracy within 1.5 points", "lam4", "acc", "lam0", "≈", 0.015),
        ),
        "au_align.md",
    ),
    "multitask": Method(
        "multitask",
        "`dataset=synthetic_partial`: three disjoint training thirds labelled for one task each (EXPR / 16 AUs / "
        "VA), fully labelled test; small_cnn width 32",
        "the teacher (trained on ground truth only); for the ensemble also the ensemble of as many GT-only teachers",
        "Students distilled from the teacher beat it on EXPR, V and A (AU a tie), the student ensemble beats the "
        "teacher on all four scores, and an ensemble of as many GT-only models matches the student ensemble.",
        (
            Prediction("mean student beats the teacher on S_EXPR", "students_mean", "expr_score", "teacher", "+"),
            Prediction("mean student beats the teacher on CCC_V", "students_mean", "ccc_v", "teacher", "+"),
            Prediction("mean student beats the teacher on CCC_A", "students_mean", "ccc_a", "teacher", "+"),
            Prediction("student ensemble beats the teacher (mean of 4 scores)", "ensemble", "mean4", "teacher", "+"),
            Prediction(
                "GT-only ensemble matches the student ensemble (±0.005, mean of 4 scores)",
                "ensemble",
                "mean4",
                "gt_only_ensemble",
                "≈",
                0.005,
            ),
        ),
        "multitask.md",
    ),
    "causalmer": Method(
        "causalmer",
        "`dataset=synthetic_mm`: a unimodal shortcut (vision, ρ ≈ 0.8), `interaction` regime (genuine separation "
        "3.75, frozen by the gate), test with the shortcut random / reversed / as trained; avg_acc of IEMOCAP's four "
        "binary tasks and its 4-way reading (`_top1`), and a model trained with one 4-way softmax "
        "(`interaction softmax`); fused model `method.fused=mlp` (the spec's MulT stand-in: the MulT recipe fails "
        "the gate)",
        "the plain fused model (`mult`, `method.fused=mlp`), same seed and protocol",
        "With a unimodal shortcut and a genuine signal that needs the fusion, `sum` CausalMER beats the plain fused "
        "model on random-v by about +10 to +15 points and on reversed-v by about +20, losing about 15 points IID.",
        (
            Prediction("`sum` beats mult on random-v", "causalmer_sum", "random", "mult", "+", 0, "interaction"),
            Prediction("`sum` beats mult on reversed-v", "causalmer_sum", "reversed", "mult", "+", 0, "interaction"),
            Prediction("`sum` loses IID", "causalmer_sum", "iid", "mult", "-", 0, "interaction"),
            Prediction(
                "`sum` beats mult on random-v, 4-way", "causalmer_sum", "random_top1", "mult", "+", 0, "interaction"
            ),
            Prediction(
                "`sum` beats mult on reversed-v, 4-way", "causalmer_sum", "reversed_top1", "mult", "+", 0, "interaction"
            ),
            Prediction("`sum` beats mult on random-v, softmax", "causalmer_sum", "random_top1", "mult", "+", 0,
                       "interaction softmax"),
            Prediction("`sum` beats mult on reversed-v, softmax", "causalmer_sum", "reversed_top1", "mult", "+", 0,
                       "interaction softmax"),
            Prediction("`sum` loses IID, softmax", "causalmer_sum", "iid_top1", "mult", "-", 0, "interaction softmax"),
        ),
        "causalmer.md",
    ),
}


# --- the runs ----------------------------------------------------------------------------------
def steps(quick: bool, trunks: list[str], methods: list[str], seeds: list[int]) -> list[tuple[str, str, list[str]]]:
    """(method, trunk, script arguments) in the order they run: per trunk, IERN, DMUE at 20 % noise, au_align,
    multitask, then DMUE's other conditions (the last DMUE step reruns nothing finished and writes all of it)."""
    seed_args = ["--seeds", *map(str, seeds)]
    out: list[tuple[str, str, list[str]]] = []
    for trunk in trunks:
        t = ["--trunk", trunk]
        if quick and trunk != "none":
            t += ["--pretrain-epochs", "1"]  # a 1-epoch trunk (cached as <name>_e1): checks the path, not the science
        if quick:
            plan = {
                "iern": [["--epochs", "3", "--models", "erm", "iern"]],
                "dmue": [["--epochs", "2", "--conditions", "noise 20%", "--no-cost"]],
                "au_align": [["--epochs", "1", "--arms", "lam0", "lam4", "--no-doc"]],
                "multitask": [["--no-single", "--verify", "--overrides", *QUICK_MULTITASK]],
                "causalmer": [["--quick"]],
            }
        else:
            multitask = [] if trunk == "none" else ["--overrides", "method.teacher_epochs=8", "method.student_epochs=3"]
            plan = {
                "iern": [[]],
                "dmue": [["--conditions", "noise 20%", "--no-cost"], ["--conditions", *DMUE_ALL, "--no-cost"]]
                if trunk != "none"
                else [["--no-cost"]],
                "au_align": [["--no-doc"] if trunk == "none" else []],
                "multitask": [multitask],
                "causalmer": [[]],
            }
        order = ["iern", "dmue", "au_align", "multitask", "causalmer"]
        for name in order:
            if name not in methods or (name == "causalmer" and trunk != "none"):
                continue
            args = plan[name]
            first = args[:1] if name == "dmue" else args
            out += [(name, trunk, [*a, *seed_args, *(t if name != "causalmer" else [])]) for a in first]
        if "dmue" in methods and len(plan["dmue"]) > 1:
            out.append(("dmue", trunk, [*plan["dmue"][1], *seed_args, *t]))
    return out


def run_dir(base: Path, method: str, trunk: str) -> Path:
    return base / method / trunk


def run_step(base: Path, method: str, trunk: str, args: list[str]) -> bool:
    """One benchmark invocation; skipped when an identical earlier invocation finished. True if it succeeded."""
    out = run_dir(base, method, trunk)
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(ROOT / "benchmarks" / f"{method}_synthetic.py"), *args, "--out", str(out)]
    done = out / "done.json"
    finished = json.loads(done.read_text()) if done.is_file() else []
    if args in finished and (out / "results.json").is_file():
        print(f"[{method} · {trunk}] done earlier", flush=True)
        return True
    print(f"[{method} · {trunk}] {' '.join(cmd[1:])}", flush=True)
    start = time.monotonic()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with (out / "log.txt").open("a") as log:
        code = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    seconds = time.monotonic() - start
    print(f"[{method} · {trunk}] {'finished' if code == 0 else f'FAILED ({code})'} in {seconds:.0f} s", flush=True)
    if code == 0:
        from fermix.utils.io import atomic_write_json

        atomic_write_json(done, [*finished, args])
        times = out / "seconds.json"
        atomic_write_json(times, [*(json.loads(times.read_text()) if times.is_file() else []), round(seconds)])
    return code == 0


# --- the table ---------------------------------------------------------------------------------
def _find(rows: list[dict[str, Any]], model: str, metric: str, condition: str) -> dict[str, Any] | None:
    for r in rows:
        if r["model"] == model and r["metric"] == metric and r.get("condition", "") == condition:
            return r
    return None


def effect(results: dict[str, Any] | None, p: Prediction) -> dict[str, Any] | None:
    """The measured effect of one prediction: per-seed values (method − baseline, paired by seed) and their stats."""
    if not results:
        return None
    rows = results.get("rows", [])
    a = _find(rows, p.model, p.metric, p.condition)
    if a is None:
        return None
    va = dict(zip(a["seeds"], a["values"], strict=True))
    if p.baseline is None:
        diffs = [va[s] for s in sorted(va)]
        seeds = sorted(va)
    else:
        b = _find(rows, p.baseline, p.metric, p.condition)
        if b is None:
            return None
        vb = dict(zip(b["seeds"], b["values"], strict=True))
        seeds = sorted(set(va) & set(vb))
        diffs = [va[s] - vb[s] for s in seeds]
    if not diffs:
        return None
    mean = statistics.fmean(diffs)
    std = statistics.stdev(diffs) if len(diffs) > 1 else 0.0
    return {"mean": mean, "std": std, "n": len(diffs), "seeds": seeds, "values": diffs}


def verdict(p: Prediction, e: dict[str, Any] | None, quick: bool) -> str:
    """RULE, applied."""
    if e is None:
        return "not run"
    if quick:
        return "quick mode: decides nothing"
    if e["n"] < 3:
        return f"undecided (n = {e['n']})"
    mean, std = e["mean"], e["std"]
    if p.direction in "+-":
        sign = 1 if p.direction == "+" else -1
        m = sign * mean
        return "held" if m - std > 0 else "not shown (within seed spread)" if m > 0 else "did not hold"
    if p.direction == "≈":
        return "held" if mean + std >= -p.tolerance else "did not hold"
    return "held" if mean - std > p.tolerance else "did not hold"


def _fmt(e: dict[str, Any] | None, absolute: bool) -> str:
    if e is None:
        return "—"
    sign = "" if absolute else "+"
    return f"{e['mean']:{sign}.3f} ± {e['std']:.3f} (n = {e['n']})"


def _mean(results: dict[str, Any], model: str | None, p: Prediction) -> str:
    r = _find(results.get("rows", []), model or "", p.metric, p.condition)
    return "—" if r is None else f"{r['mean']:.3f}"


def load_results(base: Path, method: str, trunk: str) -> dict[str, Any] | None:
    path = run_dir(base, method, trunk) / "results.json"
    return shared_shape(json.loads(path.read_text())) if path.is_file() else None


def shared_shape(results: dict[str, Any]) -> dict[str, Any]:
    """benchmarks/causalmer_synthetic.py keeps its own layout ({"runs": [{selection, regime, model, seed,
    test: {variant: {metric: value}}}]}); as shared rows: condition = the regime (", val_free" for the
    shortcut-free selection, " softmax" after the regime for the 4-way head), metric = the test variant
    (avg_acc) or `<variant>_top1` (the 4-way reading)."""
    if "rows" in results or "runs" not in results:
        return results
    cells: dict[tuple[str, str, str], dict[int, float]] = {}
    for run in results["runs"]:
        head = "" if run.get("head", "pairs") == "pairs" else f" {run['head']}"
        free = "" if run.get("selection", "val_shortcut") == "val_shortcut" else ", val_free"
        condition = run["regime"] + head + free
        for variant, metrics in run.get("test", {}).items():
            for metric, suffix in (("avg_acc", ""), ("top1_acc", "_top1")):
                if metric in metrics:
                    cells.setdefault((run["model"], condition, variant + suffix), {})[int(run["seed"])] = metrics[
                        metric
                    ]
    from _results import row

    return {**results, "rows": [row(m, k, v, condition=c) for (m, c, k), v in cells.items()]}


def build_summary(results: dict[tuple[str, str], dict[str, Any] | None], trunks: list[str], quick: bool,
                  command: str) -> str:  # fmt: skip
    """The summary page from {(method, trunk): results.json content or None}."""
    lines = [
        "# Summary: each method's predicted effect, measured" + (" (QUICK MODE: decides nothing)" if quick else ""),
        "",
        f"Generated by `{command}` — do not edit by hand. Each benchmark's protocol, per-seed numbers and reading "
        "are on its results page (docs/results/<method>.md); this page only compares. Values are fractions "
        "(0.05 = 5 points), read from each benchmark's results.json (the shape documented in "
        "benchmarks/_results.py) under runs/all_methods/.",
        "",
    ]
    if quick:
        lines += [
            "**Quick mode**: 1 seed and a reduced budget, to check that every benchmark runs end to end. The "
            "numbers below are not results and no prediction is judged on them.",
            "",
        ]
    lines += [f"**Rule** (fixed before the runs): {RULE}", ""]
    for name, m in METHODS.items():
        lines += [
            f"## {name}",
            "",
            f"- Benchmark: {m.benchmark} ([results]({m.doc})).",
            f"- Baseline: {m.baseline}.",
            f"- Predicted: {m.claim}",
            "",
            "| start | prediction | measured effect (mean ± std) | per seed | held? |",
            "|---|---|---|---|---|",
        ]
        for trunk in trunks:
            if name == "causalmer" and trunk != "none":
                continue
            res = results.get((name, trunk))
            if res is None:
                earlier = f"; earlier 3-seed table on [{m.doc}]({m.doc})" if trunk == "none" else ""
                lines.append(f"| {TRUNK_NAMES[trunk]} | — | — | — | not run by this command{earlier} |")
                continue
            for p in m.predictions:
                e = effect(res, p)
                absolute = p.baseline is None
                per_seed = ", ".join(f"{v:.3f}" if absolute else f"{v:+.3f}" for v in e["values"]) if e else "—"
                what = p.text if absolute else f"{p.text} ({p.model} − {p.baseline}, {p.metric})"
                if e and not absolute:
                    what += f": {_mean(res, p.model, p)} vs {_mean(res, p.baseline, p)}"
                lines.append(f"| {TRUNK_NAMES[trunk]} | {what} | {_fmt(e, absolute)} | {per_seed} | "
                             f"{verdict(p, e, quick)} |")  # fmt: skip
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 seed and a reduced budget (checks the pipeline)")
    parser.add_argument("--trunks", nargs="+", choices=TRUNKS, default=list(TRUNKS))
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default 0 1 2 (quick: 0)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "all_methods")
    parser.add_argument("--summary", type=Path, default=None,
                        help="default docs/results/summary.md (quick: <out>/quick/summary.md)")  # fmt: skip
    parser.add_argument("--summary-only", action="store_true", help="rebuild the summary from finished steps only")
    parser.add_argument("--jobs", type=int, default=None,
                        help="benchmarks at once, one per (method, start); default 1, quick 2")  # fmt: skip
    args = parser.parse_args()
    jobs = args.jobs or (2 if args.quick else 1)
    seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
    base = args.out / ("quick" if args.quick else "full")
    summary = args.summary or (base / "summary.md" if args.quick else ROOT / "docs" / "results" / "summary.md")
    start = time.monotonic()
    command = "python benchmarks/all_methods.py" + (" --quick" if args.quick else "")

    lock = threading.Lock()

    def write_summary() -> None:  # after every step, so that a long grid's summary is current while it runs
        from fermix.utils.io import atomic_write_text

        with lock:
            results = {(m, t): load_results(base, m, t) for m in METHODS for t in TRUNKS}
            atomic_write_text(summary, build_summary(results, list(TRUNKS), args.quick, command))

    failed: list[str] = []

    def run_group(group: list[tuple[str, str, list[str]]]) -> None:
        for method, trunk, step in group:  # a group's steps share one output folder: in order
            if not run_step(base, method, trunk, step):
                failed.append(f"{method} · {trunk} (log: {run_dir(base, method, trunk) / 'log.txt'})")
            write_summary()

    if not args.summary_only:
        groups: dict[tuple[str, str], list[tuple[str, str, list[str]]]] = {}
        for method, trunk, step in steps(args.quick, args.trunks, args.methods, seeds):
            groups.setdefault((method, trunk), []).append((method, trunk, step))
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            list(pool.map(run_group, groups.values()))
    write_summary()
    print(f"wrote {summary} in {time.monotonic() - start:.0f} s" + (f"; FAILED: {'; '.join(failed)}" if failed else ""))
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
