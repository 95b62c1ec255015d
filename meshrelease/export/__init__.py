"""Exporters: ONNX fp32/fp16/int8, and the TF.js layers-model BrainChop loads (no TensorFlow needed)."""

from ..document.brainchop import create_brainchop_model_info
from .tfjs import export_pytorch_to_tfjs, export_to_tfjs

__all__ = ["create_brainchop_model_info", "export_pytorch_to_tfjs", "export_to_tfjs"]
