"""The fused multimodal model behind `mult` and CausalMER's z_m: MulT (the default) or a time-averaged MLP.

`mlp` is the "plain fused MLP (MulT stand-in)" of the CausalMER spec's synthetic experiment (methods/causalmer.md
§6.2): each modality's sequence is averaged over time, the three averages are concatenated, layer-normalised and
classified by `depth` ReLU layers of `hidden` units (dropout 0.1). It exists because the CPU MulT recipe does not
learn `synthetic_mm`'s interaction regime (y = (u_text + u_audio) mod K) at any separation or training size
tried (docs/results/causalmer.md, "The gate"), while this model does; CausalMER is model-agnostic, so the
benchmark judges it around this backbone. Either model returns (logits, hidden), hidden being the last
representation before the classifier (MulT's 6·d `last_hs`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from fermix.errors import FermixError
from fermix.models.mult import MODALITIES, MulT, MulTConfig

FUSED_MODELS = ("mult", "mlp")
MLP_DROPOUT = 0.1


class TimeAveragedMLP(nn.Module):
    """forward(text, audio, vision), each (B, L_m, D_m) -> (logits (B, out_dim), hidden (B, hidden))."""

    def __init__(self, dims: Mapping[str, int], out_dim: int, hidden: int = 128, depth: int = 2) -> None:
        super().__init__()
        if hidden < 1 or depth < 1:
            raise FermixError(f"the fused MLP needs hidden ≥ 1 and depth ≥ 1, not hidden={hidden}, depth={depth}")
        width = sum(int(dims[m]) for m in MODALITIES)
        layers: list[nn.Module] = [nn.LayerNorm(width)]
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(MLP_DROPOUT)]
            width = hidden
        self.body = nn.Sequential(*layers)
        self.out_layer = nn.Linear(hidden, out_dim)

    def forward(self, text: Tensor, audio: Tensor, vision: Tensor) -> tuple[Tensor, Tensor]:
        hidden = self.body(torch.cat([x.mean(dim=1) for x in (text, audio, vision)], dim=-1))
        return self.out_layer(hidden), hidden


def build_fused(
    kind: str,
    modalities: Mapping[str, Sequence[int]],
    out_dim: int,
    mult_options: Mapping[str, Any] | None = None,
    hidden: int = 128,
    depth: int = 2,
) -> nn.Module:
    """`mult` (sized by MulT.from_modalities, configured by `mult_options`) or `mlp` (sized by `hidden`, `depth`)."""
    if kind == "mult":
        return MulT.from_modalities(modalities, out_dim, MulTConfig.from_mapping(mult_options))
    if kind == "mlp":
        missing = [m for m in MODALITIES if m not in modalities]
        if missing:
            raise FermixError(f"the fused MLP needs text, audio and vision; the dataset gives no {missing[0]} shape")
        return TimeAveragedMLP({m: int(modalities[m][1]) for m in MODALITIES}, out_dim, hidden, depth)
    raise FermixError(f"method.fused must be one of {', '.join(FUSED_MODELS)}, not {kind!r}")
