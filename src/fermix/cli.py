"""`fermix <subcommand> [hydra overrides]`.

Each job subcommand is one Hydra entry with its own primary config (configs/<subcommand>.yaml).
This module imports nothing heavy at the top, so `fermix --help` and `fermix list` answer at
once; torch and Lightning load only when a job runs.

Errors the user can fix (FermixError) print one sentence on stderr and exit 1; so does an
unexpected error, with a pointer to FERMIX_DEBUG=1 for its traceback.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fermix import __version__
from fermix.errors import FermixError

JOBS: dict[str, tuple[str, str]] = {
    "train": ("fermix.engine.train:run_train", "train a method on a dataset (default: erm)"),
    "test": ("fermix.engine.testing:run_test", "evaluate a checkpoint: fermix test ckpt=PATH [split=val]"),
    "preprocess": (
        "fermix.preprocess.run:run_preprocess",
        "detect, align and crop raw photos: fermix preprocess dataset=NAME [preprocess.out=DIR]",
    ),
    "predict": (
        "fermix.inference.run:run_predict",
        "faces in photos, folders or videos: fermix predict ckpt=PATH input=IMAGE|FOLDER|VIDEO",
    ),
    "export": (
        "fermix.export.run:run_export",
        "inference-only model: fermix export ckpt=PATH format=torchscript|onnx|safetensors",
    ),
    "report": ("fermix.report.run:run_report", "tables and plots over runs: fermix report runs=DIR|GLOB"),
}

USAGE = f"""usage: fermix <command> [key=value ...]

fermix {__version__} — facial-expression recognition methods as plugins of one framework.

commands:
  train       {JOBS["train"][1]}
  test        {JOBS["test"][1]}
  preprocess  {JOBS["preprocess"][1]}
  predict     {JOBS["predict"][1]}
  export      {JOBS["export"][1]}
  report      {JOBS["report"][1]}
  list        list registered names: fermix list [methods|datasets|backbones]

Options are Hydra overrides, e.g.
  fermix train method=erm dataset=imagefolder dataset.root=PATH backbone=resnet18 trainer.max_epochs=20
  fermix train -m seed=1,2,3          (a multirun: one run per seed)
  fermix train --help                 (config groups and the composed config)
  fermix test ckpt=runs/erm_imagefolder/<run>/checkpoints/best.ckpt
  fermix preprocess dataset=imagefolder dataset.root=PHOTOS preprocess.out=FACES   (then dataset.root=FACES)

Set FERMIX_DEBUG=1 to see tracebacks.
"""

# What `fermix test` may change: nothing that alters the model it rebuilds from the checkpoint.
TEST_ALLOWED = (
    "ckpt", "split", "accelerator", "precision", "progress", "data.batch_size", "data.num_workers", "data.bad_images",
)  # fmt: skip
TEST_ALLOWED_PREFIXES = ("dataset", "paths.", "hydra.")


def configs_folder() -> Path:
    """configs/ inside an installed wheel (fermix/configs), else the checkout's top-level configs/."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "configs", here.parents[1] / "configs"):
        if (candidate / "train.yaml").is_file():
            return candidate
    raise FermixError(f"cannot find fermix's configs/ next to {here}; reinstall fermix")


def config_dir() -> Path:
    """configs_folder(), with the schemas its YAML files name stored (fermix.config_schema): whoever
    composes them asks here. Importing the methods for their schemas imports torch."""
    from fermix.config_schema import register

    folder = configs_folder()
    register(folder)
    return folder


def fail(message: str, code: int = 1) -> None:
    print(f"fermix: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def user_message(exc: BaseException) -> str:
    """One sentence from an exception, also when a DataLoader worker wrapped it in a traceback."""
    text = str(exc)
    if "Original Traceback" in text:
        last = [line for line in text.strip().splitlines() if line.strip()][-1]
        text = last.split(": ", 1)[1] if ": " in last else last
    return text.strip()


def _guarded(task: Callable[[Any], Any], cfg: Any) -> Any:
    debug = os.environ.get("FERMIX_DEBUG", "") not in ("", "0")
    try:
        return task(cfg)
    except FermixError as exc:
        if debug:
            raise
        fail(user_message(exc))
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        if debug:
            raise
        fail(f"unexpected {exc.__class__.__name__}: {user_message(exc)} (set FERMIX_DEBUG=1 for the traceback)")


def _override_key(arg: str) -> str:
    return arg.split("=", 1)[0].lstrip("+~")


def _evaluation_protocols(ckpt: str, dataset: str | None) -> dict[str, Any]:
    """The evaluation protocols of a checkpoint's method and of the dataset it is evaluated on."""
    from fermix.engine.checkpoint import load_checkpoint
    from fermix.protocols import declared
    from fermix.registry import DATASETS, METHODS, dataset_adapter_name, dataset_presets

    try:
        config = load_checkpoint(ckpt, mmap=True)["fermix"]["config"]
        if dataset:  # a `dataset=` choice: a registered adapter, or a preset config naming one
            preset = dataset_presets(configs_folder()).get(dataset)
            adapter = preset.adapter if preset else dataset
        else:
            adapter = dataset_adapter_name(config["dataset"])
        owners = [METHODS.get(str(config["method"]["name"])), DATASETS.get(adapter)]
    except (FermixError, KeyError, TypeError):
        return {}  # an unreadable checkpoint offers nothing; fermix test then says what is wrong with it
    return declared(*owners)


def check_test_args(args: Sequence[str]) -> list[str]:
    """Refuse what `fermix test` cannot honour, before Hydra creates any directory."""
    args = list(args)
    if {"-h", "--help", "--hydra-help"} & set(args):
        return args
    overrides = [a for a in args if "=" in a and not a.startswith("-")]
    keys = [_override_key(a) for a in overrides]
    if "ckpt" not in keys:
        fail("fermix test needs ckpt=PATH, a .ckpt that fermix train wrote (e.g. runs/.../checkpoints/best.ckpt)")
    ckpt = overrides[keys.index("ckpt")].split("=", 1)[1]
    choice = next((a.split("=", 1)[1] for a, k in zip(overrides, keys, strict=True) if k == "dataset"), None)
    offered: dict[str, Any] | None = None  # the checkpoint's evaluation protocols, read when first needed
    for arg, key in zip(overrides, keys, strict=True):
        if key in TEST_ALLOWED or key.startswith(TEST_ALLOWED_PREFIXES):
            continue
        if offered is None:
            offered = _evaluation_protocols(ckpt, choice) if Path(ckpt).is_file() else {}
        if key in offered:  # not in configs/test.yaml: the protocol's owner declares it
            args[args.index(arg)] = "+" + arg.lstrip("+")
            continue
        from fermix.protocols import describe, registered

        owners = registered().get(key, (None, []))[1]
        if owners:
            fail(
                f"`{arg}` is an evaluation option of {' and '.join(owners)}, which this checkpoint's method and "
                f"evaluation dataset do not include (its evaluation options: {describe(offered.values())})"
            )
        fail(
            f"`{arg}` would change the model, but fermix test evaluates a checkpoint as it was trained; "
            f"only dataset paths, dataset=, data.batch_size, data.num_workers, accelerator and precision may change"
        )
    if not Path(ckpt).is_file():
        fail(f"checkpoint {ckpt} does not exist")
    # `dataset.root=X` with no `dataset=` choice adjusts the checkpoint's own dataset: the test
    # config has no dataset node, so Hydra needs it as an addition.
    if "dataset" not in keys:
        args = [f"+{a}" if "=" in a and a.startswith("dataset.") else a for a in args]
    return args


def check_ckpt_arg(command: str, args: Sequence[str]) -> None:
    """`fermix predict|export` need an existing ckpt=PATH: refuse before Hydra makes an output folder."""
    if {"-h", "--help", "--hydra-help"} & set(args):
        return
    given = [a.split("=", 1)[1] for a in args if _override_key(a) == "ckpt" and "=" in a]
    if not given:
        fail(f"fermix {command} needs ckpt=PATH, a .ckpt that fermix train wrote (e.g. runs/.../checkpoints/best.ckpt)")
    if not Path(given[-1]).is_file():
        fail(f"checkpoint {given[-1]} does not exist")


def check_job_overrides(command: str, args: Sequence[str]) -> None:
    """Unknown keys and wrong-typed values in one sentence, before Hydra prints a page or a run starts
    (fermix.config_check; `fermix test` has its own, stricter check_test_args)."""
    from fermix.config_check import check_overrides

    check_overrides(args, config_dir(), command)


def check_run_dir(args: Sequence[str]) -> None:
    """A new run never writes into a folder that holds a run: that run is continued only with `resume=`."""
    given = [a.split("=", 1)[1] for a in args if a.startswith("hydra.run.dir=")]
    resumed = [a.split("=", 1)[1] for a in args if a.startswith("resume=")]
    if not given or {"-m", "--multirun"} & set(args):
        return
    run = Path(given[-1])
    if run.exists() and not run.is_dir():
        fail(f"hydra.run.dir={run} is a file; give a folder for the run")
    held = [n for n in ("checkpoints/last.ckpt", "checkpoints/best.ckpt", "summary.json") if (run / n).is_file()]
    if held and not (resumed and resumed[-1] not in ("null", "")):
        fail(f"{run} holds a run already ({held[0]}); continue it with resume=auto, or choose a new hydra.run.dir")


def recipe_note(args: Sequence[str], configs: Path | None = None) -> str | None:
    """The one-line note for `fermix train method=X dataset=Y` without `experiment=` when
    configs/experiment/X_Y.yaml holds that pair's recipe (experiments are never applied implicitly,
    so a user who used to get the recipe that way learns its name); None otherwise."""
    if {"-h", "--help", "--hydra-help"} & set(args):
        return None
    chosen = {}
    for arg in args:
        key, _, value = arg.partition("=")
        if value and key.lstrip("+") in ("method", "dataset", "experiment"):
            chosen[key.lstrip("+")] = value
    if "experiment" in chosen or not ({"method", "dataset"} & set(chosen)):
        return None
    configs = configs or configs_folder()
    defaults = _train_defaults(configs)
    pair = f"{chosen.get('method', defaults.get('method'))}_{chosen.get('dataset', defaults.get('dataset'))}"
    if not re.fullmatch(r"\w+", pair) or not (configs / "experiment" / f"{pair}.yaml").is_file():
        return None  # a sweep (`method=a,b`) or a pair without a recipe
    return f"note: the paper recipe for this pair is experiment={pair} (method and dataset defaults are used as given)"


def _train_defaults(configs: Path) -> dict[str, str]:
    """The group choices of configs/train.yaml's defaults list (method: erm, dataset: synthetic, ...)."""
    import yaml

    entries = yaml.safe_load((configs / "train.yaml").read_text(encoding="utf-8")).get("defaults", [])
    return {str(k): str(v) for entry in entries if isinstance(entry, dict) for k, v in entry.items()}


def list_registry(args: Sequence[str]) -> int:
    """Registered names with their descriptions; under datasets also the presets (config files only)."""
    from fermix.registry import REGISTRIES, dataset_presets

    kinds = list(args) or list(REGISTRIES)
    for kind in kinds:
        if kind not in REGISTRIES:
            fail(f"cannot list `{kind}`; choose from {', '.join(REGISTRIES)}", code=2)
        registry = REGISTRIES[kind]
        rows = {name: registry.describe(name) for name in registry.names()}
        if kind == "datasets":
            presets = dataset_presets(configs_folder())
            rows |= {p.name: f"preset of {p.adapter}: {p.summary}" for p in presets.values() if p.adapter in registry}
        print(f"{kind}:")
        width = max(len(n) for n in rows)
        for name in sorted(rows):
            print(f"  {name:<{width}}  {rows[name]}")
    return 0


def _is_rank_zero() -> bool:
    """True in the process that writes (a DDP run's other ranks re-run the same command line)."""
    from fermix.engine.distributed import process_rank

    return process_rank() == 0


def run_job(command: str, overrides: Sequence[str]) -> int:
    import hydra

    from fermix.engine.distributed import external_launch, process_rank
    from fermix.engine.rundir import register_resolvers
    from fermix.registry import import_target

    launch = external_launch()
    multi = launch is not None and launch.world_size > 1
    if multi and {"-m", "--multirun"} & set(overrides):
        raise FermixError(
            f"a multirun cannot run inside {launch.launcher}, which would start every sweep job on every rank; "
            "launch one run per torchrun/srun, or sweep with hydra/launcher=submitit_slurm (docs/distributed.md)"
        )
    if multi and command != "train" and process_rank() > 0:
        return 0  # evaluation and preprocessing are single-process jobs: rank 0 does them
    if process_rank() > 0:
        # A non-zero rank of a DDP run (torchrun, srun, or a child Lightning's launcher re-ran) writes
        # nothing: no .hydra/ folder and no log file in the run directory rank 0 writes; warnings on stdout.
        overrides = [*overrides, "hydra.output_subdir=null", "hydra/job_logging=stdout",
                     "hydra.job_logging.root.level=WARNING"]  # fmt: skip
    register_resolvers()
    target = JOBS[command][0]

    argv = sys.argv
    # Inside the job, sys.argv is the full command line again: Lightning's DDP launcher starts
    # the other ranks by re-running it (`<argv0> train ... hydra.run.dir=<this run>`).
    full_argv = [argv[0], command, *overrides]

    @hydra.main(version_base="1.3", config_path=str(config_dir()), config_name=command)
    def entry(cfg: Any) -> Any:
        sys.argv = full_argv
        return _guarded(import_target(target), cfg)

    sys.argv = [f"fermix {command}", *overrides]  # what Hydra parses: the overrides only
    try:
        entry()
    finally:
        sys.argv = argv
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0
    if args[0] in ("-V", "--version"):
        print(f"fermix {__version__}")
        return 0
    command, rest = args[0], args[1:]
    try:
        if command == "list":
            return list_registry(rest)
        if command not in JOBS:
            fail(f"unknown command `{command}`; choose from {', '.join([*JOBS, 'list'])} (fermix --help)", code=2)
        if command == "test":
            rest = check_test_args(rest)
        else:
            check_job_overrides(command, rest)
            if command in ("predict", "export"):
                check_ckpt_arg(command, rest)
            if command == "train" and _is_rank_zero():  # the other ranks of a launch re-run into rank 0's folder
                check_run_dir(rest)
            note = recipe_note(rest) if command == "train" else None
            if note and _is_rank_zero():
                print(note, file=sys.stderr)
        return run_job(command, rest)
    except FermixError as exc:
        fail(user_message(exc))
    return 0
