"""`fermix train`: fit a method on a dataset, select on validation, evaluate, write the run dir."""

from __future__ import annotations

import json
import logging
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.callbacks import ProgressBar
from omegaconf import DictConfig

from fermix.data.transforms import preprocessing_spec
from fermix.engine.artifacts import print_metrics_table
from fermix.engine.build import build_method, method_class, plain, untyped
from fermix.engine.callbacks import build_callbacks
from fermix.engine.checkpoint import AtomicCheckpointIO, load_checkpoint, provenance, save_atomic
from fermix.engine.compute import apply_compute
from fermix.engine.console import quiet_libraries
from fermix.engine.datamodule import FermixDataModule
from fermix.engine.distributed import override_keys, quiet_secondary_process, trainer_settings
from fermix.engine.evaluate import evaluate_split, predict_split, resolve_device
from fermix.engine.loggers import ResumePoint, build_loggers
from fermix.engine.module import FermixModule
from fermix.errors import FermixError
from fermix.inference.alignment import recorded_alignment
from fermix.methods.base import Method, Stage
from fermix.utils.io import atomic_path, atomic_write_json

log = logging.getLogger("fermix")


def resolve_resume(resume: str | None, run_dir: Path, method_name: str) -> str | None:
    """The checkpoint to resume from: `auto` = this run's last.ckpt if any; or an explicit path."""
    if resume in (None, "", "none"):
        return None
    if resume == "auto":
        last = run_dir / "checkpoints" / "last.ckpt"
        if not last.is_file():
            log.info("resume=auto: no unfinished run found, starting fresh in %s", run_dir)
            return None
        path = last
    else:
        path = Path(resume)
        if path.is_dir():
            path = path / "checkpoints" / "last.ckpt" if (path / "checkpoints").is_dir() else path / "last.ckpt"
    meta = load_checkpoint(path)["fermix"]
    trained = meta["config"]["method"]["name"]
    if trained != method_name:
        raise FermixError(
            f"cannot resume {path}: it is a checkpoint of method {trained}, this run is method={method_name}"
        )
    log.info("resuming from %s (epoch %d, step %d)", path, meta["epoch"], meta["global_step"])
    return str(path)


def run_train(cfg: DictConfig) -> dict[str, Any]:
    cfg = untyped(cfg)
    quiet_libraries()
    quiet_secondary_process()
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)

    wrapper = method_class(cfg.method.name).sample_wrapper(cfg)
    dm = FermixDataModule(cfg.dataset, cfg.data, seed=int(cfg.seed), wrapper=wrapper)
    info = dm.build()
    if not dm.has_split("val") and cfg.checkpoint.get("monitor"):
        raise FermixError(
            f"checkpoint.monitor={cfg.checkpoint.monitor} needs a validation split, and this run has none; "
            "set data.val_fraction > 0, or checkpoint.monitor=null to keep the last epoch"
        )
    dm.check_requires(method_class(cfg.method.name).requires, cfg.method.name)  # before any weights load
    method = build_method(cfg.method, cfg.backbone, info)
    device = resolve_device(cfg.trainer.get("accelerator")).type
    compute = apply_compute(cfg.get("compute"), method, info.image_size, device)
    log.info("compute: %s", ", ".join(f"{k}={v}" for k, v in compute.items()))
    dm.train_sampler_factory = method.train_sampler
    dm.train_sources_factory = method.train_sources

    meta = {
        "method": method.name,
        "dataset": cfg.dataset.name,
        "config": plain(cfg),
        "label_space": info.label_space.to_dict(),
        "data_info": info.to_dict(),
        "preprocessing": preprocessing_spec(cfg.data),
        "face_alignment": recorded_alignment(cfg.dataset.get("root")),  # what `fermix predict` aligns faces with
        "data_fingerprints": dm.fingerprints(),
        "split_sizes": dm.split_sizes(),
        "provenance": provenance(),
    }
    trainer_cfg, clip = _trainer_cfg(cfg, method)
    module = FermixModule(method, cfg.optim, cfg.sched, meta, clip=clip)

    if method.stages():
        return _run_stages(cfg, run_dir, module, dm)
    start = time.monotonic()
    ckpt_path = resolve_resume(cfg.get("resume"), run_dir, method.name)
    trainer = _trainer(cfg, run_dir, run_dir / "checkpoints", trainer_cfg, resume=ResumePoint.of(ckpt_path))
    if ckpt_path:  # continuing in the same directory is the point of a resume
        warnings.filterwarnings("ignore", message=r".*exists and is not empty.*")
    _log_start(trainer, cfg, method, info, run_dir, meta)
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    if trainer.interrupted:
        raise FermixError(f"training was interrupted; resume with resume=auto hydra.run.dir={run_dir}")
    if not trainer.is_global_zero:
        return {}
    ckpt_cb = trainer.checkpoint_callback
    best = Path(ckpt_cb.best_model_path) if ckpt_cb and ckpt_cb.best_model_path else run_dir / "checkpoints/last.ckpt"
    return _finish(cfg, run_dir, best, module, dm, time.monotonic() - start, trainer.current_epoch, trainer.global_step)


def _trainer(
    cfg: DictConfig,
    run_dir: Path,
    ckpt_dir: Path,
    trainer_cfg: dict[str, Any],
    stage: str = "",
    resume: ResumePoint | None = None,
) -> pl.Trainer:
    """`resume`: where a resumed run continues, so its logs continue there too (engine/loggers.py)."""
    loggers = build_loggers(cfg, run_dir, version=stage, resume=resume)
    callbacks = build_callbacks(cfg, run_dir, has_logger=bool(loggers), ckpt_dir=ckpt_dir)
    return pl.Trainer(
        **trainer_cfg,
        logger=loggers or False,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        default_root_dir=str(run_dir),
        enable_progress_bar=any(isinstance(c, ProgressBar) for c in callbacks),
        enable_model_summary=False,
    )


def _trainer_cfg(cfg: DictConfig, method: Method) -> tuple[dict[str, Any], dict[str, Any]]:
    """Trainer keyword arguments: cfg.trainer, fitted to torchrun / srun if they started this process."""
    find_unused = method.ddp_find_unused_parameters
    if find_unused is None:
        find_unused = not method.automatic_optimization
    trainer_cfg = trainer_settings(plain(cfg.trainer), _explicit_trainer_keys(), find_unused_parameters=find_unused)
    clip = {k: trainer_cfg.pop(k, None) for k in ("gradient_clip_val", "gradient_clip_algorithm")}
    if method.automatic_optimization:
        trainer_cfg.update({k: v for k, v in clip.items() if v is not None})
    return trainer_cfg, clip


def _explicit_trainer_keys() -> set[str]:
    """`devices`, `num_nodes`, ... when the command line set trainer.<key> (a launcher must then agree)."""
    overrides = HydraConfig.get().overrides.task if HydraConfig.initialized() else []
    return {k.removeprefix("trainer.") for k in override_keys(overrides) if k.startswith("trainer.")}


def _log_start(trainer: pl.Trainer, cfg: DictConfig, method: Any, info: Any, run_dir: Path, meta: dict) -> None:
    if trainer.is_global_zero:
        if trainer.world_size > 1:
            log.info(
                "DDP over %d processes (%d per node, %d node(s), %s); data.batch_size=%s is split over them",
                trainer.world_size, trainer.num_devices, trainer.num_nodes, trainer.strategy.__class__.__name__,
                cfg.data.batch_size,
            )  # fmt: skip
        log.info(
            "training %s on %s (%s) in %s; split sizes %s",
            method.name,
            cfg.dataset.name,
            _class_list(info.label_space.classes),
            run_dir,
            meta["split_sizes"],
        )


def _class_list(classes: tuple[str, ...], shown: int = 12) -> str:
    """The class names for the start line; hundreds (an identity dataset's people) as first, last and count."""
    if len(classes) <= shown:
        return ", ".join(classes)
    return f"{', '.join(classes[:3])}, ..., {classes[-1]}: {len(classes)} classes"


# --- staged methods (multitask: teacher, then students) --------------------------------------
# Each stage is one fit with its own optimizer, epochs, seed, logs (csv/<stage>/) and best-epoch
# selection (checkpoints/<stage>/best.ckpt). Every stage's checkpoint holds the whole method; the
# next stage starts from the weights the finished one names (`Stage.next_from`: its best or its
# last epoch), so the last stage's best.ckpt — copied to checkpoints/best.ckpt — is the finished
# model. A stage is finished when checkpoints/<stage>/done.json exists; `resume=auto` skips
# finished stages, loads the weights the newest finished one hands on and resumes an interrupted
# stage from its last.ckpt.
def _run_stages(cfg: DictConfig, run_dir: Path, module: FermixModule, dm: FermixDataModule) -> dict[str, Any]:
    method = module.method
    stages = method.stages()
    _refuse_trainer_epochs(method.name, stages)
    cap = _debug_epoch_cap(cfg)
    trainer_cfg, _ = _trainer_cfg(cfg, method)
    resume = cfg.get("resume")
    if resume not in (None, "", "none", "auto"):
        raise FermixError("a staged method resumes its own run only: use resume=auto with hydra.run.dir=RUN_DIR")
    start = time.monotonic()
    epochs = steps = 0
    best: Path | None = None  # the latest finished stage's selected checkpoint (the finished model at the end)
    handed: Path | None = None  # the weights the latest finished stage hands to the next one
    for stage in stages:
        if stage.next_from not in ("best", "last"):
            raise ValueError(f"stage {stage.name}: next_from={stage.next_from!r} is not best or last")
        stage_dir = run_dir / "checkpoints" / stage.name
        done = stage_dir / "done.json"
        if resume == "auto" and done.is_file():
            record = json.loads(done.read_text())
            best = Path(record["best"])
            handed = Path(record.get("next", record["best"]))
            log.info("stage %s finished earlier (%s)", stage.name, best)
            continue
        if handed is not None:  # the previous stages' weights (after a resume)
            module.load_state_dict(load_checkpoint(handed)["state_dict"])
        seed = int(cfg.seed) + stage.seed_offset
        pl.seed_everything(seed, workers=True, verbose=False)
        dm.reseed(seed)
        method.begin_stage(stage)
        last = stage_dir / "last.ckpt"
        ckpt_path = str(last) if resume == "auto" and last.is_file() else None
        stage_epochs = min(stage.max_epochs, cap) if cap is not None else stage.max_epochs
        stage_cfg = {**trainer_cfg, "max_epochs": stage_epochs}
        trainer = _trainer(cfg, run_dir, stage_dir, stage_cfg, stage.name, resume=ResumePoint.of(ckpt_path))
        if ckpt_path:
            warnings.filterwarnings("ignore", message=r".*exists and is not empty.*")
        if trainer.is_global_zero:
            capped = f" (debug={_debug_choice()} caps {stage.max_epochs})" if stage_epochs != stage.max_epochs else ""
            log.info("stage %s: %d epochs%s, seed %d", stage.name, stage_epochs, capped, seed)
        trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
        if trainer.interrupted:
            raise FermixError(f"training was interrupted; resume with resume=auto hydra.run.dir={run_dir}")
        cb = trainer.checkpoint_callback
        best = Path(cb.best_model_path) if cb and cb.best_model_path else last
        handed = best if stage.next_from == "best" else last
        module.load_state_dict(load_checkpoint(handed)["state_dict"])
        epochs, steps = epochs + trainer.current_epoch, steps + trainer.global_step
        if trainer.is_global_zero:
            record = {"stage": stage.name, "best": str(best), "next": str(handed), "epochs": trainer.current_epoch}
            atomic_write_json(done, record)
    assert best is not None
    if not trainer_is_global_zero():
        return {}
    final = run_dir / "checkpoints" / "best.ckpt"
    with atomic_path(final) as tmp:
        shutil.copyfile(best, tmp)
    return _finish(cfg, run_dir, final, module, dm, time.monotonic() - start, epochs, steps)


def _refuse_trainer_epochs(method_name: str, stages: list[Stage]) -> None:
    """A staged method's stages set their own epochs: a trainer.max_epochs the user set is refused, not ignored.

    Only a value set on the command line counts (Hydra's task overrides); the trainer config's
    default is not the user's choice.
    """
    overrides = HydraConfig.get().overrides.task if HydraConfig.initialized() else []
    if "trainer.max_epochs" not in override_keys(overrides):
        return
    keys = list(dict.fromkeys(s.epochs_key for s in stages if s.epochs_key))
    instead = f"set {' and '.join(keys)} instead" if keys else "set the method's own epoch options instead"
    raise FermixError(
        f"trainer.max_epochs does not apply to method {method_name}, whose stages set their own epochs; {instead}"
    )


def _debug_choice() -> str | None:
    """The `debug=` preset the run was composed with (smoke, overfit, ...), or None."""
    if not HydraConfig.initialized():
        return None
    choice = HydraConfig.get().runtime.choices.get("debug")
    return None if choice in (None, "null", "none") else str(choice)


def _debug_epoch_cap(cfg: DictConfig) -> int | None:
    """A debug preset's trainer.max_epochs caps every stage (`debug=smoke`: one epoch each), so the preset does what
    it says for staged methods too; outside a debug preset the stages' own epochs apply."""
    if _debug_choice() is None or cfg.trainer.get("max_epochs") is None:
        return None
    return int(cfg.trainer.max_epochs)


def trainer_is_global_zero() -> bool:
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def _finish(
    cfg: DictConfig,
    run_dir: Path,
    best: Path,
    module: FermixModule,
    dm: FermixDataModule,
    seconds: float,
    epochs_trained: int,
    global_step: int,
) -> dict[str, Any]:
    """Reload the validation-selected weights, calibrate on val, evaluate val and test, write summary.json."""
    best_ckpt = load_checkpoint(best)
    module.load_state_dict(best_ckpt["state_dict"])
    module.method.end_stages()
    device = resolve_device(cfg.trainer.get("accelerator"))
    precision = str(cfg.trainer.get("precision"))
    val_preds = None
    if dm.has_split("val"):
        val_preds = predict_split(module.method, dm.loader("val"), device, precision)
        if module.method.calibrate({k: v for k, v in val_preds.items() if k not in ("sample_id", "expr", "targets")},
                                   val_preds["targets"]):  # fmt: skip
            best_ckpt["state_dict"] = module.state_dict()  # post-hoc state (thresholds) travels with the model
            save_atomic(best_ckpt, best)
            log.info("calibrated %s on the validation split; saved in %s", module.method.name, best)
    results: dict[str, Any] = {}
    for split in ("val", "test"):
        if dm.has_split(split):
            results[split] = evaluate_split(
                module.method, dm.loader(split), split, run_dir, device=device, precision=precision,
                predictions=val_preds if split == "val" else None,
            )  # fmt: skip
            print_metrics_table(results[split]["metrics"], title=f"{module.method.name} · {split} (best.ckpt)")
    summary = {
        "method": module.method.name,
        "dataset": cfg.dataset.name,
        "run_dir": str(run_dir),
        "best_checkpoint": str(best),
        "best_epoch": best_ckpt["fermix"]["epoch"],
        "epochs_trained": epochs_trained,
        "global_step": global_step,
        "seed": int(cfg.seed),
        "seconds": round(seconds, 2),
        "split_sizes": dm.split_sizes(),
        "skipped_images": dm.skipped_images,  # data.bad_images=skip: [{sample_id, path, reason}]
        "metrics": {split: r["metrics"] for split, r in results.items()},
        "per_class_acc": {split: r["per_class_acc"] for split, r in results.items()},
        "checkpoint_val_metrics": best_ckpt["fermix"]["metrics"]["val"],
        "config": plain(cfg),
    }
    atomic_write_json(run_dir / "summary.json", summary)
    log.info("run finished: %s", run_dir)
    return summary
