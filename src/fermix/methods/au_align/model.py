"""`au_align`: a plain classifier whose layer attention is pushed towards action-unit maps."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fermix.data.info import DataInfo
from fermix.errors import FermixError
from fermix.methods.au_align.attention import ATTENTION_KINDS, SCALE_TO, alignment_loss, layer_attention
from fermix.methods.au_align.cams import CAM_KINDS, class_activation_maps
from fermix.methods.au_align.heatmaps import MapSpec, batch_maps, class_units
from fermix.methods.au_align.metrics import attention_cosine, cam_cosine, macro_cosine
from fermix.methods.base import Batch, Method, MethodConfig
from fermix.models.backbones import Backbone, build_backbone


@dataclass
class AUAlignConfig(MethodConfig):
    lam: float = 9.0  # λ of the alignment term (spec: 9 on AffectNet, 4 on RAF-DB)
    layers: list[int] = field(default_factory=lambda: [5])  # aligned layers: 1 stem conv, 2.. the stages
    attention: str = "random_avg"  # avg | random_avg | avg_fixed_q
    p: float = 1.0  # random_avg: probability of keeping a channel
    q: float = 1.0  # avg_fixed_q: share of leading channels
    scale_to: str = "attention"  # attention (map -> layer size) | heatmap (attention -> image size)
    start_epoch: int = 0
    end_epoch: int = -1  # last epoch with the alignment term (inclusive); -1 = to the end
    heatmap: str = "aus_class"  # aus_class | aus_generic | landmarks
    codebook: str = "code"  # code | paper
    map_zoom: float | str = "auto"  # face magnification of input vs stored crop; auto = data_resize / image_size
    data_resize: int | None = None  # the pipeline's data.resize (the YAML interpolates it), read by map_zoom=auto
    base_size: int = 224
    mid_res: int = 28
    lndmk_variance: float = 64.0  # heatmap=landmarks only
    jaw: bool = False  # heatmap=landmarks only
    large_maps: bool = True  # remove the stride of the last `large_maps_stages` stages
    large_maps_stages: int = 2
    cams: list[str] = field(default_factory=lambda: ["cam", "gradcam"])  # CAMs returned and scored
    eval_layers: list[int] = field(default_factory=lambda: [5])  # layers whose ATT-COS is reported
    eval_metrics: bool = True  # per-sample cosines in predict (when the batch has landmarks and labels)


def remove_strides(backbone: Backbone, stages: int) -> None:
    """Stride 1 for every strided conv of the last `stages` stages (the spec's `large_maps`: a
    ResNet's layer3 and layer4, no dilation), so the last map is 8× smaller than the input."""
    if not 0 <= stages <= len(backbone.stages):
        raise FermixError(f"large_maps_stages must be between 0 and {len(backbone.stages)}, got {stages}.")
    for stage in list(backbone.stages)[len(backbone.stages) - stages :]:
        for module in stage.modules():
            if isinstance(module, nn.Conv2d) and module.stride != (1, 1):
                module.stride = (1, 1)


def resolve_map_zoom(zoom: float | str, data_resize: int | None, image_size: int) -> float:
    """The face magnification the AU regions must follow. `auto`: resize-then-crop pipelines show
    the stored crop magnified by resize / image_size (random_crop in training, centre crop at
    evaluation), so the 224 px radii must grow by as much; 1.0 when the resize is unknown."""
    if zoom == "auto":
        return float(data_resize) / float(image_size) if data_resize else 1.0
    try:
        return float(zoom)
    except (TypeError, ValueError):
        raise FermixError(f"map_zoom must be a positive number or `auto`, got {zoom!r}.") from None


def stem_split(stage: nn.Module) -> int | None:
    """Number of leading children of the first stage that make layer 1 (conv + BN + ReLU)."""
    if not isinstance(stage, nn.Sequential):
        return None
    for i, child in enumerate(stage):
        if isinstance(child, nn.ReLU) or any(isinstance(m, nn.ReLU) for m in child.modules()):
            return i + 1
    return None


class AUAlign(Method):
    """Backbone, global average pooling, linear head; training adds λ·(1 − cos) between the channel
    mean of chosen layers and the sample's AU map. Inference is the plain classifier."""

    name = "au_align"
    Config = AUAlignConfig
    requires = frozenset({"image", "expr", "landmarks"})
    tasks = ("expr",)
    figure_samples_per_class = 2

    def __init__(self, config: AUAlignConfig, data_info: DataInfo, backbone: Mapping[str, Any]) -> None:
        super().__init__(config, data_info, backbone)
        self.backbone = build_backbone(backbone)
        if config.large_maps:
            remove_strides(self.backbone, config.large_maps_stages)
        self.num_layers = len(self.backbone.stages) + 1  # layer 0 is the input, as in the original
        self._check(config)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(self.backbone.out_channels, data_info.num_classes)
        nn.init.xavier_uniform_(self.classifier.weight)  # the original's WGAP head init
        nn.init.zeros_(self.classifier.bias)
        self.map_spec = MapSpec(
            kind=config.heatmap,
            codebook=config.codebook,
            zoom=resolve_map_zoom(config.map_zoom, config.data_resize, data_info.image_size),
            base_size=int(config.base_size),
            mid_res=int(config.mid_res),
            lndmk_variance=float(config.lndmk_variance),
            jaw=bool(config.jaw),
        )
        self.class_names = tuple(data_info.label_space.classes)
        units = class_units(self.class_names, config.codebook)
        self.aligned_classes = tuple(c for c, u in zip(self.class_names, units, strict=True) if u)
        self._stem = stem_split(self.backbone.stages[0]) if 1 in {*config.layers, *config.eval_layers} else None
        if 1 in {*config.layers, *config.eval_layers} and self._stem is None:
            raise FermixError("layer 1 (the stem convolution) is not exposed by this backbone; use layers 2 and up.")
        self._epoch = 0

    def _check(self, config: AUAlignConfig) -> None:
        n = self.num_layers
        for what, layers in (("layers", config.layers), ("eval_layers", config.eval_layers)):
            if not layers or any(not 1 <= int(k) <= n for k in layers):
                raise FermixError(
                    f"au_align {what} must be layer numbers from 1 to {n} (0 is the input image), got {list(layers)}."
                )
        if config.attention not in ATTENTION_KINDS:
            raise FermixError(f"unknown attention `{config.attention}`; choose one of: {', '.join(ATTENTION_KINDS)}.")
        if config.scale_to not in SCALE_TO:
            raise FermixError(f"unknown scale_to `{config.scale_to}`; choose one of: {', '.join(SCALE_TO)}.")
        unknown = [k for k in config.cams if k not in CAM_KINDS]
        if unknown:
            raise FermixError(f"unknown CAM method `{unknown[0]}`; choose from: {', '.join(CAM_KINDS)}.")
        if not 0.0 < config.p <= 1.0 or not 0.0 < config.q <= 1.0:
            raise FermixError(f"p and q must be in (0, 1], got p={config.p}, q={config.q}.")
        if config.lam < 0:
            raise FermixError(f"lam (λ) must be ≥ 0, got {config.lam}.")

    # --- network --------------------------------------------------------------------------
    def features(self, image: Tensor, layers: set[int]) -> tuple[Tensor, Tensor, dict[int, Tensor]]:
        """(logits, pooled features, {layer: feature map}) for the requested layer numbers."""
        feats: dict[int, Tensor] = {}
        x = image
        for s, stage in enumerate(self.backbone.stages):
            if s == 0 and 1 in layers:
                for i, child in enumerate(stage):
                    x = child(x)
                    if i + 1 == self._stem:
                        feats[1] = x
            else:
                x = stage(x)
            if s + 2 in layers:
                feats[s + 2] = x
        pooled = self.pool(x).flatten(1)
        return self.classifier(pooled), pooled, feats

    def forward(self, image: Tensor) -> Tensor:
        return self.features(image, set())[0]

    # --- training -------------------------------------------------------------------------
    def on_train_epoch_start(self, epoch: int, max_epochs: int) -> None:
        self._epoch = epoch

    def _align_active(self) -> bool:
        c = self.config
        return c.lam > 0 and self._epoch >= c.start_epoch and (c.end_epoch < 0 or self._epoch <= c.end_epoch)

    def target_maps(self, batch: Batch, kind: str | None = None) -> tuple[Tensor, Tensor]:
        """Maps at the input's resolution from the batch's (already transformed) landmarks and labels."""
        if "landmarks" not in batch:
            raise FermixError("method au_align needs `landmarks` in every batch to draw its AU maps.")
        size = tuple(batch["image"].shape[-2:])
        return batch_maps(batch["landmarks"], batch.get("expr"), self.class_names, size, self.map_spec, kind)

    def training_step(self, batch: Batch) -> dict[str, Tensor]:
        c = self.config
        active = self._align_active()
        logits, _, feats = self.features(batch["image"], set(c.layers) if active else set())
        terms = {"ce": F.cross_entropy(logits, batch["expr"], ignore_index=-1)}
        if active:
            maps, valid = self.target_maps(batch)
            attentions = [layer_attention(feats[k], c.attention, c.p, c.q) for k in c.layers]
            terms["align"] = c.lam * alignment_loss(attentions, maps, valid, c.scale_to)
        return terms

    # --- inference ------------------------------------------------------------------------
    def predict(self, batch: Batch) -> dict[str, Tensor]:
        c = self.config
        last = self.num_layers
        logits, pooled, feats = self.features(batch["image"], {*c.eval_layers, last})
        out = {"expr_logits": logits, "features": pooled}
        attentions = {k: feats[k].float().mean(dim=1, keepdim=True) for k in c.eval_layers}
        out["attention"] = attentions[c.eval_layers[0]]
        expr = batch.get("expr")
        guess = logits.argmax(dim=1)
        classes = guess if expr is None else torch.where(expr >= 0, expr, guess)  # true class when known
        for kind in c.cams:
            out[kind] = class_activation_maps(feats[last], self.classifier.weight, classes, kind)
        if c.eval_metrics and expr is not None and "landmarks" in batch:
            maps, valid = self.target_maps(batch, kind="aus_class")
            for k in c.eval_layers:
                out[f"att_cos@{k}"] = attention_cosine(attentions[k], maps, valid)
            for kind in c.cams:
                out[f"{kind}_cos"] = cam_cosine(out[kind], maps, valid)
        return out

    def metric_names(self) -> list[str]:
        return [f"att_cos@{k}" for k in self.config.eval_layers] + [f"{kind}_cos" for kind in self.config.cams]

    def evaluation_metrics(self, outputs: Mapping[str, Tensor], targets: Mapping[str, Tensor]) -> dict[str, float]:
        """ATT-COS / CAM-COS of the split: per-class means over valid maps, then the class mean."""
        k = self.data_info.num_classes
        expr = targets["expr"]
        return {name: macro_cosine(outputs[name], expr, k) for name in self.metric_names() if name in outputs}

    def evaluation_figures(self, batch: Batch) -> dict[str, Any]:
        from fermix.methods.au_align.figures import overlay_grid

        out = self.predict(batch)
        maps, valid = self.target_maps(batch, kind="aus_class")
        return {"au_align_overlays": overlay_grid(batch, out, maps, valid, self.class_names, self.config)}
