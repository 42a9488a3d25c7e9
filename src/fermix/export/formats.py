"""The three export formats, each written atomically, and the loader for safetensors exports.

- torchscript: `torch.jit.trace` of the wrapper → model.pt (`torch.jit.load`, no fermix needed).
- onnx: `torch.onnx.export` (the dynamo exporter) with a dynamic batch dimension → model.onnx
  (onnxruntime, no torch needed). Needs the `export` extra: onnx, onnxscript, onnxruntime.
- safetensors: the export module's state dict → model.safetensors; `load_safetensors(dir)` builds
  the module from fermix.json's `rebuild` section and loads it (needs fermix, no pickle).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fermix.errors import FermixError
from fermix.export.manifest import BATCH
from fermix.export.wrapper import ExportWrapper
from fermix.utils.io import atomic_path

MANIFEST = "fermix.json"
FILES = {"torchscript": "model.pt", "onnx": "model.onnx", "safetensors": "model.safetensors"}
ONNX_OPSET = 18
ONNX_PACKAGES = ("onnx", "onnxscript")
ONNX_LOGGERS = ("onnxscript", "onnx_ir", "torch.onnx", "torch.export", "torch._dynamo", "torch.fx")


@contextlib.contextmanager
def _quiet(*names: str) -> Iterator[None]:
    """Raise these loggers to WARNING for a while: the ONNX exporter reports every graph pass at INFO."""
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def write_torchscript(wrapper: ExportWrapper, probe: torch.Tensor, path: Path) -> dict[str, Any]:
    """Trace the wrapper on a probe batch; shapes other than the batch size are fixed by the probe."""
    # Warnings silenced: tracer notes on Python values read from tensors, and torch's deprecation
    # notice for TorchScript (still the format most C++ and mobile runtimes load).
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(wrapper, (probe,), check_trace=False, strict=False)
        with atomic_path(path) as tmp:
            torch.jit.save(traced, str(tmp))
    return {}


def check_onnx_installed() -> None:
    missing = [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise FermixError(
            f"format=onnx needs {' and '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not installed; "
            "pip install 'fermix[export]'"
        )


def write_onnx(wrapper: ExportWrapper, probe: torch.Tensor, path: Path) -> dict[str, Any]:
    """The dynamo exporter, opset ONNX_OPSET, input `image` with a dynamic batch dimension; outputs
    named as the wrapper's; weights inside the file (no external data)."""
    check_onnx_installed()
    batch = torch.export.Dim(BATCH, min=1)
    with torch.no_grad(), warnings.catch_warnings(), _quiet(*ONNX_LOGGERS):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            wrapper,
            (probe,),
            dynamo=True,
            input_names=["image"],
            output_names=list(wrapper.output_names),
            dynamic_shapes={"image": {0: batch}},
            opset_version=ONNX_OPSET,
            external_data=False,
            verbose=False,
        )
    with atomic_path(path) as tmp:
        program.save(str(tmp), external_data=False)
    return {"onnx_opset": ONNX_OPSET}


def write_safetensors(wrapper: ExportWrapper, probe: torch.Tensor, path: Path) -> dict[str, Any]:
    """The export module's state dict (tensors copied: safetensors refuses shared storage)."""
    from safetensors.torch import save_file

    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in wrapper.module.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt", "producer": "fermix"})
    return {}


WRITERS: dict[str, Callable[[ExportWrapper, torch.Tensor, Path], dict[str, Any]]] = {
    "torchscript": write_torchscript,
    "onnx": write_onnx,
    "safetensors": write_safetensors,
}


def check_format(fmt: str) -> str:
    if fmt not in WRITERS:
        raise FermixError(f"unknown export format `{fmt}`; choose one of {', '.join(WRITERS)}")
    return fmt


def load_safetensors(directory: str | Path) -> ExportWrapper:
    """The exported model of a `format=safetensors` folder: `model(image) -> tuple` in fermix.json's
    output order, in eval mode; `model.module` is the method's export module (with `predict`)."""
    from safetensors.torch import load_file

    from fermix.data.info import DataInfo
    from fermix.engine.build import build_method

    directory = Path(directory)
    manifest_path, weights = directory / MANIFEST, directory / FILES["safetensors"]
    for needed in (manifest_path, weights):
        if not needed.is_file():
            raise FermixError(f"{directory} is not a safetensors export: it has no {needed.name}")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    rebuild = manifest.get("rebuild") or {}
    if "config" not in rebuild or "data_info" not in rebuild:
        raise FermixError(f"{manifest_path} has no rebuild section (config and data info)")
    config = rebuild["config"]
    method = build_method(config["method"], config["backbone"], DataInfo.from_dict(rebuild["data_info"]),
                          from_checkpoint=True)  # fmt: skip
    module: nn.Module = method.export()
    try:
        module.load_state_dict(load_file(str(weights)))
    except RuntimeError as exc:
        raise FermixError(f"the weights in {weights} do not fit the {method.name} model fermix.json describes") from exc
    return ExportWrapper(module, manifest["output_names"])
