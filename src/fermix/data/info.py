"""What a dataset tells a method before the method is built (DESIGN §3: sized from the data)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fermix.data.label_spaces import LabelSpace


@dataclass(frozen=True)
class DataInfo:
    label_space: LabelSpace
    keys: frozenset[str]  # batch keys the dataset can supply (DESIGN §1)
    image_size: int = 64
    in_channels: int = 3
    num_domains: int = 1
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return self.label_space.num_classes

    def to_dict(self) -> dict[str, Any]:
        return {
            "label_space": self.label_space.to_dict(),
            "keys": sorted(self.keys),
            "image_size": self.image_size,
            "in_channels": self.in_channels,
            "num_domains": self.num_domains,
            "extras": dict(self.extras),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataInfo:
        return cls(
            label_space=LabelSpace.from_dict(d["label_space"]),
            keys=frozenset(d["keys"]),
            image_size=int(d["image_size"]),
            in_channels=int(d["in_channels"]),
            num_domains=int(d["num_domains"]),
            extras=dict(d.get("extras", {})),
        )
