"""The LightningModule that runs any method plugin: it owns optimisation, logging and metrics."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor
from torch.optim import Optimizer

from fermix.engine.checkpoint import FORMAT, FORMAT_VERSION, rng_states, set_rng_states
from fermix.engine.evaluate import TARGET_KEYS
from fermix.engine.optim import build_optimizer, build_scheduler
from fermix.errors import FermixError
from fermix.methods.base import Method
from fermix.metrics import ExpressionMetrics, scalar_metrics
from fermix.metrics.tasks import StreamingTaskMetrics

# A skipped batch (training_step -> {}) is deliberate and counted in `train/skipped`.
warnings.filterwarnings("ignore", message=r"`training_step` returned `None`", module=r"lightning\.pytorch")
# Staged methods keep finished members (a distilling teacher) in eval mode on purpose.
warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode", module=r"lightning\.pytorch")


def batch_size(batch: dict[str, Any]) -> int:
    """Samples in a batch; a multi-source batch ({source: batch}) counts all its sources."""
    if "index" in batch:
        return len(batch["index"])
    return sum(batch_size(part) for part in batch.values() if isinstance(part, dict))


class _ManualOptimization:
    """The handle a manually optimised method gets: AMP-, DDP- and clipping-aware steps."""

    def __init__(self, module: FermixModule) -> None:
        self.module = module

    def _optimizers(self) -> list[Any]:
        opts = self.module.optimizers()
        return opts if isinstance(opts, list) else [opts]

    def optimizer(self, index: int) -> Optimizer:
        return self._optimizers()[index]

    def backward(self, loss: Tensor, **kwargs: Any) -> None:
        self.module.manual_backward(loss, **kwargs)

    def zero_grad(self, index: int) -> None:
        self.optimizer(index).zero_grad()

    def step(self, index: int) -> None:
        opt = self.optimizer(index)
        clip = self.module.clip
        if clip.get("gradient_clip_val"):
            self.module.clip_gradients(
                self.module.clipped_view(opt),
                gradient_clip_val=clip["gradient_clip_val"],
                gradient_clip_algorithm=clip.get("gradient_clip_algorithm", "norm"),
            )
        opt.step()


class _ClippedGroups:
    """An optimizer's param groups without the method's `unclipped_parameters`, for gradient clipping only."""

    def __init__(self, optimizer: Any, skip: set[int]) -> None:
        self.param_groups = [
            {**group, "params": [p for p in group["params"] if id(p) not in skip]} for group in optimizer.param_groups
        ]
        self._step_supports_amp_scaling = getattr(optimizer, "_step_supports_amp_scaling", False)


class FermixModule(pl.LightningModule):
    """Delegates the science to `method` and keeps the bookkeeping here.

    `meta` is the checkpoint's `fermix` section without the per-save parts (metrics, RNG), all
    plain data: the resolved config, label space, preprocessing, fingerprints, provenance.
    """

    def __init__(
        self,
        method: Method,
        optim_cfg: Mapping[str, Any],
        sched_cfg: Mapping[str, Any],
        meta: dict[str, Any],
        clip: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.method = method
        self.optim_cfg = optim_cfg
        self.sched_cfg = sched_cfg
        self.meta = meta
        self.clip = dict(clip or {})
        self.automatic_optimization = method.automatic_optimization
        num_classes = method.data_info.num_classes
        self.val_metrics = ExpressionMetrics(num_classes)
        self.val_tasks = StreamingTaskMetrics(method.tasks, method.data_info)  # AU / VA scores, by the method's tasks
        self._val_outputs: dict[str, list[Tensor]] = {}
        self._val_targets: dict[str, list[Tensor]] = {}
        self._val_expr_seen = False
        self.last_val_metrics: dict[str, float] = {}
        self.last_val_confusion: Tensor | None = None  # (C, C) counts of the last validation, for figures
        self._pending_rng: dict[str, Any] | None = None
        self._manual = _ManualOptimization(self)
        self._skipping = False

    # --- optimisation ---------------------------------------------------------------------
    def _factory(self, param_groups: Iterable[Mapping[str, Any]]) -> tuple[Optimizer, Any]:
        opt = build_optimizer(self.optim_cfg, param_groups)
        return opt, build_scheduler(self.sched_cfg, opt, self.trainer.max_epochs or 1)

    def clipped_view(self, optimizer: Any) -> Any:
        """What gradient clipping sees of `optimizer`: all of it, less the method's `unclipped_parameters`."""
        skip = {id(p) for p in self.method.unclipped_parameters()}
        return _ClippedGroups(optimizer, skip) if skip else optimizer

    def configure_gradient_clipping(
        self, optimizer: Optimizer, gradient_clip_val: float | None = None, gradient_clip_algorithm: str | None = None
    ) -> None:
        """Lightning's clipping for automatically optimised methods, less the method's `unclipped_parameters`."""
        self.clip_gradients(
            self.clipped_view(optimizer),
            gradient_clip_val=gradient_clip_val,
            gradient_clip_algorithm=gradient_clip_algorithm,
        )

    def configure_optimizers(self) -> Any:
        pairs = self.method.configure_optimizers(self._factory)
        if pairs is None:
            pairs = [self._factory(self.method.param_groups())]
        optimizers = [opt for opt, _ in pairs]
        schedulers = [s for _, s in pairs if s is not None]
        return optimizers, schedulers

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor | None:
        self._skipping = False
        if self.automatic_optimization:
            terms = self.method.training_step(batch)
            total = sum((v for v in terms.values() if v.requires_grad), start=torch.zeros((), device=self.device))
            skip, non_finite = self._sync_flags(not terms, terms and not _all_finite(terms, total))
            if non_finite:
                self._stop_non_finite(terms, total, batch_idx)
            if skip:
                return self._skipped()
        else:
            terms = self.method.manual_step(batch, self._manual)
            total = sum((v.detach() for v in terms.values()), start=torch.zeros((), device=self.device))
            (non_finite,) = self._sync_flags(terms and not _all_finite(terms, total))
            if non_finite:
                self._stop_non_finite(terms, total, batch_idx)
            if not terms:  # the method did not step; its own business under DDP
                self.log("train/skipped", 1.0, on_step=False, on_epoch=True, reduce_fx="sum", batch_size=1)
                return None
        self.log("train/skipped", 0.0, on_step=False, on_epoch=True, reduce_fx="sum", batch_size=1)
        size = batch_size(batch)
        for name, value in terms.items():
            self.log(f"train/{name}", value.detach(), on_step=True, on_epoch=True, batch_size=size)
        self.log("train/loss", total.detach(), prog_bar=True, on_step=True, on_epoch=True, batch_size=size)
        return total if self.automatic_optimization else None

    # --- skipped batches and non-finite losses ------------------------------------------------
    # A method's training_step may return {}: "this batch cannot be trained on" (DMUE needs every
    # class twice in a batch). Nothing is back-propagated and no optimizer steps; `train/skipped`
    # counts such batches per epoch. Under DDP every rank must skip together (a rank that stepped
    # alone would wait forever in the gradient all-reduce), so one skipping rank makes all skip.
    # A NaN / inf loss term stops the run on every rank the same way, before the optimizer steps
    # (after, for a manual method): one sentence naming epoch, step and term, and the checkpoints
    # of the earlier epochs stay as they were (last.ckpt is written at epoch ends only).
    def _sync_flags(self, *local: Any) -> list[bool]:
        """Per-rank yes/no flags, true on every rank when true on any (one collective for all)."""
        flags = torch.tensor([float(bool(f)) for f in local], device=self.device)
        if self.trainer.world_size > 1:
            flags = self.trainer.strategy.reduce(flags, reduce_op="max")
        return [bool(f > 0) for f in flags]

    def _stop_non_finite(self, terms: Mapping[str, Tensor], total: Tensor, batch_idx: int) -> None:
        bad = [f"term `{name}` is {_value_text(v)}" for name, v in terms.items() if not _finite(v)]
        if not bad:  # every term finite: the sum overflowed, or another rank saw it
            bad = [f"the total is {_value_text(total)}" if not _finite(total) else "another process saw one"]
        raise FermixError(
            f"non-finite loss at epoch {self.current_epoch} step {self.global_step} (batch {batch_idx} of the "
            f"epoch): {', '.join(bad)} (lower optim.lr, set trainer.gradient_clip_val or look for bad labels; "
            f"the checkpoints of earlier epochs are kept)"
        )

    def _skipped(self) -> Tensor | None:
        self._skipping = True
        self.log("train/skipped", 1.0, on_step=False, on_epoch=True, reduce_fx="sum", batch_size=1)
        if self.trainer.world_size > 1:
            # Lightning refuses None under DDP; a loss that reaches no parameter back-propagates
            # nothing, fires no DDP hook, and optimizer_step below does not step.
            return torch.zeros((), device=self.device, requires_grad=True)
        return None

    def optimizer_step(self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Any = None) -> None:
        if optimizer_closure is None:
            optimizer.step()
            return
        result = optimizer_closure()  # training_step, zero_grad, backward
        if self._skipping:
            return
        optimizer.step(closure=lambda: result)  # precision plugins unscale / clip / step as usual

    def on_train_epoch_start(self) -> None:
        if self._pending_rng is not None:  # resumed: continue the random streams where they stopped
            set_rng_states(self._pending_rng)
            self._pending_rng = None
        self.method.on_train_epoch_start(self.current_epoch, self.trainer.max_epochs or 0)

    def on_train_epoch_end(self) -> None:
        if not self.automatic_optimization:  # Lightning leaves scheduler stepping to manual methods
            for config in self.trainer.lr_scheduler_configs:
                if config.interval == "epoch" and config.monitor is None:
                    config.scheduler.step()

    # --- validation (test-split evaluation is engine/evaluate.py, one exact pass) ------------
    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        if self.method.validation_loss:
            terms = self.method.training_step(batch)
            loss = sum((v.detach() for v in terms.values()), start=torch.zeros((), device=self.device))
            self.log("val/loss", loss, on_step=False, on_epoch=True, sync_dist=True, batch_size=batch_size(batch))
        out = self.method.predict(batch)
        if "expr_logits" in out and "expr" in batch and batch["expr"].ndim == 1:
            self.val_metrics.update(out["expr_logits"].float(), batch["expr"])
            self._val_expr_seen = True
        self.val_tasks.update(out, batch)
        if self.method.validation_uses_evaluation_metrics:
            for key, value in out.items():
                self._val_outputs.setdefault(key, []).append(value.detach().float())
            for key in TARGET_KEYS:
                if key in batch:
                    self._val_targets.setdefault(key, []).append(batch[key])

    def on_validation_epoch_end(self) -> None:
        values: dict[str, float] = {}
        confusion = None
        if self._val_expr_seen:
            computed = self.val_metrics.compute()
            confusion = computed["confusion"].detach().cpu()
            values.update(scalar_metrics(computed))
        self._val_expr_seen = False
        values.update(self.val_tasks.compute_and_reset())
        self.val_metrics.reset()
        if self.method.validation_uses_evaluation_metrics and self._val_outputs:
            values.update(self.method.evaluation_metrics(*self._gathered_predictions()))
        values.update(self.method.derived_metrics(dict(values)))
        if self.trainer.sanity_checking:
            return
        self.last_val_metrics = values
        self.last_val_confusion = confusion  # drawn by engine/figures.py ValidationFigures
        for name, value in values.items():
            self.log(f"val/{name}", value, prog_bar=name == "acc", sync_dist=True)  # already equal on all ranks

    def _gathered_predictions(self) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """The epoch's validation outputs and targets, concatenated (and gathered from every rank:
        the DistributedSampler may repeat a few samples to even out the ranks; the exact numbers
        come from the single-process evaluation after training)."""

        def cat(parts: dict[str, list[Tensor]]) -> dict[str, Tensor]:
            joined = {k: torch.cat(v) for k, v in parts.items()}
            if self.trainer.world_size > 1:
                joined = {k: self.all_gather(v).flatten(0, 1) for k, v in joined.items()}
            return {k: v.cpu() for k, v in joined.items()}

        outputs, targets = cat(self._val_outputs), cat(self._val_targets)
        self._val_outputs, self._val_targets = {}, {}
        return outputs, targets

    # --- checkpoint -----------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["fermix"] = {
            **self.meta,
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "epoch": int(self.current_epoch),
            "global_step": int(self.global_step),
            "metrics": {"val": dict(self.last_val_metrics)},
            "rng": rng_states(),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        meta = checkpoint.get("fermix", {})
        self.last_val_metrics = dict(meta.get("metrics", {}).get("val", {}))
        self._pending_rng = meta.get("rng")


def _finite(value: Tensor) -> bool:
    return bool(torch.isfinite(value.detach()).all())


def _all_finite(terms: Mapping[str, Tensor], total: Tensor) -> bool:
    """One device-to-host sync for all terms and their sum."""
    parts = [v.detach().float().reshape(-1) for v in terms.values()] + [total.detach().float().reshape(-1)]
    return bool(torch.isfinite(torch.cat(parts)).all())


def _value_text(value: Tensor) -> str:
    """`nan`, `inf` or `-inf` for a scalar; for a tensor, what it holds."""
    value = value.detach().float()
    if value.numel() == 1:
        return str(float(value))
    kinds = [k for k, mask in (("nan", value.isnan()), ("inf", value.isinf())) if bool(mask.any())]
    return f"{' and '.join(kinds)} in {int((~value.isfinite()).sum())} of {value.numel()} entries"
