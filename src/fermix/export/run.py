"""`fermix export ckpt=PATH format=torchscript|onnx|safetensors [out=DIR] [image_size=N]`.

Rebuilds the method from the checkpoint alone (as `fermix test` does), takes its inference-only
module (`method.export()`), wraps it so that `model(image)` returns a fixed tuple of named tensors,
writes it in the chosen format and writes fermix.json beside it. Before fermix.json is written the
file is loaded back (TorchScript, safetensors; ONNX when onnxruntime is installed) and run on a
random batch: the largest difference from the checkpoint model's eval-mode outputs is recorded.
"""

from __future__ import annotations

import importlib.util
import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from fermix.errors import FermixError
from fermix.export.formats import FILES, MANIFEST, WRITERS, check_format, check_onnx_installed, load_safetensors
from fermix.export.manifest import build_manifest
from fermix.export.wrapper import ExportWrapper, check_image_only, check_single_frames, wrap
from fermix.utils.io import atomic_write_json

log = logging.getLogger("fermix")

TOLERANCE = 1e-3  # largest |difference| from the checkpoint's outputs that passes without a warning


def rebuild_method(ckpt_path: Path) -> tuple[Any, dict[str, Any]]:
    """The trained method (eval mode, CPU) and the checkpoint's fermix metadata."""
    from fermix.engine.restore import restore_method

    method, meta, _ = restore_method(ckpt_path)
    return method.eval(), meta


def default_out_dir(ckpt_path: Path, fmt: str) -> Path:
    """`<run>/export/<format>/`: beside the checkpoints/ folder of the checkpoint's run (a staged run
    keeps `checkpoints/<stage>/best.ckpt`), else beside the checkpoint file."""
    for parent in list(ckpt_path.parents)[:2]:
        if parent.name == "checkpoints":
            return parent.parent / "export" / fmt
    return ckpt_path.parent / "export" / fmt


def run_exported(fmt: str, path: Path, image: torch.Tensor) -> tuple[torch.Tensor, ...] | None:
    """The written model's outputs on `image`, loaded as a user would load it (None: cannot check here)."""
    if fmt == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's TorchScript deprecation notice
            model = torch.jit.load(str(path), map_location="cpu")
        with torch.no_grad():
            return tuple(model(image))
    if fmt == "safetensors":
        model = load_safetensors(path.parent)
        with torch.no_grad():
            return tuple(model(image))
    if importlib.util.find_spec("onnxruntime") is None:
        return None
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return tuple(torch.from_numpy(o) for o in session.run(None, {"image": image.numpy()}))


def max_abs_diff(expected: tuple[torch.Tensor, ...], got: tuple[torch.Tensor, ...]) -> dict[str, float]:
    return {
        str(i): float((e.double() - g.double()).abs().max()) if e.numel() else 0.0
        for i, (e, g) in enumerate(zip(expected, got, strict=True))
    }


def export_checkpoint(
    ckpt: str | Path, fmt: str, out: str | Path | None = None, image_size: int | None = None, verify: bool = True
) -> Path:
    """Export a checkpoint's inference-only model; returns the folder holding the model and fermix.json."""
    fmt = check_format(str(fmt))
    if fmt == "onnx":
        check_onnx_installed()  # before the (slower) model rebuild
    ckpt_path = Path(ckpt)
    method, meta = rebuild_method(ckpt_path)
    check_image_only(method)
    check_single_frames(meta["config"], method.name)
    size = int(image_size or (meta.get("preprocessing") or {}).get("image_size") or method.data_info.image_size)
    wrapper: ExportWrapper = wrap(method.export(), size, method.data_info.in_channels)
    out_dir = Path(out) if out else default_out_dir(ckpt_path, fmt)
    model_path = out_dir / FILES[fmt]

    probe = torch.randn(2, method.data_info.in_channels, size, size, generator=torch.Generator().manual_seed(0))
    extra = WRITERS[fmt](wrapper, probe, model_path)
    with torch.no_grad():
        check = torch.randn(3, *probe.shape[1:], generator=torch.Generator().manual_seed(1))
        expected = wrapper(check)
    files = {"model": model_path.name}
    manifest = build_manifest(fmt=fmt, files=files, meta=meta, ckpt_path=ckpt_path, image_size=size,
                              names=wrapper.output_names, outputs=expected, extra=extra,
                              meanings=method.output_meanings)  # fmt: skip
    if fmt == "safetensors":
        atomic_write_json(out_dir / MANIFEST, manifest)  # load_safetensors reads it (the final one follows)
    if verify:
        got = run_exported(fmt, model_path, check)
        if got is None:
            log.info("onnxruntime is not installed: the ONNX file was written but not run")
        else:
            diffs = max_abs_diff(expected, got)
            manifest["exported"]["max_abs_diff"] = {wrapper.output_names[int(i)]: d for i, d in diffs.items()}
            worst = max(diffs.values())
            if worst > TOLERANCE:
                log.warning("the exported %s model differs from the checkpoint's by up to %.3g", fmt, worst)
            else:
                log.info("the exported %s model gives the checkpoint's outputs (max |difference| %.2g)", fmt, worst)
    atomic_write_json(out_dir / MANIFEST, manifest)
    return out_dir


def run_export(cfg: DictConfig) -> dict[str, Any]:
    if OmegaConf.is_missing(cfg, "ckpt"):
        raise FermixError("fermix export needs ckpt=PATH, a .ckpt that fermix train wrote")
    out_dir = export_checkpoint(
        cfg.ckpt, str(cfg.format), out=cfg.get("out"), image_size=cfg.get("image_size"), verify=bool(cfg.verify)
    )
    print(f"{cfg.format} model and fermix.json written to {out_dir}")
    return {"out": str(out_dir)}
