"""`fermix train`: fit a method on a dataset, select on validation, evaluate, write the run dir."""

from __future__ import annotations

import logging
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
from fermix.engine.build import build_method, plain
from fermix.engine.callbacks import build_callbacks
from fermix.engine.checkpoint import AtomicCheckpointIO, load_checkpoint, provenance
from fermix.engine.console import quiet_libraries
from fermix.engine.datamodule import FermixDataModule
from fermix.engine.evaluate import evaluate_split, resolve_device
from fermix.engine.module import FermixModule
from fermix.errors import FermixError
from fermix.utils.io import atomic_write_json

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
        raise FermixError(f"cannot resume {path}: it is a {trained} checkpoint, this run is method={method_name}")
    log.info("resuming from %s (epoch %d, step %d)", path, meta["epoch"], meta["global_step"])
    return str(path)


def _loggers(cfg: DictConfig, run_dir: Path) -> list[Any]:
    loggers: list[Any] = []
    if cfg.logger.get("tensorboard"):
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", version=""))
    if cfg.logger.get("csv"):
        from lightning.pytorch.loggers import CSVLogger

        loggers.append(CSVLogger(save_dir=str(run_dir), name="csv", version=""))
    return loggers


def run_train(cfg: DictConfig) -> dict[str, Any]:
    quiet_libraries()
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)

    dm = FermixDataModule(cfg.dataset, cfg.data, seed=int(cfg.seed))
    info = dm.build()
    if not dm.has_split("val") and cfg.checkpoint.get("monitor"):
        raise FermixError(
            f"checkpoint.monitor={cfg.checkpoint.monitor} needs a validation split, and this run has none; "
            "set data.val_fraction > 0, or checkpoint.monitor=null to keep the last epoch"
        )
    method = build_method(cfg.method, cfg.backbone, info)
    dm.check_requires(method.requires, method.name)
    dm.train_sampler_factory = method.train_sampler

    meta = {
        "method": method.name,
        "dataset": cfg.dataset.name,
        "config": plain(cfg),
        "label_space": info.label_space.to_dict(),
        "data_info": info.to_dict(),
        "preprocessing": preprocessing_spec(cfg.data),
        "data_fingerprints": dm.fingerprints(),
        "split_sizes": dm.split_sizes(),
        "provenance": provenance(),
    }
    trainer_cfg = dict(plain(cfg.trainer))
    clip = {k: trainer_cfg.pop(k, None) for k in ("gradient_clip_val", "gradient_clip_algorithm")}
    if method.automatic_optimization:
        trainer_cfg.update({k: v for k, v in clip.items() if v is not None})
    module = FermixModule(method, cfg.optim, cfg.sched, meta, clip=clip)

    loggers = _loggers(cfg, run_dir)
    callbacks = build_callbacks(cfg, run_dir, has_logger=bool(loggers))
    trainer = pl.Trainer(
        **trainer_cfg,
        logger=loggers or False,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        default_root_dir=str(run_dir),
        enable_progress_bar=any(isinstance(c, ProgressBar) for c in callbacks),
        enable_model_summary=False,
    )
    ckpt_path = resolve_resume(cfg.get("resume"), run_dir, method.name)
    if ckpt_path:  # continuing in the same directory is the point of a resume
        warnings.filterwarnings("ignore", message=r".*exists and is not empty.*")
    if trainer.is_global_zero:
        log.info(
            "training %s on %s (%s) in %s; split sizes %s",
            method.name,
            cfg.dataset.name,
            ", ".join(info.label_space.classes),
            run_dir,
            meta["split_sizes"],
        )
    start = time.monotonic()
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    if trainer.interrupted:
        raise FermixError(f"training was interrupted; resume with resume=auto hydra.run.dir={run_dir}")
    if not trainer.is_global_zero:
        return {}
    return _finish(cfg, run_dir, trainer, module, dm, time.monotonic() - start)


def _finish(
    cfg: DictConfig, run_dir: Path, trainer: pl.Trainer, module: FermixModule, dm: FermixDataModule, seconds: float
) -> dict[str, Any]:
    """Reload the validation-selected weights, evaluate val and test, write summary.json."""
    ckpt_cb = trainer.checkpoint_callback
    best = Path(ckpt_cb.best_model_path) if ckpt_cb and ckpt_cb.best_model_path else run_dir / "checkpoints/last.ckpt"
    best_ckpt = load_checkpoint(best)
    module.load_state_dict(best_ckpt["state_dict"])
    device = resolve_device(cfg.trainer.get("accelerator"))
    precision = str(cfg.trainer.get("precision"))
    results: dict[str, Any] = {}
    for split in ("val", "test"):
        if dm.has_split(split):
            results[split] = evaluate_split(
                module.method, dm.loader(split), split, run_dir, device=device, precision=precision
            )
            print_metrics_table(results[split]["metrics"], title=f"{module.method.name} · {split} (best.ckpt)")
    summary = {
        "method": module.method.name,
        "dataset": cfg.dataset.name,
        "run_dir": str(run_dir),
        "best_checkpoint": str(best),
        "best_epoch": best_ckpt["fermix"]["epoch"],
        "epochs_trained": trainer.current_epoch,
        "global_step": trainer.global_step,
        "seed": int(cfg.seed),
        "seconds": round(seconds, 2),
        "split_sizes": dm.split_sizes(),
        "metrics": {split: r["metrics"] for split, r in results.items()},
        "per_class_acc": {split: r["per_class_acc"] for split, r in results.items()},
        "checkpoint_val_metrics": best_ckpt["fermix"]["metrics"]["val"],
        "config": plain(cfg),
    }
    atomic_write_json(run_dir / "summary.json", summary)
    log.info("run finished: %s", run_dir)
    return summary
