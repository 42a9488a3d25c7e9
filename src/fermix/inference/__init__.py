"""Prediction with a trained checkpoint: `fermix.load(ckpt).predict(images)` and `fermix predict`.

`Predictor` and `load` are imported on first use, so `fermix.inference.alignment` (read by
engine/train.py) does not pull in the predictor's imports.
"""

from typing import Any

__all__ = ["Predictor", "load"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from fermix.inference import predictor

        return getattr(predictor, name)
    raise AttributeError(f"module 'fermix.inference' has no attribute {name!r}")
