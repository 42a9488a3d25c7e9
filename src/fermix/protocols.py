"""Extra evaluation protocols that a method or a dataset adapter brings to `fermix test`.

A paper or a challenge often evaluates more than the split's metrics: CausalMER tests again with
modalities removed, the ABAW challenge wants one submission file per video. Such a protocol lives
in its owner's folder (the method's or the dataset adapter's) and is declared there:

    class MyMethod(Method):
        evaluation_protocols = (MyProtocol,)

The engine knows no protocol by name. `fermix test` offers the protocols of the checkpoint's method
and of the evaluation dataset; each is switched on by its own override (`key`, e.g. `eval.remove=all`,
documented in the owner's config file), refused with one sentence when the checkpoint does not offer
it, and runs after the split's own evaluation with an `EvalContext`: the model, the split's loader
and predictions, and a way to evaluate the split again with batches changed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import pandas as pd
    from torch.utils.data import DataLoader

    from fermix.data.info import DataInfo
    from fermix.methods.base import Method

Batch = dict[str, Any]
__all__ = ["Batch", "EvalContext", "EvalProtocol", "declared", "describe", "registered", "set_values"]


@dataclass
class EvalContext:
    """What a protocol may use. It writes files only below `run_dir`, shows tables through `show`, says
    what it did through `log` and returns numbers; the engine stores them in summary.json."""

    method: Method
    data_info: DataInfo  # the evaluation dataset's (label space, AU names, extras)
    split: str
    loader: DataLoader
    records: pd.DataFrame  # the split's records (sample_id, path, video, frame, ... as the adapter gives them)
    run_dir: Path
    result: dict[str, Any]  # the split's evaluation: metrics, predictions, num_samples, per_class_acc
    evaluate_with: Callable[[Callable[[Batch], Batch], Path], dict[str, Any]]  # (batch transform, out_dir) → result
    show: Callable[[Mapping[str, float], str], None]  # (metrics, title): the engine prints a table
    log: Callable[[str], None]  # one line for the user (the engine's logger)

    def evaluate(self, transform: Callable[[Batch], Batch], out_dir: Path) -> dict[str, Any]:
        """The split evaluated again, each batch passed through `transform` before `predict` sees it."""
        return self.evaluate_with(transform, out_dir)


class EvalProtocol(ABC):
    """One extra evaluation, switched on by the `fermix test` override `key=<value>`.

    `run` returns what goes into summary.json under `summary_key` (or None: nothing to record);
    refuse a bad value by raising FermixError with one sentence.
    """

    key: ClassVar[str] = ""  # the override that switches it on, e.g. "eval.remove"
    summary_key: ClassVar[str] = ""  # where its result goes in summary.json
    help: ClassVar[str] = ""  # one line: what it does and its values

    @classmethod
    def enabled(cls, value: Any) -> bool:
        """Whether a set value asks for the protocol (false, null, empty: no)."""
        return value not in (None, False, "", [], "false", "False", "null")

    @abstractmethod
    def run(self, value: Any, ctx: EvalContext) -> dict[str, Any] | None:
        """Evaluate; return what goes into summary.json under `summary_key` (None: nothing)."""


def declared(*owners: Any) -> dict[str, type[EvalProtocol]]:
    """The protocols the owners (method and dataset classes) declare, by override key."""
    found: dict[str, type[EvalProtocol]] = {}
    for owner in owners:
        for protocol in getattr(owner, "evaluation_protocols", ()) or ():
            found.setdefault(protocol.key, protocol)
    return found


def describe(protocols: Iterable[type[EvalProtocol]]) -> str:
    """`key` (help); ... for an error sentence."""
    parts = [f"{p.key} ({p.help})" if p.help else p.key for p in protocols]
    return "; ".join(parts) if parts else "none"


def set_values(cfg: Any, protocols: dict[str, type[EvalProtocol]]) -> dict[str, Any]:
    """The values the user set for the given protocols, by key (unset keys left out)."""
    from omegaconf import OmegaConf

    values = {}
    for key in protocols:
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None:
            values[key] = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
    return values


def registered() -> dict[str, tuple[type[EvalProtocol], list[str]]]:
    """Every protocol a registered method or dataset declares: key -> (protocol, its owners, `method X`)."""
    from fermix.registry import DATASETS, METHODS

    found: dict[str, tuple[type[EvalProtocol], list[str]]] = {}
    for kind, registry in (("method", METHODS), ("dataset", DATASETS)):
        for name in registry.names():
            try:
                plugin = registry.get(name)
            except Exception:  # a plugin whose optional dependency is missing declares nothing we can read
                continue
            for protocol in getattr(plugin, "evaluation_protocols", ()) or ():
                found.setdefault(protocol.key, (protocol, []))[1].append(f"{kind} {name}")
    return found
