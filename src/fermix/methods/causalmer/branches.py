"""The unimodal branches z_t, z_a, z_v (spec §1.2): each reads one raw input sequence (B, L, D), never a MulT
feature, and returns out_dim logits — the direct effects T→Y, A→Y, V→Y that counterfactual inference removes.

- `resnet18` (audio / vision, the original): torchvision ResNet-18, random init, conv1 → 1 input channel, fc →
  out_dim; the sequence is read as a 1×L×D image.
- `albert` (text, the original): Linear(D→128), ALBERT-base-v2 fed `inputs_embeds` (no attention mask, so zero
  padding counts), mean over time, Linear(768→out_dim). Needs `transformers` and local weights; fermix never
  downloads them.
- `transformer` (text, the default): the same pipeline at a small size with random init — Linear(D→w), learned
  positions, LayerNorm, a post-LN transformer encoder, mean over time, Linear(w→out_dim). It runs offline.
- `mlp` (any modality, for CPU runs): flatten (L·D) → hidden → ReLU → out_dim.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import Tensor, nn

from fermix.errors import FermixError

TEXT_BRANCHES = ("transformer", "albert", "mlp")
SIGNAL_BRANCHES = ("resnet18", "mlp")

# albert-base-v2's architecture (its config.json): `fermix test` rebuilds it from these values, then the
# checkpoint's state dict fills it, so evaluation needs neither the weight files nor `from_pretrained`.
ALBERT_BASE_V2: dict[str, Any] = {
    "vocab_size": 30000, "embedding_size": 128, "hidden_size": 768, "num_hidden_layers": 12,
    "num_hidden_groups": 1, "num_attention_heads": 12, "intermediate_size": 3072, "inner_group_num": 1,
    "hidden_act": "gelu_new", "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
    "max_position_embeddings": 512, "type_vocab_size": 2, "initializer_range": 0.02, "layer_norm_eps": 1e-12,
}  # fmt: skip
_ALBERT_SHAPE_KEYS = ("vocab_size", "embedding_size", "hidden_size", "num_hidden_layers", "num_hidden_groups",
                      "num_attention_heads", "intermediate_size", "inner_group_num", "max_position_embeddings",
                      "type_vocab_size")  # fmt: skip


class ResNetBranch(nn.Module):
    """ResNet-18 over the (1, L, D) "image" of a feature sequence; 11,174,344 parameters at out_dim 8."""

    def __init__(self, out_dim: int) -> None:
        super().__init__()
        self.net = torchvision.models.resnet18(weights=None)
        self.net.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.net.fc = nn.Linear(512, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.unsqueeze(1))

    @property
    def head(self) -> nn.Linear:
        return self.net.fc


class MLPBranch(nn.Module):
    """Flatten the whole sequence, one hidden layer: position-aware and cheap on a CPU."""

    def __init__(self, shape: Sequence[int], out_dim: int, hidden: int = 64) -> None:
        super().__init__()
        length, dim = (int(s) for s in shape)
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(length * dim, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))


class TextEncoderBranch(nn.Module):
    """ALBERT's text pipeline (project, embed positions, encode, mean-pool, classify) at a small size."""

    def __init__(self, shape: Sequence[int], out_dim: int, width: int = 128, layers: int = 2, heads: int = 4) -> None:
        super().__init__()
        length, dim = (int(s) for s in shape)
        self.linear_transformation = nn.Linear(dim, width)
        self.positions = nn.Parameter(torch.randn(length, width) * 0.02)
        self.norm = nn.LayerNorm(width, eps=1e-12)
        layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, activation="gelu", batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(width, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm(self.linear_transformation(x) + self.positions[: x.shape[1]])
        return self.head(self.encoder(h).mean(dim=1))


def _transformers() -> Any:
    try:
        import transformers
    except ImportError as exc:
        raise FermixError(
            "text_branch=albert needs the `transformers` package, which is not installed "
            "(pip install transformers, or use text_branch=transformer)"
        ) from exc
    return transformers


def _albert_state_dict(path: Path) -> tuple[dict[str, Tensor], dict[str, Any] | None]:
    """A local ALBERT checkpoint: a Hugging Face folder (config.json + model.safetensors or pytorch_model.bin)
    or one state-dict file. Keys lose an `albert.` prefix (AlbertForMaskedLM checkpoints carry one)."""
    config = None
    if path.is_dir():
        if (path / "config.json").is_file():
            config = json.loads((path / "config.json").read_text())
        files = [path / n for n in ("model.safetensors", "pytorch_model.bin") if (path / n).is_file()]
        if not files:
            raise FermixError(f"ALBERT folder {path} holds neither model.safetensors nor pytorch_model.bin")
        path = files[0]
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise FermixError(f"ALBERT weights file {path} does not hold a state dict")
    return {k.removeprefix("albert."): v for k, v in state.items()}, config


class AlbertTextBranch(nn.Module):
    """The original text branch; `weights=None` builds albert-base-v2 with random init (what `fermix test`
    does before the checkpoint fills it)."""

    def __init__(self, in_dim: int, out_dim: int, weights: str | None = None) -> None:
        super().__init__()
        state, config_values = None, None
        path = None if weights is None else Path(weights).expanduser()
        if path is not None and not path.exists():
            raise FermixError(
                f"text_branch=albert reads local weights and {path} does not exist; put albert-base-v2 "
                "(config.json + model.safetensors) there, set method.text_weights=PATH, or use text_branch=transformer"
            )
        transformers = _transformers()
        if path is not None:
            state, config_values = _albert_state_dict(path)
        if config_values is not None:
            differs = [k for k in _ALBERT_SHAPE_KEYS if k in config_values and config_values[k] != ALBERT_BASE_V2[k]]
            if differs:
                raise FermixError(f"the ALBERT at {weights} is not albert-base-v2 (its {differs[0]} differs)")
        config = transformers.AlbertConfig(**ALBERT_BASE_V2)
        self.linear_transformation = nn.Linear(in_dim, config.embedding_size)
        self.model = transformers.AlbertModel(config, add_pooling_layer=False)  # the pooler is never used
        self.text_mlp = nn.Linear(config.hidden_size, out_dim)
        if state is not None:
            own = self.model.state_dict()
            missing = sorted(k for k in own if k not in state and not k.endswith("position_ids"))
            if missing:
                raise FermixError(
                    f"the ALBERT weights at {weights} lack {missing[0]} (not an albert-base-v2 state dict)"
                )
            self.model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)

    def forward(self, x: Tensor) -> Tensor:
        hidden = self.model(inputs_embeds=self.linear_transformation(x)).last_hidden_state
        return self.text_mlp(hidden.mean(dim=1))

    @property
    def head(self) -> nn.Linear:
        return self.text_mlp


def build_branch(kind: str, modality: str, shape: Sequence[int], out_dim: int, options: dict[str, Any]) -> nn.Module:
    """One branch by name; `options` holds hidden (mlp), text_width / text_layers / text_heads, text_weights."""
    allowed = TEXT_BRANCHES if modality == "text" else SIGNAL_BRANCHES
    if kind not in allowed:
        raise FermixError(f"{modality}_branch must be one of {', '.join(allowed)}, not `{kind}`")
    if kind == "mlp":
        return MLPBranch(shape, out_dim, int(options.get("hidden", 64)))
    if kind == "resnet18":
        return ResNetBranch(out_dim)
    if kind == "albert":
        return AlbertTextBranch(int(shape[1]), out_dim, options.get("text_weights"))
    return TextEncoderBranch(shape, out_dim, int(options.get("text_width", 128)), int(options.get("text_layers", 2)),
                             int(options.get("text_heads", 4)))  # fmt: skip
