"""The missing-modality test of CausalMER's paper (spec causalmer.md §4), for `mult` and `causalmer`.

`fermix test ckpt=... eval.remove=[t,av]` (or `all`: the six non-empty proper subsets of t, a, v)
evaluates the split again with those modalities' inputs zeroed. Per setting: the metrics and the
drop gap (how much worse, per metric); per metric: the std of the gaps over the settings (the
paper's balance statistic) and, when t, a and v were each removed alone, each modality's
contribution (its drop, normalised to sum to 1).
"""

from __future__ import annotations

from typing import Any

import torch

from fermix.errors import FermixError
from fermix.metrics.multimodal import REMOVAL_SETTINGS, drop_gaps, gap_std, modality_contribution
from fermix.protocols import Batch, EvalContext, EvalProtocol

MODALITY_KEYS = {"t": "text", "a": "audio", "v": "vision"}


def remove_modalities(batch: Batch, remove: str) -> Batch:
    """Zero the input tensors of the modalities in `remove` (letters t, a, v)."""
    unknown = sorted(set(remove) - set(MODALITY_KEYS))
    if unknown:
        raise FermixError(f"eval.remove={remove!r} may only name modalities t, a and v")
    for letter in remove:
        key = MODALITY_KEYS[letter]
        if key not in batch:
            raise FermixError(f"eval.remove={remove!r} names `{key}`, which this dataset does not supply")
        batch[key] = torch.zeros_like(batch[key])
    return batch


def settings(value: Any) -> list[str]:
    """`all` or a list of settings (a string is one setting)."""
    if value == "all":
        return list(REMOVAL_SETTINGS)
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


class MissingModality(EvalProtocol):
    key = "eval.remove"
    summary_key = "missing_modality"
    help = "zero modalities at test, e.g. [t, av] or all: metrics, drop gaps and their std"

    def run(self, value: Any, ctx: EvalContext) -> dict[str, Any] | None:
        full = ctx.result["metrics"]
        name = ctx.method.name
        removed: dict[str, dict[str, float]] = {}
        for setting in settings(value):
            removed[setting] = ctx.evaluate(
                lambda batch, s=setting: remove_modalities(batch, s), ctx.run_dir / f"remove_{setting}"
            )["metrics"]
            ctx.show(removed[setting], f"{name} · {ctx.split} · without {setting}")
        names = sorted(k for k in full if all(k in m for m in removed.values()))
        gaps = {k: drop_gaps(full, removed, k) for k in names}
        result: dict[str, Any] = {
            "settings": {s: {"metrics": removed[s], "gap": {k: gaps[k][s] for k in names}} for s in removed},
            "gap_std": {k: gap_std(gaps[k]) for k in names},
        }
        ctx.show(result["gap_std"], f"{name} · std of the drop gaps over {', '.join(removed)}")
        if {"t", "a", "v"} <= set(removed):
            result["contribution"] = {k: modality_contribution(full, removed, k) for k in names}
        return result
