"""CPU knobs: what threads, channels_last, bf16 autocast and torch.compile do to one erm training step.

    python benchmarks/cpu_knobs.py [--configs small_cnn:64 resnet18:64 resnet18:112] [--batch 64]
                                   [--steps 5 --warmup 2 --repeats 3] [--no-compile] [--no-write]

For each backbone and input size, the same erm model (same seed), batch and Adam train one step
(forward under autocast for bf16, as Lightning's `bf16-mixed` does; backward and the optimizer step
outside it) in these variants, alternating within each repeat:
  baseline        fp32, contiguous NCHW, torch's default threads (train.yaml `compute:` all off)
  threads=1       torch.set_num_threads(1)
  channels_last   compute.channels_last=true
  bf16            trainer.precision=bf16-mixed
  cl + bf16       both
  compile         compute.compile=true (after its compilation, which is timed separately)
The table gives median ms/step and the median of per-repeat ratios to the baseline, and is
written to docs/performance.md, section "CPU knobs".
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from _doc import machine, write_section
from method_cost import compose_cfg, one_batch, optimizers, time_step

from fermix.engine.build import build_method
from fermix.engine.compute import apply_compute

SECTION = "## CPU knobs"
VARIANTS = {  # name: (compute settings, bf16 autocast, threads)
    "baseline": ({}, False, None),
    "threads=1": ({}, False, 1),
    "channels_last": ({"channels_last": True}, False, None),
    "bf16": ({}, True, None),
    "cl + bf16": ({"channels_last": True}, True, None),
    "compile": ({"compile": True}, False, None),
}


def make_step(cfg, info, batch, compute: dict, bf16: bool) -> Callable[[], None]:
    torch.manual_seed(0)
    method = build_method(cfg.method, cfg.backbone, info).train()
    apply_compute({"channels_last": False, **compute}, method, info.image_size, "cpu")
    (opt,) = optimizers(method, cfg.optim)
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext

    def step() -> None:
        with autocast():
            terms = method.training_step(batch)
        opt.zero_grad()
        sum(terms.values()).backward()
        opt.step()

    return step


def measure(backbone: str, size: int, args, tmp: Path) -> dict[str, dict[str, float]]:
    cfg = compose_cfg("erm", "synthetic", size, args.batch, backbone, tmp / f"{backbone}_{size}")
    batch, info = one_batch(cfg, args.batch)
    default_threads = torch.get_num_threads()
    variants = {k: v for k, v in VARIANTS.items() if args.compile or k != "compile"}
    steps, first = {}, {}
    for name, (compute, bf16, _) in variants.items():
        steps[name] = make_step(cfg, info, batch, compute, bf16)
        start = time.perf_counter()
        steps[name]()  # the first step: compilation for `compile`, allocation for the rest
        first[name] = 1000 * (time.perf_counter() - start)
    times: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(args.repeats):
        order = list(variants) if r % 2 == 0 else list(variants)[::-1]
        for name in order:
            threads = variants[name][2]
            torch.set_num_threads(threads or default_threads)
            times[name].append(time_step(steps[name], args.steps, args.warmup))
        torch.set_num_threads(default_threads)
        print(f"{backbone} {size}px repeat {r}: " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in times.items()), flush=True)
    base = times["baseline"]
    return {k: {"ms": statistics.median(v), "ratio": statistics.median(t / b for t, b in zip(v, base, strict=True)),
                "first_ms": first[k]} for k, v in times.items()}  # fmt: skip


def render(results: dict, args, env: str, command: str) -> str:
    variants = list(next(iter(results.values())))
    lines = [
        SECTION, "",
        f"`{command}` ({env}).",
        f"One erm training step (batch {args.batch}, Adam) per variant, same model and batch; median ms/step over "
        f"{args.repeats} repeats of {args.steps} steps after {args.warmup} warm-up steps, and the median per-repeat "
        "ratio to the baseline (fp32, contiguous, torch's default threads). Lower is faster.", "",
        "| backbone, size | " + " | ".join(variants) + " |",
        "|---|" + "---:|" * len(variants),
    ]
    for label, rows in results.items():
        cells = [f"{rows[v]['ms']:.0f} ms" + ("" if v == "baseline" else f" ({rows[v]['ratio']:.2f}×)")
                 for v in variants]  # fmt: skip
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if "compile" in variants:
        lines += ["", "First step (compilation included for `compile`): " + "; ".join(
            f"{label} {rows['compile']['first_ms'] / 1000:.0f} s against {rows['baseline']['first_ms'] / 1000:.1f} s"
            for label, rows in results.items()) + "."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["small_cnn:64", "resnet18:64", "resnet18:112"])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-compile", dest="compile", action="store_false")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    env = machine()
    command = (f"python benchmarks/cpu_knobs.py --configs {' '.join(args.configs)} --batch {args.batch} "
               f"--steps {args.steps} --warmup {args.warmup} --repeats {args.repeats}"
               + ("" if args.compile else " --no-compile"))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.configs:
            backbone, size = spec.split(":")
            results[f"{backbone}, {size} px"] = measure(backbone, int(size), args, Path(tmp))
    text = render(results, args, env, command)
    print(text)
    if not args.no_write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
