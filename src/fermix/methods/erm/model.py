from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from fermix.data.info import DataInfo
from fermix.methods.base import Batch, Method, MethodConfig
from fermix.models.backbones import build_backbone


@dataclass
class ERMConfig(MethodConfig):
    dropout: float = 0.0  # before the linear head
    label_smoothing: float = 0.0


class ERM(Method):
    name = "erm"
    Config = ERMConfig
    requires = frozenset({"image", "expr"})
    tasks = ("expr",)

    def __init__(self, config: ERMConfig, data_info: DataInfo, backbone: Mapping[str, Any]) -> None:
        super().__init__(config, data_info, backbone)
        self.backbone = build_backbone(backbone)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(self.backbone.out_channels, data_info.num_classes)

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        features = self.pool(self.backbone(image)).flatten(1)
        return self.classifier(self.dropout(features)), features

    def training_step(self, batch: Batch) -> dict[str, Tensor]:
        logits, _ = self(batch["image"])
        ce = F.cross_entropy(logits, batch["expr"], ignore_index=-1, label_smoothing=self.config.label_smoothing)
        return {"ce": ce}

    def predict(self, batch: Batch) -> dict[str, Tensor]:
        logits, features = self(batch["image"])
        return {"expr_logits": logits, "features": features}
