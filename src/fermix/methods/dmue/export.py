"""The inference-only DMUE network (spec §1.4): trunk, the target layer4, pooling, BN-neck,
linear. Auxiliary branches, auxiliary classifiers and the uncertainty MLP are training-only,
so inference costs one backbone pass."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from fermix.methods.dmue.convert import State, target_to_export
from fermix.models.backbones import Backbone


class DMUETarget(nn.Module):
    def __init__(self, backbone: Backbone, pool: nn.Module, neck: nn.Module, classifier: nn.Linear) -> None:
        super().__init__()
        self.backbone = backbone
        self.pool = pool
        self.neck = neck
        self.classifier = classifier

    def features(self, image: Tensor) -> Tensor:
        return self.pool(self.backbone(image)).flatten(1)

    def forward(self, image: Tensor) -> Tensor:
        return self.classifier(self.neck(self.features(image)))

    def predict(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        features = self.features(batch["image"])
        return {"expr_logits": self.classifier(self.neck(features)), "features": features}

    def load_authors_weights(self, state: State) -> None:
        """Load weights written by the authors' convert_weights.py (their inference model)."""
        self.load_state_dict(target_to_export(state))
