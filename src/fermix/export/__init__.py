"""`fermix export`: a checkpoint's inference-only model as TorchScript, ONNX or safetensors, with
fermix.json (input spec, named outputs, label space, preprocessing, provenance). docs/export.md."""

from fermix.export.formats import load_safetensors
from fermix.export.run import export_checkpoint
from fermix.export.wrapper import OUTPUTS, ExportWrapper

__all__ = ["OUTPUTS", "ExportWrapper", "export_checkpoint", "load_safetensors"]
