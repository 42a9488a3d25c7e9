"""fermix.json: what an exported model expects and returns, and where it came from.

Everything a deployment needs besides the weights: the input tensor (shape, dtype, how pixels are
normalised), each output in tuple order with its shape and meaning (class names, AU names), the
face alignment the model was trained on, and the checkpoint it came from (path, sha256,
provenance). `rebuild` holds the method's resolved config and data info, from which
`fermix.export.load_safetensors` builds the module again. docs/export.md describes the schema.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

import fermix

SCHEMA_VERSION = 1
BATCH = "batch"  # the name of the dynamic batch dimension, in shapes and in the ONNX graph


def sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def input_spec(preprocessing: Mapping[str, Any], image_size: int, in_channels: int = 3) -> dict[str, Any]:
    """The image input: B×C×H×W float32, RGB, pixels scaled to [0, 1] then normalised per channel."""
    mean = [float(m) for m in preprocessing.get("mean", [0.0] * in_channels)]
    std = [float(s) for s in preprocessing.get("std", [1.0] * in_channels)]
    trained = int(preprocessing.get("image_size") or image_size)
    # The trained resize-to-crop ratio, kept when the model is exported at another size.
    resize = round(int(preprocessing.get("resize") or trained) * image_size / trained)
    low = [(0.0 - m) / s for m, s in zip(mean, std, strict=True)]
    high = [(1.0 - m) / s for m, s in zip(mean, std, strict=True)]
    return {
        "name": "image",
        "shape": [BATCH, in_channels, image_size, image_size],
        "dtype": "float32",
        "layout": "NCHW, RGB",
        "normalisation": "x = (pixel / 255 - mean) / std, per channel",
        "mean": mean,
        "std": std,
        "value_range": [min(low), max(high)],  # of a normalised pixel, over the channels
        "resize": resize,
        "interpolation": str(preprocessing.get("interpolation", "bilinear")),
        "steps": f"aligned face crop → resize to {resize}×{resize} → centre crop {image_size}×{image_size} "
        "→ RGB float in [0, 1] → normalise",
    }


def _meaning(name: str, meanings: Mapping[str, str], classes: Sequence[str], au_names: Sequence[str]) -> dict[str, Any]:
    if name == "expr_logits":
        text = meanings.get(name, "expression logits per class; softmax gives probabilities")
        return {"meaning": text, "classes": list(classes)}
    if name == "au_logits":
        return {"meaning": "action-unit logits; sigmoid gives occurrence probabilities", "action_units": list(au_names)}
    if name == "au_pred":
        return {"meaning": "0/1 action-unit decisions at the thresholds tuned on validation",
                "action_units": list(au_names)}  # fmt: skip
    if name == "va":
        return {"meaning": "valence and arousal in [-1, 1]", "columns": ["valence", "arousal"]}
    if name == "uncertainty":
        return {"meaning": "per-sample uncertainty of the expression prediction (higher = less certain)"}
    if name == "attention":
        return {"meaning": "spatial attention map (channel mean of a backbone layer's features)"}
    if name == "features":
        return {"meaning": "the penultimate feature vector the classifier reads"}
    return {"meaning": name}


def output_specs(
    names: Sequence[str],
    outputs: Sequence[torch.Tensor],
    meanings: Mapping[str, str],
    classes: Sequence[str],
    au_names: Sequence[str],
) -> list[dict[str, Any]]:
    """One entry per output, in tuple order; the first dimension is the dynamic batch. `meanings`: the
    method's own wording for an output that differs from the usual (`Method.output_meanings`)."""
    specs = []
    for index, (name, value) in enumerate(zip(names, outputs, strict=True)):
        shape = [BATCH, *(int(d) for d in value.shape[1:])]
        dtype = str(value.dtype).removeprefix("torch.")
        specs.append({"index": index, "name": name, "shape": shape, "dtype": dtype,
                      **_meaning(name, meanings, classes, au_names)})  # fmt: skip
    return specs


def build_manifest(
    *,
    fmt: str,
    files: Mapping[str, str],
    meta: Mapping[str, Any],
    ckpt_path: Path,
    image_size: int,
    names: Sequence[str],
    outputs: Sequence[torch.Tensor],
    extra: Mapping[str, Any] | None = None,
    meanings: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The fermix.json contents for a model exported from a checkpoint with metadata `meta`."""
    data_info = meta["data_info"]
    classes = list(meta.get("label_space", data_info["label_space"])["classes"])
    au_names = list((data_info.get("extras") or {}).get("au_names") or [])
    in_channels = int(data_info.get("in_channels", 3))
    manifest: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "fermix_version": fermix.__version__,
        "format": fmt,
        "files": dict(files),
        "method": meta["method"],
        "input": input_spec(meta.get("preprocessing") or {}, image_size, in_channels),
        "outputs": output_specs(names, outputs, meanings or {}, classes, au_names),
        "output_names": list(names),
        "label_space": meta.get("label_space", data_info["label_space"]),
        "action_units": au_names,
        "face_alignment": meta.get("face_alignment"),
        "preprocessing": meta.get("preprocessing"),
        "checkpoint": {
            "path": str(ckpt_path.resolve()),
            "sha256": sha256(ckpt_path),
            "dataset": meta.get("dataset"),
            "metrics": meta.get("metrics", {}),
            "provenance": meta.get("provenance", {}),
        },
        "exported": {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "torch_version": str(torch.__version__)},
        "rebuild": {"config": meta["config"], "data_info": data_info},
    }
    if extra:
        manifest["exported"].update(extra)
    return manifest
