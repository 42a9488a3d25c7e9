"""Callbacks: checkpoints (last + best on validation), early stopping, progress display, the
TensorBoard validation figures (engine/figures.py), and the Lightning callbacks a run names by
`_target_` under `callbacks` (configs/train.yaml)."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback, EarlyStopping, LearningRateMonitor, ModelCheckpoint

from fermix.utils.io import remove_stale_temps

log = logging.getLogger("fermix")


class PlainProgress(Callback):
    """Plain log lines for non-interactive output (Slurm logs, CI): no carriage-return floods.

    One line every `every_n_steps` training steps and one per epoch with its metrics.
    """

    def __init__(self, every_n_steps: int = 50) -> None:
        self.every_n_steps = max(1, every_n_steps)
        self._t0 = 0.0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._t0 = time.monotonic()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        step = trainer.global_step
        if trainer.is_global_zero and step % self.every_n_steps == 0 and step > 0:
            loss = trainer.callback_metrics.get("train/loss_step")
            shown = f"{float(loss):.4f}" if loss is not None else "-"
            log.info("epoch %d step %d loss %s", trainer.current_epoch, step, shown)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        shown = {
            k: float(v)
            for k, v in trainer.callback_metrics.items()
            if (k.startswith("val/") and v.numel() == 1) or k == "train/loss_epoch"
        }
        parts = " ".join(f"{k}={v:.4f}" for k, v in sorted(shown.items()))
        log.info(
            "epoch %d/%d done in %.1fs: %s",
            trainer.current_epoch + 1,
            trainer.max_epochs,
            time.monotonic() - self._t0,
            parts,
        )


def progress_callbacks(mode: str) -> list[Callback]:
    """`auto`: a rich bar on a terminal, plain lines otherwise; or force `rich`, `plain`, `none`."""
    if mode == "auto":
        mode = "rich" if sys.stderr.isatty() else "plain"
    if mode == "rich":
        from lightning.pytorch.callbacks import RichProgressBar

        return [RichProgressBar()]
    if mode == "plain":
        return [PlainProgress()]
    return []


class RunCheckpoint(ModelCheckpoint):
    """ModelCheckpoint whose saved state follows the run folder when the folder is moved.

    Lightning restores only `best_model_path` (pointing into the old folder) when the checkpoint
    directory changed, so a resumed run that was moved or copied would evaluate the old folder's
    best.ckpt and restart best-epoch selection. Paths under the old directory are rebased onto the
    new one, and everything is restored as if the run had never moved.
    """

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        old = state_dict.get("dirpath")
        if old and self.dirpath and old != self.dirpath:
            state_dict = {**state_dict, "dirpath": self.dirpath}

            def rebase(path: Any) -> Any:
                if isinstance(path, str) and path and Path(path).parent == Path(old):
                    return str(Path(self.dirpath) / Path(path).name)
                return path

            for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
                if key in state_dict:
                    state_dict[key] = rebase(state_dict[key])
            if "best_k_models" in state_dict:
                state_dict["best_k_models"] = {rebase(k): v for k, v in state_dict["best_k_models"].items()}
        super().load_state_dict(state_dict)

    @property
    def state_key(self) -> str:
        """Lightning's key for a ModelCheckpoint, so runs saved before this class existed resume."""
        return super().state_key.replace(type(self).__qualname__, "ModelCheckpoint", 1)


class LastCheckpoint(RunCheckpoint):
    """`last.ckpt` after every epoch, whatever the monitored metric did.

    Lightning ≥ 2.6 writes `save_last` only when a top-k checkpoint was saved in the same step,
    so "last" is a second callback with its own state key. At the start of a fit it removes the
    temporaries that a process killed while saving left in the checkpoint folder (a checkpoint
    each, hidden, never read); the folder belongs to this run and nothing is being saved yet.
    """

    def __init__(self, dirpath: Path) -> None:
        super().__init__(dirpath=dirpath, filename="last", monitor=None, save_top_k=1, enable_version_counter=False)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if stage == "fit" and trainer.is_global_zero and self.dirpath:
            for path in remove_stale_temps(self.dirpath):
                log.info("removed %s, left by a run killed while saving", path)

    @property
    def state_key(self) -> str:
        return "LastCheckpoint"


class ExtraCheckpoint(RunCheckpoint):
    """One of a method's `extra_checkpoints` (methods/base.py): `<filename>.ckpt`, best on its own metric.

    Its state key names the file, so it never collides with best.ckpt's when both watch one metric."""

    def __init__(self, dirpath: Path, filename: str, monitor: str, mode: str) -> None:
        super().__init__(dirpath=dirpath, filename=filename, monitor=monitor, mode=mode, save_top_k=1,
                         enable_version_counter=False, auto_insert_metric_name=False)  # fmt: skip

    @property
    def state_key(self) -> str:
        return f"ExtraCheckpoint[{self.filename}]"


def method_checkpoints(cfg: Mapping[str, Any], ckpt_dir: Path) -> list[Callback]:
    """The checkpoints the configured method declares in `extra_checkpoints`, then those the run asks for in
    `checkpoint.extra` ([{name, monitor, mode}], e.g. a second selection metric); none without validation
    (checkpoint.monitor null), since each is selected on a validation metric."""
    method = (cfg.get("method") or {}).get("name")
    if not method or cfg["checkpoint"].get("monitor") is None:
        return []
    from fermix.registry import METHODS

    declared = getattr(METHODS.get(str(method)), "extra_checkpoints", ())
    specs = [(e.filename, e.monitor, e.mode) for e in declared]
    extra = cfg["checkpoint"].get("extra") or []
    specs += [(str(e["name"]), str(e["monitor"]), str(e.get("mode", "max"))) for e in extra]
    return [ExtraCheckpoint(ckpt_dir, name, monitor, mode) for name, monitor, mode in specs]


def build_callbacks(
    cfg: Mapping[str, Any], run_dir: Path, has_logger: bool, ckpt_dir: Path | None = None
) -> list[Callback]:
    """Checkpoints go to `ckpt_dir` (default run_dir/checkpoints; a staged method uses one per stage)."""
    ckpt_dir = ckpt_dir or run_dir / "checkpoints"
    ckpt = cfg["checkpoint"]
    monitor = ckpt.get("monitor")
    callbacks: list[Callback] = [
        RunCheckpoint(
            dirpath=ckpt_dir,
            filename="best",
            monitor=monitor,  # None: "best" is simply the latest epoch (recipes without validation)
            mode=ckpt.get("mode", "max"),
            save_top_k=1,
            enable_version_counter=False,  # overwrite best.ckpt in place, never best-v1.ckpt
            auto_insert_metric_name=False,
        ),
        *method_checkpoints(cfg, ckpt_dir),  # e.g. best_loss.ckpt next to best.ckpt
        LastCheckpoint(ckpt_dir),  # after "best", so it records the best path too
    ]
    early = cfg.get("early_stopping") or {}
    if early.get("patience") is not None:
        if monitor is None:
            from fermix.errors import FermixError

            raise FermixError("early_stopping needs a validation metric: set checkpoint.monitor")
        callbacks.append(
            EarlyStopping(
                monitor=monitor,
                mode=ckpt.get("mode", "max"),
                patience=int(early["patience"]),
                min_delta=float(early.get("min_delta", 0.0)),
            )
        )
    if has_logger:
        callbacks.append(LearningRateMonitor(logging_interval="epoch"))
    logger_cfg = cfg.get("logger") or {}
    if logger_cfg.get("tensorboard") and logger_cfg.get("figures", True):
        from fermix.engine.figures import ValidationFigures  # TensorBoard pictures after each validation

        callbacks.append(ValidationFigures(sample_images=int(logger_cfg.get("sample_images", 16))))
    callbacks += configured_callbacks(cfg.get("callbacks") or {})
    callbacks += progress_callbacks(str(cfg.get("progress", "auto")))
    return callbacks


def configured_callbacks(entries: Mapping[str, Any]) -> list[Callback]:
    """The run's own Lightning callbacks, `callbacks.<name>: {_target_: ..., <arguments>}` in the config.

    The engine's callbacks above are built in code: each needs the run folder or reads keys that
    other parts share (checkpoint.monitor, logger.figures). These are the ones a run adds by name."""
    from fermix.errors import FermixError
    from fermix.utils.targets import instantiate

    built: list[Callback] = []
    for name, entry in entries.items():
        callback = instantiate(entry, f"callbacks.{name}")
        if not isinstance(callback, Callback):
            raise FermixError(
                f"callbacks.{name}._target_ `{entry.get('_target_')}` is not a Lightning callback "
                f"(it built {type(callback).__name__})"
            )
        built.append(callback)
    return built
