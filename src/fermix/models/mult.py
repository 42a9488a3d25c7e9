"""MulT, the Multimodal Transformer (Tsai et al., ACL 2019), as CausalMER modified it (spec causalmer.md §2.2).

Three modality streams are projected to d = 40 by bias-free 1-D convolutions (no padding), each stream
attends to the other two through crossmodal transformers (l←a, l←v, a←l, a←v, v←l, v←a), the pairs are
concatenated and passed through one self-attention "memory" transformer per target modality, and the last
time step of each memory output (80-d) forms the 240-d vector the residual head classifies. Every size comes
from the data's modality shapes; nothing is keyed on a dataset name.

The faithful quirks stay the default and each is an option: 10 heads whatever `num_heads` says
(`force_heads`), the causal "future" mask on in every attention with diagonal offset 1 + |L_k − L_q|
(`attn_mask`), memory transformers with max(nlevels, mem_layers) layers, and attention dropout chosen by
the key modality (`attn_dropout_a` for ←a, `attn_dropout_v` for ←v, `attn_dropout` for ←l and the memories).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fermix.errors import FermixError

MODALITIES = ("text", "audio", "vision")
FORCED_HEADS = 10  # TransformerEncoderLayer overwrites num_heads with 10 in the original


@dataclass
class MulTConfig:
    """MulT options; defaults are the released IEMOCAP recipe (main.sh, spec §2.3)."""

    d_model: int = 40  # hard-coded in CausalMER's MulT (the original MulT code has 30)
    kernels: dict[str, int] = field(default_factory=lambda: {"text": 3, "audio": 5, "vision": 3})
    nlevels: int = 5  # layers of each crossmodal transformer
    mem_layers: int = 3  # memory transformers get max(nlevels, mem_layers) layers, as the original
    num_heads: int = 10
    force_heads: bool = True  # faithful: every layer uses 10 heads whatever num_heads says
    attn_mask: bool = True  # faithful: argparse store_false makes the future mask the default
    attn_dropout: float = 0.2
    attn_dropout_a: float = 0.0
    attn_dropout_v: float = 0.0
    relu_dropout: float = 0.1
    res_dropout: float = 0.1
    embed_dropout: float = 0.25
    out_dropout: float = 0.1

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> MulTConfig:
        """The typed config from a YAML mapping; unknown keys are a one-sentence error."""
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise FermixError(f"MulT has no option {unknown[0]!r}; its options: {', '.join(sorted(known))}")
        kernels = {**cls().kernels, **dict(values.pop("kernels", None) or {})}
        bad = sorted(set(kernels) - set(MODALITIES))
        if bad:
            raise FermixError(f"MulT kernels name modality {bad[0]!r}; they may only name text, audio and vision")
        return cls(kernels={k: int(v) for k, v in kernels.items()}, **values)


def future_mask(len_q: int, len_k: int, device: torch.device | None = None) -> Tensor:
    """(L_q, L_k) additive mask: −inf where key j ≥ query i + 1 + |L_k − L_q| (the original's buffered_future_mask)."""
    full = torch.full((len_q, len_k), float("-inf"), device=device)
    return torch.triu(full, diagonal=1 + abs(len_k - len_q))


def sinusoidal_positions(x: Tensor) -> Tensor:
    """fairseq sinusoidal embeddings for x (B, T, C): step t gets position t + 1, but a step whose first
    channel is exactly 0 counts as padding and gets the zero embedding (fairseq's padding_idx 0)."""
    _, steps, dim = x.shape
    half = dim // 2
    scale = math.log(10000) / (half - 1)
    freqs = torch.exp(torch.arange(half, dtype=torch.float32, device=x.device) * -scale)
    positions = torch.arange(1, steps + 1, dtype=torch.float32, device=x.device)
    angles = positions[:, None] * freqs[None, :]
    table = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)  # sin half, then cos half
    if dim % 2 == 1:
        table = torch.cat([table, torch.zeros(steps, 1, device=x.device)], dim=1)
    not_padding = (x[:, :, 0] != 0).unsqueeze(-1).to(table.dtype)
    return (table.unsqueeze(0) * not_padding).to(x.dtype).detach()


class MultiheadAttention(nn.Module):
    """fairseq-style attention: one in_proj (xavier, zero bias), scaling head_dim^-0.5, dropout on the weights."""

    def __init__(self, embed_dim: int, num_heads: int, attn_dropout: float = 0.0) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise FermixError(f"MulT width {embed_dim} is not divisible by {num_heads} attention heads")
        self.embed_dim, self.num_heads, self.attn_dropout = embed_dim, num_heads, attn_dropout
        self.head_dim = embed_dim // num_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * embed_dim))
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.xavier_uniform_(self.out_proj.weight)
        nn.init.zeros_(self.out_proj.bias)

    def _heads(self, x: Tensor, part: int) -> Tensor:
        d = self.embed_dim
        y = F.linear(x, self.in_proj_weight[part * d : (part + 1) * d], self.in_proj_bias[part * d : (part + 1) * d])
        batch, steps, _ = y.shape
        return y.view(batch, steps, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, T, hd)

    def forward(self, query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        q = self._heads(query, 0) * self.head_dim**-0.5
        k, v = self._heads(key, 1), self._heads(value, 2)
        weights = q @ k.transpose(-2, -1)
        if attn_mask is not None:
            weights = weights + attn_mask
        weights = F.softmax(weights.float(), dim=-1).type_as(weights)
        weights = F.dropout(weights, p=self.attn_dropout, training=self.training)
        out = (weights @ v).transpose(1, 2).reshape(query.shape[0], query.shape[1], self.embed_dim)
        return self.out_proj(out)


def _xavier_linear(n_in: int, n_out: int) -> nn.Linear:
    layer = nn.Linear(n_in, n_out)
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class TransformerEncoderLayer(nn.Module):
    """Pre-LN layer: LN[0] on the query and on key/value alike, attention, residual; LN[1], FFN d→4d→d, residual."""

    def __init__(
        self, embed_dim: int, num_heads: int, attn_dropout: float, relu_dropout: float, res_dropout: float,
        attn_mask: bool,
    ) -> None:  # fmt: skip
        super().__init__()
        self.self_attn = MultiheadAttention(embed_dim, num_heads, attn_dropout)
        self.fc1 = _xavier_linear(embed_dim, 4 * embed_dim)
        self.fc2 = _xavier_linear(4 * embed_dim, embed_dim)
        self.layer_norms = nn.ModuleList([nn.LayerNorm(embed_dim) for _ in range(2)])
        self.relu_dropout, self.res_dropout, self.attn_mask = relu_dropout, res_dropout, attn_mask

    def forward(self, x: Tensor, x_k: Tensor | None = None, x_v: Tensor | None = None) -> Tensor:
        residual = x
        x = self.layer_norms[0](x)
        key_len = x.shape[1] if x_k is None else x_k.shape[1]
        mask = future_mask(x.shape[1], key_len, x.device).to(x.dtype) if self.attn_mask else None
        if x_k is None or x_v is None:
            x = self.self_attn(x, x, x, attn_mask=mask)
        else:
            x = self.self_attn(x, self.layer_norms[0](x_k), self.layer_norms[0](x_v), attn_mask=mask)
        x = residual + F.dropout(x, p=self.res_dropout, training=self.training)
        residual = x
        x = F.relu(self.fc1(self.layer_norms[1](x)))
        x = F.dropout(x, p=self.relu_dropout, training=self.training)
        x = F.dropout(self.fc2(x), p=self.res_dropout, training=self.training)
        return residual + x


class TransformerEncoder(nn.Module):
    """√d·x + sinusoidal positions, embedding dropout, the layers, a final LayerNorm.

    With a key/value input (crossmodal attention) that stream is embedded the same way; key and value
    get separate dropout masks, as the original embeds them as two tensors.
    """

    def __init__(
        self, embed_dim: int, num_heads: int, layers: int, attn_dropout: float, relu_dropout: float,
        res_dropout: float, embed_dropout: float, attn_mask: bool,
    ) -> None:  # fmt: skip
        super().__init__()
        self.embed_scale = math.sqrt(embed_dim)
        self.embed_dropout = embed_dropout
        self.layers = nn.ModuleList(
            TransformerEncoderLayer(embed_dim, num_heads, attn_dropout, relu_dropout, res_dropout, attn_mask)
            for _ in range(layers)
        )
        self.layer_norm = nn.LayerNorm(embed_dim)

    def _embed(self, x: Tensor) -> Tensor:
        return self.embed_scale * x + sinusoidal_positions(x)

    def forward(self, x_in: Tensor, x_in_kv: Tensor | None = None) -> Tensor:
        x = F.dropout(self._embed(x_in), p=self.embed_dropout, training=self.training)
        x_k = x_v = None
        if x_in_kv is not None:
            kv = self._embed(x_in_kv)
            x_k = F.dropout(kv, p=self.embed_dropout, training=self.training)
            x_v = F.dropout(kv, p=self.embed_dropout, training=self.training)
        for layer in self.layers:
            x = layer(x, x_k, x_v)
        return self.layer_norm(x)


# (target, source) pairs of the six crossmodal transformers, and which dropout option each uses: the
# original picks it by the network's type string, which amounts to the source (key) modality.
CROSSMODAL = (("text", "audio"), ("text", "vision"), ("audio", "text"), ("audio", "vision"),
              ("vision", "text"), ("vision", "audio"))  # fmt: skip
_ATTN_DROPOUT_OF_SOURCE = {"text": "attn_dropout", "audio": "attn_dropout_a", "vision": "attn_dropout_v"}


class MulT(nn.Module):
    """forward(text, audio, vision), each (B, L_m, D_m) -> (logits (B, out_dim), last_hs (B, 6·d) = [l | a | v])."""

    def __init__(self, dims: Mapping[str, int], out_dim: int, config: MulTConfig | None = None) -> None:
        super().__init__()
        cfg = config or MulTConfig()
        self.config, self.dims, self.d = cfg, {m: int(dims[m]) for m in MODALITIES}, cfg.d_model
        self.num_heads = FORCED_HEADS if cfg.force_heads else cfg.num_heads
        d = self.d
        # Created for every modality; skipped in forward when the input already has width d (as the original).
        self.proj = nn.ModuleDict(
            {m: nn.Conv1d(self.dims[m], d, kernel_size=cfg.kernels[m], padding=0, bias=False) for m in MODALITIES}
        )
        self.crossmodal = nn.ModuleDict(
            {
                f"{t}_with_{s}": self._encoder(d, getattr(cfg, _ATTN_DROPOUT_OF_SOURCE[s]), cfg.nlevels)
                for t, s in CROSSMODAL
            }
        )
        mem_layers = max(cfg.nlevels, cfg.mem_layers)
        self.memory = nn.ModuleDict({m: self._encoder(2 * d, cfg.attn_dropout, mem_layers) for m in MODALITIES})
        combined = 6 * d
        self.proj1 = nn.Linear(combined, combined)
        self.proj2 = nn.Linear(combined, combined)
        self.out_layer = nn.Linear(combined, out_dim)

    @classmethod
    def from_modalities(
        cls, modalities: Mapping[str, Sequence[int]], out_dim: int, config: MulTConfig | None = None
    ) -> MulT:
        """Sized from DataInfo.extras["modalities"] ({"text": [L, D], ...}); refuses sequences shorter than a kernel."""
        cfg = config or MulTConfig()
        missing = [m for m in MODALITIES if m not in modalities]
        if missing:
            raise FermixError(f"MulT needs text, audio and vision shapes; the dataset gives none for {missing[0]}")
        for m in MODALITIES:
            length = int(modalities[m][0])
            if length - cfg.kernels[m] + 1 < 1:
                raise FermixError(
                    f"{m} sequences of length {length} are shorter than MulT's {m} kernel {cfg.kernels[m]}"
                )
        return cls({m: int(modalities[m][1]) for m in MODALITIES}, out_dim, cfg)

    def _encoder(self, dim: int, attn_dropout: float, layers: int) -> TransformerEncoder:
        c = self.config
        return TransformerEncoder(dim, self.num_heads, layers, attn_dropout, c.relu_dropout, c.res_dropout,
                                  c.embed_dropout, c.attn_mask)  # fmt: skip

    def project(self, text: Tensor, audio: Tensor, vision: Tensor) -> dict[str, Tensor]:
        """Embedding dropout on text only, then the temporal convolutions: {modality: (B, L_m − k_m + 1, d)}."""
        inputs = {"text": F.dropout(text, p=self.config.embed_dropout, training=self.training),
                  "audio": audio, "vision": vision}  # fmt: skip
        out = {}
        for m, x in inputs.items():
            out[m] = x if x.shape[-1] == self.d else self.proj[m](x.transpose(1, 2)).transpose(1, 2)
        return out

    def forward(self, text: Tensor, audio: Tensor, vision: Tensor) -> tuple[Tensor, Tensor]:
        x = self.project(text, audio, vision)
        last = []
        for target in MODALITIES:
            sources = [s for t, s in CROSSMODAL if t == target]
            pair = torch.cat([self.crossmodal[f"{target}_with_{s}"](x[target], x[s]) for s in sources], dim=-1)
            last.append(self.memory[target](pair)[:, -1])  # the last time step predicts
        last_hs = torch.cat(last, dim=-1)
        hidden = self.proj2(F.dropout(F.relu(self.proj1(last_hs)), p=self.config.out_dropout, training=self.training))
        return self.out_layer(hidden + last_hs), last_hs
