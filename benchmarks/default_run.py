"""The default run and the CLI's answer time: `fermix train` with no overrides, `fermix --help`, `fermix list`.

    python benchmarks/default_run.py [--epochs N] [--repeats 5] [--no-write]

`fermix train` runs in a fresh temporary folder, so the synthetic dataset is generated first
(as on a new machine); wall time and the largest resident set of the process tree (the trainer or
one of its DataLoader workers, from getrusage of the waited-for children) are reported, with the
generation time read from the run's log. `--epochs N` passes trainer.max_epochs=N (for a quick
look; the default run is 10 epochs). `fermix --help` and `fermix list` are timed as fresh
processes (median of `--repeats`), and `python -X importtime` proves they import no torch.
The table is printed and written to docs/performance.md, section "Default run".
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _doc import machine, write_section

SECTION = "## Default run"
FERMIX = [sys.executable, "-m", "fermix"]


def timed(args: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
    return time.perf_counter() - start, result


def default_train(epochs: int | None) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        extra = [f"trainer.max_epochs={epochs}"] if epochs else []
        seconds, result = timed([*FERMIX, "train", *extra], Path(tmp))
        if result.returncode != 0:
            raise SystemExit(f"fermix train failed: {result.stderr[-2000:]}")
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
        log = next(Path(tmp, "runs").rglob("train.log")).read_text()
        acc = re.findall(r"acc\s*│\s*([0-9.]+)", result.stdout)
        epoch_times = [float(s) for s in re.findall(r"done in ([0-9.]+)s", log)]
    return {
        "seconds": seconds,
        "peak_gib": peak_kib / 2**20,
        "epoch_median": statistics.median(epoch_times) if epoch_times else float("nan"),
        "epochs": len(epoch_times),
        "test_acc": float(acc[-1]) if acc else float("nan"),
    }


def cli_latency(args: list[str], repeats: int) -> tuple[float, bool]:
    with tempfile.TemporaryDirectory() as tmp:
        times = [timed([*FERMIX, *args], Path(tmp))[0] for _ in range(repeats)]
        probe = subprocess.run([sys.executable, "-X", "importtime", "-m", "fermix", *args], cwd=tmp,
                               capture_output=True, text=True, check=False)  # fmt: skip
    imports_torch = bool(re.search(r"\|\s+torch$", probe.stderr, re.M))
    return statistics.median(times), imports_torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="trainer.max_epochs (default: the config's 10)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    env = machine()
    os.environ.pop("FERMIX_DEBUG", None)
    help_s, help_torch = cli_latency(["--help"], args.repeats)
    list_s, list_torch = cli_latency(["list"], args.repeats)
    run = default_train(args.epochs)
    command = "fermix train" + (f" trainer.max_epochs={args.epochs}" if args.epochs else "")
    rows = [
        (f"`fermix --help` (median of {args.repeats} fresh processes)", f"{help_s:.2f} s",
         "< 1 s", "imports torch" if help_torch else "no torch import"),
        (f"`fermix list` (median of {args.repeats})", f"{list_s:.2f} s", "< 1 s",
         "imports torch" if list_torch else "no torch import"),
        (f"`{command}`: wall time, incl. generating the synthetic data", f"{run['seconds'] / 60:.2f} min",
         "< 3 min", f"{run['epochs']} epochs, median {run['epoch_median']:.1f} s each; test acc {run['test_acc']:.3f}"),
        ("its peak RSS (largest process)", f"{run['peak_gib']:.2f} GiB", "< 2 GiB", ""),
    ]  # fmt: skip
    goals = [help_s < 1 and not help_torch, list_s < 1 and not list_torch, run["seconds"] < 180, run["peak_gib"] < 2]
    flag = f" --epochs {args.epochs}" if args.epochs else ""
    lines = [SECTION, "", f"`python benchmarks/default_run.py{flag} "
             f"--repeats {args.repeats}` ({env}).", "", "| what | measured | goal | note |", "|---|---:|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    lines += ["", "Every goal holds." if all(goals) else
              "Goals not met: " + ", ".join(r[0] for r, ok in zip(rows, goals, strict=True) if not ok) + "."]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
